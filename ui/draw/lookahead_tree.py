"""The look-ahead tree drawn: the API's `tree` answer -> its nodes depth first, a table of paths, an icicle figure.

The table lists the nodes depth first, so a row index names one node and its path (what a click on the row
appends). Under model edits a node's p_final is shown with the unedited model's beside it, and with a reference
model on, with the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

HEADERS = ["path", "p_final", "p_base", "path probability"]
ROOT_ID = "root"
ROOT_LABEL = "from here"
# Plotly drops a branch whose children sum to more than its own value ("total" branch values); rounding
# in the product of probabilities can put a sum a hair above its parent, so a parent gets this margin.
VALUE_MARGIN = 1e-9
EMPTY_NOTE = "*Grow a tree to see where the likely continuations lead.*"
STALE_NOTE = (
    "*Out of date: the tokens, the position, the knobs or the model changed. Press the button to grow the tree again.*"
)
HOVER = "%{customdata[0]}<br>path probability %{customdata[1]:.2%}<br>p_final %{customdata[2]:.2%}<extra></extra>"


@dataclass(frozen=True)
class Node:
    """One node of the tree, flattened: its depth (1 = the next token), the pill texts along its path."""

    depth: int
    path_ids: tuple[int, ...]
    path_text: str
    display: str
    p_base: float
    p_final: float
    path_probability: float
    finish_reason: str | None
    p_final_unedited: float | None = None  # under model edits: the unedited model's p_final of the token
    p_final_reference: float | None = None  # with a reference model: the reference's p_final of the token


def nodes(tree: dict) -> list[Node]:
    """Every node of a tree (the API's `tree` answer), depth first, children most likely first."""
    out: list[Node] = []

    def walk(children: list[dict], depth: int, text: str) -> None:
        for child in children:
            path_text = text + child["token"]["display"]
            probabilities = (child["p_base"], child["p_final"], child["path_probability"])
            path = tuple(child["path_ids"])
            shown = (path_text, child["token"]["display"], *probabilities, child["finish_reason"])
            beside = (child.get("p_final_unedited"), child.get("p_final_reference"))
            out.append(Node(depth, path, *shown, *beside))
            walk(child["children"], depth + 1, path_text)

    walk(tree["children"], 1, "")
    return out


def path_rows(tree: dict) -> list[list[str]]:
    """The table: one row per node, indented by depth, with its probabilities in one format (finished paths say why)."""
    rows = []
    for node in nodes(tree):
        ending = f" ({node.finish_reason.replace('_', ' ')})" if node.finish_reason else ""
        text = "· " * (node.depth - 1) + node.path_text + ending
        p_final = f"{node.p_final:.2%}"
        for name, other in (("unedited", node.p_final_unedited), ("reference", node.p_final_reference)):
            if other is not None:  # the other model's p_final of the token beside this one's
                p_final += f" ({name} {other:.2%})"
        rows.append([text, p_final, *(f"{p:.2%}" for p in (node.p_base, node.path_probability))])
    return rows


def figure(tree: dict) -> go.Figure:
    """An icicle: the position on screen at the top, each level below; box widths are path probabilities."""
    flat = nodes(tree)
    ids = [ROOT_ID, *(_node_id(n.path_ids) for n in flat)]
    parents = ["", *(_node_id(n.path_ids[:-1]) for n in flat)]
    labels = [ROOT_LABEL, *(f"{n.display}<br>{n.p_final:.0%}" for n in flat)]
    custom = [["", 1.0, 1.0], *([n.path_text, n.path_probability, n.p_final] for n in flat)]
    values = _values(flat)
    trace = go.Icicle(
        ids=ids, parents=parents, labels=labels, values=[values[()], *(values[n.path_ids] for n in flat)],
        branchvalues="total", customdata=custom, hovertemplate=HOVER, tiling={"orientation": "v"},
        marker={"colors": [0.0, *(n.p_final for n in flat)], "colorscale": "Blues", "cmin": 0.0, "cmax": 1.0},
    )  # fmt: skip
    fig = go.Figure(trace)
    fig.update_layout(margin={"l": 4, "r": 4, "t": 4, "b": 4}, height=120 + 90 * tree["depth"])
    return fig


def note(tree: dict, at: int) -> str:
    """What the tree shows, grown at completion position `at` (0-based)."""
    return (
        f"{tree['node_count']} continuations from completion position {at + 1}: the {tree['width']} most likely "
        f"tokens at each step, {tree['depth']} deep. Hover a box for its path; click a row to append that path."
    )


def _node_id(path_ids: tuple[int, ...]) -> str:
    return "/".join(map(str, path_ids)) if path_ids else ROOT_ID


def _values(flat: list[Node]) -> dict[tuple[int, ...], float]:
    """Each node's box size: its path probability, at least its children's sum (see VALUE_MARGIN)."""
    values = {n.path_ids: n.path_probability for n in flat} | {(): 1.0}
    for depth in range(max((n.depth for n in flat), default=0), 0, -1):  # children before their parents
        sums: dict[tuple[int, ...], float] = {}
        for n in flat:
            if n.depth == depth:
                sums[n.path_ids[:-1]] = sums.get(n.path_ids[:-1], 0.0) + values[n.path_ids]
        for parent, total in sums.items():
            values[parent] = max(values[parent], total * (1 + VALUE_MARGIN))
    return values
