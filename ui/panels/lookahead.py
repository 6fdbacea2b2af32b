"""The Look ahead accordion: where the likely continuations lead, as a tree, and taking one with a click.

Growing the tree is asked for (a button, with the width and depth chosen here); the tree is kept in the
session with the request it was grown from, so it is exported with the session and the view marks it out
of date once the tokens, the position or the knobs change (see `lookahead_view`). Plotly figures have no
click event, so the tree is also a table of paths: clicking a row appends that path, or, while an earlier
token is inspected, starts a branch there with it.
"""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from service import operations as service
from service import tree as tree_mod

from .. import actions, constraint_state, lookahead_view
from ..controls import Controls
from ..draw import lookahead_tree
from ..events import Explorer, Outcome
from ..request import model_id
from ..state import LookAhead, Session


def create_lookahead() -> dict:
    c = {}
    with gr.Accordion("Look ahead: where the likely continuations lead", open=False, elem_id="lookahead-panel") as acc:
        c["lookahead_panel"] = acc
        with gr.Row():
            c["lookahead_width"] = gr.Slider(
                1, tree_mod.MAX_WIDTH, value=tree_mod.DEFAULT_WIDTH, step=1, label="Width (tokens per step)"
            )
            c["lookahead_depth"] = gr.Slider(
                1, tree_mod.MAX_DEPTH, value=tree_mod.DEFAULT_DEPTH, step=1, label="Depth (tokens ahead)"
            )
        c["lookahead_button"] = gr.Button("Grow the tree from the position on screen", size="sm")
        c["lookahead_note"] = gr.Markdown(lookahead_tree.EMPTY_NOTE, elem_id="lookahead-note")
        c["lookahead_plot"] = gr.Plot(label="Continuation tree", show_label=False, elem_id="lookahead-plot")
        c["lookahead_paths"] = gr.Dataframe(
            headers=lookahead_tree.HEADERS, label="Paths (click one to append it)", interactive=False, wrap=True,
            elem_id="lookahead-paths", column_widths=["55%", "15%", "15%", "15%"],
        )  # fmt: skip
    return c


def grow(session: Session, controls: Controls, width: object, depth: object) -> Outcome:
    """The tree of the position on screen, kept in the session; refused (nothing changes) when invalid or too big,
    or when the constraint cannot be used (the tree shows what Step would let through, and Step is refused)."""
    session = actions.current(session, controls)
    if not controls.llm_on:
        raise ValueError("the model is switched off: switch it on to look ahead")
    request = lookahead_view.tree_request(session, controls)
    grow_tree = lambda: service.tree(request | {"width": width, "depth": depth})  # noqa: E731
    tree = constraint_state.needing("Look ahead", grow_tree, service.preview, request)
    grown = LookAhead(request, tree, model_id())
    return actions.shown(replace(session, lookahead=grown), controls)


def take_path(session: Session, controls: Controls, index: object) -> Outcome:
    """A click on a row of the table appends that node's path (or branches at the inspected token)."""
    session = actions.current(session, controls)
    grown = lookahead_view.current_tree(session, controls)
    if grown is None:
        raise ValueError("the tree is out of date (or not grown yet): grow it again, then click a path")
    nodes = lookahead_tree.nodes(grown.tree)
    row = index[0] if isinstance(index, list | tuple) else index
    if not isinstance(row, int) or not 0 <= row < len(nodes):
        raise ValueError(f"row {row!r} is not a path of the tree on screen: it has {len(nodes)} paths")
    return actions.force_tokens(session, controls, nodes[row].path_ids)


def wire_lookahead(ex: Explorer) -> None:
    ex.on(ex.c["lookahead_button"].click, grow, extra=("lookahead_width", "lookahead_depth"))
    ex.on_select(ex.c["lookahead_paths"].select, take_path)
