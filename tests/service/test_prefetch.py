"""Prefetch: a step onto a prefetched candidate runs no forward and equals a cold step; the byte bound holds;
users keep their order and results; the lane's idle hold lets every queued request go first."""

from __future__ import annotations

import threading
import time
import weakref

import pytest
import torch

from backends import prefix_cache as cache_mod
from backends.giving_way import decoder_layers, giving_way
from backends.lane import LANE, Cancelled, CancelToken, Lane
from backends.prefix_cache import PrefixCache
from decoding.engine import Engine
from service import prefetch as prefetch_mod
from service.prefetch import MAX_COUNT, Prefetcher, parse_count

PROMPT = "Once upon a time"
SAMPLED = {"temperature": 0.9, "top_k": 3, "seed": 11, "repetition_penalty": 1.2}  # draws among the candidates
TOL = 1e-5
WAIT_S = 120  # bound for a background state to be reached; hit only when the code is broken


def request(engine: Engine, completion=(), params=None, prompt=PROMPT):
    data = {"prompt": prompt, "use_chat_template": False, "completion_ids": list(completion), "top_k": 20}
    return engine.request(data | {"params": params or {"greedy": True}})


@pytest.fixture
def prefetcher(tiny) -> Prefetcher:
    return Prefetcher(count=4)


@pytest.fixture
def model_calls(tiny):
    calls: list[int] = []
    handle = tiny.model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1), with_kwargs=True)
    yield calls
    handle.remove()


def until(condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "a background state was never reached"
        time.sleep(0.01)


def assert_same_result(warm: dict, cold: dict) -> None:
    assert warm["completion_ids"] == cold["completion_ids"]
    assert [m["draw"] for m in warm["appended_meta"]] == [m["draw"] for m in cold["appended_meta"]]
    assert [r["id"] for r in warm["dist"]["tokens"]] == [r["id"] for r in cold["dist"]["tokens"]]
    for a, b in zip(warm["dist"]["tokens"], cold["dist"]["tokens"], strict=True):
        assert abs(a["p_final"] - b["p_final"]) < TOL and abs(a["p_base"] - b["p_base"]) < TOL


@pytest.mark.parametrize("how", ["greedy", "sampled", "forced"])
def test_a_step_onto_a_prefetched_candidate_runs_no_forward_and_equals_a_cold_step(tiny, prefetcher, model_calls, how):
    engine, cold = Engine(tiny, PrefixCache()), Engine(tiny, PrefixCache())
    req = request(engine, params=None if how == "greedy" else SAMPLED)  # greedy: the argmax is the one candidate
    preview = engine.preview(req)
    model_calls.clear()
    prefetcher.schedule(engine, req)
    assert prefetcher.wait_idle(WAIT_S)
    # the likeliest alone, then one batch of the others (greedy has one candidate); the analyses reuse their logits
    forwards = 1 if how == "greedy" else 2
    assert prefetcher.stats.forwards == forwards and len(model_calls) == forwards
    forced = preview.dist["tokens"][2]["id"] if how == "forced" else None  # the third candidate
    model_calls.clear()
    warm = engine.step(req, force_token_id=forced).as_dict()
    assert model_calls == []
    cold.preview(req)
    before = len(model_calls)
    assert_same_result(warm, cold.step(req, force_token_id=forced).as_dict())
    assert len(model_calls) > before  # the cold step did need its forward


def test_a_greedy_walk_with_prefetch_equals_one_without_and_stays_in_the_byte_bound(tiny, prefetcher, model_calls):
    bound = 5 * 4 * tiny.vocab_size  # room for about five logits rows besides the tiny KV entries
    engine, cold = Engine(tiny, PrefixCache(bound)), Engine(tiny, PrefixCache())
    warm_req = cold_req = request(engine)
    engine.preview(warm_req)
    for _ in range(4):
        prefetcher.schedule(engine, warm_req)
        assert prefetcher.wait_idle(WAIT_S)
        assert engine.cache.nbytes <= bound
        warm, expected = engine.step(warm_req).as_dict(), cold.step(cold_req).as_dict()
        assert_same_result(warm, expected)
        warm_req, cold_req = request(engine, warm["completion_ids"]), request(cold, expected["completion_ids"])
    assert prefetcher.stats.forwards == 4  # greedy: the one candidate a step


def test_a_prefetch_in_progress_keeps_the_users_order_and_results(tiny, prefetcher):
    """Two users arrive while the prefetch's batched forward runs: they go next, in their order, unchanged."""
    engine, expected = Engine(tiny, PrefixCache()), Engine(tiny, PrefixCache())
    req = request(engine, params=SAMPLED)
    user_a = request(engine, [engine.preview(req).dist["tokens"][-1]["id"]])  # not a candidate: needs a forward
    user_b = request(engine, prompt="A different story", params=SAMPLED)
    log: list[str] = []
    results: dict[str, dict] = {}

    def user(name, fn, r):
        results[name] = fn(r).as_dict()
        log.append(name)

    def during_prefetch(module, args, kwargs):
        if kwargs["input_ids"].shape[0] > 1 and not log:  # the prefetch's batch, once
            log.append("prefetch forward")
            for count, (name, fn, r) in enumerate((("A", engine.preview, user_a), ("B", engine.step, user_b)), 1):
                threading.Thread(target=user, args=(name, fn, r), daemon=True).start()
                until(lambda count=count: LANE.waiting == count)

    handle = tiny.model.register_forward_pre_hook(during_prefetch, with_kwargs=True)
    try:
        prefetcher.schedule(engine, req)
        until(lambda: len(log) == 3)
        assert prefetcher.wait_idle(WAIT_S)
    finally:
        handle.remove()
    assert log == ["prefetch forward", "A", "B"]
    assert prefetcher.stats.cancelled == 1  # the batch gave way at its first layer: nobody waited for a guess
    expected.preview(req)  # the same calls without a prefetch: the same results, to the bit
    assert results["A"] == expected.preview(user_a).as_dict()
    assert results["B"] == expected.step(user_b).as_dict()


def test_a_request_that_queues_during_a_prefetch_forward_stops_it_at_the_next_layer(tiny, prefetcher):
    engine = Engine(tiny, PrefixCache())
    req = request(engine)
    prompt, top = engine.prompt_ids(req)[0], engine.preview(req).dist["tokens"][0]["id"]
    layers = decoder_layers(tiny.model)
    ran: list[int] = []
    user = threading.Thread(target=lambda: engine.preview(request(engine, prompt="Somebody else")), daemon=True)

    def layer_ran(module, args):
        ran.append(1)
        if threading.current_thread().name == "prefetch" and not user.is_alive() and len(ran) == 1:
            user.start()
            until(lambda: LANE.waiting == 1)

    handles = [layer.register_forward_pre_hook(layer_ran) for layer in layers]
    try:
        prefetcher.schedule(engine, req)
        until(lambda: ran)
        user.join(WAIT_S)
        assert prefetcher.wait_idle(WAIT_S)
    finally:
        for handle in handles:
            handle.remove()
    assert len(layers) > 1 and prefetcher.stats.cancelled == 1
    assert not engine.cache.cached((*prompt, top))  # abandoned after its first layer, before any write


def test_a_request_within_the_quiet_time_finds_the_model_free(tiny, prefetcher, monkeypatch):
    monkeypatch.setattr(prefetch_mod, "QUIET_S", WAIT_S)
    engine = Engine(tiny, PrefixCache())
    req = request(engine)
    nxt = request(engine, [engine.preview(req).dist["tokens"][0]["id"]])
    prefetcher.schedule(engine, req)
    engine.step(nxt)  # a script's next request, at once: nothing of the prefetch's runs before it
    assert prefetcher.stats.jobs == 0 and prefetcher.stats.forwards == 0
    prefetcher.schedule(engine, nxt)  # its answer cancels the waiting job
    prefetcher.configure(0)
    assert prefetcher.wait_idle(WAIT_S) and prefetcher.stats.jobs == 0


def test_a_forward_giving_way_is_abandoned_and_leaves_the_model_as_it_was(tiny):
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        expected = tiny.model(input_ids=ids).logits
        with pytest.raises(Cancelled), giving_way(tiny.model, lambda: True):
            tiny.model(input_ids=ids)
        with giving_way(tiny.model, lambda: False):
            assert torch.equal(tiny.model(input_ids=ids).logits, expected)
        assert torch.equal(tiny.model(input_ids=ids).logits, expected)
    assert all(not layer._forward_pre_hooks for layer in decoder_layers(tiny.model))
    assert decoder_layers(None) is None


def test_a_newer_schedule_cancels_the_older_job(tiny, prefetcher):
    engine = Engine(tiny, PrefixCache())
    old, new = request(engine, prompt="An old position"), request(engine)
    top_old, top_new = (engine.preview(r).dist["tokens"][0]["id"] for r in (old, new))
    with LANE.hold():  # the model is busy: both jobs wait for their idle turn
        prefetcher.schedule(engine, old)
        prefetcher.schedule(engine, new)
    assert prefetcher.wait_idle(WAIT_S)
    prompt_old, prompt_new = engine.prompt_ids(old)[0], engine.prompt_ids(new)[0]
    assert not engine.cache.cached((*prompt_old, top_old))  # the old position's look-ahead never ran
    assert engine.cache.cached((*prompt_new, top_new))


def test_a_job_for_a_model_no_longer_loaded_is_dropped(tiny, prefetcher):
    engine = Engine(tiny, PrefixCache())
    req = request(engine, params=SAMPLED)
    engine.preview(req)
    with LANE.hold():
        prefetcher.schedule(engine, req)
        cache_mod._forget_model(weakref.ref(engine.cache))  # what loading another model does to every cache
    assert prefetcher.wait_idle(WAIT_S)
    assert prefetcher.stats.forwards == 0 and engine.cache.nbytes == 0


def test_count_zero_turns_prefetch_off(tiny):
    engine, off = Engine(tiny, PrefixCache()), Prefetcher(count=0)
    off.schedule(engine, request(engine))
    assert off.wait_idle(WAIT_S) and off.stats.jobs == 0 and engine.cache.stats.forward_calls == 0


def test_parse_count_accepts_zero_to_the_maximum():
    assert parse_count(None) == 4 and parse_count("0") == 0 and parse_count(str(MAX_COUNT)) == MAX_COUNT
    for bad in ("-1", "x", str(MAX_COUNT + 1), "2.5"):
        with pytest.raises(ValueError, match=f"NEXTTOKEN_PREFETCH '{bad}' is not a whole number from 0"):
            parse_count(bad)


def test_the_idle_hold_waits_for_every_queued_request_and_for_a_free_lane():
    lane, order = Lane(), []
    release = threading.Event()

    def holder():
        with lane.hold():
            order.append("holder")
            release.wait(WAIT_S)

    def queued():
        with lane.hold():
            order.append("queued")

    def idle():
        with lane.hold_when_idle():
            order.append("idle")

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    until(lambda: lane.busy)
    threads.append(threading.Thread(target=idle))
    threads[-1].start()
    threads.append(threading.Thread(target=queued))
    threads[-1].start()
    until(lambda: lane.waiting == 1)  # the idle waiter takes no place in the queue
    release.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert order == ["holder", "queued", "idle"]


def test_a_cancelled_idle_hold_never_takes_the_lane():
    lane, cancel = Lane(), CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled), lane.hold_when_idle(cancel):
        pass
    assert not lane.busy


def test_prefetch_under_edits_keeps_each_row_under_its_own_edits(tiny, prefetcher, model_calls):
    """Under model edits the candidates are computed edited and unedited, each kept under its own edits: the step
    onto one runs no forward and equals a cold step; the unedited rows are never served the edited logits."""
    edits = [{"type": "ablate", "layer": 1, "head": 2}]
    engine, cold = Engine(tiny, PrefixCache()), Engine(tiny, PrefixCache())
    data = {"prompt": PROMPT, "use_chat_template": False, "top_k": 20, "params": SAMPLED, "interventions": edits}
    req = engine.request(data)
    engine.preview(req)
    prefetcher.schedule(engine, req)
    assert prefetcher.wait_idle(WAIT_S)
    assert prefetcher.stats.forwards == 4  # the likeliest alone and the others, each edited and unedited
    model_calls.clear()
    warm = engine.step(req).as_dict()
    assert model_calls == []
    expected = cold.step(cold.request(data)).as_dict()
    assert_same_result(warm, expected)
    for a, b in zip(warm["dist"]["tokens"], expected["dist"]["tokens"], strict=True):
        assert abs(a["p_base_unedited"] - b["p_base_unedited"]) < TOL
    assert warm["dist"]["kl_edit"] == pytest.approx(expected["dist"]["kl_edit"], abs=1e-4)
