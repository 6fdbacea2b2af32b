"""The Gradio app: composition only (build the tabs, register the APIs, launch). Run `uv run app.py`.

Importing this module starts nothing. The tabs and panels live in `ui/` (see docs/ARCHITECTURE.md);
each builds its components and wires its own events.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import gradio as gr

import cli
from backends.model import STORE
from server import gradio_api
from ui import settings
from ui.assets import asset
from ui.draw import render
from ui.events import Explorer
from ui.panels import (
    attribution_panel,
    autostep,
    branches,
    chat_tab,
    edits,
    explorer,
    inside,
    lens,
    lookahead,
    reference,
    session_file,
    sidebar,
)
from ui.state import Prefs, Session

INTRO = (
    "**Next-token explorer** · **Step** shows the raw next-token probabilities (**p_base**, grey) beside the "
    "final ones (**p_final**, blue) after every sampling stage."
)
CSS = asset("page.css") + render.pill_css()  # the pills' marks follow their colours
# run once when the page loads: the token view follows its newest tokens; map clicks ablate on the branch
SCROLL_JS, CLICK_JS = asset("token_scroll.js"), asset("inside_click.js")
JS = f"() => {{ ({SCROLL_JS})(); ({CLICK_JS})(); }}"


def build() -> gr.Blocks:
    with gr.Blocks(title="Next-token explorer") as demo:
        gradio_api.register(demo)  # first, so the API endpoints own their names
        gr.Markdown(INTRO)
        c = {"session": gr.State(Session()), "prefs": gr.State(Prefs()), "computed": gr.State({})}
        with gr.Tabs() as c["tabs"]:
            with gr.Tab("Explorer", id="explorer"), gr.Row(equal_height=False, elem_id="explorer-row"):
                with gr.Column(scale=1, min_width=260, elem_id="explorer-side"):
                    c |= sidebar.create_sidebar()
                    c |= edits.create_edits()
                with gr.Column(scale=3, min_width=320, elem_id="explorer-main"):
                    c |= explorer.create_explorer()
                    for create in (lookahead.create_lookahead, attribution_panel.create_attribution_panel,
                                   inside.create_inside, lens.create_lens, reference.create_reference,
                                   branches.create_branches,
                                   autostep.create_autostep, session_file.create_session_file):  # fmt: skip
                        c |= create()
            with gr.Tab("Chat", id="chat"):
                c |= chat_tab.create_chat_tab()
        ex = Explorer(c)
        settings.wire_settings(demo, ex)
        for wire in (sidebar.wire_sidebar, explorer.wire_explorer, attribution_panel.wire_attribution,
                     inside.wire_inside, lens.wire_lens, lookahead.wire_lookahead, branches.wire_branches,
                     autostep.wire_autostep, session_file.wire_session_file, chat_tab.wire_chat,
                     edits.wire_edits, reference.wire_reference):  # fmt: skip
            wire(ex)
    return demo


def main(argv: list[str] | None = None) -> None:
    options = cli.parse_args(sys.argv[1:] if argv is None else argv)
    if options.list_models:
        print(cli.models_text())
        return
    cli.apply(options)  # env, logging and the public-mode policy, before the UI reads the defaults
    signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=_warm_up, daemon=True).start()
    demo = build()
    demo.queue(max_size=options.queue_size)
    cli.launch(demo, options, css=CSS, js=JS)


def _stop(signum: int, frame: object) -> None:
    """A terminated app exits as on Ctrl-C, so exit handlers stop what it started (vLLM's engine processes)."""
    raise SystemExit(0)


def _warm_up() -> None:
    try:
        STORE.get()
    except ValueError as exc:
        logging.getLogger(__name__).error("default model failed to load: %s", exc)


if __name__ == "__main__":
    main()
