"""The "Edit the model" accordion: ablate a head or a block, steer with a vector made from examples, presets.

Edits belong to the current branch (`Session.with_edits`): on a branch with tokens, a change starts a new
branch, announced, and the old one keeps the model it was stepped with. Every action redraws the current
branch under its new edits, so a layer out of range or another refusal of the service changes nothing. The
list of the branch's edits (a switch per edit, and a remove button) is drawn by the view (`edits_view`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import gradio as gr

from service import steering

from .. import actions
from ..controls import Controls
from ..draw import render
from ..edits import MODES, Edit, Vector, switched
from ..events import Explorer, Outcome
from ..state import Session

PICK = "Edit to change or remove"
TARGET_CHOICES = [("a head", "head"), ("the attention block", "attention"), ("the MLP block", "mlp")]
# (button label, examples, layer, strength); checked on the default model and prompt (tests/ui/test_edits.py):
# each changes the top next token of "Once upon a time, there was a"
STEER_PRESET = (("I love this",), ("I hate this",), 9, 4.0)
ABLATE_PRESET = Edit("ablate", 1, target="attention")
PRESETS = {
    "steer": "Preset: steer toward “I love this” (layer 9, strength 4)",
    "ablate": "Preset: ablate the attention block of layer 1",
}


def create_edits() -> dict:
    c = {}
    with gr.Accordion("Edit the model", open=False, elem_id="edits-panel") as c["edits_panel"]:
        with gr.Row():
            c["edit_preset_steer"] = gr.Button(PRESETS["steer"], size="sm", elem_id="edit-preset-steer")
            c["edit_preset_ablate"] = gr.Button(PRESETS["ablate"], size="sm", elem_id="edit-preset-ablate")
        c |= _ablation_inputs()
        c |= _steering_inputs()
        c["edits_list"] = gr.CheckboxGroup(
            label="Edits of this branch (ticked: on)", choices=[], elem_id="edits-list", interactive=True
        )
        with gr.Row():
            c["edit_pick"] = gr.Dropdown(label=PICK, choices=[], scale=3, elem_id="edit-pick")
            c["remove_edit"] = gr.Button("Remove", size="sm", scale=1, elem_id="remove-edit")
        with gr.Row():
            c["edit_strength"] = gr.Number(4, label="New strength", scale=3, elem_id="edit-strength")
            c["set_strength"] = gr.Button("Set strength", size="sm", scale=1, elem_id="set-strength")
    return c


def _ablation_inputs() -> dict:
    c = {}
    with gr.Row():
        c["ablate_layer"] = gr.Number(0, label="Layer (from 0)", precision=0, minimum=0, elem_id="ablate-layer")
        c["ablate_target"] = gr.Dropdown(TARGET_CHOICES, value="head", label="Ablate", elem_id="ablate-target")
        c["ablate_head"] = gr.Number(0, label="Head (from 0)", precision=0, minimum=0, elem_id="ablate-head")
    with gr.Row():
        c["ablate_mode"] = gr.Radio(list(MODES), value="zero", label="Replace by", elem_id="ablate-mode")
        c["add_ablation"] = gr.Button("Add ablation", size="sm", elem_id="add-ablation")
    return c


def _steering_inputs() -> dict:
    c = {}
    with gr.Row():
        c["steer_positive"] = gr.Textbox(label="Toward (one example per line)", lines=2, elem_id="steer-positive")
        c["steer_negative"] = gr.Textbox(label="Away from (one per line)", lines=2, elem_id="steer-negative")
    with gr.Row():
        c["steer_layer"] = gr.Number(9, label="After layer (from 0)", precision=0, minimum=0, elem_id="steer-layer")
        c["steer_strength"] = gr.Slider(-16, 16, 4, step=0.5, label="Strength", elem_id="steer-strength")
    c["add_steering"] = gr.Button("Make the vector and steer", size="sm", elem_id="add-steering")
    return c


def edited(session: Session, controls: Controls, edits: tuple[Edit, ...], vector: Vector | None = None) -> Outcome:
    """The current branch under `edits` on screen; a branch with tokens keeps its model and a new branch starts."""
    session = actions.current(session, controls).inspecting(None)
    moved = session.with_edits(edits, vector)
    outcome = actions.shown(moved, controls)  # refused (nothing changes) when the service refuses the edits
    if moved.current == session.current:
        return outcome
    kept = "its edits" if session.branch.edits else "the unedited model"
    notice = (
        f"The model edit starts {render.branch_named(moved.branch.name)};"
        f" {render.branch_named(session.branch.name)} keeps {kept}."
    )
    return replace(outcome, notice=actions.announce(notice))


def add_ablation(session: Session, controls: Controls, layer: object, target: str, head: object, mode: str):
    edit = Edit("ablate", _number("Layer", layer), target=target, mode=mode)
    if target == "head":
        edit = replace(edit, head=_number("Head", head))
    return edited(session, controls, (*session.branch.edits, edit))


def ablate_clicked(session: Session, controls: Controls, pick: object) -> Outcome:
    """A cell clicked in an Inside-the-model map, "layer:head" or "layer:mlp": that part zeroed on the branch."""
    layer, _, part = str(pick).partition(":")
    if not layer.isdigit() or not (part.isdigit() or part == "mlp"):
        raise ValueError(f"the clicked cell {pick!r} is not a head or an MLP of a layer: click a cell of the map")
    edit = Edit("ablate", int(layer), head=int(part)) if part.isdigit() else Edit("ablate", int(layer), target="mlp")
    return edited(session, controls, (*session.branch.edits, edit))


def add_steering(session: Session, controls: Controls, positive: str, negative: str, layer: object, strength: object):
    """Make the steering vector of the examples (the service keeps it) and add it with the slider's strength."""
    texts = [tuple(line.strip() for line in (text or "").splitlines() if line.strip()) for text in (positive, negative)]
    if not texts[0] or not texts[1]:
        raise ValueError("type at least one example to steer toward and one to steer away from, one per line")
    alpha = float(strength) if isinstance(strength, int | float) else math.nan
    if not math.isfinite(alpha):
        raise ValueError(f"the strength {strength!r} is not a finite number: drag the Strength slider")
    return _steered(session, controls, texts[0], texts[1], _number("After layer", layer), alpha)


def _steered(session: Session, controls: Controls, positive, negative, layer: int, alpha: float) -> Outcome:
    made = steering.steering_vector({"layer": layer, "positive": list(positive), "negative": list(negative)})
    vector = Vector(made["id"], layer, positive, negative, made["norm"], steering.steering_floats(made["id"]))
    edit = Edit("steer", layer, vector=made["id"], alpha=alpha)
    return edited(session, controls, (*session.branch.edits, edit), vector)


def add_preset(name: str):
    def action(session: Session, controls: Controls) -> Outcome:
        if name == "ablate":
            return edited(session, controls, (*session.branch.edits, ABLATE_PRESET))
        return _steered(session, controls, *STEER_PRESET)

    return action


def switch_edits(session: Session, controls: Controls, on: list | None) -> Outcome:
    """The branch's edits with the ticked ones on (a change on a branch with tokens starts a new branch)."""
    edits = session.branch.edits
    return edited(session, controls, switched(edits, {int(i) for i in on or ()}))


def remove_edit(session: Session, controls: Controls, pick: object) -> Outcome:
    edits, at = session.branch.edits, _picked(session.branch.edits, pick)
    return edited(session, controls, edits[:at] + edits[at + 1 :])


def set_strength(session: Session, controls: Controls, pick: object, strength: object) -> Outcome:
    """The picked steering edit with a new strength, in its place in the list (a branch with tokens forks)."""
    edits = session.branch.edits
    at = _picked(edits, pick)
    if edits[at].kind != "steer":
        raise ValueError(f"“{edits[at].label(session.vectors)}” has no strength: pick a steering edit")
    alpha = float(strength) if isinstance(strength, int | float) and not isinstance(strength, bool) else math.nan
    if not math.isfinite(alpha):
        raise ValueError(f"the new strength {strength!r} is not a finite number: type a number such as 4 or -2.5")
    return edited(session, controls, (*edits[:at], replace(edits[at], alpha=alpha), *edits[at + 1 :]))


def _picked(edits: tuple[Edit, ...], pick: object) -> int:
    if not isinstance(pick, int) or isinstance(pick, bool) or not 0 <= pick < len(edits):
        raise ValueError(f"choose the edit in “{PICK}” first")
    return pick


def _number(label: str, value: object) -> int:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value != int(value):
        raise ValueError(f"{label} {value!r} is not a whole number: type the number, counting from 0")
    if value < 0:
        raise ValueError(f"{label} {int(value)} is out of range: numbers count from 0")
    return int(value)


def wire_edits(ex: Explorer) -> None:
    c = ex.c
    ablation = ("ablate_layer", "ablate_target", "ablate_head", "ablate_mode")
    ex.on(c["add_ablation"].click, add_ablation, extra=ablation)
    steering = ("steer_positive", "steer_negative", "steer_layer", "steer_strength")
    ex.on(c["add_steering"].click, add_steering, extra=steering)
    ex.on(c["edit_preset_steer"].click, add_preset("steer"))
    ex.on(c["edit_preset_ablate"].click, add_preset("ablate"))
    ex.on(c["edits_list"].input, switch_edits, extra=("edits_list",))
    ex.on(c["remove_edit"].click, remove_edit, extra=("edit_pick",))
    ex.on(c["set_strength"].click, set_strength, extra=("edit_pick", "edit_strength"))
    ex.on(c["inside_ablate_event"].click, ablate_clicked, extra=("inside_ablate_pick",))
