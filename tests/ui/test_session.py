"""Per-session explorer state: branches, export/import, comparison; pure data, no model."""

from __future__ import annotations

import json

import pytest

from ui import compare, session


def _with_tokens(ids: list[int]) -> dict:
    state = session.new_session()
    state["branches"]["main"]["ids"] = list(ids)
    state["branches"]["main"]["meta"] = [{"token": {"id": i, "display": str(i)}, "how": "greedy", "dist": None}
                                         for i in ids]
    return state


def test_fork_copies_the_shared_prefix_and_switches():
    state = _with_tokens([1, 2, 3])
    forked = session.forked(state, 2, "alt")
    assert forked["current"] != "main"
    assert session.current(forked)["ids"] == [1, 2] and session.current(forked)["name"] == "alt"
    assert state["branches"]["main"]["ids"] == [1, 2, 3] and len(state["branches"]) == 1


def test_switch_rename_delete_and_their_errors():
    state = session.forked(_with_tokens([5]), 1)
    other = state["current"]
    back = session.switched(state, "main")
    assert back["current"] == "main"
    assert session.renamed(back, other, "second")["branches"][other]["name"] == "second"
    gone = session.deleted(back, other)
    with pytest.raises(ValueError, match="does not exist"):
        session.switched(gone, other)
    with pytest.raises(ValueError, match="last branch"):
        session.deleted(gone, "main")
    with pytest.raises(ValueError, match="empty"):
        session.renamed(back, other, "  ")


def test_truncated_refuses_out_of_range_and_leaves_the_input():
    state = _with_tokens([1, 2])
    assert session.current(session.truncated(state, 1))["ids"] == [1]
    with pytest.raises(ValueError, match="cannot cut"):
        session.truncated(state, 3)
    assert session.current(state)["ids"] == [1, 2]


def test_a_new_prompt_starts_fresh_and_the_same_prompt_keeps_the_branches():
    state = session.for_prompt(_with_tokens([1]), ["p", "", False])
    assert session.current(state)["ids"] == []
    state["branches"]["main"]["ids"] = [7]
    assert session.for_prompt(state, ["p", "", False]) is state


def test_export_import_roundtrip():
    state = session.forked(_with_tokens([1, 2, 3]), 1, "alt")
    text = session.export_json(state, {"prompt": "hi", "temperature": 0.5})
    restored, settings = session.import_json(text)
    assert settings["temperature"] == 0.5
    assert {b["name"]: b["ids"] for b in restored["branches"].values()} == {"main": [1, 2, 3], "alt": [1]}
    assert restored["current"] == state["current"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "version"),
        (json.dumps({"version": 1, "settings": {}, "branches": {}}), "non-empty"),
        (json.dumps({"version": 1, "settings": {}, "branches": {"main": {"ids": ["a"]}}}), "not integers"),
        (json.dumps({"version": 1, "settings": {}, "branches": {"main": {}}}), "no list of token ids"),
    ],
)
def test_malformed_session_files_are_refused_clearly(text, words):
    with pytest.raises(ValueError, match=words):
        session.import_json(text)


def _dist(probs: dict[int, float]) -> dict:
    return {"tokens": [{"id": i, "p_base": p} for i, p in probs.items()], "entropy_final": 1.0}


def test_kl_is_zero_for_equal_distributions_and_positive_otherwise():
    p = _dist({1: 0.5, 2: 0.3})
    assert compare.kl_bits(p, p) == pytest.approx(0.0, abs=1e-12)
    assert compare.kl_bits(p, _dist({1: 0.2, 2: 0.6})) > 0.1
    assert compare.kl_bits(p, None) is None


def test_compare_marks_the_divergence_point():
    state = _with_tokens([1, 2, 3])
    state = session.forked(state, 1, "alt")
    state["branches"][state["current"]]["ids"].append(9)
    assert compare.common_prefix([1, 2, 3], [1, 9]) == 1
    html = compare.compare_html(session.switched(state, "main"), state["current"])
    assert "Shared prefix: <b>1</b>" in html and "◀ diverge" in html
    with pytest.raises(ValueError, match="does not exist"):
        compare.compare_html(state, "nope")
