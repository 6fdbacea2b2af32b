"""A constraint the engine refuses never blocks the actions that do not need it; Step says why it cannot run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.model import STORE
from service import operations as service
from tests.ui.helpers import CONTROLS, stepped
from ui import actions, constraint_state
from ui.constraint_state import PROBLEM, Problem, panel_line
from ui.panels import branches
from ui.request import request_for
from ui.state import MAIN, Prefs
from ui.view import Frame, view

INVALID = replace(CONTROLS, constraint_enabled=True, constraint_type="regex", constraint_schema="[a-")
DIGITS = replace(INVALID, constraint_schema="[0-9]+")  # valid, but the sampled words are no digits
STEP_LINE = "Step needs a valid constraint: the regex is not valid"
MISMATCH = "The completion so far does not match this constraint: clear the completion, or keep it and turn the"


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def unconstrained_dist(session, controls) -> dict:
    """The distribution the engine gives for the same request with the constraint off (computed apart)."""
    request = request_for(session, controls)
    return service.preview(request | {"constraint": request["constraint"] | {"enabled": False}})["dist"]


NEW_PROMPT = replace(INVALID, prompt="A new prompt")


def rewind(session, controls):
    """A click on the first completion token (an earlier one: it shows how that token was chosen)."""
    return actions.select_token(session, controls, len(service.render(request_for(session, CONTROLS))["prompt_tokens"]))


@pytest.mark.parametrize(
    ("action", "controls", "n_left"),
    [
        (actions.clear, INVALID, 0),
        (actions.delete_last, INVALID, 1),
        (actions.refresh, INVALID, 2),
        (rewind, INVALID, 2),
        (actions.refresh, NEW_PROMPT, 0),
    ],
    ids=["clear", "delete", "refresh", "rewind", "edit prompt"],
)
def test_an_invalid_regex_never_blocks_what_does_not_need_it(action, controls, n_left):
    outcome = action(stepped(2), controls)
    assert len(outcome.session.branch.ids) == n_left
    assert outcome.result[PROBLEM].invalid
    assert "constraint invalid" in outcome.notice and "without it" in outcome.notice
    assert outcome.result["dist"] == unconstrained_dist(outcome.session, controls)


def test_switching_branches_works_while_the_regex_is_invalid():
    session = actions.current(stepped(2), CONTROLS).forked(1, "other")
    outcome = branches.switch(session, INVALID, MAIN)
    assert outcome.session.current == MAIN and len(outcome.session.branch.ids) == 2
    assert outcome.result[PROBLEM].invalid


@pytest.mark.parametrize(
    "call",
    [
        lambda s: actions.step(s, INVALID),
        lambda s: actions.force_text(s, INVALID, " x"),
        lambda s: actions.force_text(s, replace(INVALID, llm_on=False), " x"),
    ],
    ids=["step", "force", "force, model off"],
)
def test_step_explains_the_invalid_constraint_and_loses_nothing(call):
    session = stepped(2)
    with pytest.raises(ValueError) as refused:
        call(session)
    message = str(refused.value)
    assert message.startswith(STEP_LINE) and "unclosed character class" in message
    assert message.endswith("Fix it in the Constraint panel or turn the constraint off.")
    assert len(session.branch.ids) == 2


def test_other_refusals_keep_their_own_words_while_the_regex_is_invalid():
    with pytest.raises(ValueError, match="seed"):
        actions.clear(stepped(1), replace(INVALID, seed="x"))
    with pytest.raises(ValueError, match="switched off"):
        actions.step(stepped(1), replace(INVALID, llm_on=False))


def test_a_completion_the_constraint_does_not_allow_says_what_to_do():
    session = stepped(2)
    outcome = actions.refresh(session, DIGITS)
    problem = outcome.result[PROBLEM]
    assert not problem.invalid and problem.panel_line.startswith(MISMATCH)
    assert "its token 1, " in problem.panel_line and "is not allowed at its start" in problem.panel_line
    assert "does not match" in outcome.notice
    with pytest.raises(ValueError, match="clear the completion, or keep it and turn the constraint off"):
        actions.step(session, DIGITS)
    cleared = actions.clear(session, DIGITS)
    assert PROBLEM not in cleared.result
    stepped_once = actions.step(cleared.session, DIGITS)
    assert len(stepped_once.session.branch.ids) == 1


def test_a_valid_constraint_or_one_turned_off_carries_no_problem():
    assert PROBLEM not in actions.refresh(stepped(1), replace(INVALID, constraint_enabled=False)).result
    assert PROBLEM not in actions.refresh(stepped(0), DIGITS).result


def test_the_panel_line_stays_until_the_constraint_is_fixed():
    frame = Frame(*(lambda o: (o.session, INVALID, Prefs(), o.result, o.notice))(actions.refresh(stepped(1), INVALID)))
    session, panels = view(frame)
    assert "This regex is not valid: unclosed character class" in panels["constraint_problem"]
    fixed = actions.refresh(session, replace(INVALID, constraint_schema="[a-z ]+"))
    _, panels = view(Frame(fixed.session, INVALID, Prefs(), fixed.result, fixed.notice))
    assert panels["constraint_problem"] == ""


def test_the_panel_line_is_escaped_and_worded_for_the_screen():
    problem = Problem(True, "json_schema", "JSON schema is invalid: line 1, column 2: expected <value>")
    assert (
        problem.panel_line
        == "This JSON schema is not valid: line 1, column 2: expected <value>. Fix it or turn the constraint off."
    )
    assert "&lt;value&gt;" in panel_line({PROBLEM: problem}) and panel_line({}) == ""
    mismatch = Problem(
        False, "regex", "completion token 2 (' b', id 5) is not allowed by the regex constraint after 'ab'"
    )
    assert mismatch.panel_line == f"{MISMATCH} constraint off (its token 3, ' b', is not allowed after 'ab')."
    assert mismatch.refusal("Step") == mismatch.refusal("Look ahead") == mismatch.panel_line


def test_without_turns_only_the_constraint_off():
    request = request_for(stepped(0), INVALID)
    off = constraint_state.without(request)
    assert off["constraint"] == request["constraint"] | {"enabled": False}
    assert {k: v for k, v in off.items() if k != "constraint"} == {
        k: v for k, v in request.items() if k != "constraint"
    }


def test_the_look_ahead_tree_is_refused_in_the_words_of_the_screen_and_loses_nothing():
    from ui.panels import lookahead

    session = stepped(2)
    with pytest.raises(ValueError) as refused:
        lookahead.grow(session, INVALID, 2, 2)
    message = str(refused.value)
    assert message.startswith("Look ahead needs a valid constraint: the regex is not valid")
    assert message.endswith("Fix it in the Constraint panel or turn the constraint off.") and "\n" not in message
    assert len(session.branch.ids) == 2 and session.lookahead is None
    with pytest.raises(ValueError, match="clear the completion, or keep it and turn the constraint off"):
        lookahead.grow(session, DIGITS, 2, 2)


def test_compare_of_existing_branches_works_without_the_constraint_and_says_so():
    session = actions.current(stepped(2), CONTROLS).forked(1, "other")
    outcome = branches.compare_branches(session, INVALID, MAIN, {})
    table = outcome.also["comparison"]
    assert "constraint invalid (see the Constraint panel): showing the model without it" in table
    expected = service.compare(constraint_state.without(request_for(session, INVALID)), list(stepped(2).branch.ids))
    assert expected["shared_prefix"] == 1 and f"<b>{expected['shared_prefix']}</b> token(s)" in table
    assert "constraint invalid" not in branches.compare_branches(session, CONTROLS, MAIN, {}).also["comparison"]
