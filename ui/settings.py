"""Settings in the browser, and what happens when the page loads.

Every control and the layout (which panels are open, each constraint type's text) are stored in the
browser as `session_json.to_json` without the session, saved on every change and restored on load; a picked
attribution candidate or foil is not restored: it belongs to a position of a session the browser does not
keep. The model box shows the model actually loaded, never a failed id. Opening a panel draws its content.
"""

from __future__ import annotations

import gradio as gr

from service import operations as service

from . import actions, explain_target, session_store
from .controls import FIELDS, Controls
from .draw import render
from .events import QUICK_EVENT, Explorer
from .session_json import from_json, to_json
from .state import Prefs

ACCORDIONS = (
    "model", "samplers", "constraint", "stages", "timeline", "auto", "attribution", "lens", "branches", "session_file",
    "lookahead", "edits", "reference",
)  # fmt: skip
STORAGE_KEY = "nexttoken-settings"
STORAGE_SECRET = "nexttoken-settings-v2"


def restore(saved: object) -> dict:
    """Component name -> value for stored settings; unusable settings leave the page's defaults."""
    try:
        controls, prefs, _ = from_json(saved)
    except ValueError:
        controls, prefs = Controls(), Prefs()
    out = {name: getattr(controls, name) for name in FIELDS} | {"prefs": prefs}
    out |= dict.fromkeys(explain_target.PICKERS, "")
    return out | {f"{name}_panel": gr.Accordion(open=name in prefs.open_panels) for name in ACCORDIONS}


def model_view() -> dict:
    """The model line, the model box (the loaded model) and its choices; the timer runs while loading."""
    status = service.model_status()
    choices = service.POLICY.allowed_models()
    model_id = status.get("model_id")
    return {
        "model_status": render.model_markdown(status),
        "model_id": gr.Dropdown(choices=sorted({*choices, model_id} - {None}), value=model_id),
        "status_timer": gr.Timer(active=status.get("state") == "loading"),
    }


def wire_settings(demo: gr.Blocks, ex: Explorer) -> None:
    c = ex.c
    c["status_timer"] = gr.Timer(1.0, active=False)
    stored = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
    model_outputs = [c[n] for n in ("model_status", "model_id", "status_timer")]
    named = lambda values: {c[name]: value for name, value in values.items()}  # noqa: E731
    c["status_timer"].tick(lambda: named(model_view()), None, model_outputs, **QUICK_EVENT)
    restore_outputs = [*(c[n] for n in FIELDS), c["prefs"], *(c[f"{n}_panel"] for n in ACCORDIONS)]
    restored = demo.load(lambda saved: named(restore(saved)), stored, restore_outputs, **QUICK_EVENT)
    loaded = restored.then(lambda: named(model_view()), None, model_outputs, **QUICK_EVENT)
    session_store.wire_session_store(ex, loaded.then)  # the session kept in the browser, then the view

    def save(data: dict) -> dict:
        got = ex.read(data)
        return to_json(got.controls, got.prefs)

    for name in (*FIELDS, "prefs"):
        c[name].change(save, ex.inputs(), stored, **QUICK_EVENT)
    for name in ACCORDIONS:
        _wire_accordion(ex, name)


def _wire_accordion(ex: Explorer, name: str) -> None:
    """Remember the panel's open state; opening it draws what it shows (closed panels are not drawn)."""
    panel, prefs = ex.c[f"{name}_panel"], ex.c["prefs"]
    opened = panel.expand(lambda p: p.opened(name, True), prefs, prefs, **QUICK_EVENT)
    ex.on(opened.then, actions.refresh)
    panel.collapse(lambda p: p.opened(name, False), prefs, prefs, **QUICK_EVENT)
