"""The Chat tab: chat with the loaded model (streamed), clear, and open the conversation in the explorer.

A turn is checked against the chat budgets before any model work. The conversation is recorded in
the session once the reply is complete; opening it in the explorer puts every turn on a new branch
(the conversation as its prompt, the last reply as its completion) and leaves the other branches as
they were.
"""

from __future__ import annotations

import time
from dataclasses import replace

import gradio as gr

from service import chat
from service import operations as service

from .. import actions
from ..controls import Controls
from ..draw import render
from ..events import MODEL_EVENT, QUICK_EVENT, SESSION_EVENT, Explorer, Outcome, refuse
from ..state import Session

FRAME_SECONDS = 0.08  # the browser drops frames it cannot draw, so yield at most this often


def create_chat_tab() -> dict:
    c = {"chatbot": gr.Chatbot(elem_id="chatbot", height=420, label="Chat with the loaded model")}
    with gr.Row():
        c["message"] = gr.Textbox(label="Message", placeholder="Ask something", scale=5, max_lines=4)
        c["send"] = gr.Button("Send", variant="primary", scale=1)
    with gr.Row():
        c["chat_max_tokens"] = gr.Slider(1, 512, 128, step=1, label="Max reply tokens")
        c["chat_temperature"] = gr.Slider(0, 2, 0.7, step=0.05, label="Reply temperature (0 = greedy)")
    with gr.Row():
        c["chat_clear"] = gr.Button("Clear", size="sm")
        c["chat_open"] = gr.Button("Open the conversation in the explorer (a new branch)", size="sm")
    c["chat_reply"] = gr.State(())
    return c


def turns(history: list[dict]) -> list[dict]:
    """The chatbot's messages as plain {"role", "content"} text turns."""
    return [{"role": m["role"], "content": _text(m["content"])} for m in history]


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return str(content)


def send(message: str, history: list[dict], max_tokens: float, temperature: float):
    """Check the turn against the budgets, then stream the reply into the chatbot."""
    try:
        service.check_chat(message, turns(history), int(max_tokens))
        history = [*history, {"role": "user", "content": message}]
        reply, stamp = ("", []), 0.0
        for reply in chat.stream_reply(turns(history), int(max_tokens), float(temperature)):
            if time.monotonic() - stamp >= FRAME_SECONDS:
                stamp = time.monotonic()
                yield "", [*history, {"role": "assistant", "content": reply[0]}], gr.skip()
        yield "", [*history, {"role": "assistant", "content": reply[0]}], tuple(reply[1])
    except Exception as exc:  # the message stays in its box, the chat as it was
        refuse(exc)
        yield gr.skip(), gr.skip(), gr.skip()


def record(session: Session, history: list[dict], reply: tuple) -> Session:
    """The finished conversation into the session (exported with it)."""
    return replace(session, chat=tuple(turns(history)), chat_reply=tuple(reply))


def open_in_explorer(session: Session, controls: Controls) -> Outcome:
    """Every turn on a new branch: the turns before the last reply as its prompt, the reply as its completion."""
    if not session.chat or session.chat[-1]["role"] != "assistant" or not session.chat_reply:
        raise ValueError("there is no reply yet: send a message first")
    session = actions.current(session, controls)
    opened = session.forked(0, "chat", messages=session.chat[:-1])
    opened = opened.with_branch(replace(opened.branch, ids=session.chat_reply))
    notice = f"New {render.branch_named(opened.branch.name)}: the whole conversation; the other branches are unchanged."
    outcome = actions.shown(opened, controls, actions.announce(notice))
    return replace(outcome, also={"tabs": gr.Tabs(selected="explorer")})


def wire_chat(ex: Explorer) -> None:
    c = ex.c
    inputs = [c["message"], c["chatbot"], c["chat_max_tokens"], c["chat_temperature"]]
    for trigger in (c["send"].click, c["message"].submit):
        sent = trigger(send, inputs, [c["message"], c["chatbot"], c["chat_reply"]], **MODEL_EVENT)
        sent.then(record, [c["session"], c["chatbot"], c["chat_reply"]], c["session"], **SESSION_EVENT)
    cleared = c["chat_clear"].click(lambda: ([], "", ()), None, [c["chatbot"], c["message"], c["chat_reply"]],
                                    **QUICK_EVENT)  # fmt: skip
    cleared.then(record, [c["session"], c["chatbot"], c["chat_reply"]], c["session"], **SESSION_EVENT)
    ex.on(c["chat_open"].click, open_in_explorer, also=("tabs",))
