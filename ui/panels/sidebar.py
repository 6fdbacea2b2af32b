"""The left column: the model, the preset and the knobs, the constraint panel; their events.

A knob changed by any means (drag, click, arrow keys, typed number) switches the preset to the one it
now matches (usually custom) and redraws, in one event on `.input`, which only user changes fire:
a preset setting the sliders does not fire it, so nothing loops.
"""

from __future__ import annotations

from dataclasses import replace
from html import escape

import gradio as gr

from service import operations as service
from service.public import CONSTRAINT_PRESETS, EXAMPLES, PRESETS, REGEX_HELP, default_model_id

from .. import actions
from ..controls import CUSTOM, KNOBS, NO_PRESET, ORDER_CHOICES, PARAM_FIELDS, Controls, matching_preset, preset_values
from ..draw import render
from ..events import MODEL_EVENT, QUICK_EVENT, Explorer, Outcome, refuse
from ..request import request_for
from ..state import Prefs, Session

D = Controls()
CONSTRAINT_CHOICES = [
    ("Multiple choice (one option per line)", "multiple_choice"),
    ("Regex", "regex"),
    ("Context-free grammar (Lark)", "cfg"),
    ("JSON schema", "json_schema"),
]
CONSTRAINT_HELP = {
    "multiple_choice": "One option per line; the output must be exactly one of them.",
    "regex": REGEX_HELP,
    "cfg": "A Lark grammar whose start rule is `start`; the whole output must parse. "
    + r"`\d` in its regex terminals means [0-9].",
    "json_schema": "A JSON schema; the output must be a JSON value that validates against it. "
    "`additionalProperties` follows the schema (open unless it says false).",
}


def create_sidebar() -> dict:
    c = {"model_status": gr.Markdown(elem_id="model-status")}
    with gr.Accordion("Model", open=False, elem_id="model-panel") as c["model_panel"]:
        c["model_id"] = gr.Dropdown(
            [default_model_id()], value=default_model_id(), allow_custom_value=True, elem_id="model-id",
            label="Model: pick one, or type a hub id or local folder",
        )  # fmt: skip
        c["load"] = gr.Button("Load model", size="sm")
    c["preset"] = gr.Radio([*PRESETS, CUSTOM], value=D.preset, label="Preset")
    c |= {name: knob_slider(name) for name in MAIN_KNOBS}
    c |= _more_samplers()
    c["seed"] = gr.Textbox(D.seed, label="Seed (blank = random)", max_lines=1)
    c["top_k"] = gr.Slider(1, 50, D.top_k, step=1, label="Rows shown (top-k)")
    c["stop_sequences"] = gr.Textbox(D.stop_sequences, label="Stop sequences (one per line)", lines=1, max_lines=4)
    with gr.Accordion("Constraint", open=False, elem_id="constraint-panel") as c["constraint_panel"]:
        c["constraint_enabled"] = gr.Checkbox(D.constraint_enabled, label="Constrain the output")
        c["constraint_type"] = gr.Dropdown(CONSTRAINT_CHOICES, value=D.constraint_type, label="Type")
        c["constraint_preset"] = gr.Dropdown(
            [NO_PRESET, *CONSTRAINT_PRESETS], value=NO_PRESET, label="Ready-made pattern (Outlines types)"
        )
        c["constraint_schema"] = gr.Code(D.constraint_schema, label="Options / regex / grammar / schema", lines=6)
        c["constraint_problem"] = gr.HTML(elem_id="constraint-problem")
        c["constraint_leading_space"] = gr.Checkbox(
            D.constraint_leading_space, label="Regex: allow one leading space (the space before a word)",
            elem_id="constraint-leading-space",
        )  # fmt: skip
        c["constraint_help"] = gr.Markdown(CONSTRAINT_HELP[D.constraint_type])
        c["constraint_start"] = gr.Markdown(elem_id="constraint-start")
    return c


ORDER_LABELS = ("transformers (temperature first)", "llama.cpp (temperature last)", "custom (the list below)")
# The knobs of the main column; every other knob of the sampler registry is under "More samplers".
MAIN_KNOBS = ("temperature", "top_p", "repetition_penalty", "presence_penalty", "frequency_penalty")


def knob_slider(name: str) -> gr.Slider:
    """A stage parameter's slider as the registry describes it (label, ends, step), at the API's default."""
    slider = KNOBS[name].slider
    return gr.Slider(slider.low, slider.high, getattr(D, name), step=slider.step, label=slider.label)


def _more_samplers() -> dict:
    """The other truncation samplers, XTC, DRY and the order they run in (the preset sets them too)."""
    c = {}
    with gr.Accordion("More samplers: top-k, min-p, typical, XTC, DRY…", open=False, elem_id="samplers-panel") as acc:
        c["samplers_panel"] = acc
        c["sampler_order"] = gr.Dropdown(
            list(zip(ORDER_LABELS, ORDER_CHOICES, strict=True)), value=D.sampler_order, label="Sampler order",
            elem_id="sampler-order",
        )  # fmt: skip
        c["custom_order"] = gr.Textbox(
            D.custom_order, label="Custom order (used when the order is custom): every stage, comma-separated",
            max_lines=2, elem_id="custom-order",
        )  # fmt: skip
        c |= {name: knob_slider(name) for name in KNOBS if name not in MAIN_KNOBS}
    return c


def apply_preset(session: Session, controls: Controls) -> Outcome:
    """The preset's knob values on the sliders, and the distribution under them."""
    values = preset_values(controls.preset)
    if values is None:
        return actions.refresh(session, controls)
    changed = replace(controls, **values)
    outcome = actions.refresh(session, changed)
    return replace(outcome, controls=changed, also=values)


def knob_moved(session: Session, controls: Controls) -> Outcome:
    """A knob moved: the preset follows (custom unless the knobs equal a preset) and the bars redraw."""
    changed = replace(controls, preset=matching_preset(controls))
    return replace(actions.refresh(session, changed), controls=changed, also={"preset": changed.preset})


def constraint_type_changed(kind: str, prefs: Prefs) -> tuple:
    """The chosen type's own text (what the user typed for it before, else its example), its help."""
    text = prefs.constraint_texts.get(kind, EXAMPLES.get(kind, ""))
    return text, NO_PRESET, CONSTRAINT_HELP.get(kind, "")


def constraint_preset_chosen(name: str, prefs: Prefs) -> tuple:
    if name not in CONSTRAINT_PRESETS:
        return gr.skip(), gr.skip(), gr.skip(), prefs
    kind, schema = CONSTRAINT_PRESETS[name]
    return kind, schema, CONSTRAINT_HELP.get(kind, ""), prefs.with_text(kind, schema)


def constraint_start(session: Session, controls: Controls) -> dict:
    """The constraint panel's line on what the constraint lets the completion start with (the mask, in tokens)."""
    if not controls.constraint_enabled:
        return {"constraint_start": ""}
    try:
        start = service.constraint_start(request_for(session, controls))
    except ValueError:  # the panel's line on the constraint's problem says why
        return {"constraint_start": ""}
    shown = ", ".join(f"<code>{escape(token)}</code>" for token in start["tokens"])
    more = ", …" if start["count"] > len(start["tokens"]) else ""
    return {"constraint_start": f"Allowed first tokens ({start['count']:,}, likeliest first): {shown}{more}"}


def wire_sidebar(ex: Explorer) -> None:
    c = ex.c
    ex.on(c["preset"].input, apply_preset, also=PARAM_FIELDS)
    for name in (*PARAM_FIELDS, "top_k"):
        ex.on(c[name].input, knob_moved, also=("preset",), trigger_mode="always_last")
    for trigger in (c["custom_order"].blur, c["custom_order"].submit):
        ex.on(trigger, knob_moved, also=("preset",))
    for name in ("seed", "stop_sequences"):
        ex.on(c[name].blur, actions.refresh)
    ex.on(c["llm_on"].input, actions.refresh)
    for trigger in (c["constraint_schema"].blur, c["constraint_enabled"].input, c["constraint_leading_space"].input):
        refresh_constraint(ex, trigger)
    c["constraint_schema"].input(
        lambda kind, text, prefs: prefs.with_text(kind, text),
        [c["constraint_type"], c["constraint_schema"], c["prefs"]], c["prefs"], queue=False, **QUICK_EVENT,
    )  # fmt: skip
    chosen = c["constraint_type"].input(
        constraint_type_changed, [c["constraint_type"], c["prefs"]],
        [c["constraint_schema"], c["constraint_preset"], c["constraint_help"]], **QUICK_EVENT,
    )  # fmt: skip
    refresh_constraint(ex, chosen.then)
    picked = c["constraint_preset"].input(
        constraint_preset_chosen, [c["constraint_preset"], c["prefs"]],
        [c["constraint_type"], c["constraint_schema"], c["constraint_help"], c["prefs"]], **QUICK_EVENT,
    )  # fmt: skip
    refresh_constraint(ex, picked.then)
    loaded = c["load"].click(load_model, c["model_id"], [c["model_status"], c["model_id"]], **MODEL_EVENT)
    ex.on(loaded.then, actions.refresh)


def refresh_constraint(ex: Explorer, trigger) -> None:
    """A change of the constraint or the prompt redraws the distribution, then the panel's allowed first tokens
    (the prompt orders them)."""
    ex.on(ex.on(trigger, actions.refresh).then, constraint_start, also=("constraint_start",))


def load_model(model_id: str) -> tuple:
    """Load a model; on failure a toast says why, and the box shows the model still loaded."""
    try:
        status = service.load_model(model_id)
    except Exception as exc:  # the previous model stays: show it again, with no error badge
        refuse(exc)
        status = service.model_status()
    return render.model_markdown(status), gr.Dropdown(value=status.get("model_id"))
