"""The logit-lens accordion: what each layer would predict at the current position, on demand."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from service import operations as service
from service.public import show_whitespace

from .. import actions
from ..controls import Controls
from ..events import Explorer, Outcome
from ..request import request_for
from ..state import Session
from ..view import on_demand_key

TOP_K = 5
HEADERS = ["layer", *(f"top {i + 1}" for i in range(TOP_K))]


def create_lens() -> dict:
    c = {}
    with gr.Accordion("Logit lens: what each layer would predict next", open=False, elem_id="lens-panel") as c[
        "lens_panel"
    ]:
        c["lens_button"] = gr.Button("Read every layer at the current position", size="sm")
        c["lens_note"] = gr.Markdown(elem_id="lens-note")
        c["lens"] = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="logit-lens", wrap=True)
    return c


def lens_rows(layers: list[dict]) -> list[list[str]]:
    """A layer by top-k table, last layer first; the embeddings are layer 0."""
    return [
        [f"{row['layer']}" if row["layer"] else "0 (embeddings)"]
        + [f"{show_whitespace(text)} {p:.0%}" for _, text, p in row["tokens"]]
        for row in reversed(layers)
    ]


def read_layers(session: Session, controls: Controls, computed: dict) -> Outcome:
    session = actions.current(session, controls).inspecting(None)
    layers = service.logit_lens(request_for(session, controls), TOP_K)["layers"]
    outcome = actions.shown(session, controls)
    n = len(session.branch.ids)
    note = f"At position {n + 1} (after {n} completion tokens)."
    computed = computed | {"lens": on_demand_key("lens", session, controls)}
    return replace(outcome, also={"lens": lens_rows(layers), "lens_note": note, "computed": computed})


def wire_lens(ex: Explorer) -> None:
    ex.on(ex.c["lens_button"].click, read_layers, extra=("computed",), also=("computed",))
