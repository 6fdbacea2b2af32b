"""Ablation sweeps through the service: every cell equals the preview of the same request with that ablation as one
more `interventions` entry (two for a layer), under the request's own edits too; progress and cancel; bad input
refused in one line; the budget; the model left as it was."""

from __future__ import annotations

import math
import random

import pytest

from backends.model import STORE
from service import sweep as sweeps
from service.budgets import PUBLIC_BUDGETS
from service.operations import POLICY, preview

PROMPT = "Once upon a time there was a"
FULL = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 3}


@pytest.fixture
def tiny_store(tiny, embedded):
    """The tiny random Llama (2 layers, 4 heads) as the shared model, the embedded one afterwards."""
    STORE.use(tiny)
    yield tiny
    STORE.use(embedded)


def body(edits=(), **extra) -> dict:
    data = {"prompt": PROMPT, "use_chat_template": False, "top_k": 1000, "params": FULL, "interventions": list(edits)}
    return data | extra


def log_p(edits, token: int) -> float:
    """log p_base of `token` in the preview of the request with `edits`."""
    return math.log(next(r["p_base"] for r in preview(body(edits))["dist"]["tokens"] if r["id"] == token))


def rank(edits, token: int) -> int:
    rows = preview(body(edits))["dist"]["tokens"]
    target = next(r["p_base"] for r in rows if r["id"] == token)
    return 1 + sum(r["p_base"] > target for r in rows)


def cell_edits(kind: str, layer: int, head: int, mode: str) -> list[dict]:
    if kind == "heads":
        return [{"type": "ablate", "layer": layer, "head": head, "mode": mode}]
    blocks = ["mlp"] if kind == "mlps" else ["attention", "mlp"]
    return [{"type": "ablate", "layer": layer, "component": block, "mode": mode} for block in blocks]


@pytest.mark.parametrize(("kind", "mode"), [("heads", "zero"), ("heads", "mean"), ("mlps", "zero"), ("layers", "mean")])
def test_each_cell_equals_the_preview_with_that_ablation(tiny_store, kind, mode):
    steer = {"type": "steer", "layer": 0, "vector": [0.05] * 64, "alpha": 2.0}
    for edits in ([], [steer]):
        target = preview(body(edits))["dist"]["tokens"][0]["id"]
        answer = sweeps.sweep(body(edits, target_token_id=target, components=kind, mode=mode))
        assert answer["baseline"]["score"] == pytest.approx(log_p(edits, target), abs=1e-5)
        assert answer["baseline"]["rank"] == 1
        grid = answer["grid"] if kind == "heads" else [[cell] for cell in answer["grid"]]
        assert len(grid) == 2 and {len(row) for row in grid} == {4 if kind == "heads" else 1}
        rng = random.Random(kind + mode)
        for _ in range(3):
            layer, head = rng.randrange(2), rng.randrange(len(grid[0]))
            cell, ablated = grid[layer][head], [*edits, *cell_edits(kind, layer, head, mode)]
            assert cell["delta"] == pytest.approx(log_p(ablated, target) - log_p(edits, target), abs=1e-5)
            assert cell["rank"] == rank(ablated, target) and cell["rank_delta"] == cell["rank"] - 1


def test_a_foil_measures_the_difference_and_the_answer_names_it(tiny_store):
    rows = preview(body())["dist"]["tokens"]
    target, foil = rows[0]["id"], rows[1]["id"]
    answer = sweeps.sweep(body(target_token_id=target, contrast_token_id=foil, components="mlps"))
    assert answer["baseline"]["score"] == pytest.approx(log_p([], target) - log_p([], foil), abs=1e-5)
    assert answer["score"] == f"log p(token {target}) - log p(token {foil})"
    assert answer["contrast"]["id"] == foil and answer["target"]["id"] == target


def test_the_stream_reports_each_layer_and_closing_it_stops_the_work(tiny_store):
    items = list(sweeps.sweep_stream(body(target_index=None, target_token_id=5)))
    assert [item["progress"] for item in items[:-1]] == [0.5]
    assert items[0]["desc"] == "ablation sweep: 1 of 2 layers"
    assert "result" in items[-1]
    stream = sweeps.sweep_stream(body(target_token_id=5))
    next(stream)
    stream.close()  # the lane is free again: another request runs at once
    assert preview(body())["dist"]["tokens"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"target_token_id": 5, "components": "neurons"}, "components 'neurons' is not accepted: use one of heads"),
        ({"target_token_id": 5, "mode": "half"}, "mode 'half' is not accepted: use one of zero, mean"),
        ({}, "give target_index (a completion position), target_token_id"),
        ({"target_token_id": 10**9}, "target_token_id"),
        ({"target_token_id": 5, "contrast_token_id": 5}, "contrast_token_id 5 is the target token itself"),
        ({"target_index": 3}, "target_index 3 is out of range"),
    ],
)
def test_bad_input_is_refused_in_one_line(tiny_store, extra, words):
    with pytest.raises(ValueError) as refused:
        sweeps.sweep(body(**extra))
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_the_budget_bounds_context_times_components(tiny_store, monkeypatch):
    monkeypatch.setattr(POLICY, "_settings", POLICY.settings)
    POLICY.configure(public=True, budgets=PUBLIC_BUDGETS.with_limits(max_sweep_work=20))
    with pytest.raises(ValueError, match=r"^the sweep \(\d+ context tokens x 8 heads\) is \d+ token-components; this "):
        sweeps.sweep(body(target_token_id=5, top_k=8))
    assert sweeps.sweep(body(target_token_id=5, top_k=8, components="mlps"))["grid"]  # 7 tokens x 2 layers fit
