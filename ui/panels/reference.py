"""The "Reference model" accordion: pick a reference, apply or remove it, and diff the branch with it.

The reference is a setting of the session (`Session.reference`): Apply redraws the current branch with it, so
the service loads it first and any refusal (another vocabulary, the memory budget, public mode) is a toast and
changes nothing; Remove frees it. Loading takes seconds (a bfloat16 or int8 copy, another model): the panel says
"loading the reference…" the moment Apply is pressed and Apply waits until the reference is ready or failed, so
a second click cannot start a second load; the other panels stay on screen meanwhile (a step pressed then runs
once the load is over). "Diff with the reference" sends the current branch's completion through both models,
teacher-forced (service diff): a timeline of KL per token, the tokens coloured by it and llama.cpp's summary.
"Continue with the reference" starts a new branch at the first token where greedy decoding would part, taking
the reference's top token there, announced. Like the other on-demand panels, the diff says it is out of date
once the branch, a knob, the constraint, the reference or the model changed.
"""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from service import diff as service_diff
from service import operations as service
from service import reference as service_reference

from .. import actions, reference_view
from ..controls import Controls
from ..draw import reference_diff, render
from ..events import QUICK_EVENT, Explorer, Outcome
from ..reference import ANOTHER, DTYPES, MAIN_FORMS, OTHER_ENGINE, RefChoice, picked
from ..request import request_for
from ..state import Session
from ..view import on_demand_key

FORM_CHOICES = [
    *((f"the main model in {form}", form) for form in MAIN_FORMS),
    ("the main model on the other engine (vLLM / transformers)", OTHER_ENGINE),
    (ANOTHER, ANOTHER),
]
DTYPE_CHOICES = [("its own", ""), *((dtype, dtype) for dtype in DTYPES)]


def create_reference() -> dict:
    c = {}
    with gr.Accordion("Reference model", open=False, elem_id="reference-panel") as c["reference_panel"]:
        c["reference_form"] = gr.Radio(FORM_CHOICES, value="bfloat16", label="Reference", elem_id="reference-form")
        with gr.Row():
            c["reference_model"] = gr.Textbox(
                label="Another model (a Hugging Face id, a local folder or “embedded”)", scale=3,
                elem_id="reference-model",
            )  # fmt: skip
            c["reference_dtype"] = gr.Dropdown(DTYPE_CHOICES, value="", label="Its dtype", scale=1)
        with gr.Row():
            c["apply_reference"] = gr.Button("Apply", size="sm", variant="primary", elem_id="apply-reference")
            c["remove_reference"] = gr.Button("Remove", size="sm", elem_id="remove-reference")
        c["reference_status"] = gr.Markdown(elem_id="reference-status")
        with gr.Row():
            c["diff_button"] = gr.Button("Diff with the reference", size="sm", elem_id="diff-reference")
            c["continue_reference"] = gr.Button(
                "Continue with the reference from the first divergence", size="sm", elem_id="continue-reference"
            )
        c["diff_note"] = gr.Markdown(elem_id="diff-note")
        c["diff_plot"] = gr.Plot(label="KL per token", elem_id="diff-timeline")
        c["diff_tokens"] = gr.HTML(elem_id="diff-tokens")
        c["diff_summary"] = gr.Dataframe(
            headers=reference_diff.SUMMARY_HEADERS, interactive=False, elem_id="diff-summary"
        )
    return c


def apply(session: Session, controls: Controls, form: str | None, model: str | None, dtype: str | None) -> Outcome:
    """The current branch with the picked reference (refused, nothing changed, when the service refuses it)."""
    session = actions.current(session, controls).inspecting(None)
    return actions.shown(replace(session, reference=_picked(form, model, dtype)), controls)


def _picked(form: str | None, model: str | None, dtype: str | None) -> RefChoice:
    return picked(form, model, dtype, service.model_status().get("engine") or "transformers")


def loading(form: str | None, model: str | None, dtype: str | None) -> tuple:
    """At once, before the load: the panel says so and Apply waits (a picking error is Apply's own toast)."""
    try:
        label = _picked(form, model, dtype).label()
    except ValueError:
        return gr.skip(), gr.skip()
    return reference_view.loading_markdown(label), gr.Button(interactive=False)


def settled(session: Session) -> tuple:
    """Once Apply is done: the session's reference and the service's state of it (ready or failed), Apply back."""
    return reference_view.status_markdown(session, service_reference.reference_status()), gr.Button(interactive=True)


def remove(session: Session, controls: Controls) -> Outcome:
    """No reference: the service frees the one it holds."""
    session = actions.current(session, controls).inspecting(None)
    if session.reference is None:
        raise ValueError("there is no reference to remove: pick one and press Apply")
    service_reference.remove_reference({})
    return actions.shown(replace(session, reference=None), controls)


def _diffed(session: Session, controls: Controls) -> dict:
    """The service's diff of the current branch with the session's reference; ValueError says what is missing."""
    if session.reference is None:
        raise ValueError("there is no reference to diff with: pick one and press Apply")
    if not session.branch.ids:
        raise ValueError("the branch has no completion yet: step a few tokens, then diff")
    return service_diff.diff(request_for(session, controls))


def run_diff(session: Session, controls: Controls, computed: dict) -> Outcome:
    """The current branch's completion through both models, drawn; the panel remembers what it was drawn from."""
    session = actions.current(session, controls).inspecting(None)
    answer = _diffed(session, controls)
    note = f"**{answer['reference']}** against the main model over {len(answer['positions'])} tokens, teacher-forced."
    if session.branch.edits:
        note += " The main model runs with this branch's edits; the reference runs without them."
    computed = computed | {"diff": on_demand_key("diff", session, controls)}
    also = {
        "diff_note": note,
        "diff_plot": reference_diff.timeline(answer),
        "diff_tokens": reference_diff.tokens_html(answer),
        "diff_summary": reference_diff.summary_rows(answer),
        "computed": computed,
    }
    return replace(actions.shown(session, controls), also=also)


def continue_with_reference(session: Session, controls: Controls) -> Outcome:
    """A new branch from the first token where the top tokens differ, taking the reference's top token there."""
    session = actions.current(session, controls).inspecting(None)
    answer = _diffed(session, controls)
    at = answer["summary"]["first_divergence"]
    if at is None:
        raise ValueError("the reference's top token is the main model's at every token: there is no divergence")
    token = answer["positions"][at]["top_reference"]
    outcome = actions.force_tokens(session.forked(at), controls, (token,))
    taken = outcome.session.branch.meta[at]["token"]["display"]
    notice = actions.announce(
        f"New {render.branch_named(outcome.session.branch.name)} from token {at + 1}, the first divergence: it"
        f" takes the reference's top token “{taken}” there; the original stays as it was."
    )
    return replace(outcome, notice=notice)


def wire_reference(ex: Explorer) -> None:
    c = ex.c
    picking = ("reference_form", "reference_model", "reference_dtype")
    shown = [c["reference_status"], c["apply_reference"]]
    started = c["apply_reference"].click(loading, [c[n] for n in picking], shown, queue=False, **QUICK_EVENT)
    applied = ex.on(started.then, apply, extra=picking)
    applied.then(settled, c["session"], shown, **QUICK_EVENT)
    ex.on(c["remove_reference"].click, remove)
    ex.on(c["diff_button"].click, run_diff, extra=("computed",), also=("computed",))
    ex.on(c["continue_reference"].click, continue_with_reference)
