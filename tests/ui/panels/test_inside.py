"""The Inside-the-model panel without a browser: the maps hold the service's numbers where the layout says, the
patching request names the explained position and its foil, a suggestion keeps the token count, the maps go out
of date, and the click-to-ablate hook gives the edit the API takes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.model import STORE
from service import operations as service
from service import patching
from service import sweep as sweeps
from tests.ui.helpers import CONTROLS, stepped
from ui import explain_target
from ui.draw import inside_maps as draw
from ui.edits import Edit
from ui.panels import inside
from ui.state import Prefs, Session
from ui.view import Frame, view

CORRUPTED = "The capital of Italy is"


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def test_the_direct_logit_map_puts_each_part_where_its_labels_say():
    session = stepped(1)
    out = inside.split(session, CONTROLS, {})
    answer = service.attribution(
        {"prompt": CONTROLS.prompt, "use_chat_template": False, "completion_ids": list(session.branch.ids),
         "branch_id": "main", "target_index": 0, "method": "direct_logit"}
    )["components"]  # fmt: skip
    trace = out["inside_dla"].data[0]
    assert list(trace.y) == ["embedding", "L0", "L1"] and list(trace.x) == ["H0", "H1", "H2", "H3", "MLP"]
    assert trace.z[0][0] == answer["embed"] and trace.z[0][1:] == [None] * 4
    assert trace.z[2] == [*answer["heads"][1], answer["mlps"][1]]
    assert trace.zmid == 0 and "layer 1, MLP" in trace.text[2][4]


def test_the_patching_request_takes_the_explained_token_and_the_runner_up_as_foil():
    session = stepped(2)
    controls = replace(CONTROLS, corrupted=CORRUPTED, patch_site="mlp")
    request = inside.patching_request(session, controls)
    meta = session.branch.meta[1]
    runner_up = next(r["id"] for r in meta["dist"]["tokens"] if r["id"] != meta["token"]["id"])
    assert request["target_index"] == 1 and request["contrast_token_id"] == runner_up
    assert request["corrupted"] == CORRUPTED and request["site"] == "mlp"
    at = explain_target.position(session, controls, None)
    picked = replace(controls, inside_foil=f"{at.key}:{meta['dist']['tokens'][-1]['id']}")
    assert inside.patching_request(session, picked)["contrast_token_id"] == meta["dist"]["tokens"][-1]["id"]


def test_an_empty_corrupted_prompt_is_refused_in_the_screen_s_words():
    with pytest.raises(ValueError, match="the corrupted prompt is empty: press Suggest"):
        inside.patching_request(stepped(1), CONTROLS)


def test_the_suggestion_changes_one_word_and_keeps_the_token_count(tokenizer):
    out = inside.suggest(Session(), CONTROLS)
    assert out["corrupted"] != CONTROLS.prompt and "'France' replaced by" in out["corrupted_note"]
    assert len(tokenizer(out["corrupted"])["input_ids"]) == len(tokenizer(CONTROLS.prompt)["input_ids"])
    assert inside.suggest_if_empty(Session(), replace(CONTROLS, corrupted="typed")) is None


def test_a_suggestion_that_cannot_be_made_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^no word of the prompt can be swapped"):
        patching.suggest_corrupted({"prompt": "1 2 3", "use_chat_template": False})


def test_the_maps_go_out_of_date_when_their_inputs_change():
    session, controls = stepped(1), replace(CONTROLS, corrupted=CORRUPTED)
    computed = inside.split(session, controls, {})["computed"]
    computed |= {"patching": inside.on_demand_key("patching", session, controls)}
    result = service.preview({"prompt": controls.prompt, "use_chat_template": False,
                              "completion_ids": list(session.branch.ids)})  # fmt: skip
    _, same = view(Frame(session, controls, Prefs(), result, computed=computed))
    assert "patching_note" not in same and "inside_dla_note" not in same
    _, moved = view(Frame(session, replace(controls, patch_site="attention"), Prefs(), result, computed=computed))
    assert "Out of date" in moved["patching_note"] and "inside_dla_note" not in moved
    _, foil = view(Frame(session, replace(controls, inside_foil="x:5"), Prefs(), result, computed=computed))
    assert "Out of date" in foil["patching_note"] and "Out of date" in foil["inside_dla_note"]


def test_the_sweep_map_holds_the_service_s_deltas_and_goes_out_of_date():
    session = stepped(1)
    request = inside.sweep_request(session, CONTROLS)
    assert request["target_index"] == 0 and request["components"] == "heads" and request["mode"] == "zero"
    answer = sweeps.sweep(request)
    trace = draw.sweep_figure(answer).data[0]
    assert [list(row) for row in trace.z] == [[cell["delta"] for cell in row] for row in answer["grid"]]
    assert trace.zmid == 0 and list(trace.y) == ["L0", "L1"] and "layer 1, head 3 ablated" in trace.text[1][3]
    score = f"log p({answer['target']['display']})"  # the token as the page shows it, not its id
    assert f"ablated: {score} changes by" in trace.text[1][3] and score in draw.sweep_figure(answer).layout.title.text
    assert dict(trace.colorscale)[0.5] == "rgb(247,247,247)"  # zero is white: no effect reads as no colour
    computed = {"sweep": inside.on_demand_key("sweep", session, CONTROLS)}
    result = service.preview({"prompt": CONTROLS.prompt, "use_chat_template": False,
                              "completion_ids": list(session.branch.ids)})  # fmt: skip
    _, moved = view(Frame(session, replace(CONTROLS, explain_token="x:5"), Prefs(), result, computed=computed))
    assert "Out of date" in moved["sweep_note"]


def test_the_maps_of_an_edited_branch_are_the_edited_model_s():
    """The branch's edits go with the split, the sweep and the patching request, and the service takes them."""
    session = stepped(1).with_edits((Edit("ablate", 0, head=1),))
    controls = replace(CONTROLS, corrupted=CORRUPTED)
    edits = [{"type": "ablate", "layer": 0, "mode": "zero", "head": 1}]
    request = inside.patching_request(session, controls)
    assert request["interventions"] == edits and inside.sweep_request(session, controls)["interventions"] == edits
    assert patching.patching(request)["scores"] == patching.patching(request | {"interventions": edits})["scores"]
    unedited = {k: v for k, v in request.items() if k not in ("interventions", "corrupted", "site")}
    answer = service.attribution(unedited | {"method": "direct_logit", "interventions": edits})["components"]
    assert inside.split(session, controls, {})["inside_dla"].data[0].z[1][1] == answer["heads"][0][1] == 0.0
