"""The session kept in the browser: the session file's JSON, bounded in size, restored only where it fits."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from backends.model import STORE
from service import operations as service
from tests.ui.helpers import CONTROLS, stepped
from ui import actions, session_store
from ui.panels import branches
from ui.session_json import from_json, to_json
from ui.state import LookAhead, Prefs


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def browser(value: dict) -> dict:
    """What the page sends back on load: the value as JSON text and back."""
    return json.loads(json.dumps(value))


def kept(session) -> dict:
    value, note = session_store.kept_value(session, CONTROLS, Prefs(), service.model_status()["model_id"])
    assert note == ""
    return browser(value)


def test_the_kept_value_is_the_session_file_and_comes_back_whole():
    work = actions.refresh(stepped(2), replace(CONTROLS, prompt="Paris is")).session
    work = branches.fork(work, CONTROLS, "alt").session
    work = replace(work, chat=({"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}))
    work = replace(
        work,
        chat_reply=({"token": {"id": 3}}, {"token": {"id": 4}}),
        lookahead=LookAhead({"completion_ids": [1]}, {"width": 2}, "m"),
    )
    value = kept(work)
    assert value == browser(to_json(CONTROLS, Prefs(), work, service.model_status()["model_id"]))
    back, note = session_store.restored(value, service.model_status())
    assert note == "" and back == from_json(value)[2]
    assert {b: (x.ids, x.meta, x.prompt) for b, x in back.branches.items()} == {
        b: (x.ids, x.meta, x.prompt) for b, x in work.branches.items()
    }
    assert back.current == work.current and back.chat == work.chat and back.chat_reply == work.chat_reply
    assert back.lookahead == work.lookahead


def test_a_restored_session_is_on_screen_with_its_chat():
    work = replace(stepped(3), chat=({"role": "user", "content": "hi"},), chat_reply=({"token": {"id": 5}},))
    outcome = session_store.restore(stepped(0), CONTROLS, kept(work))
    assert outcome.session.branch.ids == work.branch.ids and outcome.result["completion_ids"] == list(work.branch.ids)
    assert outcome.also == {"chatbot": [{"role": "user", "content": "hi"}], "chat_reply": ({"token": {"id": 5}},)}


def test_nothing_kept_gives_a_fresh_page_without_a_note():
    for saved in ({}, None, to_json(CONTROLS, Prefs())):
        assert session_store.restored(saved, service.model_status()) == (None, "")
    outcome = session_store.restore(stepped(0), CONTROLS, {})
    assert outcome.notice == "" and outcome.session.branch.ids == ()


def test_a_session_over_the_bound_keeps_the_settings_and_says_so():
    big = replace(stepped(1), chat=({"role": "user", "content": "x" * 2_100_000},))
    value, note = session_store.kept_value(big, CONTROLS, Prefs(), "m")
    size = len(json.dumps(to_json(CONTROLS, Prefs(), big, "m"), separators=(",", ":")))
    assert size > session_store.LIMIT_BYTES and "session" not in value
    assert from_json(value)[0] == CONTROLS  # the settings are kept
    shown = math.ceil(size / 100_000) / 10  # MB, rounded up
    assert note == f"This session is too large to keep across a reload ({shown} MB > 2 MB): download it with Export."
    _, back = session_store.restored(browser(value), service.model_status())
    assert back.startswith("Only the settings were restored: your last session was too large to keep")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda v: v["session"].update(model_id="other/model"), "made with model other/model, not"),
        (lambda v: v["session"]["branches"]["main"]["ids"].append(10**9), "outside the vocabulary"),
        (lambda v: v["session"]["branches"]["main"]["ids"].append(-1), "outside the vocabulary"),
        (lambda v: v["session"].update(branches={}), "could not be read"),
    ],
)
def test_a_kept_session_that_no_longer_fits_is_dropped_whole_with_a_note(change, words):
    value = kept(stepped(2))
    change(value)
    session, note = session_store.restored(value, service.model_status())
    assert session is None and words in note and "not restored" in note
    outcome = session_store.restore(stepped(0), CONTROLS, value)
    assert outcome.session.branch.ids == () and words in outcome.notice


def test_a_prompt_typed_after_the_last_save_keeps_the_kept_work_as_a_branch():
    value = kept(stepped(2))
    outcome = session_store.restore(stepped(0), replace(CONTROLS, prompt="Rome is"), value)
    assert len(outcome.session.branches) == 2 and "The prompt changed" in outcome.notice
