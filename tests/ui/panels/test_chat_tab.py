"""The chat tab: its settings line, and a reply opened in the explorer that rewinds like stepped tokens."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pytest

from backends.model import STORE
from decoding.engine import engine_for
from service import chat
from tests.ui.helpers import CONTROLS, stepped
from ui import actions
from ui.draw import render
from ui.panels import chat_tab
from ui.state import Prefs
from ui.view import Frame, view

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def opened_reply(seed: int = 5, tokens: int = 4):
    """A sampled reply streamed as the chat streams it, recorded, then opened in the explorer."""
    params = chat.chat_params("creative", 1.0, seed)
    text, records = list(chat.stream_reply(QUESTION, tokens, params))[-1]
    history = [*QUESTION, {"role": "assistant", "content": text}]
    session = chat_tab.record(stepped(1), history, tuple(records))
    return chat_tab.open_in_explorer(session, CONTROLS), params


def test_a_reply_token_opened_in_the_explorer_rewinds_to_its_own_distribution_and_draw():
    outcome, params = opened_reply()
    session = outcome.session
    assert [m["how"] for m in session.branch.meta] == ["sampled"] * len(session.branch.ids)
    n_prompt = len(outcome.result["prompt_tokens"])
    rewound = actions.select_token(session, CONTROLS, n_prompt + 1)
    assert rewound.session.inspect == 1
    # independently: the engine's own step at that position, with the chat's settings and branch
    engine = engine_for(STORE.get())
    request = engine.request({"messages": QUESTION, "completion_ids": list(session.branch.ids[:1]), "top_k": 10})
    request = replace(request, params=params, branch_id="chat")
    expected = engine.step(request).appended_meta[0]
    assert expected["token"]["id"] == session.branch.ids[1]
    assert session.branch.meta[1]["dist"] == expected["dist"] and session.branch.meta[1]["draw"] == expected["draw"]
    _, panels = view(Frame(rewound.session, CONTROLS, Prefs(), rewound.result))
    assert "was sampled, draw u = " in panels["summary"]
    shown = [row[1] for row in panels["candidates"]]
    assert session.branch.ids[1] in shown  # the table is the distribution in force at that token


def test_a_conversation_branch_shows_its_turns_in_the_prompts_place():
    outcome, _ = opened_reply(tokens=2)
    _, panels = view(Frame(outcome.session, CONTROLS, Prefs(), outcome.result))
    assert panels["prompt"].visible is False and panels["conversation"].visible is True
    assert panels["conversation"].value == "User: What is the capital of France?"
    main = outcome.session.switched("main")
    _, panels = view(Frame(main, CONTROLS, Prefs(), actions.refresh(main, CONTROLS).result))
    assert panels["prompt"].visible is True and panels["conversation"].visible is False


def test_the_settings_line_names_the_preset_and_each_setting_in_force():
    line = chat_tab.settings_line(chat.CHAT_PRESET, 0.2)
    assert line.startswith(
        "Replies are sampled with temperature 0.2 · repetition penalty 1.1 · top-p 0.5 (preset **chat**"
    )
    assert "temperature set here" in chat_tab.settings_line(chat.CHAT_PRESET, 0.9)
    assert "temperature 0 (greedy)" in chat_tab.settings_line("greedy", 0.0)
    assert chat_tab.preset_chosen("creative") == (1.1, chat_tab.settings_line("creative", 1.1))


def test_the_chat_starts_on_its_preset_and_says_so():
    with gr.Blocks():
        c = chat_tab.create_chat_tab()
    assert c["chat_preset"].value == chat.CHAT_PRESET and c["chat_temperature"].value == 0.2
    assert "preset **chat**" in c["chat_settings"].value
    assert render.conversation(None) == ""
