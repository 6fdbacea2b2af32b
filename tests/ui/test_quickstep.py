"""Step's quick path: the bars it draws equal the Step event's, and the event takes its step instead of a new one."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace

import pytest

from backends.model import STORE
from service import operations as service
from tests.ui.helpers import CONTROLS, stepped
from ui import actions, quickstep
from ui.quickstep import MARK, Speculations, quick_step
from ui.request import request_for
from ui.state import Prefs, Session
from ui.view import Frame, view

UNSEEDED = replace(CONTROLS, seed="", temperature=1.5, top_p=1.0, top_k=20)  # a fresh draw each time


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
    return view(Frame(outcome.session, controls, Prefs(), outcome.result))


def carried(bars: str) -> dict | None:
    found = re.search(r'data-step="([^"]*)"', bars)
    return json.loads(html.unescape(found.group(1))) if found else None


def click_step(session: Session, controls=CONTROLS) -> tuple[dict, Session, dict]:
    """What a click on Step does: the quick path on the bars' request, then the Step event through the view."""
    session, panels = shown(session, controls)
    quick = quick_step([json.dumps(carried(panels["plot"]))])
    outcome = actions.step(session, controls)
    after, panels = view(Frame(outcome.session, controls, Prefs(), outcome.result))
    return quick, after, panels


def test_the_bars_carry_the_request_a_step_sends():
    session, panels = shown(stepped(2))
    assert carried(panels["plot"]) == request_for(session, CONTROLS)


def test_no_request_while_the_model_is_off_or_an_earlier_token_is_inspected():
    off = replace(CONTROLS, llm_on=False)
    assert carried(shown(stepped(2), off)[1]["plot"]) is None
    inspecting = actions.select_token(stepped(3), CONTROLS, len(shown(Session())[0].branch.ids) + 5)
    _, panels = view(Frame(inspecting.session, CONTROLS, Prefs(), inspecting.result))
    assert carried(panels["plot"]) is None


def test_quick_bars_are_the_step_events_bars_and_the_event_takes_that_step(steps):
    session = stepped(1, UNSEEDED)
    steps.clear()
    quick, after, panels = click_step(session, UNSEEDED)
    assert quick["html"] == panels["plot"] + MARK
    assert len(steps) == 1  # the event took the quick path's step: the same (unseeded) draw, run once
    assert carried(panels["plot"])["completion_ids"] == list(after.branch.ids)


def test_an_event_with_another_request_computes_its_own_step(steps):
    session, panels = shown(stepped(1))
    steps.clear()
    quick_step(json.dumps(carried(panels["plot"])))
    hotter = replace(CONTROLS, temperature=1.3)  # changed just before the click: the event's request differs
    outcome = actions.step(session, hotter)
    assert len(steps) == 2 and steps[1]["params"]["temperature"] == 1.3
    assert outcome.result["completion_ids"] == service.step(request_for(session, hotter))["completion_ids"]


def test_a_speculation_is_taken_once(steps):
    session, panels = shown(stepped(1))
    steps.clear()
    quick_step(json.dumps(carried(panels["plot"])))
    actions.step(session, CONTROLS)
    actions.step(session, CONTROLS)  # the same request again (a second window on the same state): a new step
    assert len(steps) == 2


@pytest.mark.parametrize("bad", [[], ["not json"], ["[1, 2]"], [json.dumps({"prompt": 3})], None, 5])
def test_a_malformed_or_refused_quick_step_draws_nothing(bad, steps):
    assert quick_step(bad) == {}


def test_a_refused_quick_step_leaves_the_event_to_say_why():
    session, _ = shown(stepped(1))
    bad = replace(CONTROLS, temperature=-1.0)
    assert quick_step(json.dumps(request_for(session, bad))) == {}
    with pytest.raises(ValueError, match="temperature"):
        actions.step(session, bad)


def test_nothing_appended_draws_nothing_and_the_event_takes_that_answer(monkeypatch, steps):
    session, panels = shown(stepped(1))
    steps.clear()
    finished = service.preview(request_for(session, CONTROLS)) | {"appended": [], "finish_reason": "eos"}
    monkeypatch.setattr(service, "step", lambda request: steps.append(request) or finished)
    assert quick_step(json.dumps(carried(panels["plot"]))) == {}
    outcome = actions.step(session, CONTROLS)
    assert len(steps) == 1 and outcome.result is finished and "eos" in outcome.notice


def test_a_speculation_for_another_model_is_not_taken(monkeypatch, steps):
    speculations = Speculations()
    request = {"prompt": "x"}
    entry = speculations.start(request)
    entry.result = {"appended": [1]}
    entry.done.set()
    monkeypatch.setattr(quickstep, "model_id", lambda: "another model")
    assert speculations.take(request) is None


def test_old_speculations_expire_and_the_store_is_bounded():
    def started(speculations: Speculations, i: int) -> None:
        entry = speculations.start({"i": i})
        entry.result = {"i": i}
        entry.done.set()

    expired = Speculations(keep=2, ttl_s=0.0)
    started(expired, 2)
    assert expired.take({"i": 2}) is None  # older than its time to live
    bounded = Speculations(keep=2)
    for i in range(3):
        started(bounded, i)
    assert bounded.take({"i": 0}) is None  # the oldest went when the third came
    assert bounded.take({"i": 1}) == {"i": 1} and bounded.take({"i": 2}) == {"i": 2}
    assert bounded.take({"i": 2}) is None  # taken once
