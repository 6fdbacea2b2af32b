"""Branches of different prompts: an edited prompt keeps the earlier completion, switching brings its prompt back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.model import STORE
from tests.ui.helpers import CONTROLS, stepped
from ui import actions
from ui.panels import branches
from ui.state import MAIN

EDITED = replace(CONTROLS, prompt="The capital of Italy is")


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def test_an_edited_prompt_keeps_the_completion_as_a_branch_and_says_so():
    work = stepped(3)
    outcome = actions.refresh(work, EDITED)
    assert outcome.session.branches[MAIN].ids == work.branch.ids  # nothing lost
    assert outcome.session.branch.ids == () and outcome.result["completion_ids"] == []
    assert "The prompt changed: your earlier completion (3 tokens) is kept as branch **main**" in outcome.notice
    assert "the new prompt starts **branch 2**" in outcome.notice


def test_an_empty_completion_takes_the_edited_prompt_quietly():
    outcome = actions.refresh(stepped(0), EDITED)
    assert list(outcome.session.branches) == [MAIN] and outcome.notice == ""


def test_switching_back_puts_the_branch_prompt_in_the_box_with_its_tokens():
    work = stepped(3)
    edited = actions.refresh(work, EDITED).session
    back = branches.switch(edited, EDITED, MAIN)
    assert back.controls.prompt == CONTROLS.prompt and back.also["prompt"].value == CONTROLS.prompt
    assert back.also["prompt"].visible  # shown again if a conversation branch had hidden it
    assert back.session.branch.ids == work.branch.ids and back.result["completion_ids"] == list(work.branch.ids)
    assert back.session.branch.meta == work.branch.meta  # how each token was chosen, too
    again = branches.switch(back.session, back.controls, "b2")
    assert again.controls.prompt == EDITED.prompt
    same = branches.switch(again.session, again.controls, "b2")
    assert same.controls is None and "prompt" not in same.also  # the box already shows it


def test_deleting_the_new_branch_lands_on_the_old_prompt():
    edited = actions.refresh(stepped(2), EDITED).session
    outcome = branches.delete(edited, EDITED)
    assert outcome.session.current == MAIN and outcome.also["prompt"].value == CONTROLS.prompt


def test_compare_of_branches_of_different_prompts_says_why_not():
    edited = actions.refresh(stepped(2), EDITED).session
    with pytest.raises(ValueError, match="branch main continues another prompt than branch 2: Compare shows"):
        branches.compare_branches(edited, EDITED, MAIN, {})
    forked = branches.fork(actions.step(edited, EDITED).session, EDITED, "alt").session
    assert "Shared prefix" in branches.compare_branches(forked, EDITED, "b2", {}).also["comparison"]
