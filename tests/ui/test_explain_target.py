"""What Explain explains: the position on screen, picks that never outlive it, pickers in token text."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from backends.model import STORE
from service import operations as service
from tests.ui.helpers import CONTROLS, stepped
from ui import actions, explain_target, settings
from ui.panels import attribution_panel, branches, session_file
from ui.request import request_for
from ui.state import Prefs, Session
from ui.view import Frame, view

SALIENCY = replace(CONTROLS, attribution_method="saliency")


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def _drawn(outcome, controls=SALIENCY):
    """(the session after the view, its target picker, its foil picker) as one event leaves them."""
    session, panels = view(Frame(outcome.session, controls, Prefs(), outcome.result))
    return session, panels.get("explain_token"), panels.get("contrast_token")


def _picked(session: Session, controls=SALIENCY) -> Session:
    """Controls with the first candidate there picked as the target and the second as the foil."""
    at = explain_target.position(session, controls, None)
    values = [value for _, value in explain_target.target_choices(at)[1:3]]
    return replace(controls, explain_token=values[0], contrast_token=values[1])


def test_the_position_is_the_inspected_token_else_the_last_else_the_next():
    session = stepped(2)
    assert explain_target.position(session, SALIENCY, None).index == 1
    inspected = explain_target.position(session.inspecting(0), SALIENCY, None)
    assert inspected.index == 0 and inspected.token == session.branch.meta[0]["token"] and not inspected.upcoming
    dist = service.preview(request_for(Session(), SALIENCY))["dist"]
    upcoming = explain_target.position(Session(), SALIENCY, dist)
    assert upcoming.upcoming and upcoming.token == dist["tokens"][0] and upcoming.index == 0


def test_the_pickers_show_token_text_never_a_bare_id():
    session = stepped(2)
    at = explain_target.position(session, SALIENCY, None)
    targets, foils = explain_target.target_choices(at), explain_target.foil_choices(at)
    token = session.branch.meta[1]["token"]["display"]
    assert targets[0] == (f"{token} (the token there)", "") and foils[0] == (f"(none: why {token} at all)", "")
    rows = [r for r in session.branch.meta[1]["dist"]["tokens"] if r["id"] != at.token["id"]]
    assert [label for label, _ in targets[1:]] == [f"{r['display']} ({r['p_base']:.1%})" for r in rows]
    assert all(not label.strip().isdigit() for label, _ in targets + foils)  # never a bare id
    assert [explain_target.picked(value, at.key) for _, value in foils[1:]] == [r["id"] for r in rows]


@pytest.mark.parametrize("move", ["step", "inspect", "back", "branch", "prompt", "delete"])
def test_a_pick_resets_to_the_token_there_when_the_position_changes(move):
    session, _, _ = _drawn(actions.refresh(stepped(3), SALIENCY))
    session = actions.shown(session.inspecting(1), SALIENCY).session if move == "back" else session
    session, _, _ = _drawn(actions.shown(session, SALIENCY))
    controls = _picked(session)
    moved = {
        "step": lambda: actions.step(session, controls),
        "inspect": lambda: actions.shown(session.inspecting(0), controls),
        "back": lambda: actions.back_to_end(session, controls),
        "branch": lambda: branches.fork(session, controls, "alt"),
        "prompt": lambda: actions.refresh(session, replace(controls, prompt="A cat")),
        "delete": lambda: actions.delete_last(session, controls),
    }[move]()
    after = replace(controls, prompt="A cat") if move == "prompt" else controls
    shown, target, foil = _drawn(moved, after)
    assert target.value == "" and foil.value == ""  # the token now there, no foil
    position = explain_target.position(moved.session.for_prompt(after.prompt_key), after, moved.result.get("dist"))
    assert target.choices[0][0].startswith(position.token["display"])
    request = attribution_panel.explain_request(shown, after)  # even before the page has the reset
    assert "contrast_token_id" not in request and request.get("target_token_id") in (None, position.token["id"])


def test_a_pick_stays_while_the_position_does():
    session, _, _ = _drawn(actions.refresh(stepped(2), SALIENCY))
    controls = _picked(session)
    _, target, foil = _drawn(actions.refresh(session, replace(controls, temperature=1.3)), controls)
    assert target is None and foil is None  # not redrawn: what the user picked stays
    request = attribution_panel.explain_request(session, controls)
    key = explain_target.position_key(session, controls)
    assert request["target_index"] == 1 and request["target_token_id"] == explain_target.picked(
        controls.explain_token, key
    )
    assert request["contrast_token_id"] == explain_target.picked(controls.contrast_token, key)


def test_a_pick_of_another_position_or_a_bare_id_counts_as_none():
    session = stepped(2)
    stale = _picked(session.inspecting(0))
    request = attribution_panel.explain_request(session, stale)
    assert request["target_index"] == 1 and "target_token_id" not in request and "contrast_token_id" not in request
    bare = replace(SALIENCY, explain_token="284", contrast_token="30")
    assert "target_token_id" not in attribution_panel.explain_request(session, bare)


def test_a_method_without_a_foil_disables_the_foil_picker_and_sends_none():
    session, _, foil = _drawn(actions.refresh(stepped(2), SALIENCY))
    assert foil.interactive is True and len(foil.choices) > 1
    picked = _picked(session)
    attention = replace(picked, attribution_method="attention")
    _, target, foil = _drawn(attribution_panel.setting_changed(session, attention), attention)
    assert foil.interactive is False and foil.value == "" and foil.choices == foil.choices[:1]
    assert "no foil with this method: attention does not depend on the target" in foil.label
    assert target.value == picked.explain_token  # the target pick is not the foil's business
    request = attribution_panel.explain_request(session, attention)
    assert "contrast_token_id" not in request
    service.attribution(request)  # accepted: no API words on screen


def test_settings_restored_in_a_new_page_drop_the_picks():
    saved = json.loads(json.dumps(settings.to_json(_picked(stepped(1)), Prefs())))
    restored = settings.restore(saved)
    assert restored["explain_token"] == "" and restored["contrast_token"] == ""


def test_an_imported_session_keeps_a_pick_only_where_it_belongs(tmp_path):
    session, _, _ = _drawn(actions.refresh(stepped(2), SALIENCY))
    controls = _picked(session)
    path = tmp_path / "s.json"
    path.write_text(session_file.export_text(session, controls, Prefs()))
    outcome = session_file.import_session(Session(), SALIENCY, str(path))
    assert "explain_token" not in outcome.also  # the view draws the pickers
    _, target, foil = _drawn(outcome, outcome.controls)
    assert (target.value, foil.value) == (controls.explain_token, controls.contrast_token)
    data = json.loads(path.read_text())
    data["session"]["branches"]["main"]["ids"].pop()  # another position: the pick no longer fits
    data["session"]["branches"]["main"]["meta"].pop()
    path.write_text(json.dumps(data))
    outcome = session_file.import_session(Session(), SALIENCY, str(path))
    _, target, foil = _drawn(outcome, outcome.controls)
    assert (target.value, foil.value) == ("", "")
