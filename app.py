"""The Gradio app: layout and event wiring only. Run `uv run app.py`; importing this module starts nothing."""

from __future__ import annotations

import logging
import threading

import gradio as gr

from decoding import constraints, service
from decoding.model import STORE, default_model_id
from decoding.params import PRESETS, DecodingParams
from ui import handlers, session
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


def _sidebar() -> dict:
    c = {}
    c["status"] = gr.Markdown(elem_id="model-status")
    with gr.Accordion("Model", open=False):
        c["model_id"] = gr.Textbox(label="Model id or local folder", value=default_model_id(), max_lines=1)
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
        c["step"] = gr.Button("Step", variant="primary")
        c["delete"] = gr.Button("Delete last")
        c["clear"] = gr.Button("Clear completion")
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
        c["plot"] = gr.Plot(label="Next-token distribution", scale=3, elem_id="dist-plot")
        c["candidates"] = gr.Dataframe(
            headers=CANDIDATE_HEADERS,
            label="Candidates (click one to force it)",
            interactive=False,
            scale=2,
            column_widths=["26%", "16%", "21%", "21%", "16%"],
            elem_id="candidates",
        )
    with gr.Accordion("Stage by stage: probability after each stage", open=False):
        c["stages"] = gr.Dataframe(headers=STAGE_HEADERS, interactive=False, elem_id="stages")
    with gr.Accordion("Branches", open=False, elem_id="branches"):
        with gr.Row():
            c["branch"] = gr.Dropdown(label="Branch", choices=[("main (0 tokens)", "main")], value="main", scale=2)
            c["branch_name"] = gr.Textbox(label="Name", placeholder="name for a new or renamed branch", scale=2)
        with gr.Row():
            c["fork"] = gr.Button("Fork here", size="sm")
            c["rename"] = gr.Button("Rename", size="sm")
            c["delete_branch"] = gr.Button("Delete branch", size="sm", variant="stop")
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


def build() -> gr.Blocks:
    with gr.Blocks(title="Next-token explorer") as demo:
        # The API endpoints come first so they own their names; UI events are private.
        gr.api(api_model_status, api_name="model_status")
        for fn, name in ((api_load_model, "load_model"), (api_preview, "preview"), (api_step, "step")):
            gr.api(fn, api_name=name, concurrency_id=MODEL_GROUP, concurrency_limit=1)
        gr.Markdown(INTRO)
        state = gr.State(session.new_session())
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                side = _sidebar()
            with gr.Column(scale=3):
                main = _main()
        c = side | main
        knobs = [c[name] for name in handlers.KNOB_FIELDS]
        outputs = (
            [c[n] for n in ("tokens", "plot", "candidates", "summary")]
            + [state]
            + [c[n] for n in ("branch", "stages", "back")]
        )
        model_event = {"concurrency_id": MODEL_GROUP, "concurrency_limit": 1, "api_visibility": "private"}
        refresh = (handlers.preview, [state, *knobs], outputs)

        timer = gr.Timer(1.0)
        timer.tick(handlers.model_status_view, None, [c["status"], timer], api_visibility="private")
        demo.load(handlers.model_status_view, None, [c["status"], timer], api_visibility="private")
        demo.load(*refresh, **model_event)

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
        for name in ("use_chat_template", "seed", "top_k", "constraint_enabled"):
            c[name].change(*refresh, **model_event)
        _wire_constraints(c, refresh, model_event)
        c["load"].click(handlers.load_model, c["model_id"], c["status"], **model_event).then(*refresh, **model_event)
    return demo


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_warm_up, daemon=True).start()
    demo = build()
    demo.queue(max_size=64).launch(css=CSS)


def _warm_up() -> None:
    try:
        STORE.get()
    except ValueError as exc:
        logging.getLogger(__name__).error("default model failed to load: %s", exc)


if __name__ == "__main__":
    main()
