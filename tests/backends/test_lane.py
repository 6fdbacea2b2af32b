"""The model lane: FIFO order, slices that let later requests in, cancellation, the bounded queue.

Every test checks the ORDER in which work ran, never how long it took.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from backends.lane import EVENT_CONCURRENCY, Cancelled, CancelToken, Lane, LaneFull

WAIT_S = 10  # generous bound for a thread to reach a state; only hit if the code under test is broken
OPEN = threading.Event()  # a gate that is already open: the holder leaves at once
OPEN.set()


def wait_until(predicate) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a thread")
        time.sleep(0.001)


def start(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def held_until(lane: Lane, gate: threading.Event, log: list, name: str) -> None:
    with lane.hold():
        log.append(name)
        gate.wait(WAIT_S)


def test_waiters_are_served_in_arrival_order():
    lane, log, gate = Lane(), [], threading.Event()
    threads = [start(held_until, lane, gate, log, "first")]
    wait_until(lambda: log == ["first"])
    for i, name in enumerate(["b", "c", "d", "e"]):
        threads.append(start(held_until, lane, gate, log, name))
        wait_until(lambda n=i + 1: lane.waiting == n)
    gate.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert log == ["first", "b", "c", "d", "e"]
    assert not lane.busy and lane.waiting == 0


def long_job(log: list, gates: list[threading.Event]):
    for i, gate in enumerate(gates):
        log.append(f"slice {i}")
        gate.wait(WAIT_S)
        yield i


def step_during(lane: Lane, log: list, gates: list[threading.Event], job) -> None:
    """Start `job`; once its first slice runs, queue a step; then let every slice finish."""
    thread = start(job)
    wait_until(lambda: log == ["slice 0"])
    step = start(held_until, lane, OPEN, log, "step")
    wait_until(lambda: lane.waiting == 1)
    for gate in gates:
        gate.set()
    thread.join(WAIT_S)
    step.join(WAIT_S)


def test_step_sent_during_a_long_sliced_job_runs_before_its_next_slice():
    lane, log = Lane(), []
    gates = [threading.Event() for _ in range(4)]
    results: list[int] = []
    step_during(lane, log, gates, lambda: results.extend(lane.sliced(long_job(log, gates))))
    assert log.index("step") == 1, log
    assert results == [0, 1, 2, 3]


def test_pause_inside_a_hold_lets_waiters_go_first_and_keeps_the_hold():
    lane, log = Lane(), []
    entered = threading.Event()

    def long_holder():
        with lane.hold(), lane.hold():
            log.append("part 1")
            entered.set()
            wait_until(lambda: lane.waiting == 1)
            lane.pause()
            assert lane.held_by_me()
            log.append("part 2")

    holder = start(long_holder)
    entered.wait(WAIT_S)
    other = start(held_until, lane, OPEN, log, "other")
    holder.join(WAIT_S)
    other.join(WAIT_S)
    assert log == ["part 1", "other", "part 2"]
    assert not lane.busy


def test_sliced_inside_an_outer_hold_still_gives_way_between_slices():
    lane, log = Lane(), []
    gates = [threading.Event() for _ in range(3)]

    def outer():
        with lane.hold():
            list(lane.sliced(long_job(log, gates)))

    step_during(lane, log, gates, outer)
    assert log == ["slice 0", "step", "slice 1", "slice 2"]


def counting(done: list):
    try:
        yield from range(100)
    finally:
        done.append("closed")


def test_cancel_stops_at_the_next_slice_and_frees_the_lane():
    lane, token, done = Lane(), CancelToken(), []
    seen = []
    with pytest.raises(Cancelled):
        for item in lane.sliced(counting(done), token):
            seen.append(item)
            if item == 2:
                token.cancel()
    assert seen == [0, 1, 2]
    assert done == ["closed"]
    assert not lane.busy


def test_closing_the_sliced_generator_closes_the_work_and_frees_the_lane():
    lane, done = Lane(), []
    stream = lane.sliced(counting(done))
    assert next(stream) == 0
    stream.close()
    assert done == ["closed"]
    assert not lane.busy and lane.waiting == 0


def test_a_full_queue_refuses_at_once():
    lane, log, gate = Lane(max_waiting=1), [], threading.Event()
    holder = start(held_until, lane, gate, log, "holder")
    wait_until(lambda: lane.busy)
    waiter = start(held_until, lane, gate, log, "waiter")
    wait_until(lambda: lane.waiting == 1)
    with pytest.raises(LaneFull, match="queue is full"), lane.hold():
        pass
    gate.set()
    holder.join(WAIT_S)
    waiter.join(WAIT_S)
    assert log == ["holder", "waiter"]


def test_a_cancelled_waiter_leaves_the_queue():
    lane, log, gate, token = Lane(), [], threading.Event(), CancelToken()
    holder = start(held_until, lane, gate, log, "holder")
    wait_until(lambda: lane.busy)
    errors = []

    def cancelled_waiter():
        try:
            with lane.hold(token):
                log.append("cancelled waiter ran")
        except Cancelled:
            errors.append("cancelled")

    waiter = start(cancelled_waiter)
    wait_until(lambda: lane.waiting == 1)
    token.cancel()
    waiter.join(WAIT_S)
    assert errors == ["cancelled"] and lane.waiting == 0
    after = start(held_until, lane, OPEN, log, "after")
    gate.set()
    holder.join(WAIT_S)
    after.join(WAIT_S)
    assert log == ["holder", "after"]


def test_hold_is_reentrant():
    lane = Lane()
    with lane.hold():
        with lane.hold():
            assert lane.held_by_me()
        assert lane.held_by_me() and lane.busy
    assert not lane.busy
    assert EVENT_CONCURRENCY > 1


def test_held_runs_the_call_under_the_lane():
    lane = Lane()

    @lane.held
    def work(x):
        """Doc."""
        return lane.held_by_me(), x

    assert work(3) == (True, 3) and work.__doc__ == "Doc."
    assert not lane.busy


def test_a_forked_child_starts_with_the_lane_free():
    lane = Lane()
    with lane.hold():
        pid = os.fork()
        if pid == 0:  # the child: another thread must get the lane the parent's thread held
            got = []
            thread = start(lambda: got.append(lane.hold().__enter__() is None))
            thread.join(WAIT_S)
            os._exit(0 if got == [True] else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_background_work_waits_for_an_announced_request_then_goes():
    lane, order = Lane(), []

    def background():
        with lane.hold_when_idle():
            order.append("background")

    lane.expect(30.0)  # a UI event that finishes a step already computed is on its way
    worker = threading.Thread(target=background)
    worker.start()
    time.sleep(0.2)
    order.append("event")  # the announced request comes (it needs no lane: its step was computed)
    lane.expected_arrived()
    worker.join(5)
    assert order == ["event", "background"]


def test_an_announced_request_that_never_comes_holds_background_work_only_until_its_deadline():
    lane, done = Lane(), threading.Event()
    lane.expect(0.2)

    def background():
        with lane.hold_when_idle():
            done.set()

    threading.Thread(target=background).start()
    assert not done.wait(0.05)
    assert done.wait(5)
