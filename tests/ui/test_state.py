"""Session and Prefs: branches, conversations, immutability, and the JSON form shared by export and settings."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ui.controls import Controls
from ui.session_json import from_json, to_json
from ui.state import MAIN, Branch, LookAhead, Prefs, Session


def with_tokens(ids: list[int]) -> Session:
    meta = tuple({"token": {"id": i, "display": str(i)}, "how": "greedy", "dist": None} for i in ids)
    return Session(key=("p", "", False)).with_branch(Branch(MAIN, tuple(ids), meta))


def test_fork_copies_the_shared_prefix_switches_and_leaves_the_original():
    state = with_tokens([1, 2, 3])
    forked = state.forked(2, "alt")
    assert forked.current != MAIN and forked.branch.ids == (1, 2) and forked.branch.name == "alt"
    assert forked.branch.parent == MAIN and forked.branch.fork_at == 2
    assert state.branch.ids == (1, 2, 3) and len(state.branches) == 1


def test_switch_rename_delete_and_their_errors():
    state = with_tokens([5]).forked(1)
    other = state.current
    back = state.switched(MAIN)
    assert back.current == MAIN
    assert back.switched(other).renamed("second").branch.name == "second"
    gone = state.deleted()
    with pytest.raises(ValueError, match="does not exist"):
        gone.switched(other)
    with pytest.raises(ValueError, match="last branch"):
        gone.deleted()
    with pytest.raises(ValueError, match="empty"):
        back.renamed("  ")


def test_truncated_refuses_out_of_range_and_leaves_the_input():
    state = with_tokens([1, 2])
    assert state.truncated(1).branch.ids == (1,)
    with pytest.raises(ValueError, match="cannot cut"):
        state.truncated(3)
    assert state.branch.ids == (1, 2)


OLD, NEW = ("p", "", False), ("other", "", False)


def test_a_new_prompt_keeps_the_completion_on_its_branch_and_starts_a_new_one():
    state = with_tokens([1, 2])
    moved = state.for_prompt(NEW)
    assert moved.branches[MAIN].ids == (1, 2) and moved.branches[MAIN].prompt == OLD
    assert moved.current != MAIN and moved.branch.ids == () and moved.branch.prompt == NEW and moved.key == NEW
    assert moved.for_prompt(NEW) is moved
    back = moved.switched(MAIN)
    assert back.key == OLD and back.branch.ids == (1, 2)
    assert back.for_prompt(OLD) is back  # the box now shows the old prompt: nothing more to keep
    assert moved.deleted().key == OLD  # deleting lands on the old branch, and on its prompt


def test_an_empty_completion_takes_the_new_prompt_without_a_new_branch():
    moved = with_tokens([]).for_prompt(NEW)
    assert list(moved.branches) == [MAIN] and moved.branch.prompt == NEW and moved.key == NEW


def test_a_conversation_is_left_alone_and_other_branches_keep_their_prompts():
    state = with_tokens([1]).forked(0, "chat", messages=({"role": "user", "content": "hi"},))
    state = state.with_branch(replace(state.branch, ids=(9,)))
    moved = state.for_prompt(NEW)
    assert len(moved.branches) == 2 and moved.branch.ids == (9,) and moved.branch.messages
    assert moved.branches[MAIN].ids == (1,) and moved.branches[MAIN].prompt == OLD
    assert moved.switched(MAIN).key == OLD


def test_a_fork_continues_the_prompt_of_its_branch():
    state = with_tokens([1, 2]).for_prompt(NEW).switched(MAIN).forked(1)
    assert state.branch.prompt == OLD and state.branch.ids == (1,)


def test_branch_labels_name_their_prompt_once_prompts_differ():
    state = with_tokens([1])
    assert state.branch_choices() == [("main (1 tokens)", MAIN)]
    long = "a prompt that is much longer than a label can show"
    labels = [label for label, _ in state.for_prompt((long, "", False)).branch_choices()]
    assert labels == ["main (1 tokens, prompt “p”)", f"branch 2 (0 tokens, prompt “{long[:23]}…”)"]


def test_every_change_worth_keeping_changes_the_hash():
    state = with_tokens([1, 2])
    changed = (
        state.renamed("other"),
        replace(state, chat=({"role": "user", "content": "hi"},)),
        replace(state, chat_reply=({"token": {"id": 4}},)),
        replace(state, lookahead=LookAhead({"a": 1}, {})),
        state.for_prompt(NEW),
        state.truncated(1),
    )
    assert all(hash(other) != hash(state) for other in changed)
    assert hash(state.showing("plot", "k")) == hash(state)  # what is on screen is not kept


def test_inspecting_and_showing_record_what_is_on_screen():
    state = with_tokens([1, 2])
    assert state.inspecting(None) is state
    assert state.inspecting(1).inspect == 1
    assert state.showing("plot", "k").shown == {"plot": "k"}


def test_json_roundtrip_of_session_controls_and_prefs():
    state = with_tokens([1, 2, 3]).forked(1, "alt")
    state = replace(state, chat=({"role": "user", "content": "hi"},))
    controls = replace(Controls(), temperature=0.3, aggregation="sum")
    prefs = Prefs().opened("lens", True).with_text("regex", "[0-9]+")
    text = json.dumps(to_json(controls, prefs, state))
    got_controls, got_prefs, got = from_json(json.loads(text))
    assert got_controls == controls and got_prefs == prefs
    assert {b.name: b.ids for b in got.branches.values()} == {"main": (1, 2, 3), "alt": (1,)}
    assert got.current == state.current and got.chat == state.chat and got.key == state.key
    assert from_json(to_json(controls, prefs))[2] is None  # the browser settings carry no session


def test_json_keeps_each_branch_prompt_the_chat_reply_and_never_reuses_a_branch_id():
    state = replace(with_tokens([1, 2]).for_prompt(NEW), chat_reply=({"token": {"id": 7}}, {"token": {"id": 8}}))
    state = state.forked(0).forked(0)
    state = state.switched("b3").deleted().switched("b2")  # b2 and b4 are left: no new branch may be b4 again
    data = to_json(Controls(), Prefs(), state, "some-model")
    assert data["session"]["model_id"] == "some-model"
    got = from_json(json.loads(json.dumps(data)))[2]
    assert {bid: b.prompt for bid, b in got.branches.items()} == {MAIN: OLD, "b2": NEW, "b4": NEW}
    assert got.chat_reply_ids == (7, 8)
    assert got.forked(0).current == "b5"
    del data["session"]["branches"][MAIN]["prompt"]  # a file from before branches kept their prompt
    assert from_json(data)[2].branches[MAIN].prompt == NEW  # the session's prompt box


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([], "version"),
        ({"version": 2}, "controls"),
        ({"version": 2, "controls": {}, "session": {"branches": {}}}, "non-empty"),
        ({"version": 2, "controls": {}, "session": {"branches": {"main": {"ids": ["a"]}}}}, "not integers"),
        ({"version": 2, "controls": {}, "session": {"branches": {"main": {}}}}, "no list of token ids"),
    ],
)
def test_malformed_session_data_is_refused_clearly(data, words):
    with pytest.raises(ValueError, match=words):
        from_json(data)


def test_prefs_remember_open_panels_and_texts():
    prefs = Prefs().opened("lens", True).opened("stages", True).opened("lens", False)
    assert prefs.open_panels == {"stages"}
    assert prefs.with_text("cfg", "start: 'a'").constraint_texts == {"cfg": "start: 'a'"}
    assert hash(prefs) == hash(Prefs().opened("stages", True))
