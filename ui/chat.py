"""The chat tab's handlers: stream a reply from the shared model, clear, and open a reply in the explorer."""

from __future__ import annotations

import time

import gradio as gr

from decoding import chat

from . import session
from .handlers import user_errors

FRAME_SECONDS = 0.08  # the browser drops frames it cannot draw, so yield at most this often


def send(message: str, history: list[dict], max_tokens: float, temperature: float, last: dict):
    """Append the user's message and stream the reply into the chatbot."""
    if not (message or "").strip():
        raise gr.Error("The message is empty: type something to send.", print_exception=False)
    history = [*history, {"role": "user", "content": message}]
    turns = [{"role": m["role"], "content": _text(m["content"])} for m in history]
    reply, stamp = ("", []), 0.0
    try:
        for reply in chat.stream_reply(turns, int(max_tokens), float(temperature)):
            if time.monotonic() - stamp >= FRAME_SECONDS:
                stamp = time.monotonic()
                yield "", [*history, {"role": "assistant", "content": reply[0]}], last
    except ValueError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    yield "", [*history, {"role": "assistant", "content": reply[0]}], {"message": message, "ids": reply[1]}


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return str(content)


def clear() -> tuple:
    return [], {}, ""


@user_errors
def open_in_explorer(last: dict) -> tuple:
    """The last exchange in the explorer: its message as the prompt (chat template on), the reply as the completion."""
    if not last or "message" not in last:
        raise ValueError("there is no reply yet: send a message first")
    state = session.new_session()
    state["key"] = [last["message"], "", True]
    state["branches"][session.MAIN]["ids"] = list(last["ids"])
    return last["message"], "", True, state, gr.Tabs(selected="explorer")
