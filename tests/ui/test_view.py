"""The one view: which panels an event sends, ghost bars, closed panels, and out-of-date on-demand panels."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.model import STORE
from tests.ui import chart
from tests.ui.helpers import CONTROLS, stepped
from ui import actions
from ui.draw import bars
from ui.panels import branches
from ui.state import MAIN, Prefs
from ui.view import STALE_OUTPUTS, Frame, on_demand_key, view


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def shown(outcome, controls=CONTROLS, prefs=None, computed=None):
    frame = Frame(outcome.session, controls, prefs or Prefs(), outcome.result, outcome.notice, computed=computed or {})
    return view(frame)


def test_the_first_view_draws_every_open_panel_and_the_next_only_what_changed():
    session, panels = shown(actions.refresh(stepped(0), CONTROLS))
    assert {"tokens", "plot", "candidates", "summary", "back"} <= set(panels)
    assert "stages" not in panels and "timeline" not in panels  # their accordions are closed
    again, panels = shown(actions.refresh(session, CONTROLS))
    assert set(panels) == {"summary"}  # nothing else changed
    _, panels = shown(actions.step(again, CONTROLS))
    assert {"tokens", "plot", "candidates", "summary"} <= set(panels) and "back" not in panels


def test_opening_a_panel_draws_it():
    session, _ = shown(actions.refresh(stepped(1), CONTROLS))
    _, panels = shown(actions.refresh(session, CONTROLS), prefs=Prefs().opened("stages", True))
    assert set(panels) == {"summary", "stages"}


def test_a_knob_change_redraws_the_bars_with_the_previous_p_final_as_ghost():
    session, _ = shown(actions.refresh(stepped(1), CONTROLS))
    hotter = replace(CONTROLS, temperature=1.5)
    _, panels = shown(actions.refresh(session, hotter), hotter)
    assert bars.GHOST_NAME in chart.seen(panels["plot"]).legend
    assert "tokens" not in panels


def test_inspecting_shows_the_distribution_then_and_the_back_button():
    session, _ = shown(actions.refresh(stepped(3), CONTROLS))
    outcome = actions.shown(session.inspecting(0), CONTROLS)
    inspected, panels = shown(outcome)
    assert panels["back"].visible is True and "Token 1" in panels["summary"]
    chosen = session.branch.meta[0]["token"]["id"]
    assert chosen in inspected.ghost.rows and inspected.ghost.p == {}
    assert [row[1] for row in panels["candidates"]] == list(inspected.ghost.rows)


def test_on_demand_panels_go_out_of_date_once_and_say_so():
    session, _ = shown(actions.refresh(stepped(1), CONTROLS))
    computed = {"lens": on_demand_key("lens", session, CONTROLS)}
    session, panels = shown(actions.refresh(session, CONTROLS), computed=computed)
    assert "lens_note" not in panels  # still current
    session, panels = shown(actions.step(session, CONTROLS), computed=computed)
    assert panels["lens_note"] == STALE_OUTPUTS["lens"]["lens_note"] and panels["lens"] == []
    _, panels = shown(actions.step(session, CONTROLS), computed=computed)
    assert "lens_note" not in panels  # said once


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 1.5},
        {"top_p": 0.5},
        {"sampler_order": "llama.cpp"},
        {"constraint_enabled": True, "constraint_type": "regex", "constraint_schema": r"[\s\S]*"},
    ],
)
def test_the_comparison_goes_out_of_date_on_any_knob_or_constraint(change):
    session = branches.fork(stepped(2), CONTROLS, "alt").session
    outcome = branches.compare_branches(session, CONTROLS, MAIN, {})
    computed = outcome.also["computed"]
    session, _ = shown(outcome, computed=computed)
    session, panels = shown(actions.refresh(session, CONTROLS), computed=computed)
    assert "comparison" not in panels  # still current
    changed = replace(CONTROLS, **change)
    _, panels = shown(actions.refresh(session, changed), changed, computed=computed)
    assert panels["comparison"] == STALE_OUTPUTS["comparison"]["comparison"]
    assert "a knob, the constraint" in panels["comparison"]


def test_the_candidate_table_lists_the_rows_penalties_pushed_down():
    controls = replace(CONTROLS, prompt="The cat sat on the mat. The cat sat on the", temperature=1.0, top_p=1.0,
                       repetition_penalty=1.5, top_k=5)  # fmt: skip
    outcome = actions.refresh(stepped(0, controls), controls)
    session, panels = shown(outcome, controls)
    dist = outcome.result["dist"]
    pushed = [row["id"] for row in dist.get("pushed_down", [])]
    ids = [row[1] for row in panels["candidates"]]
    assert ids == [row["id"] for row in dist["tokens"]] + pushed
    assert list(session.ghost.rows) == ids
