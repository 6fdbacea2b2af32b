"""The "Inside the model" heatmaps as Plotly figures: direct logit attribution and activation patching.

Every colour scale is signed and centred on zero (red: toward the target, white: nothing, blue: away from it),
with a colour bar titled in the map's own unit as the legend; every layer and position has its tick label;
hovering a cell shows its exact value. Each cell's hover text is built here from the API answer's own number,
so what a person reads is what the API answered.
"""

from __future__ import annotations

import plotly.graph_objects as go

from .plots import light_figure

# ColorBrewer's RdBu, reversed: blue below zero, white at zero, red above (Plotly's named "RdBu_r" is grey at
# zero, which reads as "some value" rather than "nothing")
SIGNED_SCALE = [[0.0, "rgb(5,48,97)"], [0.25, "rgb(67,147,195)"], [0.5, "rgb(247,247,247)"],
                [0.75, "rgb(214,96,77)"], [1.0, "rgb(103,0,31)"]]  # fmt: skip
EMBED_ROW = "embedding"
MLP_COLUMN = "MLP"
CELL_PX, MIN_HEIGHT = 15, 260
TICK_FONT = {"size": 10}  # small enough that every layer's row keeps its label


def _heatmap(z: list[list[float | None]], x: list[str], y: list[str], hover: list[list[str]], title: str) -> dict:
    return {
        "type": "heatmap", "z": z, "x": x, "y": y, "text": hover, "hovertemplate": "%{text}<extra></extra>",
        "colorscale": SIGNED_SCALE, "zmid": 0, "xgap": 1, "ygap": 1,
        "colorbar": {"title": {"text": title, "side": "right"}, "thickness": 12},
    }  # fmt: skip


def _layout(title: str, rows: int, x_title: str, extra: dict | None = None) -> dict:
    return {
        "title": {"text": title, "font": {"size": 13}}, "height": max(MIN_HEIGHT, 90 + CELL_PX * rows),
        "margin": {"l": 70, "r": 10, "t": 56, "b": 60}, "plot_bgcolor": "white",
        "xaxis": {"title": {"text": x_title}, "type": "category", "dtick": 1, **(extra or {})},
        "yaxis": {"title": {"text": "layer"}, "type": "category", "autorange": "reversed", "dtick": 1,
                  "tickfont": TICK_FONT},
    }  # fmt: skip


def measured(kind: str, target: str, foil: str | None) -> str:
    """What a map measures in the screen's words: `kind` ("logit" or "log p") of the target, minus the foil's."""
    return f"{kind}({target})" + (f" − {kind}({foil})" if foil else "")


def direct_logit_figure(components: dict, target: str, foil: str | None) -> go.Figure:
    """Layers x heads with an MLP column; the embedding as a row of its own (one cell, under the heads' first)."""
    heads, mlps = components["heads"], components["mlps"]
    x = [f"H{h}" for h in range(len(heads[0]) if heads else 0)] + [MLP_COLUMN]
    y = [EMBED_ROW, *(f"L{layer}" for layer in range(len(heads)))]
    z = [[components["embed"], *([None] * (len(x) - 1))]]
    what = measured("logit", target, foil)
    hover = [[f"the token's embedding adds {components['embed']:+.6g} to {what}", *([""] * (len(x) - 1))]]
    for layer, (row, mlp) in enumerate(zip(heads, mlps, strict=True)):
        z.append([*row, mlp])
        hover.append(
            [f"layer {layer}, head {h} adds {v:+.6g} to {what}" for h, v in enumerate(row)]
            + [f"layer {layer}, MLP adds {mlp:+.6g} to {what}"]
        )
    title = f"Direct logit attribution of {what} = {components['logit']:.4g}"
    layout = _layout(title, len(y), "attention head, then MLP")
    return light_figure([_heatmap(z, x, y, hover, "logit written")], layout)


def patching_figure(answer: dict) -> go.Figure:
    """Layers x positions of the patching scores, the positions labelled by their clean (and corrupted) tokens."""
    clean, corrupted = answer["clean_tokens"], answer["corrupted_tokens"]
    labels = [
        f"{i}: {a['display']}" if a["id"] == b["id"] else f"{i}: {a['display']} / {b['display']}"
        for i, (a, b) in enumerate(zip(clean, corrupted, strict=True))
    ]
    scores = answer["scores"]
    y = [f"L{layer}" for layer in range(len(scores))]
    hover = [
        [f"layer {layer}'s {answer['site']} output at {labels[p]} copied from the clean run restores {v:+.4g} of the"
         " difference (1 = all)" for p, v in enumerate(row)]
        for layer, row in enumerate(scores)
    ]  # fmt: skip
    what = measured("logit", answer["target"]["display"], answer["contrast"]["display"])
    title = (  # two lines: one would run past a narrow plot
        f"Patching the {answer['site']} output: share of {what} restored<br>(it is {answer['clean']:.3g} in the"
        f" clean run, {answer['corrupted']:.3g} in the corrupted run)"
    )
    layout = _layout(title, len(y), "position (clean / corrupted token)", {"tickangle": -45, "automargin": True})
    return light_figure([_heatmap(scores, labels, y, hover, "share restored")], layout)


def sweep_figure(answer: dict) -> go.Figure:
    """Layers x heads of an ablation sweep: the change of the score when that head alone is ablated."""
    grid = answer["grid"]
    score = sweep_score(answer)
    z = [[cell["delta"] for cell in row] for row in grid]
    hover = [
        [
            f"layer {layer}, head {h} ablated: {score} changes by {cell['delta']:+.6g}; the token's rank"
            f" becomes {cell['rank']} ({cell['rank_delta']:+d})"
            for h, cell in enumerate(row)
        ]
        for layer, row in enumerate(grid)
    ]
    x, y = [f"H{h}" for h in range(len(z[0]) if z else 0)], [f"L{layer}" for layer in range(len(z))]
    title = f"Ablating one head ({answer['mode']}): change of {score} from {answer['baseline']['score']:.4g}"
    return light_figure([_heatmap(z, x, y, hover, "change of the score")], _layout(title, len(y), "attention head"))


def sweep_score(answer: dict) -> str:
    """The sweep's score with the tokens as the page shows them (the API's `score` names token ids)."""
    return measured("log p", answer["target"]["display"], answer["contrast"]["display"] if answer["contrast"] else None)
