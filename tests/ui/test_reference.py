"""The Reference model panel: the request it makes, the session setting, the status line, the second series of the
bars and the diff's drawing, each number checked against both models' logits computed here (the tiny random model
as the main one, a tiny model with other weights as the reference, knobs that leave p_final = p_base)."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace

import pytest
import torch

from service import reference as service_reference
from tests.ui.helpers import stepped
from ui import reference_view
from ui.controls import Controls
from ui.draw import reference_diff
from ui.edits import Edit
from ui.panels import reference as panel
from ui.reference import ANOTHER, OTHER_ENGINE, RefChoice, picked
from ui.request import request_for
from ui.session_json import from_json, to_json
from ui.state import Prefs, Session
from ui.view import Frame, view

PROMPT = "Once upon a time there was a"
PLAIN = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0, "min_p": 0.0, "sample_top_k": 0}
CONTROLS = replace(Controls(), prompt=PROMPT, seed="3", top_k=5, **PLAIN)


def log_probs(model, ids) -> torch.Tensor:
    """Log-softmax of every position's logits in float64, from one plain forward call."""
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)


def from_folder(folder: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def kl_bits(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    return (log_p.exp() * (log_p - log_q)).sum(-1) / math.log(2)


def test_the_panel_s_picks_are_the_request_s_reference_and_bad_picks_are_refused_in_its_words():
    assert picked("bfloat16", "", "").request() == {"dtype": "bfloat16"}
    assert picked("int8", "ignored", "float16").request() == {"quantization": "int8"}
    assert picked(ANOTHER, " embedded ", "float16").request() == {"model": "embedded", "dtype": "float16"}
    assert picked(ANOTHER, "embedded", "").label() == "embedded"
    with pytest.raises(ValueError, match="type the reference's model"):
        picked(ANOTHER, "  ", "")
    with pytest.raises(ValueError, match="pick what the reference is"):
        picked(None, "", "")
    with pytest.raises(ValueError, match="the dtype 'float8' is not one of float32, bfloat16, float16"):
        picked(ANOTHER, "embedded", "float8")
    assert picked(OTHER_ENGINE, "", "").request() == {"engine": "vllm"}  # the main model on transformers
    assert picked(OTHER_ENGINE, "", "", main_engine="vllm").request() == {"engine": "transformers"}
    assert picked(OTHER_ENGINE, "", "").label() == "on vllm"


def test_the_session_keeps_the_reference_in_its_json_and_every_request_carries_it():
    session = replace(Session(), reference=RefChoice(None, "bfloat16"))
    assert request_for(session, CONTROLS)["reference"] == {"dtype": "bfloat16"}
    assert "reference" not in request_for(Session(), CONTROLS)
    _, _, back = from_json(to_json(CONTROLS, Prefs(), session, "m"))
    assert back.reference == session.reference and hash(back) == hash(session) != hash(Session())
    _, _, none = from_json(to_json(CONTROLS, Prefs(), Session(), "m"))
    assert none.reference is None
    with pytest.raises(ValueError, match="the reference in the session file is not one the panel makes"):
        RefChoice.from_dict({"dtype": "float8"})
    on_vllm = RefChoice(engine="vllm")
    assert RefChoice.from_dict(on_vllm.as_dict()) == on_vllm
    with pytest.raises(ValueError, match="the reference in the session file is not one the panel makes"):
        RefChoice.from_dict({"engine": "tgi"})


def test_the_other_engine_without_vllm_installed_is_refused_in_one_line_and_nothing_changes():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here: the vLLM reference runs (tests/backends/vllm/test_reference.py)")
    session = stepped(1, CONTROLS, Session())
    with pytest.raises(ValueError, match="needs the vllm package, which is not installed here"):
        panel.apply(session, CONTROLS, OTHER_ENGINE, "", "")


def test_apply_shows_the_reference_s_series_and_the_kl_in_the_status_line(tiny_reference_store, other_folder):
    outcome = panel.apply(Session(), CONTROLS, ANOTHER, other_folder, "")
    assert outcome.session.reference == RefChoice(other_folder)
    prompt = tiny_reference_store.tokenizer(PROMPT)["input_ids"]
    log_p, log_q = (log_probs(model, prompt)[-1] for model in (tiny_reference_store.model, from_folder(other_folder)))
    kl = float(kl_bits(log_p, log_q))
    frame = Frame(outcome.session, CONTROLS, Prefs(frozenset({"reference"})), outcome.result)
    _, panels = view(frame)
    agrees = int(log_p.argmax()) == int(log_q.argmax())
    rank = int((log_q > log_q[int(log_p.argmax())]).sum()) + 1
    top = "top token agrees" if agrees else f"top token differs (rank {rank} under the reference)"
    assert f"reference ({other_folder}): KL {kl:.4f} bits · {top}" in panels["summary"]
    traces = {t["name"]: t for t in panels["plot"]["figure"]["data"]}
    ids = panels["plot"]["figure"]["layout"]["meta"]["token_ids"]
    expected = [float(log_q[i].exp()) for i in ids]
    assert traces["p_final, reference"]["x"] == pytest.approx(expected, abs=1e-6)
    assert f"**Reference:** {other_folder} · ready · its weights take" in panels["reference_status"]


def test_remove_frees_the_reference_and_the_answers_carry_none(tiny_reference_store):
    applied = panel.apply(Session(), CONTROLS, "float16", "", "").session
    assert service_reference.reference_status()["state"] == "ready"
    outcome = panel.remove(applied, CONTROLS)
    assert outcome.session.reference is None and "reference" not in request_for(outcome.session, CONTROLS)
    assert service_reference.reference_status()["state"] == "none"
    assert outcome.result["dist"].get("kl_reference_final") is None
    with pytest.raises(ValueError, match="there is no reference to remove"):
        panel.remove(outcome.session, CONTROLS)


TEXT = " little cat who lived in a big house"


def diffed_branch(tiny, name: str, reference) -> tuple[Session, list[int], torch.Tensor, torch.Tensor]:
    """(a session whose branch holds TEXT under the reference model `name`, its ids, the log-probabilities of the
    main model and of `reference`, that model, before each of its tokens)."""
    completion = tiny.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    session = replace(Session(), reference=RefChoice(name))
    session = session.for_prompt(CONTROLS.prompt_key).with_branch(replace(Session().branch, ids=tuple(completion)))
    prompt = tiny.tokenizer(PROMPT)["input_ids"]
    ids = [*prompt, *completion]
    log_p, log_q = (log_probs(model, ids)[len(prompt) - 1 : -1] for model in (tiny.model, reference))
    return session, completion, log_p, log_q


def test_the_diff_s_timeline_tokens_and_summary_equal_both_models_logits(tiny_reference_store, other_folder):
    session, completion, log_p, log_q = diffed_branch(tiny_reference_store, other_folder, from_folder(other_folder))
    kls = kl_bits(log_p, log_q).tolist()
    same = (log_p.argmax(-1) == log_q.argmax(-1)).tolist()
    outcome = panel.run_diff(session, CONTROLS, {})
    figure = outcome.also["diff_plot"]
    assert list(figure.data[0].y) == pytest.approx(kls, rel=1e-4)
    assert list(figure.data[0].x) == list(range(1, len(completion) + 1))
    assert list(figure.data[1].y) == pytest.approx(kls, rel=1e-4)  # p_base's line: the same, sampling is plain
    rows = {row[0]: row[1:] for row in outcome.also["diff_summary"]}
    assert rows["mean KL"][0] == reference_diff.bits(sum(kls) / len(kls))
    assert rows["max KL"][0] == reference_diff.bits(max(kls))
    assert rows["same top token"][0] == f"{sum(same) / len(same):.1%}"
    split = next((j for j, s in enumerate(same) if not s), None)
    assert rows["first divergence"][0] == ("none" if split is None else f"token {split + 1}")
    assert outcome.also["diff_tokens"].count('class="diff-token"') == len(completion)
    assert outcome.also["computed"]["diff"]


def test_continue_with_the_reference_branches_at_the_first_divergence_with_its_top_token(
    tiny_reference_store, embedded
):
    session, completion, log_p, log_q = diffed_branch(tiny_reference_store, "embedded", embedded.model)
    split = next(j for j in range(len(completion)) if int(log_p[j].argmax()) != int(log_q[j].argmax()))
    outcome = panel.continue_with_reference(session, CONTROLS)
    branch = outcome.session.branch
    assert branch.ids == (*completion[:split], int(log_q[split].argmax()))
    assert outcome.session.current != session.current and outcome.session.branches[session.current].ids == tuple(
        completion
    )
    assert f"from token {split + 1}, the first divergence" in outcome.notice


def test_the_diff_is_out_of_date_once_a_knob_or_the_reference_changes(tiny_reference_store):
    session = stepped(2, CONTROLS, panel.apply(Session(), CONTROLS, "bfloat16", "", "").session)
    outcome = panel.run_diff(session, CONTROLS, {})
    computed = outcome.also["computed"]
    frame = Frame(outcome.session, CONTROLS, Prefs(), outcome.result, computed=computed)
    assert "diff_note" not in view(frame)[1]  # what it was drawn from is on screen
    for changed, controls in (
        (outcome.session, replace(CONTROLS, temperature=0.5)),
        (replace(outcome.session, reference=RefChoice(None, "float16")), CONTROLS),
    ):
        panels = view(Frame(changed, controls, Prefs(), outcome.result, computed=computed))[1]
        assert panels["diff_note"].startswith("*Out of date") and panels["diff_summary"] == []


def test_the_diff_says_the_reference_runs_without_the_branch_s_edits(tiny_reference_store):
    session = stepped(2, CONTROLS, panel.apply(Session(), CONTROLS, "bfloat16", "", "").session)
    assert "edits" not in panel.run_diff(session, CONTROLS, {}).also["diff_note"]
    edited = session.with_branch(replace(session.branch, edits=(Edit("ablate", 0, head=0),)))
    note = panel.run_diff(edited, CONTROLS, {}).also["diff_note"]
    assert note.endswith("The main model runs with this branch's edits; the reference runs without them.")


def test_continue_is_refused_where_the_top_tokens_never_differ(tiny_reference_store):
    session = stepped(2, CONTROLS, replace(Session(), reference=RefChoice(None, "float32")))  # the main model itself
    with pytest.raises(ValueError, match="the reference's top token is the main model's at every token"):
        panel.continue_with_reference(session, CONTROLS)


def test_a_diff_needs_a_reference_and_a_completion():
    with pytest.raises(ValueError, match="there is no reference to diff with"):
        panel.run_diff(Session(), CONTROLS, {})
    with pytest.raises(ValueError, match="the branch has no completion yet"):
        panel.run_diff(replace(Session(), reference=RefChoice(None, "bfloat16")), CONTROLS, {})


def test_a_reference_that_does_not_load_is_refused_in_one_line_and_the_status_says_why(tiny_reference_store):
    with pytest.raises(ValueError, match=r"^model path '/no/such/folder' does not exist$"):
        panel.apply(Session(), CONTROLS, ANOTHER, "/no/such/folder", "")
    status = service_reference.reference_status()
    assert status["state"] == "failed" and status["error"] == "model path '/no/such/folder' does not exist"


def test_the_status_line_names_an_infinite_kl_and_a_differing_top_token_in_the_answer_s_words():
    dist = {
        "reference": "m, int8", "kl_reference_final": None, "top_agrees": False, "rank_under_reference": 3,
        "kl_reference_final_reason": "infinite: the reference's p_final is 0 for “ cat”, which the main model keeps",
    }  # fmt: skip
    assert reference_view.status_part(dist, "m") == (
        "reference (int8): KL infinite (the reference's p_final is 0 for “ cat”, which the main model keeps)"
        " · top token differs (rank 3 under the reference)"
    )
    assert reference_view.status_part({"tokens": []}, "m") == ""
    edited = dist | {"edits": ["layer 1's attention block zeroed"]}
    assert reference_view.status_part(edited, "m").startswith("reference (int8 (the reference runs without the edits)):")


def test_the_panel_line_says_loading_and_failed_in_the_service_s_words():
    session = replace(Session(), reference=RefChoice(None, None, True))
    loading = "**Reference:** int8 · loading the reference…"
    assert reference_view.status_markdown(session, {"state": "loading"}) == loading
    assert reference_view.loading_markdown("int8") == loading
    failed = {"state": "failed", "error": "over the budget"}
    assert reference_view.status_markdown(session, failed) == "**Reference:** int8 · failed: over the budget"
    assert reference_view.status_markdown(Session(), failed).startswith("*No reference")
    assert reference_view.status_markdown(Session(), failed).endswith("The last one failed: over the budget")
    ready = {"state": "ready", "memory_mb": 0.0}
    assert reference_view.status_markdown(session, ready).endswith("ready · it is the main model itself (no extra memory)")
    ready = ready | {"memory_mb": 256.6}
    assert reference_view.status_markdown(session, ready).endswith("ready · its weights take 256.6 MiB")
