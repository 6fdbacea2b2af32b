"""The batcher: callers that wait at the same time share one call of the batch function; results and errors
reach the right callers; and a request standing aside from the model lane lets others run meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

from backends.lane import Lane
from backends.vllm.batcher import Batcher

WAIT_S = 60  # bound for a state to be reached; hit only when the code is broken


def until(condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "a state was never reached"
        time.sleep(0.005)


class GatedDoubler:
    """A batch function that doubles its items; each call waits for `gate` once `hold` is set."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.entered.set()
        assert self.gate.wait(WAIT_S)
        return [2 * i for i in items]


def test_one_caller_gets_its_results_in_order_from_one_call():
    batch = GatedDoubler()
    batch.gate.set()
    batcher = Batcher(batch)
    assert batcher.run([3, 1, 2]) == [6, 2, 4]
    assert batch.calls == [[3, 1, 2]] and batcher.stats.calls == 1


def test_callers_waiting_during_a_call_share_the_next_call_and_each_gets_its_own_results():
    batch = GatedDoubler()
    batcher = Batcher(batch)
    results: dict[str, list[int]] = {}

    def caller(name: str, items: list[int]) -> None:
        results[name] = batcher.run(items)

    first = threading.Thread(target=caller, args=("first", [1]))
    first.start()
    assert batch.entered.wait(WAIT_S)  # the first call is in flight
    others = [
        threading.Thread(target=caller, args=(n, items)) for n, items in (("a", [10, 11]), ("b", [20]), ("c", [30]))
    ]
    for thread in others:
        thread.start()
    until(lambda: len(batcher._waiting) == 3)
    batch.gate.set()
    for thread in (first, *others):
        thread.join(WAIT_S)
    assert results == {"first": [2], "a": [20, 22], "b": [40], "c": [60]}
    assert len(batch.calls) == 2 and sorted(batch.calls[1]) == [10, 11, 20, 30]
    assert (batcher.stats.calls, batcher.stats.items, batcher.stats.largest) == (2, 5, 4)


def test_a_failed_call_raises_in_every_caller_it_carried_and_the_next_call_runs():
    def failing(items):
        if 0 in items:
            raise ValueError("item 0 is refused")
        return items

    batcher = Batcher(failing)
    with pytest.raises(ValueError, match="item 0 is refused"):
        batcher.run([0, 1])
    assert batcher.run([5]) == [5]


def test_a_batch_function_giving_the_wrong_number_of_results_is_an_error():
    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        Batcher(lambda items: items[:1]).run([1, 2])


def test_standing_aside_lets_another_request_hold_the_lane_and_restores_the_hold():
    lane = Lane()
    log: list[str] = []
    inside, other_done = threading.Event(), threading.Event()

    def other() -> None:
        with lane.hold():
            log.append("other")
        other_done.set()

    with lane.hold(), lane.hold():  # depth 2, as a service call that holds around the engine
        with lane.stand_aside():
            inside.set()
            threading.Thread(target=other).start()
            assert other_done.wait(WAIT_S)  # without standing aside this would wait for the whole hold
            log.append("answer")
        assert lane.held_by_me() and lane._depth == 2
    assert log == ["other", "answer"] and not lane.busy


def test_standing_aside_without_holding_changes_nothing():
    lane = Lane()
    with lane.stand_aside():
        assert not lane.busy
    assert not lane.busy


def test_background_work_does_not_take_the_lane_while_a_request_stands_aside():
    lane = Lane()
    got = threading.Event()

    def background() -> None:
        with lane.hold_when_idle():
            got.set()

    with lane.hold(), lane.stand_aside():
        threading.Thread(target=background).start()
        assert not got.wait(0.3)  # the lane is free, yet a request is still in progress
    assert got.wait(WAIT_S)  # once it is done, the background work runs
