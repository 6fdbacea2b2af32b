"""The timeline figure: entropy of p_final and surprisal of each chosen token, per completion token."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from .plots import GRID_COLOR, light_figure, note, shown_rows


def timeline_figure(meta: list[dict]) -> go.Figure:
    """Entropy of the final distribution and surprisal of the chosen token, per completion token."""
    xs, entropy, surprisal, surprisal_base, labels = [], [], [], [], []
    for i, record in enumerate(meta):
        dist = record.get("dist")
        rows = shown_rows(dist) if dist else ()  # a forced token may be among the pushed-down rows only
        chosen = next((r.token for r in rows if r.token["id"] == record["token"]["id"]), None)
        if chosen is None:
            continue
        xs.append(i + 1)
        labels.append(record["token"]["display"])
        entropy.append(abs(dist["entropy_final"]))
        surprisal.append(_bits(chosen["p_final"]))
        surprisal_base.append(_bits(chosen["p_base"]))
    series = (
        (entropy, "entropy of p_final (bits)", "lines+markers", {}, "entropy "),
        (surprisal, "surprisal of the chosen token under p_final", "lines+markers", {}, ""),
        (surprisal_base, "… under p_base", "lines", {"dash": "dot"}, ""),
    )
    traces = [
        {"type": "scatter", "x": xs, "y": ys, "name": name, "mode": mode, "line": line, "customdata": labels,
         "hovertemplate": f"token %{{x}} %{{customdata}}<br>{prefix}%{{y:.2f}} bits<extra></extra>"}
        for ys, name, mode, line, prefix in series
    ]  # fmt: skip
    layout = {
        "height": 260,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 40},
        "legend": {"orientation": "h", "y": -0.25, "x": 0},
        "xaxis": {"dtick": 1, "gridcolor": GRID_COLOR},
        "yaxis": {"title": {"text": "bits"}, "rangemode": "tozero", "gridcolor": GRID_COLOR},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "template": {},
    }
    if not xs:
        layout["annotations"] = [note("Step to see how sure the model was at each token.")]
    return light_figure(traces, layout)


def _bits(p: float) -> float:
    """Surprisal in bits; a forced token the knobs excluded (p = 0) is capped for display."""
    return min(-math.log2(p), 30.0) if p > 0 else 30.0
