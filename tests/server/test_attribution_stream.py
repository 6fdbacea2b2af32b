"""The service's attribution in slices: progress, closing, a request served between slices, any target.

On the embedded model with short contexts; integrated gradients runs one path point per slice here.
"""

from __future__ import annotations

import threading

import pytest

from attribution import attribute, clear_cache
from attribution import gradients as gradients_mod
from backends.lane import LANE
from backends.model import STORE
from service import operations as service

PROMPT = "The capital of France is"
BASE = {"prompt": PROMPT, "use_chat_template": False}
IG = BASE | {"target_token_id": 7042, "method": "integrated_gradients", "ig_steps": 4}


@pytest.fixture(autouse=True)
def model(embedded, monkeypatch):
    STORE.use(embedded)
    monkeypatch.setattr(gradients_mod, "IG_TOKEN_BUDGET", 1)  # one path point per slice
    clear_cache()
    yield embedded
    clear_cache()


def test_the_stream_reports_progress_then_the_result_of_attribution():
    items = list(service.attribution_stream(IG))
    progress, last = items[:-1], items[-1]
    assert [set(p) for p in progress] == [{"progress", "desc"}] * 4
    fractions = [p["progress"] for p in progress]
    assert fractions == sorted(fractions) and fractions[0] > 0 and fractions[-1] < 1
    assert "integrated gradients" in progress[0]["desc"]
    result = last["result"]
    assert result == service.attribution(IG)  # the same dict (from the result cache now)
    assert result["steps"] == 4 and result["signed"] is False and result["target"]["id"] == 7042


def test_validation_happens_on_the_first_next():
    stream = service.attribution_stream(BASE | {"target_token_id": 5, "method": "magic"})
    with pytest.raises(ValueError, match="method 'magic' is not accepted"):
        next(stream)
    assert not LANE.busy


def test_closing_the_stream_stops_the_work_and_frees_the_lane(monkeypatch):
    points = []
    real = gradients_mod._path_gradients
    monkeypatch.setattr(gradients_mod, "_path_gradients", lambda *a: points.append(1) or real(*a))
    stream = service.attribution_stream(IG | {"ig_steps": 16})
    next(stream)
    stream.close()
    assert len(points) == 1 and not LANE.busy and LANE.waiting == 0


def test_a_step_sent_after_a_long_attribution_started_finishes_first():
    order, stepped = [], threading.Event()

    def step():
        service.step(BASE | {"params": {"greedy": True}})
        order.append("step")
        stepped.set()

    stream = service.attribution_stream(IG | {"ig_steps": 8})
    next(stream)  # the attribution has started
    threading.Thread(target=step, daemon=True).start()
    while LANE.waiting == 0 and not stepped.is_set():
        stepped.wait(0.001)
    for _ in stream:
        pass
    order.append("attribution")
    stepped.wait(60)
    assert order == ["step", "attribution"]


def test_a_token_at_a_position_explains_any_candidate_there(model, tokenizer):
    completion = tokenizer(" Paris, the city", add_special_tokens=False)["input_ids"]
    prompt = tokenizer(PROMPT)["input_ids"]
    out = service.attribution(BASE | {"completion_ids": completion, "target_index": 2, "target_token_id": 7042})
    expected = attribute(model, [*prompt, *completion[:2]], 7042, "saliency")
    assert out["scores"] == pytest.approx(expected.scores, abs=1e-6)
    assert out["target"]["id"] == 7042 and out["target_index"] == 2
    own = service.attribution(BASE | {"completion_ids": completion, "target_index": 2})
    assert own["target"]["id"] == completion[2] and own["target_index"] == 2
    after = service.attribution(
        BASE | {"completion_ids": completion, "target_index": len(completion), "target_token_id": 5}
    )
    assert len(after["scores"]) == len(prompt) + len(completion)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"target_index": 4, "target_token_id": 5}, "target_index 4 is out of range: accepted is 0 to 3"),
        ({"target_index": 3}, "target_index 3 is out of range: accepted is 0 to 2"),
        ({}, "give target_index (a completion position), target_token_id"),
    ],
)
def test_targets_out_of_range_are_named(extra, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        service.attribution(BASE | {"completion_ids": [11, 12, 13]} | extra)
