"""The diff with the reference drawn: a timeline of KL per position, the tokens coloured by it, the summary table.

All three are drawn from the service's `diff` answer (its numbers are the service's, tested against an
independent computation there). The timeline is a Plotly bar per completion token, its height KL(main ||
reference) of p_final in bits, orange where the top tokens differ, hovering gives the exact values; a position
whose KL is infinite is drawn hatched at the top of the axis and says so; the KL of p_base is a line over them.
The tokens are coloured as LMdiff does: the more the reference disagrees before a token, the deeper its
background, with the exact values on hover.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from .compare import bits
from .plots import GRID_COLOR, light_figure

AGREE_COLOR, DIFFER_COLOR, BASE_COLOR = "#059669", "#d97706", "#6b7280"
SUMMARY_HEADERS = ["measure", "p_final", "p_base"]


def _kl(position: dict, top: float) -> float:
    """The bar's height: the KL, or the top of the axis where it is infinite."""
    return position["kl_final"] if position["kl_final"] is not None else top


def timeline(answer: dict) -> go.Figure:
    """KL of p_final per completion token (1 is the first) as bars coloured by top-token agreement, hatched
    where infinite; KL of p_base as a line, since a cut sampler (top-p, top-k) makes p_final's KL infinite at
    many positions while the raw distributions still say how far apart the models are."""
    positions = answer["positions"]
    finite = [p["kl_final"] for p in positions if p["kl_final"] is not None]
    top = max([*finite, *(p["kl_base"] for p in positions), 1e-6]) * 1.1
    x = [p["index"] + 1 for p in positions]
    hover = [_hover(p) for p in positions]
    bars = {
        "type": "bar", "x": x, "y": [_kl(p, top) for p in positions], "name": "KL of p_final (hatched: infinite)",
        "marker": {
            "color": [AGREE_COLOR if p["top_agrees"] else DIFFER_COLOR for p in positions],
            "pattern": {"shape": ["/" if p["kl_final"] is None else "" for p in positions]},
        },
        "customdata": hover, "hovertemplate": "%{customdata}<extra></extra>",
    }  # fmt: skip
    line = {
        "type": "scatter", "mode": "lines+markers", "x": x, "y": [p["kl_base"] for p in positions],
        "name": "KL of p_base", "line": {"color": BASE_COLOR}, "customdata": hover,
        "hovertemplate": "%{customdata}<extra></extra>",
    }  # fmt: skip
    return light_figure([bars, line], _timeline_layout())


def _timeline_layout() -> dict:
    return {
        "height": 260,
        "margin": {"l": 60, "r": 10, "t": 10, "b": 40},
        "xaxis": {"title": {"text": "completion token (orange: the top tokens differ)"}, "gridcolor": GRID_COLOR},
        "yaxis": {"title": {"text": "KL (bits)"}, "rangemode": "tozero", "gridcolor": GRID_COLOR, "automargin": True},
        "legend": {"orientation": "h", "y": 1.12, "x": 0},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "template": {},
    }


def _hover(position: dict) -> str:
    kl = bits(position["kl_final"]) if position["kl_final"] is not None else f"∞ ({position['kl_final_reason']})"
    top = "top tokens agree" if position["top_agrees"] else "top tokens differ"
    return (
        f"token {position['index'] + 1} {html.escape(position['token']['display'])}<br>KL p_final {kl} bits ·"
        f" KL p_base {bits(position['kl_base'])} bits<br>{top}<br>p_final main {position['p_final_main']:.4f} ·"
        f" reference {position['p_final_reference']:.4f}"
    )


def tokens_html(answer: dict) -> str:
    """The completion, each token's background as deep as the KL before it (relative to the text's largest)."""
    positions = answer["positions"]
    finite = [p["kl_final"] for p in positions if p["kl_final"] is not None]
    largest = max(finite, default=0.0) or 1.0
    spans = []
    for p in positions:
        share = 1.0 if p["kl_final"] is None else p["kl_final"] / largest
        title = _hover(p).replace("<br>", " · ")
        border = "" if p["top_agrees"] else f"border-bottom:2px solid {DIFFER_COLOR};"
        spans.append(
            f'<span class="diff-token" title="{html.escape(title, quote=True)}"'
            f' style="background:rgba(217,119,6,{0.08 + 0.72 * share:.3f});{border}white-space:pre-wrap">'
            f"{html.escape(p['token']['display'])}</span>"
        )
    return f'<div class="diff-tokens" style="line-height:1.9">{"".join(spans)}</div>'


def summary_rows(answer: dict) -> list[list[str]]:
    """llama.cpp's `--kl-divergence` summary as table rows (KL in bits)."""
    s = answer["summary"]
    final, base = s["kl_final"], s["kl_base"]
    rows = [
        [name, bits(final[key]), bits(base[key])]
        for name, key in (("mean KL", "mean"), ("KL p90", "p90"), ("KL p99", "p99"), ("KL p99.9", "p99_9"),
                          ("max KL", "max"))
    ]  # fmt: skip
    split = s["first_divergence"]
    return [
        *rows,
        ["positions with infinite KL", str(s["kl_final_infinite"]), "0"],
        ["same top token", f"{s['same_top']:.1%}", ""],
        ["RMS Δp of the token there", f"{s['rms_delta_p_final']:.4%}", f"{s['rms_delta_p_base']:.4%}"],
        ["first divergence", "none" if split is None else f"token {split + 1}", ""],
    ]
