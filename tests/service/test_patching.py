"""Activation patching through the service (what Gradio's API and `POST /api/patching` call): a target inside
the completion checked against a hooked patch and plain forwards written here (also under the request's model
edits, and for a conversation rendered with the chat template), the answer as the contract states it, progress
and cancel, and one-line refusals (lengths, foil, site, budget, a model without weights)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from backends.interventions import Ablate, applied
from backends.lane import LANE
from backends.model import STORE
from backends.model.loading import _tokenizer_and_model
from service import patching as service
from service.budgets import Budgets
from service.contract.answers import PatchingAnswer
from service.operations import POLICY
from tests.attribution.test_patching import PARIS, ROME, reference_cell

UK = "The capital of the United Kingdom is"
CHAT = {
    "prompt": None,
    "messages": [{"role": "user", "content": "The capital of France is"}],
    "use_chat_template": True,
}
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


def _differences(model, ids) -> float:
    with torch.no_grad():
        row = model(torch.tensor([ids])).logits[0, -1].double()
    return float(row[PARIS] - row[ROME])


@pytest.mark.parametrize(
    ("edits", "site"),
    [([Ablate(0, head=1)], "mlp"), ([Ablate(1, component="mlp", mode="mean")], "residual"),
     ([Ablate(0, component="attention", mode="mean"), Ablate(1, head=3)], "attention")],
)  # fmt: skip
def test_under_the_request_s_edits_every_run_is_the_edited_model_s(model, tokenizer, edits, site):
    """The baselines are plain forwards of the edited model and each cell our own hooked patch of it (the edit
    installed first, so the patch copies what the edited clean run had)."""
    request = BASE | {"target_token_id": PARIS, "contrast_token_id": ROME, "site": site,
                      "interventions": [edit.as_dict() for edit in edits]}  # fmt: skip
    out = service.patching(request)
    clean, corrupted = (tokenizer(BASE[key])["input_ids"] for key in ("prompt", "corrupted"))
    with applied(model.model, tuple(edits)):
        assert out["clean"] == pytest.approx(_differences(model.model, clean), abs=1e-5)
        assert out["corrupted"] == pytest.approx(_differences(model.model, corrupted), abs=1e-5)
        for layer, position in [(0, 3), (1, 3), (1, 4), (0, 0)]:
            expected = reference_cell(model.model, clean, corrupted, site, layer, position)
            assert out["scores"][layer][position] == pytest.approx(expected, abs=1e-4), (layer, position)
    assert out["clean"] != pytest.approx(_differences(model.model, clean), abs=1e-5)  # the edit did change it


def test_a_conversation_patches_its_last_user_message_rendered_by_the_chat_template(model, tokenizer):
    messages = [{"role": "user", "content": "Name a city."}, {"role": "assistant", "content": "Lyon."},
                {"role": "user", "content": BASE["prompt"]}]  # fmt: skip
    request = {"messages": messages, "use_chat_template": True, "corrupted": BASE["corrupted"],
               "target_token_id": PARIS, "contrast_token_id": ROME}  # fmt: skip
    out = service.patching(request)
    corrupted_messages = [*messages[:2], {"role": "user", "content": BASE["corrupted"]}]
    clean, corrupted = (tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True)
                        for m in (messages, corrupted_messages))  # fmt: skip
    clean, corrupted = (list(getattr(ids, "input_ids", ids)) for ids in (clean, corrupted))
    assert [p["id"] for p in out["clean_tokens"]] == clean and [p["id"] for p in out["corrupted_tokens"]] == corrupted
    assert out["clean"] == pytest.approx(_differences(model.model, clean), abs=1e-5)
    changed = next(i for i, (a, b) in enumerate(zip(clean, corrupted, strict=True)) if a != b)
    expected = reference_cell(model.model, clean, corrupted, "residual", 1, changed)
    assert out["scores"][1][changed] == pytest.approx(expected, abs=1e-4)
    suggested = service.suggest_corrupted({"messages": messages, "use_chat_template": True})
    assert "'France' replaced by" in suggested["note"] and suggested["corrupted"].startswith("The capital of ")


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
        (
            CHAT | {"corrupted": UK},
            r"^corrupted is \d+ tokens and the prompt \d+ \(both as the chat template renders the conversation\)",
        ),
        (
            {"prompt": None, "messages": [{"role": "assistant", "content": "Paris"}], "use_chat_template": True},
            r"^messages has no user message: patching changes a word of the last user message$",
        ),
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


def test_a_lowercase_word_is_suggested_a_common_word_and_a_capitalised_one_a_name(model):
    from service.patching import COMMON, NAMES

    lower = service.suggest_corrupted({"prompt": "On a clear day the sky is", "use_chat_template": False})
    word = lower["corrupted"].removeprefix("On a clear day the ").removesuffix(" is")
    assert word in COMMON and "'sky' replaced by" in lower["note"]
    upper = service.suggest_corrupted({"prompt": "The capital of France is", "use_chat_template": False})
    assert upper["corrupted"].removeprefix("The capital of ").removesuffix(" is") in NAMES
