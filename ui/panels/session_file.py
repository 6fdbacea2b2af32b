"""The Session file accordion: export the session as JSON on the first click, import it again.

Export builds the file from the session and controls at the moment of the click and hands it to
the browser in the same event chain, so the file always equals what the screen shows.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gradio as gr

from .. import actions, explain_target
from ..assets import asset
from ..controls import FIELDS, Controls
from ..events import QUICK_EVENT, Explorer, Outcome
from ..request import model_id
from ..session_json import from_json, to_json
from ..state import Prefs, Session

DOWNLOAD_JS = asset("session_download.js")  # hands the built text to the browser as a file


def create_session_file() -> dict:
    c = {}
    with gr.Accordion("Session file", open=False, elem_id="session-file") as c["session_file_panel"], gr.Row():
        c["export"] = gr.Button("Export session (JSON)", size="sm", elem_id="export")
        c["import"] = gr.UploadButton("Import session (JSON)", file_types=[".json"], size="sm")
        c["export_text"] = gr.Textbox(visible=False)
    return c


def export_text(session: Session, controls: Controls, prefs: Prefs) -> str:
    return json.dumps(to_json(controls, prefs, session, model_id()), ensure_ascii=False, indent=1)


def read_file(file: object) -> tuple[Controls, Prefs, Session]:
    """The controls, layout and session of an exported file; ValueError says what is wrong with it."""
    if file is None:
        raise ValueError("no session file was given")
    text = Path(file if isinstance(file, str) else file.name).read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"the session file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    controls, prefs, session = from_json(data)
    if session is None:
        raise ValueError("the file holds settings only, no session: export a session to import it")
    return controls, prefs, session


def import_session(session: Session, controls: Controls, file: object) -> Outcome:
    """The imported session and controls on screen; the current work is replaced only once the file is valid.

    The view draws the candidate pickers (a pick is kept only where it belongs to the imported position).
    """
    new_controls, _, imported = read_file(file)
    if imported.key is None:
        imported = replace(imported, key=new_controls.prompt_key)
    outcome = actions.shown(imported, new_controls, "Session imported.")
    return replace(
        outcome,
        controls=new_controls,
        also={name: getattr(new_controls, name) for name in FIELDS if name not in explain_target.PICKERS},
    )


def wire_session_file(ex: Explorer) -> None:
    c = ex.c

    def build(data: dict) -> str:
        got = ex.read(data)
        return export_text(got.session.for_prompt(got.controls.prompt_key), got.controls, got.prefs)

    built = c["export"].click(build, ex.inputs(), c["export_text"], **QUICK_EVENT)
    built.then(None, c["export_text"], None, js=DOWNLOAD_JS, **QUICK_EVENT)
    ex.on(c["import"].upload, import_session, extra=("import",), also=FIELDS, preprocess=True)  # the file as a path
