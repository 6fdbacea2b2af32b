"""Explorer actions on a tiny random model: what each does to the session, and refusals that change nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.model import STORE
from tests.ui.helpers import CONTROLS, stepped
from ui import actions
from ui.state import MAIN, Session


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def test_steps_record_tokens_and_how_they_were_chosen():
    branch = stepped(3).branch
    assert len(branch.ids) == 3 and [m["how"] for m in branch.meta] == ["sampled"] * 3
    assert all(m["dist"]["tokens"] for m in branch.meta)


def test_seeded_steps_repeat():
    assert stepped(3).branch.ids == stepped(3).branch.ids


def test_delete_last_and_clear():
    state = actions.delete_last(stepped(2), CONTROLS).session
    assert len(state.branch.ids) == 1
    assert actions.clear(state, CONTROLS).session.branch.ids == ()


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: actions.delete_last(Session(), CONTROLS), "empty"),
        (lambda s: actions.force_text(s, CONTROLS, ""), "empty"),
        (lambda s: actions.step(s, replace(CONTROLS, temperature=-1)), "temperature"),
        (lambda s: actions.step(s, replace(CONTROLS, seed="x")), "seed"),
        (lambda s: actions.select_token(s, CONTROLS, 0), "prompt token"),
        (lambda s: actions.force_candidate(s, CONTROLS, [99, 0]), "not a candidate"),
    ],
)
def test_bad_input_raises_a_readable_error_and_keeps_the_session(call, words):
    state = stepped(2)
    with pytest.raises(ValueError, match=words):
        call(state)
    assert len(state.branch.ids) == 2


def test_force_text_appends_and_empties_the_box():
    outcome = actions.force_text(Session(), CONTROLS, " Paris")
    assert outcome.session.branch.ids and outcome.also == {"force_text": ""}


def test_forcing_text_with_the_model_off_appends_without_a_distribution():
    off = replace(CONTROLS, llm_on=False)
    outcome = actions.force_text(Session(), off, " Paris")
    assert outcome.session.branch.meta[0]["dist"] is None and outcome.result["dist"] is None
    with pytest.raises(ValueError, match="switched off"):
        actions.step(outcome.session, off)


def test_clicking_a_candidate_while_inspecting_branches_and_keeps_the_original():
    state = stepped(3)
    original = state.branch.ids
    inspecting = actions.select_token(state, CONTROLS, _prompt_length(state) + 1).session
    assert inspecting.inspect == 1
    rows = _rows(inspecting)
    other = next(i for i, token in enumerate(rows) if token != original[1])
    on_screen = replace(inspecting, ghost=replace(inspecting.ghost, rows=rows))  # the view records the rows shown
    outcome = actions.force_candidate(on_screen, CONTROLS, [other, 0])
    branched = outcome.session
    assert branched.branch.ids == (original[0], rows[other]) and branched.branches[MAIN].ids == original
    assert outcome.notice.startswith(f"New **{branched.branch.name}** from token 2")  # never "branch branch 2"


def test_clicking_the_last_token_deletes_it():
    state = stepped(2)
    assert actions.select_token(state, CONTROLS, _prompt_length(state) + 1).session.branch.ids == state.branch.ids[:1]


def test_a_step_after_the_completion_finished_says_why(monkeypatch):
    state = stepped(1)
    finished = {"appended": [], "appended_meta": [], "completion_ids": list(state.branch.ids), "finished": True,
                "finish_reason": "eos", "notice": "the completion has finished (eos): nothing was appended"}  # fmt: skip
    monkeypatch.setattr(actions.service, "step", lambda request: finished)
    outcome = actions.step(state, CONTROLS)
    assert "nothing was appended" in outcome.notice and outcome.session.branch.ids == state.branch.ids


def _prompt_length(state: Session) -> int:
    return len(actions.shown(state, CONTROLS).result["prompt_tokens"])


def _rows(state: Session) -> tuple[int, ...]:
    return tuple(r["id"] for r in state.branch.meta[state.inspect]["dist"]["tokens"])
