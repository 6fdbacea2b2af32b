"""The "Inside the model" accordion: which heads and MLPs write the token, and where a changed word matters.

Two on-demand maps of the explained position (the inspected token, else the last one, else the next token; the
attribution panel's Explain pick of a candidate counts here too), with this panel's own foil picker:

- Split: direct logit attribution, layers x heads with an MLP column and the embedding (one forward pass);
- Sweep: each head zeroed alone, layers x heads of the change in log p(token) (minus the foil's), in slices;
- Patch: activation patching of the prompt against a corrupted copy (a suggestion fills the box: the last word
  that a stand-in of the same token length replaces), target the position's token, foil the pick or else the
  most likely other candidate, layers x positions; it runs in slices with progress and Cancel like Explain.

Both record what they were computed from in the `computed` state; the view marks them out of date when it
changes. Clicking a head or an MLP cell of the split or sweep map ablates it on the branch (the edit panel's
`ablate_clicked`, through a hidden pick the page fills: `ui/assets/inside_click.js`).
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from service import operations as service
from service import patching
from service import sweep as sweeps

from .. import explain_target
from ..controls import Controls
from ..draw.inside_maps import direct_logit_figure, patching_figure, sweep_figure, sweep_score
from ..events import Explorer
from ..request import prompt_request
from ..state import Session
from ..view import on_demand_key
from .attribution_panel import explain_request, setting_changed

D = Controls()
SITES = [("residual stream", "residual"), ("attention output", "attention"), ("MLP output", "mlp")]
SUGGESTION_NOTE = (
    "The corrupted prompt (in a chat: the last user message) must have as many tokens as the original."
    " **Suggest a corrupted prompt** replaces its last word that a stand-in of the same token length can replace;"
    " edit it freely. The branch's model edits apply to both runs."
)

CLICK_NOTE = "Click a head or an MLP cell of the split or sweep map to ablate it (zero) on this branch."
# What each map will show and which button fills it, in place of empty axes until it is run
DLA_HINT = (
    "*Not run yet. **Split the logit** draws layers × attention heads, an MLP column and the embedding: how much"
    " each part writes directly toward the explained token (one forward pass).*"
)
SWEEP_HINT = (
    "*Not run yet. **Sweep** draws layers × attention heads: how much the explained token's log-probability"
    " changes when that head alone is zeroed (one pass per layer, with progress).*"
)
PATCHING_HINT = (
    "*Not run yet. **Patch** draws layers × prompt positions (labelled with their tokens): how much of the"
    " token's lead over the foil each activation of the prompt restores in the corrupted run.*"
)


def create_inside() -> dict:
    c = {}
    with gr.Accordion(
        "Inside the model: which heads write this token, where a changed word matters", open=False,
        elem_id="inside-panel",
    ) as c["inside_panel"]:  # fmt: skip
        c["inside_foil"] = gr.Dropdown(
            [("(none: the most likely other candidate when patching)", "")], value=D.inside_foil, elem_id="inside-foil",
            allow_custom_value=True, label="Rather than … (a foil from the candidates at the explained position)",
        )  # fmt: skip
        c["inside_dla_button"] = gr.Button("Split the logit over heads and MLPs", size="sm")
        c["inside_dla_note"] = gr.Markdown(DLA_HINT, elem_id="inside-dla-note")
        c["inside_dla"] = gr.Plot(elem_id="inside-dla", show_label=False)
        c["inside_ablate_note"] = gr.Markdown(CLICK_NOTE, elem_id="inside-ablate-note")
        c["inside_ablate_pick"] = gr.Textbox(visible="hidden", elem_id="inside-ablate-pick")
        c["inside_ablate_event"] = gr.Button("Ablate the clicked part", visible="hidden", elem_id="inside-ablate-event")
        with gr.Row():
            c["sweep_button"] = gr.Button("Sweep: ablate each head alone", size="sm")
            c["cancel_sweep"] = gr.Button("Cancel", size="sm", variant="stop", visible=False)
        c["sweep_note"] = gr.Markdown(SWEEP_HINT, elem_id="sweep-note")
        c["sweep"] = gr.Plot(elem_id="inside-sweep", show_label=False)
        with gr.Row():
            c["corrupted"] = gr.Textbox(
                D.corrupted, label="Corrupted prompt (in a chat: the last user message)", elem_id="corrupted", scale=4
            )
            c["patch_site"] = gr.Dropdown(SITES, value=D.patch_site, label="Patched activation (each layer's)", scale=2)
        c["corrupted_note"] = gr.Markdown(SUGGESTION_NOTE, elem_id="corrupted-note")
        with gr.Row():
            c["suggest_corrupted"] = gr.Button("Suggest a corrupted prompt", size="sm")
            c["patch"] = gr.Button("Patch every layer and position", size="sm")
            c["cancel_patch"] = gr.Button("Cancel", size="sm", variant="stop", visible=False)
        c["patching_note"] = gr.Markdown(PATCHING_HINT, elem_id="patching-note")
        c["patching"] = gr.Plot(elem_id="inside-patching", show_label=False)
    return c


def _target(session: Session, controls: Controls) -> dict:
    """The explained position's target fields (as Explain names them) and this panel's foil, if picked."""
    request = explain_request(session, controls)
    target = {k: request[k] for k in ("target_index", "target_token_id") if k in request}
    foil = explain_target.picked(controls.inside_foil, explain_target.position_key(session, controls))
    return target | ({} if foil is None else {"contrast_token_id": foil})


def split(session: Session, controls: Controls, computed: dict) -> dict:
    """The direct-logit map of the explained position."""
    session = session.for_prompt(controls.prompt_key)
    request = prompt_request(session, controls) | _target(session, controls) | {"method": "direct_logit"}
    result = service.attribution(request)
    foil = result["contrast"]["display"] if result["contrast"] else None
    figure = direct_logit_figure(result["components"], result["target"]["display"], foil)
    parts = result["components"]
    steering = f", the branch's steering {parts['steering']:+.4f} included" if parts["steering"] else ""
    note = (
        f"Each cell: how much that part (the token's embedding, one attention head, one MLP) wrote directly toward"
        f" **{result['target']['display']}** (red) or away from it (blue), read through the unembedding with the"
        f" final norm's scale frozen from this forward pass; the parts sum to {parts['logit']:.4f}{steering}, off"
        f" by {parts['reconstruction_error']:.1e}."
    )
    return {"inside_dla": figure, "inside_dla_note": note,
            "computed": computed | {"inside_dla": on_demand_key("inside_dla", session, controls)}}  # fmt: skip


def sweep_request(session: Session, controls: Controls) -> dict:
    """The sweep of the explained position: each head zeroed alone, the score log p(token) (minus the foil's)."""
    return prompt_request(session, controls) | _target(session, controls) | {"components": "heads", "mode": "zero"}


def _swept(c: dict, got, result: dict) -> dict:
    note = (
        f"Each cell: how much {sweep_score(result)} changes when that head alone is zeroed (it is"
        f" {result['baseline']['score']:.4f} with none): blue where the token needs the head, red where removing it"
        " helps the token."
    )
    key = on_demand_key("sweep", _session(got), got.controls)
    return {c["sweep"]: sweep_figure(result), c["sweep_note"]: note, c["computed"]: got.computed | {"sweep": key}}


def patching_request(session: Session, controls: Controls) -> dict:
    """The patching request of the explained position: the foil picked, else the most likely other candidate."""
    at = explain_target.position(session, controls, None)
    target = _target(session, controls)
    if "contrast_token_id" not in target:
        chosen = target.get("target_token_id", at.token["id"] if at.token else None)
        rows = list(session.ghost.rows) if at.upcoming else [r["id"] for r in at.candidates]  # next: rows shown
        others = [token for token in rows if token != chosen]
        if not others:
            raise ValueError("no other candidate is recorded at this token (forced text has none): pick another token")
        target["contrast_token_id"] = others[0]
    corrupted = controls.corrupted.strip() and controls.corrupted
    if not corrupted:
        raise ValueError("the corrupted prompt is empty: press Suggest, or type the prompt with a word changed")
    return prompt_request(session, controls) | target | {"corrupted": corrupted, "site": controls.patch_site}


def suggest(session: Session, controls: Controls) -> dict:
    found = patching.suggest_corrupted(prompt_request(session.for_prompt(controls.prompt_key), controls))
    return {"corrupted": found["corrupted"], "corrupted_note": f"Suggested: {found['note']}. {SUGGESTION_NOTE}"}


def suggest_if_empty(session: Session, controls: Controls) -> dict | None:
    """Opening the panel fills an empty corrupted box with a suggestion."""
    return None if controls.corrupted.strip() else suggest(session, controls)


def wire_inside(ex: Explorer) -> None:
    c = ex.c
    ex.on(c["inside_dla_button"].click, split, extra=("computed",), also=("computed",))
    ex.on(c["suggest_corrupted"].click, suggest, also=("corrupted", "corrupted_note"))
    ex.on(c["inside_panel"].expand, suggest_if_empty, also=("corrupted", "corrupted_note"))

    def sweep(got) -> Iterator[dict]:
        return sweeps.sweep_stream(sweep_request(_session(got), got.controls))

    ex.on_stream("sweep_button", "cancel_sweep", sweep, lambda got, result: _swept(c, got, result),
                 ("sweep", "sweep_note"))  # fmt: skip

    def patch(got) -> Iterator[dict]:
        return patching.patching_stream(patching_request(_session(got), got.controls))

    ex.on_stream("patch", "cancel_patch", patch, lambda got, result: _patched(c, got, result),
                 ("patching", "patching_note"))  # fmt: skip
    for trigger in (c["inside_foil"].input, c["patch_site"].input, c["corrupted"].blur, c["corrupted"].submit):
        ex.on(trigger, setting_changed)  # the view marks the maps out of date


def _session(got) -> Session:
    return got.session.for_prompt(got.controls.prompt_key)


def _patched(c: dict, got, result: dict) -> dict:
    key = on_demand_key("patching", _session(got), got.controls)
    if result["scores"] is None:
        return {c["patching"]: None, c["patching_note"]: f"*No map: {result['reason']}.*",
                c["computed"]: got.computed | {"patching": key}}  # fmt: skip
    note = (
        f"Each cell: the corrupted run with that one activation copied from the clean run, scored"
        f" (patched − corrupted) / (clean − corrupted) of the logit difference: 1 restores it all, 0 nothing."
        f" {len(result['scores'])} × {len(result['clean_tokens'])} cells in {result['elapsed_s']:.1f} s."
    )
    return {c["patching"]: patching_figure(result), c["patching_note"]: note,
            c["computed"]: got.computed | {"patching": key}}  # fmt: skip
