"""The attribution accordion: the hover panel, and Explain (any method) with real progress and Cancel.

Explain is a generator over the service's attribution stream: it reports each slice's progress and
yields between slices, so Cancel stops the computation at the next slice. It never writes the
session (steps may run between its slices); it records what it explained in the `computed` state,
from which the view tells when the heatmap is out of date, and keeps there the last result of each
method, so methods that explained the same target can be compared (Spearman's rank correlation).
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from service import operations as service
from service.public import ATTRIBUTION_AGGREGATIONS, IG_STEPS, agreement

from .. import actions, explain_target
from ..controls import Controls
from ..draw import heatmap
from ..events import Explorer, Outcome
from ..request import attribution_request, fingerprint, prompt_request
from ..state import Session
from ..view import on_demand_key

D = Controls()
RUNS = "attribution_runs"  # computed-state key: method -> the last result of that method (what agreement needs)
COMPARED = ("method", "normalized", "target_id", "contrast_token_id", "target_index")
IG_SLIDER_MAX = 64  # the API takes up to IG_STEPS.high; in the UI more steps cost more than they show


def create_attribution_panel() -> dict:
    c = {}
    with gr.Accordion(
        "Attribution: which context tokens a token depends on", open=False, elem_id="attribution-panel"
    ) as c["attribution_panel"]:
        with gr.Row():
            c["attribution_method"] = gr.Dropdown(heatmap.METHOD_CHOICES, value=D.attribution_method, label="Method")
            c["aggregation"] = gr.Radio(
                [(a.label, a.name) for a in ATTRIBUTION_AGGREGATIONS.values()], value=D.aggregation,
                label="Aggregation over the embedding",
            )  # fmt: skip
            c["granularity"] = gr.Radio(
                [("Per token", "token"), ("Per word", "word")], value=D.granularity, label="Scores"
            )
            c["ig_steps"] = gr.Slider(IG_STEPS.low, IG_SLIDER_MAX, D.ig_steps, step=1, label=IG_STEPS.label)
        # the view fills both pickers with the candidates at the explained position (see explain_target)
        c["explain_token"] = gr.Dropdown(
            [("(the token there)", "")], value=D.explain_token, elem_id="explain-token", allow_custom_value=True,
            label=explain_target.TARGET_LABEL,
        )  # fmt: skip
        c["contrast_token"] = gr.Dropdown(
            [("(none)", "")], value=D.contrast_token, elem_id="foil", allow_custom_value=True,
            label=explain_target.FOIL_LABEL,
        )  # fmt: skip
        c["attribution_hover"] = gr.HTML(
            "", elem_id="attribution-hover", css_template=heatmap.PANEL_CSS, js_on_load=heatmap.PANEL_JS,
            server_functions=[heatmap.explain],
        )  # fmt: skip
        with gr.Row():
            c["explain"] = gr.Button("Explain this token (inspected, else the last one)", size="sm")
            c["cancel_explain"] = gr.Button("Cancel", size="sm", variant="stop", visible=False)
        c["attribution"] = gr.HTML("", elem_id="attribution")
        c["attribution_legend"] = gr.Markdown(elem_id="attribution-legend")
    return c


def explain_request(session: Session, controls: Controls) -> dict:
    """The attribution request: the inspected token, else the last one, else the most likely next token.

    A picked candidate or foil counts only at the position it was picked at; a foil only under a method
    that takes one (the foil picker is disabled under the others).
    """
    session = session.for_prompt(controls.prompt_key)
    request = attribution_request(session, controls)
    ids = session.branch.ids
    if session.inspect is not None or ids:
        request["target_index"] = session.inspect if session.inspect is not None else len(ids) - 1
    elif session.ghost.rows:
        request["target_token_id"] = session.ghost.rows[0]
    else:
        raise ValueError("nothing to explain yet: step once, or preview the prompt")
    key = explain_target.position_key(session, controls)
    if (target := explain_target.picked(controls.explain_token, key)) is not None:
        request["target_token_id"] = target
    foil = explain_target.picked(controls.contrast_token, key)
    if foil is not None and controls.attribution_method not in explain_target.NO_FOIL_REASONS:
        request["contrast_token_id"] = foil
    return request | {"method": controls.attribution_method, "ig_steps": int(controls.ig_steps)}


def agreement_note(runs: dict, result: dict) -> str:
    """Spearman's rho of this result with the last result of every other method that explained the same target."""
    lines = []
    for method, other in runs.items():
        if method == result["method"] or other["target"] != runs[result["method"]]["target"]:
            continue
        found = agreement(runs[result["method"]], other)
        verdict = "they **disagree**: read either ranking with care" if found["disagree"] else "they broadly agree"
        lines.append(f"Spearman ρ between {result['method']} and {method}: **{found['rho']:.2f}**, {verdict}")
    return "\n\n".join(lines)


def recorded_runs(computed: dict, result: dict, target: str) -> dict:
    """The computed state's runs with this result as its method's last one (only what agreement reads)."""
    run = {key: result.get(key) for key in COMPARED} | {"target": target}
    return {**computed.get(RUNS, {}), result["method"]: run}


def setting_changed(session: Session, controls: Controls) -> Outcome:
    """The hover panel follows the setting and the heatmap goes out of date; an inspected token stays inspected."""
    return actions.shown(actions.current(session, controls), controls)


def wire_attribution(ex: Explorer) -> None:
    c = ex.c

    def explain(got) -> Iterator[dict]:
        return service.attribution_stream(explain_request(got.session, got.controls))

    ex.on_stream("explain", "cancel_explain", explain, lambda got, result: _answer(c, got, result),
                 ("attribution", "attribution_legend"))  # fmt: skip
    for name in ("attribution_method", "aggregation", "granularity", "explain_token", "contrast_token"):
        ex.on(c[name].input, setting_changed)


def _answer(c: dict, got, result: dict) -> dict:
    """The heatmap, the agreement with other methods on this target, and what was computed."""
    session = got.session.for_prompt(got.controls.prompt_key)
    target = fingerprint(prompt_request(session, got.controls), *(result[k] for k in COMPARED[2:]))
    runs = recorded_runs(got.computed, result, target)
    key = on_demand_key("attribution", session, got.controls)
    return {
        c["attribution"]: heatmap.explain_html(result),
        c["attribution_legend"]: agreement_note(runs, result),
        c["computed"]: got.computed | {"attribution": key, RUNS: runs},
    }
