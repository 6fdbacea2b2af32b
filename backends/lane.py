"""The single model lane: every use of the shared model queues here, first come first served.

One model serves every user, so model work runs one request at a time. `LANE.hold()` waits its turn
in a FIFO queue (a waiter that arrives later never overtakes one that arrived earlier). Long work runs
in slices (`LANE.sliced(work, cancel)`): the lane is held for one slice at a time and taken again
at the back of the queue, so a step that arrived during a long integrated-gradients run goes between
two of its slices. `LANE.pause()` does the same from inside a hold. A `CancelToken` stops sliced work
at the next slice boundary (`Cancelled`). The queue is bounded: a request beyond `max_waiting`
waiters is refused at once with `LaneFull`, which the transports answer with 429/503.

Holding is reentrant per thread, so a function that holds the lane may call another that does. A
forked child (ZeroGPU runs each GPU call in one) starts with every lane free: the parent's hold covers it.
Background work (prefetch) uses `hold_when_idle()`, which waits until the lane is free and nobody waits.
An engine that batches on its own (vLLM) raises the lane's concurrency: while a request waits for that
engine's answer it stands aside (`LANE.stand_aside()`), so other requests run their own work meanwhile and
their forwards reach the engine together. A request standing aside still counts as work in progress:
background work waits for it like for a holder.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable)

EVENT_CONCURRENCY = 8  # UI events that may run at once; the lane, not Gradio, serialises the model work
DEFAULT_MAX_WAITING = 64
CANCEL_POLL_S = 0.1  # how often a cancellable waiter looks at its token


@dataclass(frozen=True)
class Progress:
    """What sliced work reports after a slice: `done` of `total` units, and what it is doing."""

    done: int
    total: int
    desc: str

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 1.0


class Cancelled(Exception):
    """The work was cancelled (by the user, or a client that went away) at a slice boundary."""


class LaneFull(RuntimeError):
    """Too many requests are already waiting for the model; try again shortly."""


class CancelToken:
    """A flag that one side sets and the sliced work checks between slices."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early when the token is set; whether it is set."""
        return self._event.wait(seconds)

    def check(self) -> None:
        """Raise `Cancelled` if the token is set."""
        if self._event.is_set():
            raise Cancelled("the work was cancelled")


def _max_waiting_from_env() -> int:
    text = os.environ.get("NEXTTOKEN_LANE_MAX_WAITING", "").strip()
    if not text:
        return DEFAULT_MAX_WAITING
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"NEXTTOKEN_LANE_MAX_WAITING {text!r} must be a whole number >= 1")
    return int(text)


_LANES: weakref.WeakSet[Lane] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lane in list(_LANES):
        lane._forget_holders()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Lane:
    """A fair (FIFO), reentrant, bounded lock around the shared model."""

    def __init__(self, max_waiting: int | None = None) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # one ticket per waiting thread, in arrival order
        self._owner: int | None = None
        self._depth = 0
        self._aside = 0  # requests standing aside (waiting for an engine that batches): the lane is not idle
        self._expected_until = 0.0  # a request announced to follow soon: background work waits for it till then
        self.max_waiting = _max_waiting_from_env() if max_waiting is None else max_waiting
        _LANES.add(self)

    def _forget_holders(self) -> None:
        """In a forked child: the threads that held or awaited the lane do not exist here."""
        self._cond = threading.Condition()
        self._queue = deque()
        self._owner, self._depth, self._aside = None, 0, 0

    @property
    def waiting(self) -> int:
        """How many requests wait for the lane now."""
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._owner is not None

    def held_by_me(self) -> bool:
        return self._owner == threading.get_ident()

    @contextmanager
    def hold(self, cancel: CancelToken | None = None) -> Iterator[None]:
        """Hold the lane for the block; waits behind everyone queued before. LaneFull if the queue is full."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                if len(self._queue) >= self.max_waiting and (self._owner is not None or self._queue):
                    raise LaneFull(
                        f"the model queue is full ({len(self._queue)} requests waiting, the limit is "
                        f"{self.max_waiting}); try again in a moment"
                    )
                self._acquire(me, cancel)
        try:
            yield
        finally:
            self._release()

    def held(self, fn: F) -> F:
        """Decorator: the whole call runs under `hold()` (put it above `@gpu`, so the lane is held outside
        a ZeroGPU worker process)."""

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.hold():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    @contextmanager
    def hold_when_idle(self, cancel: CancelToken | None = None) -> Iterator[None]:
        """Hold the lane once it is free and nobody waits: the low-priority turn of background work (prefetch).

        It takes no place in the queue, so every request that queues meanwhile goes first. Raises `Cancelled`
        if `cancel` is set while waiting.
        """
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                while True:  # cancelled work never takes the lane, even when it is free
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled("the background work was cancelled while waiting for the model")
                    expected = self._expected_until - time.monotonic()
                    if self._owner is None and not self._queue and not self._aside and expected <= 0:
                        break
                    timeouts = [t for t in (CANCEL_POLL_S if cancel is not None else None, expected) if t and t > 0]
                    self._cond.wait(min(timeouts) if timeouts else None)
                self._owner, self._depth = me, 1
        try:
            yield
        finally:
            self._release()

    def expect(self, seconds: float) -> None:
        """A request will follow within `seconds` (a UI event that finishes a step already computed): background
        work waits for it so as not to compete with it for the CPU, or until then, whichever comes first."""
        with self._cond:
            self._expected_until = max(self._expected_until, time.monotonic() + seconds)

    def expected_arrived(self) -> None:
        """The announced request came: background work may go (the next time the lane is idle)."""
        with self._cond:
            self._expected_until = 0.0
            self._cond.notify_all()

    def pause(self, cancel: CancelToken | None = None) -> None:
        """From inside a hold: if anyone waits, let them all go first, then continue (same hold depth).

        The caller must leave the model and the shared cache consistent before pausing. Raises
        `Cancelled` afterwards, still holding, if `cancel` was set meanwhile.
        """
        me = threading.get_ident()
        with self._cond:
            if self._owner != me:
                raise RuntimeError("pause() needs the lane to be held by this thread")
            if self._queue:
                depth = self._depth
                self._owner, self._depth = None, 0
                self._cond.notify_all()
                self._acquire(me, None)  # no cancel while waiting: the caller's hold must be restored
                self._depth = depth
        if cancel is not None:
            cancel.check()

    @contextmanager
    def stand_aside(self) -> Iterator[None]:
        """From inside a hold (or not holding: then nothing changes): give the lane up for the block, then
        take it back at the back of the queue, at the same depth.

        For waiting on an engine in another process: the model itself is not touched in the block, so the
        requests that go meanwhile reach that engine too and are batched with this one.
        """
        me = threading.get_ident()
        with self._cond:
            depth = self._depth if self._owner == me else 0
            if depth:
                self._owner, self._depth = None, 0
                self._aside += 1
                self._cond.notify_all()
        try:
            yield
        finally:
            if depth:
                with self._cond:
                    self._aside -= 1
                    self._acquire(me, None)  # no cancel while waiting: the caller's hold must be restored
                    self._depth = depth

    def sliced(self, work: Iterable[T], cancel: CancelToken | None = None) -> Iterator[T]:
        """Run `work` one item (slice) at a time under the lane, giving it back between slices.

        Each `next()` of `work` runs under its own hold, taken at the back of the queue, so requests
        that arrived during a slice run before the next one. Each slice must leave the shared model as
        it found it. Stops with `Cancelled` at the next boundary once `cancel` is set.
        """
        items = iter(work)
        try:
            while True:
                if cancel is not None:
                    cancel.check()
                with self.hold(cancel):
                    try:
                        item = next(items)
                    except StopIteration:
                        return
                    if self._depth > 1:  # held around us by the caller: yield from inside instead
                        self.pause(cancel)
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _acquire(self, me: int, cancel: CancelToken | None) -> None:
        """Queue a ticket and wait for the head of the queue and a free lane (caller holds `_cond`)."""
        ticket = object()
        self._queue.append(ticket)
        try:
            while self._owner is not None or self._queue[0] is not ticket:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled("the work was cancelled while waiting for the model")
                self._cond.wait(CANCEL_POLL_S if cancel is not None else None)
        except BaseException:
            self._queue.remove(ticket)
            self._cond.notify_all()
            raise
        self._queue.popleft()
        self._owner, self._depth = me, 1

    def _release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


LANE = Lane()
