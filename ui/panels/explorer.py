"""The explorer's main column: prompt, step buttons, tokens, status line, bars and candidate table.

Also the two small accordions drawn from the same distribution (stage by stage, timeline). The
events here are the token-level actions of `actions`, each wired through the one view.
"""

from __future__ import annotations

import gradio as gr

from .. import actions, quickstep
from ..assets import asset, plotly_head
from ..controls import Controls
from ..draw.render import CANDIDATE_HEADERS, COLOR_MAP, CONVERSATION_LABEL, DEFAULT_STAGES
from ..events import QUICK_EVENT
from .sidebar import refresh_constraint

D = Controls()
PLAY = "▶ Play"


def create_explorer() -> dict:
    c = {}
    with gr.Row(equal_height=False):
        c["prompt"] = gr.Textbox(D.prompt, label="Prompt", lines=2, max_lines=8, scale=3, min_width=240)
        # in the prompt's place while the branch is a conversation opened from the chat (see render.conversation)
        c["conversation"] = gr.Textbox(
            label=CONVERSATION_LABEL, lines=2, max_lines=8, scale=3, min_width=240, interactive=False, visible=False,
            elem_id="conversation",
        )  # fmt: skip
        with gr.Column(scale=2, min_width=200):
            c["system_prompt"] = gr.Textbox(D.system_prompt, label="System prompt", max_lines=3)
            c["use_chat_template"] = gr.Checkbox(D.use_chat_template, label="Wrap in the chat template")
    _action_rows(c)
    c["tokens"] = gr.HighlightedText(
        label="Tokens (click the last one to delete it, an earlier one to see how it was chosen)",
        color_map=COLOR_MAP, show_legend=True, combine_adjacent=False, elem_classes="token-view", elem_id="tokens",
    )  # fmt: skip
    c["summary"] = gr.Markdown(elem_id="summary")
    c["keep_note"] = gr.Markdown(visible=False, elem_id="keep-note")  # why the session is not kept across a reload
    c["back"] = gr.Button("Back to the end of the completion", visible=False, size="sm")
    c |= _distribution_row(c)
    with gr.Accordion("Stage by stage: probability after each stage", open=False, elem_id="stages-panel") as acc:
        c["stages_panel"] = acc
        c["stages"] = gr.Dataframe(headers=["token", *DEFAULT_STAGES], interactive=False, elem_id="stages")
    with gr.Accordion("Timeline: entropy and surprisal per token", open=False, elem_id="timeline-panel") as acc:
        c["timeline_panel"] = acc
        c["timeline"] = gr.Plot(label="Timeline", elem_id="timeline")
    return c


def _action_rows(c: dict) -> None:
    """Step, Play, Delete, Clear; the Force row."""
    with gr.Row(elem_id="step-row"):
        # wide enough for their labels on one line: on a narrow screen the row wraps instead of clipping
        c["step"] = gr.Button("Step", variant="primary", min_width=110, elem_id="step-button")
        c["play"] = gr.Button(PLAY, min_width=110)
        c["delete"] = gr.Button("Delete last", min_width=130)
        c["clear"] = gr.Button("Clear completion", min_width=180)
        # runs the Step event once the page has drawn the quick answer (quickstep.APPLY_JS): never seen
        c["step_event"] = gr.Button("Step event", visible="hidden", elem_id="step-event")
    with gr.Row(elem_id="force-row"):
        c["force_text"] = gr.Textbox(
            label="Force text", show_label=False, placeholder="Force text: type text to append as is, then Force",
            max_lines=1, scale=4, min_width=160, container=False,
        )  # fmt: skip
        c["force"] = gr.Button("Force", min_width=70, scale=1)
        c["llm_on"] = gr.Checkbox(D.llm_on, label="Model on", min_width=110, scale=1, elem_id="llm-on")


def _distribution_row(panels: dict) -> dict:
    """The next-token bars (a Plotly figure from `draw.bars`, drawn in the page) beside the candidate table; `panels`:
    the explorer's components (Step's quick path answers their values)."""
    c = {}
    with gr.Row(equal_height=False, elem_id="dist-row"):
        with gr.Column(scale=1, min_width=340):  # the column keeps the width: gr.HTML ignores min_width
            c["plot"] = gr.HTML(
                label="Next-token distribution", show_label=True, container=True, padding=True,
                elem_id="dist-plot", html_template='<div class="nt-plot"></div>', css_template=asset("bars.css"),
                js_on_load=quickstep.BARS_JS, head=plotly_head(), server_functions=[quickstep.server_function(panels)],
            )  # fmt: skip
        c["candidates"] = gr.Dataframe(
            headers=CANDIDATE_HEADERS, label="Candidates (click one to force it)", interactive=False, scale=1,
            min_width=300, wrap=False, elem_id="candidates",
        )  # fmt: skip
    return c


def wire_explorer(ex) -> None:
    c = ex.c
    shown = [c[name] for name in quickstep.PANELS]  # the quick path draws them first (quickstep.BARS_JS)
    c["step"].click(None, shown, shown, js=quickstep.APPLY_JS, **QUICK_EVENT)
    stepped = ex.on(c["step_event"].click, actions.step)
    stepped.then(None, shown, shown, js=quickstep.SETTLE_JS, **QUICK_EVENT)
    ex.on(c["force"].click, actions.force_text, extra=("force_text",), also=("force_text",))
    ex.on(c["force_text"].submit, actions.force_text, extra=("force_text",), also=("force_text",))
    ex.on(c["delete"].click, actions.delete_last)
    ex.on(c["clear"].click, actions.clear)
    ex.on(c["back"].click, actions.back_to_end)
    ex.on_select(c["candidates"].select, actions.force_candidate)
    ex.on_select(c["tokens"].select, actions.select_token)
    for trigger in (c["prompt"].blur, c["prompt"].submit, c["system_prompt"].blur, c["use_chat_template"].input):
        refresh_constraint(ex, trigger)
