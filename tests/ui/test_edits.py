"""The Edit panel's actions and the edits' state: per branch, carried by every request, kept in the session file."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from backends.model import STORE
from service import operations as service
from tests.service.test_edit_sides import p_base
from tests.ui.helpers import CONTROLS, stepped
from ui import actions, lookahead_view, session_store
from ui.edits import Edit, Vector
from ui.edits_view import DRAWS, status_part
from ui.panels import branches, edits
from ui.request import attribution_request, request_for
from ui.session_json import from_json, to_json
from ui.state import MAIN, Prefs, Session
from ui.view import Frame, view


@pytest.fixture(autouse=True)
def tiny_model(tiny, embedded):
    """The tiny random Llama (2 layers, 4 heads, d_model 64), the embedded model afterwards."""
    STORE.use(tiny)
    yield
    STORE.use(embedded)


def ablated(session: Session, head: int = 1, mode: str = "zero"):
    return edits.add_ablation(session, CONTROLS, 1, "head", head, mode)


def test_an_edit_on_an_empty_branch_applies_in_place_and_every_request_carries_it():
    outcome = ablated(Session())
    session = outcome.session
    assert session.current == MAIN and session.branch.edits == (Edit("ablate", 1, head=1),)
    wanted = [{"type": "ablate", "layer": 1, "mode": "zero", "head": 1}]
    assert request_for(session, CONTROLS)["interventions"] == wanted
    assert attribution_request(session, CONTROLS)["interventions"] == wanted
    assert lookahead_view.tree_request(session, CONTROLS)["interventions"] == wanted
    assert outcome.result["dist"]["edits"] == ["head 1 of layer 1 ablated (zero)"]
    assert outcome.notice == ""


def test_an_edit_on_a_branch_with_tokens_starts_an_announced_branch_and_the_old_keeps_its_model():
    work = stepped(2)
    outcome = ablated(work)
    assert outcome.notice == "The model edit starts **branch 2**; branch **main** keeps the unedited model."
    new = outcome.session
    assert new.current == "b2" and new.branch.ids == work.branch.ids and new.branch.edits
    assert new.branches[MAIN].edits == () and new.branches[MAIN].ids == work.branch.ids
    assert "interventions" not in request_for(new.switched(MAIN), CONTROLS)  # switching restores its edits
    again = edits.switch_edits(new, CONTROLS, [])  # switching the edit off: the edited branch has tokens too
    assert again.notice == "The model edit starts **branch 3**; **branch 2** keeps its edits."
    assert again.session.branch.edits == (Edit("ablate", 1, head=1, on=False),)
    assert "interventions" not in request_for(again.session, CONTROLS)


def test_a_step_after_an_edit_is_taken_under_it_and_remove_takes_it_away():
    session = ablated(Session()).session
    stepped_once = actions.step(session, CONTROLS)
    assert stepped_once.session.branch.meta[0]["dist"]["edits"]
    fresh = edits.remove_edit(ablated(Session(), head=2).session, CONTROLS, 0).session
    assert fresh.branch.edits == ()
    with pytest.raises(ValueError, match="choose the edit in “Edit to change or remove” first"):
        edits.remove_edit(fresh, CONTROLS, 0)


def test_the_picker_offers_every_edit_with_the_latest_picked():
    session = ablated(ablated(Session()).session, head=2).session
    picker = DRAWS["edit_pick"](session)
    assert [value for _, value in picker.choices] == [0, 1] and picker.value == 1
    assert DRAWS["edit_pick"](Session()).value is None


def test_set_strength_changes_a_steering_edit_in_place_and_forks_a_branch_with_tokens():
    work = edits.add_ablation(stepped(1), CONTROLS, 1, "mlp", 0, "zero").session
    work = edits.add_steering(work, CONTROLS, "good", "bad", 0, 3.0).session
    before = dict(work.branches)
    changed = edits.set_strength(work, CONTROLS, 1, -2.5)
    assert changed.notice.startswith("The model edit starts **branch") and changed.session.current != work.current
    assert changed.session.branches[work.current] == before[work.current]  # the old branch keeps its strength
    assert [e.alpha for e in changed.session.branch.edits] == [0.0, -2.5]
    assert request_for(changed.session, CONTROLS)["interventions"][1]["alpha"] == -2.5
    for pick, strength, words in ((0, 2.0, "has no strength: pick a steering edit"),
                                  (1, math.inf, "is not a finite number"), (None, 2.0, "choose the edit")):  # fmt: skip
        with pytest.raises(ValueError, match=words):
            edits.set_strength(changed.session, CONTROLS, pick, strength)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((7, "head", 0, "zero"), "layer 7 is out of range: this model has layers 0 to 1"),
        ((1, "head", 9, "zero"), "head 9 is out of range: this model has heads 0 to 3"),
        ((None, "head", 0, "zero"), "Layer None is not a whole number"),
        ((-1, "mlp", 0, "zero"), "Layer -1 is out of range: numbers count from 0"),
        ((0.5, "mlp", 0, "zero"), "Layer 0.5 is not a whole number"),
    ],
)
def test_a_bad_ablation_is_refused_in_one_line_and_nothing_changes(args, words):
    from ui.wording import on_screen

    work = stepped(1)
    with pytest.raises(ValueError) as refused:
        edits.add_ablation(work, CONTROLS, *args)
    assert words in on_screen(str(refused.value)) and "\n" not in str(refused.value)
    assert work.branch.edits == () and len(work.branches) == 1


@pytest.mark.parametrize(
    ("texts", "layer", "strength", "words"),
    [
        (("", "bad"), 0, 2.0, "type at least one example to steer toward and one to steer away from"),
        (("good", "  \n "), 0, 2.0, "type at least one example"),
        (("good", "bad"), 0, math.inf, "the strength inf is not a finite number"),
        (("good", "bad"), 0, "x", "the strength 'x' is not a finite number"),
        (("good", "bad"), 5, 2.0, "layer 5 is out of range: this model has layers 0 to 1"),
        (("good\nfine", "bad"), 0, 2.0, "positive has 2 texts and negative 1"),
    ],
)
def test_a_bad_steering_edit_is_refused_in_one_line(texts, layer, strength, words):
    with pytest.raises(ValueError, match=words):
        edits.add_steering(Session(), CONTROLS, *texts, layer, strength)


def residual(model, layer: int, text: str, tokenizer) -> torch.Tensor:
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer + 1][0, -1]


def test_a_steering_edit_keeps_the_vector_floats_of_an_independent_residual_difference(tiny):
    outcome = edits.add_steering(Session(), CONTROLS, "good\nnice", "bad\nawful", 0, 2.5)
    vector = next(iter(outcome.session.vectors.values()))
    pairs = (("good", "bad"), ("nice", "awful"))
    diffs = [residual(tiny.model, 0, p, tiny.tokenizer) - residual(tiny.model, 0, n, tiny.tokenizer) for p, n in pairs]
    assert torch.allclose(torch.tensor(vector.values), torch.stack(diffs).mean(0), atol=1e-5)
    sent = request_for(outcome.session, CONTROLS)["interventions"]
    name = "toward “good” / away from “bad” (+1 more pair)"
    assert sent == [{"type": "steer", "layer": 0, "vector": list(vector.values), "alpha": 2.5, "name": name}]
    assert outcome.session.branch.edits[0].label(outcome.session.vectors) == f"steer {name} after layer 0, strength 2.5"
    assert actions.shown(outcome.session, CONTROLS).result["dist"]["edits"] == [f"layer 0 steered {name} x 2.5"]


def test_the_status_line_names_the_edits_and_the_kl_of_a_hooked_forward(tiny):
    """With knobs that change nothing, p_final is p_base: KL of the edit from two forward passes written here."""
    neutral = replace(CONTROLS, temperature=1.0, top_p=1.0, repetition_penalty=1.0)
    outcome = edits.add_ablation(Session(), neutral, 1, "head", 1, "zero")
    prompt = list(tiny.tokenizer(CONTROLS.prompt)["input_ids"])
    edited, plain = p_base(tiny.model, prompt, (1, 1)), p_base(tiny.model, prompt)
    kl = float((edited * (edited / plain).log2()).sum())
    assert outcome.result["dist"]["kl_edit"] == pytest.approx(kl, abs=1e-4)
    words = status_part(outcome.result["dist"])
    assert words == f"edited: head 1 of layer 1 ablated (zero) · edit moves p_final by {kl:.3f} bits"
    _, panels = view(Frame(outcome.session, neutral, Prefs(), outcome.result))
    assert panels["summary"].endswith(" · " + words)


def test_an_infinite_edit_kl_says_why_and_no_edits_say_nothing():
    infinite = {"edits": ["x"], "kl_edit": None, "kl_edit_reason": "infinite: the unedited p_final is 0 on 2 token(s)"}
    assert status_part(infinite).endswith("by infinitely many bits (the unedited p_final is 0 on 2 token(s))")
    assert status_part({"edits": []}) == "" and status_part(None) == ""


def test_edits_and_vectors_round_trip_through_the_session_file_and_the_browser_store():
    work = edits.add_steering(stepped(1), CONTROLS, "good", "bad", 0, 3.0).session
    work = edits.add_ablation(work, CONTROLS, 1, "mlp", 0, "mean").session
    data = json.loads(json.dumps(to_json(CONTROLS, Prefs(), work, "m")))
    _, _, back = from_json(data)
    assert {b: x.edits for b, x in back.branches.items()} == {b: x.edits for b, x in work.branches.items()}
    assert back.vectors == work.vectors and back.branch.edits[-1] == Edit("ablate", 1, target="mlp", mode="mean")
    assert request_for(back, CONTROLS) == request_for(work, CONTROLS)
    value, _ = session_store.kept_value(work, CONTROLS, Prefs(), service.model_status()["model_id"])
    restored, note = session_store.restored(json.loads(json.dumps(value)), service.model_status())
    assert note == "" and restored.branches == work.branches and restored.vectors == work.vectors


def test_a_session_file_without_the_vector_of_a_steering_edit_is_refused():
    work = edits.add_steering(Session(), CONTROLS, "good", "bad", 0, 3.0).session
    data = json.loads(json.dumps(to_json(CONTROLS, Prefs(), work, "m")))
    del data["session"]["vectors"]
    with pytest.raises(ValueError, match=r"steers by vector 'sv-.*' but does not hold it"):
        from_json(data)
    data["session"]["vectors"] = [{"id": "v", "layer": 0, "values": [1.0, math.nan]}]
    with pytest.raises(ValueError, match="has no list of finite numbers"):
        from_json(data)


@pytest.mark.parametrize(
    ("examples", "words"), [((("a",), ("b",)), "toward “a” / away from “b”"), (((), ()), "by sv-elsewhere")]
)
def test_a_vector_from_a_file_steers_in_a_process_that_never_made_it_named_by_its_examples(examples, words):
    vector = Vector("sv-elsewhere", 0, *examples, 1.0, tuple(float(i % 3) for i in range(64)))
    session = Session(vectors={vector.id: vector}).with_edits((Edit("steer", 0, vector=vector.id, alpha=2.0),))
    _, _, session = from_json(json.loads(json.dumps(to_json(CONTROLS, Prefs(), session, "m"))))  # the file read back
    dist = actions.shown(session, CONTROLS).result["dist"]
    assert dist["edits"] == [f"layer 0 steered {words} x 2"]


def test_compare_shows_the_edited_branch_against_the_original_each_under_its_own_edits():
    work = stepped(2)
    edited = ablated(work).session
    edited = actions.step(edited, CONTROLS).session
    table = branches.compare_branches(edited, CONTROLS, MAIN, {}).also["comparison"]
    plain = service.compare(request_for(edited, CONTROLS), list(work.branch.ids), [])
    same = service.compare(request_for(edited, CONTROLS), list(work.branch.ids))
    assert plain["steps"][0]["kl_base_bits"] > 1e-6 and same["steps"][0]["kl_base_bits"] == pytest.approx(0, abs=1e-9)
    assert f"{plain['steps'][0]['kl_base_bits']:.3f}" in table


def test_a_new_prompt_keeps_the_edits_on_the_branch_it_starts():
    edited = Session(key=("p", "", False)).with_edits((Edit("ablate", 0),))
    moved = edited.with_branch(replace(edited.branch, ids=(1,), meta=({},))).for_prompt(("q", "", False))
    assert moved.current != MAIN and moved.branch.edits == (Edit("ablate", 0),) and moved.branch.ids == ()


def test_a_clicked_map_cell_ablates_that_head_or_mlp_on_the_branch():
    head = edits.ablate_clicked(Session(), CONTROLS, "1:2").session
    assert head.branch.edits == (Edit("ablate", 1, head=2),)
    both = edits.ablate_clicked(head, CONTROLS, "0:mlp")
    assert both.session.branch.edits == (Edit("ablate", 1, head=2), Edit("ablate", 0, target="mlp"))
    assert both.result["dist"]["edits"] == ["head 2 of layer 1 ablated (zero)", "mlp block of layer 0 ablated (zero)"]


@pytest.mark.parametrize("pick", ["", "embedding", "1:", "x:2", "1:attention2", "9:0"])
def test_a_clicked_cell_that_is_no_part_is_refused_and_nothing_changes(pick):
    work = stepped(1)
    with pytest.raises(ValueError):
        edits.ablate_clicked(work, CONTROLS, pick)
    assert work.branch.edits == ()
