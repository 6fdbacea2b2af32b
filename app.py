"""The Gradio app: composition only (build the tabs, register the APIs, launch). Run `uv run app.py`.

Importing this module starts nothing. The tabs and panels live in `ui/` (see docs/ARCHITECTURE.md);
each builds its components and wires its own events.
"""

from __future__ import annotations

import logging
import sys
import threading

import gradio as gr

import cli
from decoding import service
from decoding.model import STORE
from ui import attribution_panel, autostep, branches, chat_tab, explorer, lens, session_file, settings, sidebar
from ui.events import MODEL_EVENT, Explorer
from ui.state import Prefs, Session

INTRO = (
    "**Next-token explorer** · press **Step** to see the raw next-token probabilities (**p_base**, grey) beside "
    "the final ones (**p_final**, blue) after penalties, temperature, a constraint and the nucleus. Click a "
    "candidate to force it, the last token to delete it, an earlier token to see how it was chosen."
)
CSS = (
    ".token-view span { font-family: ui-monospace, monospace; } footer { display: none !important; }"
    " #summary p { margin: 0; } #step-row { align-items: end; flex-wrap: wrap; }"
)


def _api(fn):
    """The service function with its ValueError shown to API callers as a one-line message."""

    def call(*args):
        try:
            return fn(*args)
        except ValueError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return call


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


def _register_api() -> None:
    gr.api(api_model_status, api_name="model_status")
    for fn in (api_load_model, api_preview, api_step, api_attribution):
        gr.api(fn, api_name=fn.__name__.removeprefix("api_"), **(MODEL_EVENT | {"api_visibility": "public"}))


def build() -> gr.Blocks:
    with gr.Blocks(title="Next-token explorer") as demo:
        _register_api()
        gr.Markdown(INTRO)
        c = {"session": gr.State(Session()), "prefs": gr.State(Prefs()), "computed": gr.State({})}
        with gr.Tabs() as c["tabs"]:
            with gr.Tab("Explorer", id="explorer"), gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=260):
                    c |= sidebar.create_sidebar()
                with gr.Column(scale=3, min_width=320):
                    c |= explorer.create_explorer()
                    for create in (attribution_panel.create_attribution_panel, lens.create_lens,
                                   branches.create_branches, autostep.create_autostep,
                                   session_file.create_session_file):  # fmt: skip
                        c |= create()
            with gr.Tab("Chat", id="chat"):
                c |= chat_tab.create_chat_tab()
        ex = Explorer(c)
        settings.wire_settings(demo, ex)
        for wire in (sidebar.wire_sidebar, explorer.wire_explorer, attribution_panel.wire_attribution,
                     lens.wire_lens, branches.wire_branches, autostep.wire_autostep,
                     session_file.wire_session_file, chat_tab.wire_chat):  # fmt: skip
            wire(ex)
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
