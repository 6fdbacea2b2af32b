"""What the Look ahead panel shows, from the session alone: which tree is current, and its drawing or a note.

A tree is grown from the position on screen (the end of the completion, or the inspected token) and is
current while the request of that position is the one it was grown from; otherwise the panel says it is
out of date and shows no old numbers (the drawing itself is `draw.lookahead_tree`).
"""

from __future__ import annotations

import plotly.graph_objects as go

from .controls import Controls
from .draw.lookahead_tree import EMPTY_NOTE, STALE_NOTE, figure, note, path_rows
from .request import fingerprint, model_id, request_for
from .state import LookAhead, Session


def position(session: Session) -> int:
    """Where a tree grows from: the inspected token, else the end of the completion."""
    return len(session.branch.ids) if session.inspect is None else session.inspect


def tree_request(session: Session, controls: Controls) -> dict:
    """The preview request of the position on screen (the completion cut at an inspected token)."""
    request = request_for(session, controls)
    return request | {"completion_ids": request["completion_ids"][: position(session)]}


def current_tree(session: Session, controls: Controls) -> LookAhead | None:
    """The session's tree when it was grown from the position and knobs on screen by this model, else None."""
    grown = session.lookahead
    if grown is None or grown.request != tree_request(session, controls) or grown.model_id != model_id():
        return None
    return grown


def panel_key(session: Session, controls: Controls) -> str:
    """What the panel shows depends on: the tree, and whether it is current."""
    grown = session.lookahead
    if grown is None:
        return fingerprint(None)
    shape = [grown.tree[k] for k in ("width", "depth", "node_count")]  # not the whole tree: thousands of nodes
    return fingerprint(grown.request, shape, current_tree(session, controls) is not None)


def _plot(session: Session, controls: Controls) -> go.Figure | None:
    grown = current_tree(session, controls)
    return figure(grown.tree) if grown else None


def _rows(session: Session, controls: Controls) -> list[list[str]]:
    grown = current_tree(session, controls)
    return path_rows(grown.tree) if grown else []


def _note(session: Session, controls: Controls) -> str:
    grown = current_tree(session, controls)
    if grown is None:
        return STALE_NOTE if session.lookahead else EMPTY_NOTE
    return note(grown.tree, len(grown.request["completion_ids"]))


DRAWS = {"lookahead_plot": _plot, "lookahead_paths": _rows, "lookahead_note": _note}  # component -> its content
