"""Activation patching through the service (what Gradio's API and `POST /api/patching` call): a target inside
the completion checked against a hooked patch and plain forwards written here, the answer as the contract
states it, progress and cancel, and one-line refusals (lengths, foil, site, budget, a model without weights)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from backends.lane import LANE
from backends.model import STORE
from backends.model.loading import _tokenizer_and_model
from service import patching as service
from service.budgets import Budgets
from service.contract.answers import PatchingAnswer
from service.operations import POLICY
from tests.attribution.test_patching import PARIS, ROME, reference_cell

BASE = {"prompt": "The capital of France is", "corrupted": "The capital of Italy is", "use_chat_template": False}
COMMA = 11  # ","


@pytest.fixture(autouse=True)
def model(tiny):
    STORE.use(tiny)
    yield tiny


def test_a_target_inside_the_completion_against_a_patch_written_here(model, tokenizer):
    request = BASE | {"completion_ids": [COMMA, PARIS], "target_index": 1, "target_token_id": PARIS,
                      "contrast_token_id": ROME, "site": "mlp"}  # fmt: skip
    out = service.patching(request)
    PatchingAnswer.model_validate(out)
    clean = tokenizer(BASE["prompt"])["input_ids"] + [COMMA]
    corrupted = tokenizer(BASE["corrupted"])["input_ids"] + [COMMA]
    with torch.no_grad():
        rows = [model.model(torch.tensor([ids])).logits[0, -1].double() for ids in (clean, corrupted)]
    assert out["clean"] == pytest.approx(float(rows[0][PARIS] - rows[0][ROME]), abs=1e-5)
    assert out["corrupted"] == pytest.approx(float(rows[1][PARIS] - rows[1][ROME]), abs=1e-5)
    assert [p["id"] for p in out["clean_tokens"]] == clean and [p["id"] for p in out["corrupted_tokens"]] == corrupted
    assert out["target"]["id"] == PARIS and out["contrast"]["id"] == ROME and out["target_index"] == 1
    assert len(out["scores"]) == 2 and all(len(row) == len(clean) for row in out["scores"])
    assert out["scores"][1][3] == pytest.approx(reference_cell(model.model, clean, corrupted, "mlp", 1, 3), abs=1e-4)


def test_progress_after_each_position_then_the_result_and_closing_stops_it(model):
    request = BASE | {"target_token_id": PARIS, "contrast_token_id": ROME}
    items = list(service.patching_stream(request))
    assert [round(i["progress"], 2) for i in items[:-1]] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert items[0]["desc"] == "activation patching: 1 of 5 positions" and items[-1]["result"]["site"] == "residual"
    stream = service.patching_stream(request)
    next(stream)
    stream.close()  # what a client that goes away does: the lane is free at once
    assert not LANE.busy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"corrupted": "The capital of the United Kingdom is"},
            r"^corrupted is 7 tokens and the prompt 5: patching needs",
        ),
        ({"contrast_token_id": None}, r"^contrast_token_id is missing"),
        ({"site": "head"}, r"site"),
        ({"corrupted": "  "}, r"^corrupted is empty"),
        ({"interventions": [{"type": "ablate", "layer": 0, "head": 1}]}, r"^patching runs the unedited model"),
    ],
)
def test_bad_requests_are_refused_in_one_line(change, message):
    request = {key: value for key, value in (BASE | {"target_token_id": PARIS, "contrast_token_id": ROME} | change).items()
               if value is not None}  # fmt: skip
    with pytest.raises(ValueError, match=message) as refused:
        service.patching(request)
    assert "\n" not in str(refused.value)


def test_a_grid_over_the_budget_is_refused_before_any_work(monkeypatch):
    before = POLICY.settings
    POLICY.configure(public=False, budgets=Budgets.defaults(False).with_limits(max_patching_cells=8))
    try:
        with pytest.raises(ValueError, match=r"the patching grid \(2 layers x 5 positions\) is 10 cells; this server "
                                             r"allows 8 \(--max-patching-cells"):  # fmt: skip
            service.patching(BASE | {"target_token_id": PARIS, "contrast_token_id": ROME})
    finally:
        POLICY.configure(before.public, before.allowlist, before.budgets)


def test_a_model_with_no_weights_here_is_refused(tiny, tiny_folder, monkeypatch):
    skeleton = _tokenizer_and_model(str(tiny_folder), torch.float32, False, {}, {})[1]
    for name in ("_current", "_status"):
        monkeypatch.setattr(STORE, name, getattr(STORE, name))
    STORE.use(replace(tiny, model=skeleton))
    try:
        with pytest.raises(
            ValueError, match=r"^activation patching needs gradients and hidden states, .*--attribution"
        ):
            service.patching(BASE | {"target_token_id": PARIS, "contrast_token_id": ROME})
    finally:
        STORE.use(tiny)
