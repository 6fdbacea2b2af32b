"""Plotly figures: p_base next to p_final for the display rows, with excluded candidates marked."""

from __future__ import annotations

import math

import plotly.graph_objects as go

BASE_COLOR = "#9ca3af"
FINAL_COLOR = "#2563eb"
GHOST_COLOR = "rgba(37, 99, 235, 0.25)"
EXCLUDED_MARK = "✂"  # outside the top-p nucleus
INVALID_MARK = "⊘"  # not allowed by the constraint


def row_label(row: dict) -> str:
    """Tick label of one candidate: its display text, marked when the candidate is excluded."""
    if not row["valid"]:
        return f"{INVALID_MARK} {row['display']}"
    if not row["kept"]:
        return f"{EXCLUDED_MARK} {row['display']}"
    return row["display"]


def distribution_figure(
    dist: dict | None, ghost: dict[int, float] | None = None, chosen: int | None = None, empty: str = ""
) -> go.Figure:
    """Grouped horizontal bars, most likely first; `ghost` is the previous p_final by token id.

    `chosen` marks the token that was picked, when showing the distribution of an earlier step.
    """
    fig = go.Figure()
    if not dist:
        fig.update_layout(**_layout(0), annotations=[_note(empty or "No distribution: the completion is finished.")])
        return fig
    rows = dist["tokens"]
    y = list(range(len(rows)))
    labels = [("▶ " if r["id"] == chosen else "") + row_label(r) for r in rows]
    fig.add_bar(
        y=y,
        x=[r["p_base"] for r in rows],
        orientation="h",
        name="p_base (raw model)",
        marker_color=BASE_COLOR,
        hovertemplate="%{customdata}<br>p_base %{x:.4f}<extra></extra>",
        customdata=labels,
    )
    if ghost:
        fig.add_bar(
            y=y,
            x=[ghost.get(r["id"], 0.0) for r in rows],
            orientation="h",
            name="p_final before the change",
            marker={"color": GHOST_COLOR, "line": {"color": FINAL_COLOR, "width": 1}},
            hovertemplate="%{customdata}<br>before %{x:.4f}<extra></extra>",
            customdata=labels,
        )
    fig.add_bar(
        y=y,
        x=[r["p_final"] for r in rows],
        orientation="h",
        name="p_final (after all stages)",
        marker_color=[FINAL_COLOR if r["kept"] else "#ef4444" for r in rows],
        text=[_final_text(r) for r in rows],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{customdata}<br>p_final %{x:.4f}<extra></extra>",
        customdata=labels,
    )
    fig.update_layout(**_layout(len(rows)))
    fig.update_yaxes(tickvals=y, ticktext=labels, autorange="reversed", tickfont={"family": "monospace"})
    return fig


def _final_text(row: dict) -> str:
    if not row["valid"]:
        return "invalid"
    if not row["kept"]:
        return "cut by top-p"
    return f"{row['p_final']:.1%}"


def _layout(n_rows: int) -> dict:
    return {
        "barmode": "group",
        "height": max(280, 90 + 34 * n_rows),
        "margin": {"l": 10, "r": 70, "t": 34, "b": 60},
        "xaxis": {"range": [0, 1.08], "tickformat": ".0%", "title": None},
        "legend": {"orientation": "h", "y": -0.08, "x": 0, "yanchor": "top"},
        "bargap": 0.25,
        "template": "plotly_white",
    }


def _note(text: str) -> dict:
    return {"text": text, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}


def timeline_figure(meta: list[dict]) -> go.Figure:
    """Entropy of the final distribution and surprisal of the chosen token, per completion token."""
    fig = go.Figure()
    xs, entropy, surprisal, surprisal_base, labels = [], [], [], [], []
    for i, record in enumerate(meta):
        dist = record.get("dist") or {}
        chosen = next((r for r in dist.get("tokens", []) if r["id"] == record["token"]["id"]), None)
        if chosen is None:
            continue
        xs.append(i + 1)
        labels.append(record["token"]["display"])
        entropy.append(abs(dist["entropy_final"]))
        surprisal.append(_bits(chosen["p_final"]))
        surprisal_base.append(_bits(chosen["p_base"]))
    traces = (
        (entropy, "entropy of p_final (bits)", "lines+markers", {}, "entropy "),
        (surprisal, "surprisal of the chosen token under p_final", "lines+markers", {}, ""),
        (surprisal_base, "… under p_base", "lines", {"dash": "dot"}, ""),
    )
    for ys, name, mode, line, prefix in traces:
        fig.add_scatter(
            x=xs,
            y=ys,
            name=name,
            mode=mode,
            line=line,
            customdata=labels,
            hovertemplate=f"token %{{x}} %{{customdata}}<br>{prefix}%{{y:.2f}} bits<extra></extra>",
        )
    fig.update_layout(
        height=260,
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25, "x": 0},
        xaxis={"title": None, "dtick": 1},
        yaxis={"title": "bits", "rangemode": "tozero"},
    )
    if not xs:
        fig.update_layout(annotations=[_note("Step to see how sure the model was at each token.")])
    return fig


def _bits(p: float) -> float:
    """Surprisal in bits; a forced token the knobs excluded (p = 0) is capped for display."""
    return min(-math.log2(p), 30.0) if p > 0 else 30.0
