"""The attribution accordion: the hover panel, and Explain (any method) with real progress and Cancel.

Explain is a generator over the service's attribution stream: it reports each slice's progress and
yields between slices, so Cancel stops the computation at the next slice. It never writes the
session (steps may run between its slices); it records what it explained in the `computed` state,
from which the view tells when the heatmap is out of date.
"""

from __future__ import annotations

import gradio as gr

from decoding import service

from . import actions, heatmap
from .controls import Controls
from .events import MODEL_EVENT, Explorer, refuse
from .request import prompt_request
from .state import Session
from .view import on_demand_key

D = Controls()
PROGRESS = gr.Progress()


def create_attribution_panel() -> dict:
    c = {}
    with gr.Accordion(
        "Attribution: which context tokens a token depends on", open=False, elem_id="attribution-panel"
    ) as c["attribution_panel"]:
        with gr.Row():
            c["attribution_method"] = gr.Dropdown(heatmap.METHOD_CHOICES, value=D.attribution_method, label="Method")
            c["aggregation"] = gr.Radio(
                [("L2 norm (Inseq)", "l2"), ("Signed sum", "sum")], value=D.aggregation,
                label="Aggregation over the embedding",
            )  # fmt: skip
            c["ig_steps"] = gr.Slider(2, 64, D.ig_steps, step=1, label="Integrated-gradients steps")
        c["attribution_hover"] = gr.HTML(
            "", elem_id="attribution-hover", css_template=heatmap.PANEL_CSS, js_on_load=heatmap.PANEL_JS,
            server_functions=[heatmap.explain],
        )  # fmt: skip
        with gr.Row():
            c["explain"] = gr.Button("Explain this token (inspected, else the last one)", size="sm")
            c["cancel_explain"] = gr.Button("Cancel", size="sm", variant="stop")
        c["attribution"] = gr.HTML("", elem_id="attribution")
        c["attribution_legend"] = gr.Markdown(elem_id="attribution-legend")
    return c


def explain_request(session: Session, controls: Controls) -> dict:
    """The attribution request: the inspected token, else the last one, else the most likely next token."""
    session = session.for_prompt(controls.prompt_key)
    request = prompt_request(session, controls)
    ids = session.branch.ids
    if session.inspect is not None or ids:
        request["target_index"] = session.inspect if session.inspect is not None else len(ids) - 1
    elif session.ghost.rows:
        request["target_token_id"] = session.ghost.rows[0]
    else:
        raise ValueError("nothing to explain yet: step once, or preview the prompt")
    method = controls.attribution_method
    return request | {"method": method, "aggregation": controls.aggregation, "ig_steps": int(controls.ig_steps)}


def wire_attribution(ex: Explorer) -> None:
    c = ex.c

    def explain(data: dict, progress=PROGRESS):
        got = ex.read(data)
        try:
            request = explain_request(got.session, got.controls)
            for event in service.attribution_stream(request):
                if "result" in event:
                    key = on_demand_key("attribution", got.session.for_prompt(got.controls.prompt_key), got.controls)
                    result = event["result"]
                    yield {
                        c["attribution"]: heatmap.explain_html(result),
                        c["attribution_legend"]: heatmap.legend(result),
                        c["computed"]: got.computed | {"attribution": key},
                    }
                    return
                progress(event["progress"], desc=event.get("desc"))
                yield {c["computed"]: gr.skip()}  # between slices: where Cancel takes effect
        except Exception as exc:
            refuse(exc)
            yield {c["computed"]: gr.skip()}

    outputs = [c["attribution"], c["attribution_legend"], c["computed"]]
    running = c["explain"].click(explain, ex.inputs(), outputs, **(MODEL_EVENT | {"show_progress": "full"}))
    c["cancel_explain"].click(None, None, None, cancels=[running], api_visibility="private")
    for trigger in (c["attribution_method"].input, c["aggregation"].input):
        ex.on(trigger, actions.refresh)  # the hover panel follows the method; the heatmap goes out of date
