"""The batcher: requests from many threads that wait at the same time become ONE call of a batch function.

An engine that batches (vLLM) serves sixteen prefixes in one call much faster than in sixteen. A thread
hands its items to `Batcher.run`; if no call is in flight it runs one at once with everything waiting
(it leads the batch), else it waits: the thread that leads the next call takes its items along. So a
request never waits for a timer, and while one call runs the next batch gathers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatcherStats:
    """Counters for tests and benchmarks: calls of the batch function and the items they carried."""

    calls: int = 0
    items: int = 0
    largest: int = 0


class _Ticket(Generic[T, R]):
    """One caller's items, and then its results or the error of the call that carried them."""

    def __init__(self, items: Sequence[T]) -> None:
        self.items = list(items)
        self.results: list[R] | None = None
        self.error: BaseException | None = None


class Batcher(Generic[T, R]):
    """Runs `batch(items) -> results` (one result per item, in order) over the items of every waiting caller."""

    def __init__(self, batch: Callable[[list[T]], Sequence[R]]) -> None:
        self._batch = batch
        self._cond = threading.Condition()
        self._waiting: list[_Ticket[T, R]] = []
        self._busy = False
        self.stats = BatcherStats()

    def run(self, items: Sequence[T]) -> list[R]:
        """The results of `items`, computed in one call together with the items of the other waiting callers."""
        ticket: _Ticket[T, R] = _Ticket(items)
        with self._cond:
            self._waiting.append(ticket)
            while self._busy and ticket.results is None and ticket.error is None:
                self._cond.wait()
            if ticket.results is None and ticket.error is None:  # nobody took it along: lead the next call
                tickets, self._waiting, self._busy = self._waiting, [], True
            else:
                tickets = []
        if tickets:
            self._lead(tickets)
        if ticket.error is not None:
            raise ticket.error
        return ticket.results  # type: ignore[return-value]

    def _lead(self, tickets: list[_Ticket[T, R]]) -> None:
        """One call over every ticket's items; each ticket gets its share of the results (or the error)."""
        items = [item for ticket in tickets for item in ticket.items]
        try:
            results = list(self._batch(items))
            if len(results) != len(items):
                raise RuntimeError(f"the batch function gave {len(results)} results for {len(items)} items")
        except BaseException as exc:  # every caller of this batch sees why it failed
            for ticket in tickets:
                ticket.error = exc
        else:
            start = 0
            for ticket in tickets:
                ticket.results, start = results[start : start + len(ticket.items)], start + len(ticket.items)
        finally:
            with self._cond:
                self.stats.calls += 1
                self.stats.items += len(items)
                self.stats.largest = max(self.stats.largest, len(items))
                self._busy = False
                self._cond.notify_all()
