"""The Look ahead panel: growing the tree, taking a path, out of date, the session file."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from backends.model import STORE
from service import operations as service
from service.budgets import Budgets
from tests.ui.helpers import CONTROLS, stepped
from ui import actions, lookahead_view
from ui.draw import lookahead_tree
from ui.panels import lookahead, session_file
from ui.session_json import from_json, to_json
from ui.state import MAIN, Prefs, Session
from ui.view import Frame, view

OPEN = Prefs(open_panels=frozenset({"lookahead"}))  # the accordion open: its panels are drawn


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def test_growing_keeps_the_tree_in_the_session_and_draws_it():
    state = stepped(1)
    outcome = lookahead.grow(state, CONTROLS, 2, 2)
    grown = outcome.session.lookahead
    assert grown.request["completion_ids"] == list(state.branch.ids) and grown.tree["width"] == 2
    _, panels = view(Frame(outcome.session, CONTROLS, OPEN, outcome.result))
    assert panels["lookahead_plot"] is not None and len(panels["lookahead_paths"]) == grown.tree["node_count"]
    assert "click a row" in panels["lookahead_note"]


def test_after_a_step_the_tree_is_out_of_date_and_shows_no_old_numbers():
    outcome = lookahead.grow(stepped(1), CONTROLS, 2, 1)
    shown, _ = view(Frame(outcome.session, CONTROLS, OPEN, outcome.result))
    stepped_on = actions.step(shown, CONTROLS)
    _, panels = view(Frame(stepped_on.session, CONTROLS, OPEN, stepped_on.result))
    assert panels["lookahead_note"] == lookahead_tree.STALE_NOTE
    assert panels["lookahead_plot"] is None and panels["lookahead_paths"] == []
    with pytest.raises(ValueError, match="out of date"):
        lookahead.take_path(stepped_on.session, CONTROLS, [0, 0])
    knobs = replace(CONTROLS, temperature=1.3)  # a knob moved: out of date too
    assert lookahead_view.current_tree(outcome.session, knobs) is None


def test_another_model_makes_the_tree_out_of_date(monkeypatch):
    outcome = lookahead.grow(stepped(1), CONTROLS, 2, 1)
    shown, _ = view(Frame(outcome.session, CONTROLS, OPEN, outcome.result))
    assert lookahead_view.current_tree(shown, CONTROLS) is not None
    status = service.model_status()
    monkeypatch.setattr(service, "model_status", lambda: status | {"model_id": "another-model"})
    _, panels = view(Frame(shown, CONTROLS, OPEN, outcome.result))  # same tokens and knobs, another model
    assert panels["lookahead_note"] == lookahead_tree.STALE_NOTE and panels["lookahead_paths"] == []
    with pytest.raises(ValueError, match="out of date"):
        lookahead.take_path(shown, CONTROLS, [0, 0])


def test_a_closed_panel_is_not_drawn_and_is_drawn_when_opened():
    outcome = lookahead.grow(stepped(1), CONTROLS, 2, 1)
    shown, panels = view(Frame(outcome.session, CONTROLS, Prefs(), outcome.result))
    assert not set(panels) & set(lookahead_view.DRAWS)  # closed: nothing sent
    _, panels = view(Frame(shown, CONTROLS, OPEN, outcome.result))
    assert set(lookahead_view.DRAWS) <= set(panels) and panels["lookahead_plot"] is not None


def test_a_click_on_a_row_appends_its_path():
    state = lookahead.grow(stepped(1), CONTROLS, 2, 2).session
    nodes = lookahead_tree.nodes(state.lookahead.tree)
    row = next(i for i, n in enumerate(nodes) if len(n.path_ids) == 2 and n.finish_reason is None)
    outcome = lookahead.take_path(state, CONTROLS, [row, 0])
    assert outcome.session.branch.ids == state.branch.ids + nodes[row].path_ids
    assert all(m["dist"] for m in outcome.session.branch.meta)  # each token's distribution recorded


def test_a_tree_grown_at_an_inspected_token_branches_there():
    state = stepped(3)
    inspecting = state.inspecting(1)
    grown = lookahead.grow(inspecting, CONTROLS, 2, 2).session
    assert grown.lookahead.request["completion_ids"] == list(state.branch.ids[:1])
    path = lookahead_tree.nodes(grown.lookahead.tree)[1].path_ids
    outcome = lookahead.take_path(grown, CONTROLS, [1, 0])
    assert outcome.session.branch.ids == state.branch.ids[:1] + path
    assert outcome.session.branches[MAIN].ids == state.branch.ids and outcome.notice.startswith("New **branch ")


@pytest.mark.parametrize(
    ("width", "depth", "words"),
    [(9, 2, "width 9 is out of range"), (2, 0, "depth 0 is out of range"), (2.5, 2, "width 2.5 is not an integer")],
)
def test_a_bad_width_or_depth_is_refused_and_keeps_the_session(width, depth, words):
    state = stepped(1)
    with pytest.raises(ValueError, match=words):
        lookahead.grow(state, CONTROLS, width, depth)
    assert state.lookahead is None


def test_a_tree_over_the_budget_is_refused_with_the_budget_named(monkeypatch):
    monkeypatch.setattr(service.POLICY, "_settings", service.POLICY.settings)
    service.POLICY.configure(public=False, budgets=Budgets.defaults(False).with_limits(max_tree_tokens=100))
    with pytest.raises(ValueError, match="max-tree-tokens"):
        lookahead.grow(Session(), CONTROLS, 8, 3)


def test_a_row_outside_the_tree_and_a_switched_off_model_are_refused():
    state = lookahead.grow(Session(), CONTROLS, 2, 1).session
    with pytest.raises(ValueError, match="row 7 is not a path"):
        lookahead.take_path(state, CONTROLS, [7, 0])
    with pytest.raises(ValueError, match="switched off"):
        lookahead.grow(Session(), replace(CONTROLS, llm_on=False), 2, 1)


def test_the_tree_travels_in_the_session_file():
    state = lookahead.grow(stepped(1), CONTROLS, 2, 1).session
    data = json.loads(session_file.export_text(state, CONTROLS, Prefs()))
    assert data["session"]["lookahead"]["tree"] == state.lookahead.tree
    assert data["session"]["lookahead"]["model_id"] == service.model_status()["model_id"]
    _, _, restored = from_json(data)
    assert restored.lookahead == state.lookahead
    assert "lookahead" not in to_json(CONTROLS, Prefs(), stepped(1))["session"]
