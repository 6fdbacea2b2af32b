"""The look-ahead tree through the service, REST and Gradio; prefetch after the service's preview and step."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from gradio_client import Client

from backends.lane import LANE
from backends.model import STORE
from backends.prefix_cache import PREFIX_CACHE
from service import operations as service
from service.budgets import Budgets
from service.prefetch import PREFETCH

PROMPT = "The capital of France is"
REQUEST = {
    "prompt": PROMPT,
    "use_chat_template": False,
    "top_k": 50,
    "params": {"temperature": 0.8, "top_p": 1.0, "seed": 3},
}
WAIT_S = 120  # bound for the background prefetch; hit only when the code is broken


@pytest.fixture(scope="module")
def model(embedded):
    STORE.use(embedded)
    return embedded


@pytest.fixture(scope="module")
def url(model, launched_url):
    return launched_url


def walk(nodes):
    for node in nodes:
        yield node
        yield from walk(node["children"])


def test_the_tree_has_the_documented_shape_and_its_nodes_equal_preview(model):
    tree = service.tree(REQUEST | {"width": 2, "depth": 2})
    assert set(tree) == {"width", "depth", "node_count", "children"} and tree["node_count"] == 6
    first = tree["children"][0]
    assert set(first) == {"token", "path_ids", "p_base", "p_final", "path_probability", "finish_reason", "children"}
    assert first["token"]["display"] == "␣Paris" and first["path_ids"] == [first["token"]["id"]]
    for node in walk(tree["children"]):
        dist = service.preview(REQUEST | {"completion_ids": node["path_ids"][:-1]})["dist"]
        row = next(r for r in dist["tokens"] if r["id"] == node["token"]["id"])
        assert abs(row["p_final"] - node["p_final"]) < 1e-5 and abs(row["p_base"] - node["p_base"]) < 1e-5


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"width": 0}, "width 0 is out of range: accepted is an integer from 1 to 8"),
        ({"width": 9}, "width 9 is out of range: accepted is an integer from 1 to 8"),
        ({"depth": 5}, "depth 5 is out of range: accepted is an integer from 1 to 4"),
        ({"depth": "2"}, "depth '2' is not an integer"),
        ({"width": True}, "width True is not an integer"),
        ({"width": 2.5}, "width 2.5 is not an integer"),
        ({"breadth": 2}, "unknown key 'breadth'"),
    ],
)
def test_bad_width_and_depth_are_refused_in_one_line(model, extra, words):
    with pytest.raises(ValueError, match=words):
        service.tree(REQUEST | extra)


def test_a_tree_over_the_budget_is_refused_before_any_model_work(model, monkeypatch):
    monkeypatch.setattr(service.POLICY, "_settings", service.POLICY.settings)
    service.POLICY.configure(public=False, budgets=Budgets.defaults(False).with_limits(max_tree_tokens=1000))
    before = PREFIX_CACHE.stats.forward_calls
    with pytest.raises(ValueError) as refused:
        service.tree(REQUEST | {"width": 8, "depth": 3})
    assert str(refused.value).startswith("the tree (width 8, depth 3: 585 nodes over a context of 5 tokens) is ")
    assert "this server allows 1,000 (--max-tree-tokens / NEXTTOKEN_MAX_TREE_TOKENS)" in str(refused.value)
    assert PREFIX_CACHE.stats.forward_calls == before


def test_a_tree_past_the_model_context_is_refused(model):
    with pytest.raises(ValueError, match="longer than the model's context"):
        service.tree(REQUEST | {"completion_ids": [7042] * model.context_length, "width": 1, "depth": 1})


def test_public_mode_allows_a_width_4_depth_3_tree_and_refuses_the_largest():
    public = Budgets.defaults(True)
    public.check_tree(100, 4, 3, 85, 85 * 103)
    with pytest.raises(ValueError, match="max-tree-tokens"):
        public.check_tree(2000, 8, 4, 4681, 4681 * 2004)


def test_a_greedy_step_after_the_service_preview_runs_from_the_prefetch(model, monkeypatch):
    monkeypatch.setattr(PREFETCH, "count", 4)  # the default, whatever the environment says
    request = REQUEST | {"prompt": "The largest ocean on Earth is the", "params": {"greedy": True}}
    service.preview(request)
    assert PREFETCH.wait_idle(WAIT_S)
    before = PREFIX_CACHE.stats.forward_calls
    step = service.step(request)
    assert PREFIX_CACHE.stats.forward_calls == before and len(step["completion_ids"]) == 1
    assert PREFETCH.wait_idle(WAIT_S)  # the step scheduled the next look-ahead: the next step is served too
    service.step(request | {"completion_ids": step["completion_ids"]})
    assert PREFETCH.wait_idle(WAIT_S)
    assert PREFIX_CACHE.stats.forward_calls == before + 2  # the prefetches after each step, never a user's step


def test_a_request_sent_during_a_level_goes_before_the_next_level(model, monkeypatch):
    monkeypatch.setattr(PREFETCH, "count", 0)
    log: list[str] = []

    def preview():
        service.preview(REQUEST | {"prompt": "Another prompt"})
        log.append("preview")

    def on_forward(module, args, kwargs):
        if kwargs["input_ids"].shape[0] > 1:  # a level's batch
            log.append("level")
            if len(log) == 1:
                threading.Thread(target=preview, daemon=True).start()
                wait_until(lambda: LANE.waiting == 1)

    handle = model.model.register_forward_pre_hook(on_forward, with_kwargs=True)
    try:
        service.tree(REQUEST | {"prompt": "A third prompt", "width": 2, "depth": 3})
    finally:
        handle.remove()
    assert log == ["level", "preview", "level"]


def wait_until(condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "a background request never queued"
        time.sleep(0.01)


def test_rest_and_gradio_answer_the_tree(url):
    body = REQUEST | {"width": 2, "depth": 1}
    rest = httpx.post(url + "/api/tree", content=json.dumps(body), timeout=WAIT_S)
    assert rest.status_code == 200 and rest.json()["node_count"] == 2
    bad = httpx.post(url + "/api/tree", content=json.dumps(body | {"width": 9}), timeout=WAIT_S)
    assert bad.status_code == 400 and "width 9 is out of range" in bad.json()["detail"]
    answer = Client(url, verbose=False).predict(body, api_name="/tree")
    assert answer == rest.json()
