"""Plotly figures of the explorer: the next-token bar chart with its candidate marks, and the timeline.

The bar chart shows p_base (grey, the raw model) beside p_final (blue, after every stage) for the display
rows and the rows penalties pushed down. A candidate that a stage removed carries that stage's mark in its
label (✂ and a red bar for a truncation cut, ○ for greedy, ⊘ for the constraint, ↓ for pushed down), and
the legend has one entry for each mark present. `shown_rows` is the one place that decides the rows and
their marks, so a table can show the same.

Figures are built from plain dicts without Plotly's per-property validation and without a template: the
chart is redrawn on every step and knob change, and both the build time and the JSON sent to the browser
stay small (Gradio's plot component updates the drawn figure in place with `Plotly.react`).
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

FINAL_NAME = "p_final (after all stages)"
BASE_COLOR = "#9ca3af"
FINAL_COLOR = "#2563eb"
CUT_COLOR = "#ef4444"
GHOST_COLOR = "rgba(37, 99, 235, 0.25)"
GRID_COLOR = "#e5e7eb"
FONT = {"family": "ui-monospace, DejaVu Sans Mono, monospace"}
# Notes beside the bars keep one size: Plotly would otherwise shrink them to the thickness of a bar.
BAR_TEXT = {"textposition": "outside", "cliponaxis": False, "constraintext": "none", "textfont": {"size": 11}}


@dataclass(frozen=True)
class Mark:
    """A glyph put before a candidate's label, what it means (the legend entry) and a short bar note."""

    symbol: str
    meaning: str
    note: str

    @property
    def legend(self) -> str:
        return f"{self.symbol} {self.meaning}"


CONSTRAINT = Mark("⊘", "forbidden by the constraint", "forbidden")
GREEDY = Mark("○", "not the greedy choice (greedy keeps only the most likely token)", "not greedy's pick")
PUSHED_DOWN = Mark("↓", "pushed down by penalties (among the most likely by p_base)", "")
CHOSEN = Mark("▶", "chosen at this step", "")
CUT_SYMBOL = "✂"
UNCUT_STAGES = ("constraint", "greedy")  # removals that are not a truncation cut
STAGE_TITLES = {"greedy": "greedy (argmax)"}


def stage_title(stage: str) -> str:
    """A stage's name as the page shows it: `min_p` -> `min-p`."""
    return STAGE_TITLES.get(stage, stage.replace("_", "-"))


def cut_mark(stage: str) -> Mark:
    """The mark of a truncation sampler's cut (top-p, and any other sampler stage): scissors, red bar."""
    name = stage_title(stage)
    return Mark(CUT_SYMBOL, f"cut by {name} (red: probability before the cut)", f"cut by {name}")


def removal_mark(stage: str) -> Mark:
    return {"constraint": CONSTRAINT, "greedy": GREEDY}.get(stage) or cut_mark(stage)


def removed_by(row: dict, greedy: bool) -> str | None:
    """The stage that removed a candidate, or None when it is still in play.

    Rows name it in `removed_by`; rows of session files saved before they did carry only `valid` and `kept`,
    from which it follows.
    """
    if "removed_by" in row:
        return row["removed_by"]
    if not row["valid"]:
        return "constraint"
    if not row["kept"]:
        return "greedy" if greedy else "top_p"
    return None


@dataclass(frozen=True)
class ShownRow:
    """One candidate as the chart and the table show it: the API row and why it looks the way it does."""

    token: dict
    removed_by: str | None
    pushed_down: bool
    chosen: bool

    @property
    def marks(self) -> tuple[Mark, ...]:
        marks = [CHOSEN] if self.chosen else []
        marks += [PUSHED_DOWN] if self.pushed_down else []
        return (*marks, removal_mark(self.removed_by)) if self.removed_by else tuple(marks)

    @property
    def label(self) -> str:
        symbols = "".join(mark.symbol for mark in self.marks)
        return f"{symbols} {self.token['display']}" if symbols else self.token["display"]

    @property
    def cut(self) -> bool:
        return self.removed_by is not None and self.removed_by not in UNCUT_STAGES

    def before_removal(self) -> float:
        """Probability just before the removing stage (stages are in pipeline order), else p_base."""
        names = list(self.token.get("stages") or {})
        if self.removed_by in names and names.index(self.removed_by) > 0:
            return self.token["stages"][names[names.index(self.removed_by) - 1]]
        return self.token["p_base"]


def shown_rows(dist: dict, chosen: int | None = None) -> tuple[ShownRow, ...]:
    """The display rows, then the pushed-down rows not among them, each with its removal stage.

    A row is marked pushed down by its id, so a `dist` whose `tokens` already include them works too.
    """
    greedy = bool(dist.get("greedy"))
    pushed = {row["id"]: row for row in dist.get("pushed_down") or ()}
    rows = {row["id"]: row for row in dist["tokens"]} | pushed  # the union, display rows first
    return tuple(
        ShownRow(row, removed_by(row, greedy), token_id in pushed, token_id == chosen) for token_id, row in rows.items()
    )


def distribution_figure(
    dist: dict | None, ghost: dict[int, float] | None = None, chosen: int | None = None, empty: str = ""
) -> go.Figure:
    """Grouped horizontal bars, most likely first; `ghost` is the previous p_final by token id.

    `chosen` marks the token that was picked, when showing the distribution of an earlier step.
    """
    if not dist:
        layout = _layout(0, 0) | {"annotations": [note(empty or "No distribution: the completion is finished.")]}
        return light_figure([], layout)
    rows = shown_rows(dist, chosen)
    y = list(range(len(rows)))
    labels = [row.label for row in rows]
    traces = [_bars(y, [r.token["p_base"] for r in rows], "p_base (raw model)", BASE_COLOR, labels, "base")]
    if ghost:
        before = [ghost.get(r.token["id"], 0.0) for r in rows]
        traces.append(_bars(y, before, "p_final before the change", GHOST_COLOR, labels, "ghost"))
        traces[-1]["marker"]["line"] = {"color": FINAL_COLOR, "width": 1}
    final = _bars(y, [r.token["p_final"] for r in rows], FINAL_NAME, FINAL_COLOR, labels, "final")
    final |= {"text": [_final_text(r) for r in rows], **BAR_TEXT}
    cuts = _cut_traces(rows, y, labels)
    final_index = len(traces)
    traces += [final, *cuts, *_mark_keys(rows)]
    layout = _layout(len(rows), len(traces))
    if len(dist.get("stages") or ()) > 1:
        layout |= {"updatemenus": [_stage_menu(dist, rows, final_index, cuts)], "margin": layout["margin"] | {"t": 56}}
        layout["height"] += 36
    layout["yaxis"] |= {"tickvals": y, "ticktext": labels}
    return light_figure(traces, layout)


def _stage_menu(dist: dict, rows: tuple[ShownRow, ...], final_index: int, cuts: list[dict]) -> dict:
    """A menu above the chart: the blue bars after any stage of the chain (default: after all of them).

    Choosing a stage restyles the p_final bars to each row's probability after that stage and shows the
    red cut bars of the stages applied so far only; it runs in the browser, so clicking through is instant.
    """
    stages, counts = list(dist["stages"]), dist.get("stage_counts") or {}
    indices, buttons = list(range(final_index, final_index + 1 + len(cuts))), []
    for k, stage in enumerate(stages):
        done, last = set(stages[: k + 1]), k == len(stages) - 1
        x = [r.token["p_final"] if last else (r.token.get("stages") or {}).get(stage, 0.0) for r in rows]
        name = FINAL_NAME if last else f"p after {stage_title(stage)}"
        text = [_final_text(r) if last or r.removed_by in done else f"{p:.1%}" for r, p in zip(rows, x, strict=True)]
        restyle = {
            "x": [x, *(cut["x"] for cut in cuts)],
            "name": [name, *(cut["name"] for cut in cuts)],
            "text": [text, *(cut["text"] for cut in cuts)],
            "visible": [True, *(last or cut["meta"] in done for cut in cuts)],
        }
        label = f"Showing: after {'all stages' if last else stage_title(stage)}"
        label += f" ({counts[stage]:,} in play)" if stage in counts else ""
        buttons.append({"label": label, "method": "restyle", "args": [restyle, indices]})
    return {"type": "dropdown", "active": len(stages) - 1, "buttons": buttons, "x": 0, "xanchor": "left",
            "y": 1, "yref": "paper", "yanchor": "bottom", "pad": {"b": 8}, "showactive": True}  # fmt: skip


def _bars(y: list[int], x: list, name: str, color: str, labels: list[str], group: str) -> dict:
    """One bar trace; `group` names its slot in each row (traces sharing a slot overlap)."""
    return {
        "type": "bar",
        "orientation": "h",
        "y": y,
        "x": x,
        "name": name,
        "marker": {"color": color},
        "offsetgroup": group,
        "customdata": labels,
        "hovertemplate": f"%{{customdata}}<br>{name.split(' ')[0]} %{{x:.4f}}<extra></extra>",
    }


def _final_text(row: ShownRow) -> str:
    if row.removed_by is None:
        return f"{row.token['p_final']:.1%}"
    return "" if row.cut else f"{removal_mark(row.removed_by).symbol} {removal_mark(row.removed_by).note}"


def _cut_traces(rows: tuple[ShownRow, ...], y: list[int], labels: list[str]) -> list[dict]:
    """Per cutting stage, red bars in the p_final slot at the probability each cut row had before the cut."""
    traces = []
    for stage in dict.fromkeys(r.removed_by for r in rows if r.cut):
        mark = cut_mark(stage)
        cut = [r.before_removal() if r.removed_by == stage else None for r in rows]
        trace = _bars(y, cut, mark.legend, CUT_COLOR, labels, "final")
        trace |= {
            "text": [f"{mark.symbol} {mark.note}" if p is not None else "" for p in cut],
            **BAR_TEXT,
            "hovertemplate": f"%{{customdata}}<br>{mark.note}; before it %{{x:.4f}}<extra></extra>",
            "meta": stage,
        }
        traces.append(trace)
    return traces


def _mark_keys(rows: tuple[ShownRow, ...]) -> list[dict]:
    """A legend entry (an empty trace) for each mark present that no bar trace already explains."""
    present = dict.fromkeys(mark for row in rows for mark in row.marks if mark.symbol != CUT_SYMBOL)
    return [
        {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": mark.legend,
         "marker": {"color": "rgba(0, 0, 0, 0)"}, "hoverinfo": "skip"}
        for mark in present
    ]  # fmt: skip


def light_figure(traces: list[dict], layout: dict) -> go.Figure:
    # Validation costs milliseconds per trace on every redraw; these dicts are built to Plotly's schema.
    return go.Figure(data=traces, layout=layout, _validate=False)


def _layout(n_rows: int, n_legend: int) -> dict:
    """Bars of a fixed thickness; the legend, one line per entry, sits in a bottom margin sized for it."""
    bottom = 40 + 21 * n_legend  # the x tick labels, then the legend lines
    return {
        "barmode": "group",
        "height": 20 + max(200, 34 * n_rows) + bottom,
        "margin": {"l": 10, "r": 120, "t": 20, "b": bottom},
        "xaxis": {"range": [0, 1.08], "tickformat": ".0%", "gridcolor": GRID_COLOR, "zeroline": False},
        "yaxis": {"autorange": "reversed", "tickfont": FONT, "automargin": True},
        "legend": {"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
        "bargap": 0.25,
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "template": {},
    }


def note(text: str) -> dict:
    return {"text": text, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}
