"""The session kept in the browser across a reload: saved after every change, restored when the page loads.

What is kept is the session file's JSON (`session_json.to_json` with the session and the model its token ids
belong to), in a `gr.BrowserState` of its own: the settings keep their smaller store, saved on every
keystroke. Saving is its own event, started by the change of the session state once the event that changed
it has answered, so it is never in a step's path. A session over `LIMIT_BYTES` of JSON is not kept (the
settings still are) and the page says so. A kept session that no longer fits the loaded model (another
model, token ids outside its vocabulary) is dropped with a note, never half applied.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import gradio as gr

from service import operations as service

from . import actions
from .controls import Controls
from .events import QUICK_EVENT, Explorer, Outcome
from .request import model_id
from .session_json import from_json, to_json
from .state import Prefs, Session

LIMIT_BYTES = 2_000_000  # localStorage holds about 5 MB per site, and the stored text is encrypted (a third more)
STORAGE_KEY = "nexttoken-session"
STORAGE_SECRET = "nexttoken-session-v1"
NOT_KEPT = "not_kept_bytes"  # in place of the session: the size of the session that was too large to keep
RESTORES = ("chatbot", "chat_reply")  # what a restored session fills in besides the explorer


def megabytes(size: int) -> str:
    return f"{math.ceil(size / 100_000) / 10:g} MB"  # rounded up: 2.01 MB reads "2.1 MB", never "2 MB > 2 MB"


def too_large(size: int) -> str:
    return f"too large to keep across a reload ({megabytes(size)} > {megabytes(LIMIT_BYTES)})"


def kept_value(session: Session, controls: Controls, prefs: Prefs, model: str) -> tuple[dict, str]:
    """(what the browser keeps, the note the page shows: empty while the session fits)."""
    data = to_json(controls, prefs, session, model)
    size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size <= LIMIT_BYTES:
        return data, ""
    return to_json(controls, prefs) | {NOT_KEPT: size}, f"This session is {too_large(size)}: download it with Export."


def restored(saved: object, status: dict) -> tuple[Session | None, str]:
    """(the kept session, or None with a note saying why it was not restored; no note when nothing was kept)."""
    if not isinstance(saved, dict) or not saved:
        return None, ""
    if isinstance(saved.get(NOT_KEPT), int):
        return None, f"Only the settings were restored: your last session was {too_large(saved[NOT_KEPT])}."
    try:
        _, _, session = from_json(saved)
    except ValueError as exc:
        return None, f"The session of your last visit could not be read ({exc}), so it was not restored."
    if session is None:
        return None, ""
    loaded, made_with = status.get("model_id") or "", str(saved["session"].get("model_id") or "")
    if made_with != loaded:
        return None, (
            f"The session of your last visit was made with model {made_with or '(unknown)'}, not {loaded}: its"
            " tokens mean other text here, so it was not restored."
        )
    ids = [i for b in session.branches.values() for i in b.ids] + list(session.chat_reply_ids)
    vocab = status.get("vocab_size")
    if ids and (min(ids) < 0 or (vocab and max(ids) >= vocab)):
        return None, (
            f"The session of your last visit has token ids outside the vocabulary of {loaded}"
            f" ({vocab} tokens), so it was not restored."
        )
    return session, ""


def restore(session: Session, controls: Controls, saved: object) -> Outcome:
    """The page after a reload: the kept session on screen (the chat too), or a fresh one with the note why not."""
    kept, note = restored(saved, service.model_status())
    if kept is None:
        outcome = actions.refresh(session, controls)
        return replace(outcome, notice=actions.announce(note)) if note else outcome
    kept, notice = actions.prompt_edited(kept, controls)  # a prompt typed after the last save keeps the work
    outcome = actions.shown(kept, controls, notice)
    return replace(outcome, also={"chatbot": list(kept.chat), "chat_reply": kept.chat_reply})


def wire_session_store(ex: Explorer, loaded) -> None:
    """Restore on `loaded` (the page's settings are in place by then); save after each change of the session."""
    c = ex.c
    c["stored_session"] = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
    ex.on(loaded, restore, extra=("stored_session",), also=RESTORES)

    def save(data: dict) -> dict:
        got = ex.read(data)
        value, note = kept_value(got.session, got.controls, got.prefs, model_id())
        return {c["stored_session"]: value, c["keep_note"]: gr.Markdown(note, visible=bool(note))}

    c["session"].change(save, ex.inputs(), [c["stored_session"], c["keep_note"]], **QUICK_EVENT, preprocess=False)
