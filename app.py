"""The Gradio app: layout and event wiring only. Run `uv run app.py`; importing this module starts nothing."""

from __future__ import annotations

import logging
import sys
import threading

import gradio as gr

import cli
from decoding import constraints, service
from decoding.model import STORE, default_model_id
from decoding.params import PRESETS, DecodingParams
from ui import chat as chat_ui
from ui import handlers, heatmap, session
from ui.render import CANDIDATE_HEADERS, COLOR_MAP, STAGE_HEADERS

MODEL_GROUP = "model"  # every event that runs the model queues in this one group
DEFAULTS = DecodingParams()
INTRO = (
    "# Next-token explorer\n"
    "Type a prompt and press **Step**: see the raw next-token probabilities (**p_base**, grey) beside the final "
    "ones (**p_final**, blue) after penalties, temperature, a grammar constraint and the top-p nucleus. "
    "Click a candidate to force it, click the last token to delete it. ✂ = cut by top-p, ⊘ = not allowed by "
    "the constraint."
)
CONSTRAINT_CHOICES = [
    ("Multiple choice (one option per line)", "multiple_choice"),
    ("Regex", "regex"),
    ("Context-free grammar (Lark)", "cfg"),
    ("JSON schema", "json_schema"),
]
CONSTRAINT_HELP = {
    "multiple_choice": "One option per line; the output must be exactly one of them.",
    "regex": constraints.REGEX_HELP,
    "cfg": "A Lark grammar whose start rule is `start`; the whole output must parse. "
    + r"`\d` in its regex terminals means [0-9].",
    "json_schema": "A JSON schema; the output must be a JSON value that validates against it. "
    "`additionalProperties` follows the schema (open unless it says false).",
}
CSS = ".token-view span { font-family: ui-monospace, monospace; } footer { display: none !important; }"


def _api(fn):
    """Expose a service function as an API endpoint whose errors are readable messages."""
    return handlers.user_errors(fn)


def api_model_status() -> dict:
    """Status of the shared model: id, source, device, dtype, state, error, chat template, vocab, context."""
    return service.model_status()


def api_load_model(model_id: str) -> dict:
    """Load a model by Hugging Face id or local folder; the previous model stays on failure."""
    return _api(service.load_model)(model_id)


def api_preview(request: dict) -> dict:
    """The next-token distribution for prompt + completion_ids under the given params (see README)."""
    return _api(service.preview)(request)


def api_step(request: dict) -> dict:
    """Append one token (chosen, force_token_id or force_text) and return the new state."""
    return _api(service.step)(request)


def api_attribution(request: dict) -> dict:
    """Scores of every context token for a completion token (target_index) or a candidate (target_token_id)."""
    return _api(service.attribution)(request)


def _sidebar() -> dict:
    c = {}
    c["status"] = gr.Markdown(elem_id="model-status")
    with gr.Accordion("Model", open=False):
        c["model_id"] = gr.Dropdown(
            [default_model_id()],
            value=default_model_id(),
            label="Model: pick one, or type a hub id or local folder",
            allow_custom_value=True,
            elem_id="model-id",
        )
        c["load"] = gr.Button("Load model", size="sm")
    c["preset"] = gr.Radio([*PRESETS, "custom"], value="balanced", label="Preset")
    c["temperature"] = gr.Slider(0, 2, DEFAULTS.temperature, step=0.05, label="Temperature (0 = greedy)")
    c["top_p"] = gr.Slider(0.01, 1, DEFAULTS.top_p, step=0.01, label="Top-p")
    c["repetition_penalty"] = gr.Slider(0.5, 2, DEFAULTS.repetition_penalty, step=0.01, label="Repetition penalty")
    c["presence_penalty"] = gr.Slider(-2, 2, 0, step=0.05, label="Presence penalty")
    c["frequency_penalty"] = gr.Slider(-2, 2, 0, step=0.05, label="Frequency penalty")
    with gr.Row():
        c["seed"] = gr.Textbox("", label="Seed (blank = random)", max_lines=1)
        c["top_k"] = gr.Slider(1, 50, 10, step=1, label="Rows shown (top-k)")
    c["stop_sequences"] = gr.Textbox(label="Stop sequences (one per line)", lines=1, max_lines=4)
    with gr.Accordion("Constraint", open=False, elem_id="constraint-panel"):
        c["constraint_enabled"] = gr.Checkbox(False, label="Constrain the output")
        c["constraint_type"] = gr.Dropdown(CONSTRAINT_CHOICES, value="regex", label="Type")
        c["constraint_preset"] = gr.Dropdown(
            ["(none)", *constraints.PRESETS], value="(none)", label="Ready-made pattern (Outlines types)"
        )
        c["constraint_schema"] = gr.Code(
            constraints.EXAMPLES["regex"], label="Options / regex / grammar / schema", lines=6
        )
        c["constraint_help"] = gr.Markdown(CONSTRAINT_HELP["regex"])
    return c


def _main() -> dict:
    c = {}
    c["prompt"] = gr.Textbox(label="Prompt", value="The capital of France is", lines=2, max_lines=8)
    with gr.Row():
        c["use_chat_template"] = gr.Checkbox(False, label="Wrap in the chat template", scale=1)
        c["system_prompt"] = gr.Textbox(label="System prompt", max_lines=3, scale=3)
    with gr.Row():
        c["step"] = gr.Button("Step", variant="primary", min_width=90)
        c["play"] = gr.Button(handlers.PLAY, min_width=90)
        c["delete"] = gr.Button("Delete last", min_width=90)
        c["clear"] = gr.Button("Clear completion", min_width=90)
    with gr.Accordion("Auto-step and model switch", open=False, elem_id="auto-panel"), gr.Row():
        c["speed"] = gr.Slider(0.2, 10, 2, step=0.2, label="Auto-step speed (steps per second)")
        c["max_steps"] = gr.Slider(1, 500, 64, step=1, label="Stop auto-step after (steps)")
        c["llm_on"] = gr.Checkbox(True, label="Model on (off: no distribution; text stays editable and forcible)")
    with gr.Row():
        c["force_text"] = gr.Textbox(label="Force text", placeholder="text to append as is", scale=4, max_lines=1)
        c["force"] = gr.Button("Force", scale=1)
    c["tokens"] = gr.HighlightedText(
        label="Tokens (click the last one to delete it, an earlier one to see how it was chosen)",
        color_map=COLOR_MAP,
        show_legend=True,
        combine_adjacent=False,
        elem_classes="token-view",
        elem_id="tokens",
    )
    c["summary"] = gr.Markdown(elem_id="summary")
    c["back"] = gr.Button("Back to the end of the completion", visible=False, size="sm")
    with gr.Row(equal_height=False):
        c["plot"] = gr.Plot(label="Next-token distribution", scale=3, elem_id="dist-plot", min_width=380)
        c["candidates"] = gr.Dataframe(
            headers=CANDIDATE_HEADERS,
            label="Candidates (click one to force it)",
            interactive=False,
            scale=2,
            min_width=320,
            column_widths=["24%", "15%", "22%", "22%", "17%"],
            elem_id="candidates",
        )
    with gr.Accordion("Stage by stage: probability after each stage", open=False):
        c["stages"] = gr.Dataframe(headers=STAGE_HEADERS, interactive=False, elem_id="stages")
    with gr.Accordion("Timeline: entropy and surprisal per token", open=False):
        c["timeline"] = gr.Plot(label="Timeline", elem_id="timeline")
    with gr.Accordion("Attribution: which context tokens a token depends on", open=False, elem_id="attribution-panel"):
        with gr.Row():
            c["attribution_method"] = gr.Dropdown(heatmap.METHOD_CHOICES, value="attention", label="Method")
            c["aggregation"] = gr.Radio(
                [("L2 norm (Inseq)", "l2"), ("Signed sum", "sum")], value="l2", label="Aggregation over the embedding"
            )
            c["ig_steps"] = gr.Slider(2, 64, 16, step=1, label="Integrated-gradients steps")
        c["attribution_hover"] = gr.HTML(
            "",
            elem_id="attribution-hover",
            css_template=heatmap.PANEL_CSS,
            js_on_load=heatmap.PANEL_JS,
            server_functions=[heatmap.explain],
        )
        with gr.Row():
            c["explain"] = gr.Button("Explain this token (inspected, else the last one)", size="sm")
            c["cancel_explain"] = gr.Button("Cancel", size="sm", variant="stop")
        c["attribution"] = gr.HighlightedText(
            label="Attribution heatmap",
            elem_id="attribution",
            show_legend=False,
            combine_adjacent=False,
            elem_classes="token-view",
        )
        c["attribution_legend"] = gr.Markdown(elem_id="attribution-legend")
    with gr.Accordion("Logit lens: what each layer would predict next", open=False, elem_id="lens-panel"):
        c["lens_button"] = gr.Button("Read every layer at the current position", size="sm")
        c["lens"] = gr.Dataframe(
            headers=["layer", *(f"top {i + 1}" for i in range(handlers.LENS_TOP_K))],
            interactive=False,
            elem_id="logit-lens",
            wrap=True,
        )
    with gr.Accordion("Branches", open=False, elem_id="branches"):
        with gr.Row():
            c["branch"] = gr.Dropdown(label="Branch", choices=[("main (0 tokens)", "main")], value="main", scale=2)
            c["branch_name"] = gr.Textbox(label="Name", placeholder="name for a new or renamed branch", scale=2)
        with gr.Row():
            c["fork"] = gr.Button("Fork here", size="sm")
            c["rename"] = gr.Button("Rename", size="sm")
            c["delete_branch"] = gr.Button("Delete branch", size="sm", variant="stop")
        with gr.Row():
            c["compare_with"] = gr.Dropdown(label="Compare the current branch with", choices=[], scale=3)
            c["compare"] = gr.Button("Compare", size="sm", scale=1)
        c["comparison"] = gr.HTML(elem_id="compare")
    with gr.Accordion("Session file", open=False), gr.Row():
        c["export"] = gr.DownloadButton("Export session (JSON)", size="sm")
        c["import"] = gr.UploadButton("Import session (JSON)", file_types=[".json"], size="sm")
    return c


def _wire_constraints(c: dict, refresh: tuple, model_event: dict) -> None:
    c["constraint_type"].input(
        handlers.constraint_example,
        c["constraint_type"],
        [c["constraint_schema"], c["constraint_preset"]],
        api_visibility="private",
    ).then(
        lambda kind: CONSTRAINT_HELP[kind], c["constraint_type"], c["constraint_help"], api_visibility="private"
    ).then(*refresh, **model_event)
    c["constraint_preset"].input(
        handlers.constraint_preset,
        c["constraint_preset"],
        [c["constraint_type"], c["constraint_schema"]],
        api_visibility="private",
    ).then(*refresh, **model_event)


def _wire_settings(demo: gr.Blocks, c: dict, state: gr.State, refresh: tuple, model_event: dict) -> None:
    """Settings live in the browser: restored on load, saved on every change, exported with the session."""
    settings = gr.BrowserState({}, storage_key="nexttoken-settings", secret="nexttoken-settings-v1")
    fields = [c[name] for name in handlers.SETTING_FIELDS]
    demo.load(handlers.restore_settings, settings, fields, api_visibility="private").then(*refresh, **model_event)
    for component in fields:
        component.change(handlers.save_settings, fields, settings, api_visibility="private", queue=False)
    c["export"].click(handlers.export_session, [state, *fields], c["export"], api_visibility="private")
    c["import"].upload(handlers.import_session, [c["import"], state], [*fields, state], api_visibility="private").then(
        *refresh, **model_event
    )


def _wire_auto_step(c: dict, state: gr.State, knobs: list, outputs: list, model_event: dict) -> None:
    ticker = gr.Timer(0.5, active=False)
    c["play"].click(handlers.toggle_play, [state, c["speed"]], [ticker, c["play"], state], api_visibility="private")
    c["speed"].change(handlers.set_speed, c["speed"], ticker, api_visibility="private")
    ticker.tick(
        handlers.auto_step,
        [state, c["max_steps"], *knobs],
        [*outputs, ticker, c["play"]],
        trigger_mode="once",
        **model_event,
    )


def _chat_tab() -> dict:
    c = {}
    c["chatbot"] = gr.Chatbot(elem_id="chatbot", height=420, label="Chat with the loaded model")
    with gr.Row():
        c["message"] = gr.Textbox(label="Message", placeholder="Ask something", scale=5, max_lines=4)
        c["send"] = gr.Button("Send", variant="primary", scale=1)
    with gr.Row():
        c["chat_max_tokens"] = gr.Slider(1, 512, 128, step=1, label="Max reply tokens")
        c["chat_temperature"] = gr.Slider(0, 2, 0.7, step=0.05, label="Reply temperature (0 = greedy)")
    with gr.Row():
        c["chat_clear"] = gr.Button("Clear", size="sm")
        c["chat_open"] = gr.Button("Open the last reply in the explorer", size="sm")
    c["chat_last"] = gr.State({})
    return c


def _wire_chat(c: dict, state: gr.State, tabs: gr.Tabs, refresh: tuple, model_event: dict) -> None:
    inputs = [c["message"], c["chatbot"], c["chat_max_tokens"], c["chat_temperature"], c["chat_last"]]
    outputs = [c["message"], c["chatbot"], c["chat_last"]]
    for trigger in (c["send"].click, c["message"].submit):
        trigger(chat_ui.send, inputs, outputs, **model_event)
    c["chat_clear"].click(chat_ui.clear, None, [c["chatbot"], c["chat_last"], c["message"]], api_visibility="private")
    c["chat_open"].click(
        chat_ui.open_in_explorer,
        c["chat_last"],
        [c["prompt"], c["system_prompt"], c["use_chat_template"], state, tabs],
        api_visibility="private",
    ).then(*refresh, **model_event)


def _wire_attribution(c: dict, state: gr.State, knobs: list, model_event: dict) -> None:
    panel = (handlers.attribution_panel, [state, c["attribution_method"], *knobs], c["attribution_hover"])
    # Reads only: the step that changed the tokens already cached this prefix's logits, so the panel
    # does not queue behind the model group.
    c["tokens"].change(*panel, api_visibility="private")
    c["attribution_method"].change(*panel, api_visibility="private")
    explain = c["explain"].click(
        handlers.explain_token,
        [state, c["attribution_method"], c["aggregation"], c["ig_steps"], *knobs],
        [c["attribution"], c["attribution_legend"]],
        **model_event,
    )
    c["cancel_explain"].click(None, None, None, cancels=[explain], api_visibility="private")


def build() -> gr.Blocks:
    with gr.Blocks(title="Next-token explorer") as demo:
        # The API endpoints come first so they own their names; UI events are private.
        gr.api(api_model_status, api_name="model_status")
        for fn, name in (
            (api_load_model, "load_model"),
            (api_preview, "preview"),
            (api_step, "step"),
            (api_attribution, "attribution"),
        ):
            gr.api(fn, api_name=name, concurrency_id=MODEL_GROUP, concurrency_limit=1)
        gr.Markdown(INTRO)
        state = gr.State(session.new_session())
        with gr.Tabs() as tabs:
            with gr.Tab("Explorer", id="explorer"), gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=280):
                    side = _sidebar()
                with gr.Column(scale=3):
                    main = _main()
            with gr.Tab("Chat", id="chat"):
                talk = _chat_tab()
        c = side | main | talk
        knobs = [c[name] for name in handlers.KNOB_FIELDS]
        outputs = [state if name == "state" else c[name] for name in handlers.OUTPUT_NAMES]
        model_event = {"concurrency_id": MODEL_GROUP, "concurrency_limit": 1, "api_visibility": "private"}
        refresh = (handlers.preview, [state, *knobs], outputs)

        timer = gr.Timer(1.0)
        timer.tick(handlers.model_status_view, None, [c["status"], timer], api_visibility="private")
        demo.load(handlers.model_status_view, None, [c["status"], timer], api_visibility="private")
        _wire_settings(demo, c, state, refresh, model_event)
        _wire_attribution(c, state, knobs, model_event)
        _wire_chat(c, state, tabs, refresh, model_event)
        _wire_auto_step(c, state, knobs, outputs, model_event)
        state.change(handlers.compare_choices, state, c["compare_with"], api_visibility="private")
        c["lens_button"].click(handlers.logit_lens, [state, *knobs], c["lens"], **model_event)
        demo.load(handlers.model_choices, None, c["model_id"], api_visibility="private")
        c["compare"].click(
            handlers.compare_branches, [state, c["compare_with"]], c["comparison"], api_visibility="private"
        )

        c["step"].click(handlers.step, [state, *knobs], outputs, **model_event)
        c["force"].click(handlers.force_text, [state, c["force_text"], *knobs], outputs, **model_event)
        c["force_text"].submit(handlers.force_text, [state, c["force_text"], *knobs], outputs, **model_event)
        c["delete"].click(handlers.delete_last, [state, *knobs], outputs, **model_event)
        c["clear"].click(handlers.clear, [state, *knobs], outputs, **model_event)
        c["candidates"].select(handlers.force_candidate, [state, *knobs], outputs, **model_event)
        c["tokens"].select(handlers.select_token, [state, *knobs], outputs, **model_event)
        c["back"].click(handlers.back_to_end, [state, *knobs], outputs, **model_event)
        c["branch"].input(handlers.switch_branch, [state, c["branch"], *knobs], outputs, **model_event)
        c["fork"].click(handlers.fork_branch, [state, c["branch_name"], *knobs], outputs, **model_event)
        c["rename"].click(handlers.rename_branch, [state, c["branch_name"], *knobs], outputs, **model_event)
        c["delete_branch"].click(handlers.delete_branch, [state, *knobs], outputs, **model_event)

        for name in handlers.PARAM_FIELDS:
            c[name].release(lambda: "custom", None, c["preset"], api_visibility="private").then(*refresh, **model_event)
        c["preset"].input(
            handlers.apply_preset, c["preset"], [c[n] for n in handlers.PARAM_FIELDS], api_visibility="private"
        ).then(*refresh, **model_event)
        for name in ("prompt", "system_prompt", "stop_sequences", "constraint_schema"):
            c[name].blur(*refresh, **model_event)
        c["prompt"].submit(*refresh, **model_event)
        for name in ("use_chat_template", "seed", "top_k", "constraint_enabled", "llm_on"):
            c[name].change(*refresh, **model_event)
        _wire_constraints(c, refresh, model_event)
        c["load"].click(handlers.load_model, c["model_id"], c["status"], **model_event).then(*refresh, **model_event)
    return demo


def main(argv: list[str] | None = None) -> None:
    options = cli.parse_args(sys.argv[1:] if argv is None else argv)
    if options.list_models:
        print(cli.models_text())
        return
    cli.apply(options)  # env, logging and the public-mode policy, before the UI reads the defaults
    threading.Thread(target=_warm_up, daemon=True).start()
    demo = build()
    demo.queue(max_size=options.queue_size)
    cli.launch(demo, options, css=CSS)


def _warm_up() -> None:
    try:
        STORE.get()
    except ValueError as exc:
        logging.getLogger(__name__).error("default model failed to load: %s", exc)


if __name__ == "__main__":
    main()
