"""Session and Prefs: branches, conversations, immutability, and the JSON form shared by export and settings."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ui.controls import Controls
from ui.state import MAIN, Branch, Prefs, Session, from_json, to_json


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


def test_a_new_prompt_resets_prompt_branches_but_keeps_conversations():
    state = with_tokens([1]).forked(0, "chat", messages=({"role": "user", "content": "hi"},))
    state = state.with_branch(replace(state.branch, ids=(9,)))
    moved = state.for_prompt(("other", "", False))
    assert moved.branches[MAIN].ids == () and moved.branch.ids == (9,) and moved.branch.messages
    assert moved.for_prompt(("other", "", False)) is moved
    plain = with_tokens([1]).for_prompt(("x", "", False))
    assert plain.current == MAIN and plain.branch.ids == ()


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
