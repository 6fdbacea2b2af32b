"""Prefetch: while the user reads the bars, the next distributions of the likely next tokens are computed.

After a preview or a step, `PREFETCH.schedule(engine, req)` hands the new position to one background
worker thread. It waits QUIET_S (a script's next request comes first), then, whenever the model lane is
idle (nobody holds it, nobody waits: `Lane.hold_when_idle`), computes the top `count` candidates by p_final
under the request's knobs: the likeliest alone, then the others in ONE batched forward
(`batch_logits(keep=True)`: their KV and logits become prefix-cache entries, inside its byte bound), each
followed by its analysis into the engine's memo, one idle turn each. A step (greedy, sampled or forced)
that lands on a candidate then needs no forward pass. Under model edits the candidates' rows are computed
under the request's edits and without them (the unedited rows beside the edited ones), each kept under its
own edits in the prefix cache. Prefetch never makes a request wait for its guesses:
its forwards run `giving_way`, so one that a request queues behind is abandoned at the next decoder layer.
A newer schedule cancels the older job (newest wins). `count` 0 turns it off (flag --prefetch, env
NEXTTOKEN_PREFETCH).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from backends.giving_way import giving_way
from backends.interventions import Edits
from backends.lane import LANE, Cancelled, CancelToken
from decoding.engine import Engine
from decoding.request import Request
from service.tree import top_tokens

log = logging.getLogger(__name__)

DEFAULT_COUNT = 4
MAX_COUNT = 16  # a batch of more rows costs more than the steps it would save
# After an answer, prefetch waits this long first: a script's next request (a few ms over REST, tens over
# Gradio's queue) then finds the model free, while a person reading the bars (0.3 s or more) loses nothing.
QUIET_S = 0.05


def parse_count(value: object, source: str = "NEXTTOKEN_PREFETCH") -> int:
    """The number of candidates to prefetch: a whole number from 0 (off) to MAX_COUNT; None is the default."""
    if value is None:
        return DEFAULT_COUNT
    text = str(value).strip()
    if not text.isdigit() or int(text) > MAX_COUNT:
        raise ValueError(f"{source} {value!r} is not a whole number from 0 (off) to {MAX_COUNT}")
    return int(text)


@dataclass
class PrefetchStats:
    """Counters for tests and benchmarks."""

    jobs: int = 0
    forwards: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class _Job:
    engine: Engine
    req: Request
    cancel: CancelToken = field(default_factory=CancelToken)


class Prefetcher:
    """One background worker; a job for a model that is no longer loaded is dropped."""

    def __init__(self, count: int | None = None) -> None:
        self.count = parse_count(os.environ.get("NEXTTOKEN_PREFETCH") or None) if count is None else count
        self._cond = threading.Condition()
        self._pending: _Job | None = None
        self._running: _Job | None = None
        self._thread: threading.Thread | None = None
        self.stats = PrefetchStats()

    def configure(self, count: int) -> None:
        self.count = parse_count(count, "prefetch")

    def schedule(self, engine: Engine, req: Request) -> None:
        """Look ahead from `req`'s position (prompt + completion_ids) in the background; cancels older jobs."""
        if self.count == 0:
            return
        with self._cond:
            for old in (self._pending, self._running):
                if old is not None:
                    old.cancel.cancel()
            self._pending = _Job(engine, req)
            if self._thread is None or not self._thread.is_alive():  # also after a fork: threads do not follow
                self._thread = threading.Thread(target=self._loop, name="prefetch", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is pending or running (tests, benchmarks); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and self._running is None, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None)
                job, self._pending, self._running = self._pending, None, self._pending
            try:
                self._run(job)
            except Cancelled:
                self.stats.cancelled += 1
            except Exception:  # a prefetch is only a guess: it never fails anyone's request
                log.warning("prefetch failed", exc_info=True)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _run(self, job: _Job) -> None:
        engine, req, completion = job.engine, job.req, job.req.completion_ids
        if self.count == 0 or job.cancel.wait(QUIET_S):  # a script's next request comes first, uncontested
            return
        self.stats.jobs += 1
        with LANE.hold_when_idle(job.cancel):  # the tokenizer and the constraint tracker too: never beside a user
            prompt, _ = engine.prompt_ids(req)
            if not engine.cache.serves(engine.loaded) or engine.finish_reason(req, prompt, completion) is not None:
                return  # another model came in; or nothing follows (a finished completion, the context's end)
            tokens = top_tokens(engine.analysis(req, prompt, completion)[0].p_final, self.count)
        for group in (tokens[:1], tokens[1:]):  # the likeliest alone first: a greedy caller's next step
            if not group:  # greedy keeps one candidate: no second turn to wait for
                return
            for edits in dict.fromkeys((req.interventions, ())):  # under edits, the unedited rows are shown too
                self._forward(job, (*prompt, *completion), group, edits)
            for token in group:  # the pipeline of each candidate, one idle turn each: never a long wait for users
                with LANE.hold_when_idle(job.cancel):
                    if not engine.cache.serves(engine.loaded):
                        return
                    engine.analysis(req, prompt, (*completion, token))

    def _forward(self, job: _Job, base: tuple[int, ...], tokens: list[int], edits: Edits) -> None:
        """One batched forward over the candidates not cached yet, abandoned at the next layer if anyone queues."""
        engine = job.engine

        def stop() -> bool:
            return LANE.waiting > 0 or job.cancel.cancelled

        with LANE.hold_when_idle(job.cancel), giving_way(engine.loaded.model, stop):
            missing = [(t,) for t in tokens if not engine.cache.cached((*base, t), edits)]
            if missing and engine.cache.serves(engine.loaded):
                engine.cache.batch_logits(engine.loaded, base, missing, keep=True, edits=edits)
                self.stats.forwards += 1


PREFETCH = Prefetcher()
