"""Step's quick path: it answers the panels the Step event sends, and the event takes its step, not a new one."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import gradio as gr
import pytest

from backends.model import STORE
from service import operations as service
from tests.ui.helpers import CONTROLS, stepped
from ui import actions, step_context
from ui.quickstep import PANELS, PROVISIONAL, answer, server_function
from ui.request import request_for
from ui.state import Prefs, Session
from ui.view import Frame, view

UNSEEDED = replace(CONTROLS, seed="", temperature=1.5, top_p=1.0, top_k=20)  # a fresh draw each time
PAGE = "page-1"
COMPONENTS = {
    "tokens": gr.HighlightedText(render=False),
    "plot": gr.HTML(render=False),
    "candidates": gr.Dataframe(headers=["token", "id", "p_base", "p_final", "status"], render=False),
    "summary": gr.Markdown(render=False),
}


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


@pytest.fixture
def steps(monkeypatch):
    """Counts the engine steps run (quick path and event together)."""
    calls = []
    original = service.step

    def counted(request):
        calls.append(request)
        return original(request)

    monkeypatch.setattr(service, "step", counted)
    return calls


def shown(session: Session, controls=CONTROLS) -> tuple[Session, dict]:
    """The session and panels as the page has them after the last event (the bars carry the step request)."""
    outcome = actions.refresh(session, controls)
    after, panels = view(Frame(outcome.session, controls, Prefs(), outcome.result))
    step_context.remember(PAGE, after, controls)
    return after, panels


def carried(bars: dict) -> dict | None:
    return bars["step"]


def as_javascript(value: object) -> object:
    """A value after a trip through the page's JSON: JavaScript has one number type, so 1.0 comes back as 1."""
    if isinstance(value, dict):
        return {key: as_javascript(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_javascript(item) for item in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def quick(panels: dict) -> dict:
    """The server function as the page calls it: the bars' request as JSON (as the page writes it), from this page."""
    return server_function(COMPONENTS)(
        [json.dumps(as_javascript(carried(panels["plot"])))], SimpleNamespace(_json={"session_hash": PAGE})
    )


def click_step(session: Session, controls=CONTROLS) -> tuple[dict, Session, dict]:
    """What a click on Step does: the quick path on the bars' request, then the Step event through the view."""
    session, panels = shown(session, controls)
    first = quick(panels)
    outcome = actions.step(session, controls)
    after, panels = view(Frame(outcome.session, controls, Prefs(), outcome.result))
    return first, after, panels


def sent(name: str, value: object) -> object:
    value = COMPONENTS[name].postprocess(value)
    return value.model_dump() if hasattr(value, "model_dump") else value


def test_the_bars_carry_the_request_a_step_sends():
    session, panels = shown(stepped(2))
    assert carried(panels["plot"]) == request_for(session, CONTROLS)


def test_no_request_while_the_model_is_off_or_an_earlier_token_is_inspected():
    off = replace(CONTROLS, llm_on=False)
    assert carried(shown(stepped(2), off)[1]["plot"]) is None
    inspecting = actions.select_token(stepped(3), CONTROLS, len(shown(Session())[0].branch.ids) + 5)
    _, panels = view(Frame(inspecting.session, CONTROLS, Prefs(), inspecting.result))
    assert carried(panels["plot"]) is None


def test_the_quick_answer_is_every_panel_the_step_event_sends_and_the_event_takes_that_step(steps):
    session = stepped(1, UNSEEDED)
    steps.clear()
    first, after, panels = click_step(session, UNSEEDED)
    assert set(first) == set(PANELS)
    assert first["plot"] == panels["plot"] | {PROVISIONAL: True}
    for name in ("tokens", "candidates", "summary"):
        assert first[name] == sent(name, panels[name]), name
    assert len(first["tokens"]) == len(panels["tokens"]) and len(after.branch.ids) == 2  # the new pill
    assert len(steps) == 1  # the event took the quick path's step: the same (unseeded) draw, run once
    assert carried(panels["plot"])["completion_ids"] == list(after.branch.ids)


def test_a_page_whose_state_moved_on_or_an_unknown_page_gets_no_quick_answer(steps):
    session, panels = shown(stepped(1))
    request = carried(panels["plot"])
    steps.clear()
    assert answer("another page", request) == {}
    step_context.remember(PAGE, session, replace(CONTROLS, temperature=1.3))  # a later event changed a knob
    assert answer(PAGE, request) == {}
    assert steps == []  # the Step event steps from the page's state, alone


def test_an_event_with_another_request_computes_its_own_step(steps):
    session, panels = shown(stepped(1))
    steps.clear()
    quick(panels)
    hotter = replace(CONTROLS, temperature=1.3)  # changed just before the click: the event's request differs
    outcome = actions.step(session, hotter)
    assert len(steps) == 2 and steps[1]["params"]["temperature"] == 1.3
    assert outcome.result["completion_ids"] == service.step(request_for(session, hotter))["completion_ids"]


def test_a_speculation_is_taken_once(steps):
    session, panels = shown(stepped(1))
    steps.clear()
    quick(panels)
    actions.step(session, CONTROLS)
    actions.step(session, CONTROLS)  # the same request again (a second window on the same state): a new step
    assert len(steps) == 2


@pytest.mark.parametrize("bad", [[], ["not json"], ["[1, 2]"], [json.dumps({"prompt": 3})], None, 5])
def test_a_malformed_request_draws_nothing(bad, steps):
    shown(stepped(1))
    steps.clear()
    assert server_function(COMPONENTS)(bad, SimpleNamespace(_json={"session_hash": PAGE})) == {}
    assert steps == []


def test_a_refused_quick_step_leaves_the_event_to_say_why(monkeypatch):
    session, panels = shown(stepped(1))
    monkeypatch.setattr(service, "step", lambda request: (_ for _ in ()).throw(ValueError("temperature is bad")))
    assert quick(panels) == {}
    with pytest.raises(ValueError, match="temperature"):
        actions.step(session, CONTROLS)


def test_nothing_appended_draws_nothing_and_the_event_takes_that_answer(monkeypatch, steps):
    session, panels = shown(stepped(1))
    steps.clear()
    finished = service.preview(request_for(session, CONTROLS)) | {"appended": [], "finish_reason": "eos"}
    monkeypatch.setattr(service, "step", lambda request: steps.append(request) or finished)
    assert quick(panels) == {}
    outcome = actions.step(session, CONTROLS)
    assert len(steps) == 1 and outcome.result is finished and "eos" in outcome.notice
