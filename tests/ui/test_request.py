"""The request of the current branch: the prompt box, or a conversation branch's own messages."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ui.controls import Controls
from ui.request import fingerprint, prompt_request, request_for
from ui.state import Session

CONTROLS = replace(Controls(), prompt="Hello", system_prompt="Be brief.", seed="3", top_k=4)


def test_a_prompt_branch_uses_the_prompt_box_and_the_knobs():
    request = request_for(Session(), CONTROLS)
    assert request["prompt"] == "Hello" and request["system_prompt"] == "Be brief." and "messages" not in request
    assert request["params"]["seed"] == 3 and request["top_k"] == 4 and request["completion_ids"] == []
    assert set(prompt_request(Session(), CONTROLS)) == {
        "prompt", "system_prompt", "use_chat_template", "completion_ids", "branch_id",
    }  # fmt: skip


def test_a_conversation_branch_uses_its_messages_with_the_chat_template():
    turns = ({"role": "user", "content": "Hi"},)
    session = Session().forked(0, "chat", messages=turns)
    request = request_for(session, CONTROLS)
    assert request["messages"] == [{"role": "user", "content": "Hi"}] and request["use_chat_template"] is True
    assert "prompt" not in request and request["branch_id"] == session.current


def test_fingerprints_tell_inputs_apart():
    assert fingerprint({"a": 1}, 2) == fingerprint({"a": 1}, 2) != fingerprint({"a": 1}, 3)


def test_a_bad_seed_is_refused_by_name():
    with pytest.raises(ValueError, match="seed"):
        request_for(Session(), replace(CONTROLS, seed="abc"))
