"""The Chat tab: chat with the loaded model (streamed), clear, and open the conversation in the explorer.

A turn is checked against the chat budgets before any model work. The chat samples with a preset of
its own (shown with its settings under the sliders) and its own temperature. The conversation is
recorded in the session once the reply is complete, with how each reply token was chosen; opening it
in the explorer puts every turn on a new branch (the conversation as its prompt, the last reply as
its completion, each token clickable like a stepped one) and leaves the other branches as they were.
"""

from __future__ import annotations

import time
from dataclasses import replace

import gradio as gr

from service import chat
from service import operations as service
from service.public import PRESETS, SAMPLER_REGISTRY

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
    preset = PRESETS[chat.CHAT_PRESET]
    with gr.Row():
        c["chat_preset"] = gr.Dropdown(list(PRESETS), value=preset.name, label="Chat preset", elem_id="chat-preset")
        c["chat_temperature"] = gr.Slider(
            0,
            2,
            preset.params.temperature,
            step=0.05,
            label="Reply temperature (0 = greedy)",
            elem_id="chat-temperature",
        )
        c["chat_max_tokens"] = gr.Slider(1, 512, 128, step=1, label="Max reply tokens")
    c["chat_settings"] = gr.Markdown(settings_line(preset.name, preset.params.temperature), elem_id="chat-settings")
    with gr.Row():
        c["chat_clear"] = gr.Button("Clear", size="sm")
        c["chat_open"] = gr.Button("Open the conversation in the explorer (a new branch)", size="sm")
    c["chat_reply"] = gr.State(())
    return c


def settings_line(preset: str, temperature: float) -> str:
    """The chat's sampling settings in the sliders' words, and the preset they come from."""
    params = chat.chat_params(preset, temperature)
    knobs = [f"temperature {params.temperature:g}" + (" (greedy)" if params.is_greedy else "")]
    for stage in SAMPLER_REGISTRY.active(params):  # the stages in force, in the order applied
        for param in stage.params:
            value = getattr(params, param.name)
            if param.name != "temperature" and value != param.off:
                knobs.append(f"{param.slider.label.split(' (')[0].lower()} {value:g}")
    moved = PRESETS[preset].params.temperature != params.temperature
    source = f"preset **{preset}**" + (", temperature set here" if moved else "")
    return f"Replies are sampled with {' · '.join(knobs)} ({source}; no seed: each reply draws afresh)."


def preset_chosen(preset: str) -> tuple[float, str]:
    """A chat preset sets the temperature slider and the settings line."""
    temperature = PRESETS[preset].params.temperature
    return temperature, settings_line(preset, temperature)


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


def send(message: str, history: list[dict], max_tokens: float, preset: str, temperature: float):
    """Check the turn against the budgets, then stream the reply into the chatbot (and its choice records)."""
    try:
        service.check_chat(message, turns(history), int(max_tokens))
        params = chat.chat_params(preset, temperature)
        history = [*history, {"role": "user", "content": message}]
        reply, stamp = ("", []), 0.0
        for reply in chat.stream_reply(turns(history), int(max_tokens), params):
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
    """Every turn on a new branch: the turns before the last reply as its prompt, the reply as its completion.

    Each reply token keeps its choice record (distribution, draw), so clicking it rewinds there.
    """
    if not session.chat or session.chat[-1]["role"] != "assistant" or not session.chat_reply:
        raise ValueError("there is no reply yet: send a message first")
    session = actions.current(session, controls)
    opened = session.forked(0, "chat", messages=session.chat[:-1])
    opened = opened.with_branch(replace(opened.branch, ids=session.chat_reply_ids, meta=session.chat_reply))
    notice = f"New {render.branch_named(opened.branch.name)}: the whole conversation; the other branches are unchanged."
    outcome = actions.shown(opened, controls, actions.announce(notice))
    return replace(outcome, also={"tabs": gr.Tabs(selected="explorer")})


def wire_chat(ex: Explorer) -> None:
    c = ex.c
    inputs = [c["message"], c["chatbot"], c["chat_max_tokens"], c["chat_preset"], c["chat_temperature"]]
    settings = [c["chat_temperature"], c["chat_settings"]]
    c["chat_preset"].input(preset_chosen, c["chat_preset"], settings, **QUICK_EVENT)
    c["chat_temperature"].input(settings_line, [c["chat_preset"], c["chat_temperature"]], c["chat_settings"],
                                **QUICK_EVENT)  # fmt: skip
    for trigger in (c["send"].click, c["message"].submit):
        sent = trigger(send, inputs, [c["message"], c["chatbot"], c["chat_reply"]], **MODEL_EVENT)
        sent.then(record, [c["session"], c["chatbot"], c["chat_reply"]], c["session"], **SESSION_EVENT)
    cleared = c["chat_clear"].click(lambda: ([], "", ()), None, [c["chatbot"], c["message"], c["chat_reply"]],
                                    **QUICK_EVENT)  # fmt: skip
    cleared.then(record, [c["session"], c["chatbot"], c["chat_reply"]], c["session"], **SESSION_EVENT)
    ex.on(c["chat_open"].click, open_in_explorer, also=("tabs",))
