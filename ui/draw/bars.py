"""The next-token bars: a distribution dict -> the Plotly figure the bars' component carries, drawn in the page.

One row per shown candidate (`plots.shown_rows`, the rows the candidate table shows too), most likely first: its
label with the marks of `plots`, a grey p_base bar, a blue p_final bar with its value beside it, a pale ghost bar
(the previous p_final) after a knob change, a ghost bar per extra series the rows carry (`EXTRA_SERIES`: the
unedited model's p_final under model edits, the reference model's p_final), and a red bar at the probability
before the cut for a candidate a truncation stage removed. Hovering a bar gives its exact value; Plotly's mode
bar downloads the chart as a PNG.

The stage menu shows the blue bars after any stage of the chain. Every stage's blue and red bars are traces of
the one figure, each tagged (`meta.views`) with the views it shows in, and the menu's buttons (one per stage, named
after its slot in `STAGE_SLOTS`, "all" for the end) only toggle their visibility, so switching happens in the
page without a server round trip. The scale menu (log first, so low probabilities stay readable; the axis names
the scale) relayouts the x axis. The page (`ui/assets/bars.js`) draws each new figure with `Plotly.react` after
applying the buttons picked so far, so the stage and the scale picked stay picked while stepping (the end's view
while the chain lacks the stage picked). Token texts go through `html.escape`: Plotly reads tags in its texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from service.public import SAMPLER_REGISTRY, SAMPLER_STAGES

from .plots import CUT_SYMBOL, GRID_COLOR, ShownRow, cut_mark, note, removal_mark, shown_rows, stage_title

BASE_NAME = "p_base (raw model)"
FINAL_NAME = "p_final (after all stages)"
GHOST_NAME = "p_final before the change"
FINISHED = "No distribution: the completion is finished."
BASE_COLOR, FINAL_COLOR, CUT_COLOR = "#9ca3af", "#2563eb", "#ef4444"
GHOST_COLOR = "rgba(37, 99, 235, 0.25)"
CHOSEN_COLOR = "rgba(37, 99, 235, 0.1)"
FONT = {"family": "ui-monospace, DejaVu Sans Mono, monospace"}
# Every stage a chain can have: base, penalties, DRY and the constraint before the samplers, greedy after them.
STAGE_SLOTS = ("base", *SAMPLER_REGISTRY.fixed, "constraint", *SAMPLER_STAGES, "greedy")
END = "all"  # the name of the view after all stages
LOG_DECADES = 4  # the log scale spans 0.01% to 100%
SCALES = ("log", "linear")  # the scale menu's buttons; the first is picked at first: low probabilities readable
AXIS_TITLES = {"log": "probability (log scale)", "linear": "probability (linear scale)"}
AXES = {
    "log": {"type": "log", "range": [-LOG_DECADES, 0], "tickvals": [10.0**-k for k in range(LOG_DECADES, -1, -1)],
            "ticktext": ["0.01%", "0.1%", "1%", "10%", "100%"], "tickformat": None},
    "linear": {"type": "linear", "range": [0, 1], "tickvals": None, "ticktext": None, "tickformat": ".0%"},
}  # fmt: skip
# Notes beside the bars keep one size: Plotly would otherwise shrink them to the thickness of a bar.
BAR_TEXT = {"textposition": "outside", "cliponaxis": False, "constraintext": "none", "textfont": {"size": 11}}
CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
          "toImageButtonOptions": {"format": "png", "filename": "next-token-bars", "scale": 2}}  # fmt: skip
ROW_PX, LEGEND_LINE_PX, SCALE_MENU_PX = 34, 21, 112
MENU_PX = 76  # the menus above the plot, below the mode bar (which shows at the top of the chart on hover)


@dataclass(frozen=True)
class Series:
    """A ghost series drawn from a field of the rows, when any row carries it (another model's p_final, say)."""

    field: str
    name: str
    fill: str
    line: str


EXTRA_SERIES = (
    Series("p_final_unedited", "p_final, unedited model", "rgba(217, 119, 6, 0.3)", "#d97706"),
    Series("p_final_reference", "p_final, reference", "rgba(5, 150, 105, 0.3)", "#059669"),
)


@dataclass(frozen=True)
class View:
    """The chart after one stage of the chain; the last view is after all of them (the blue bars are p_final)."""

    stage: str
    last: bool
    done: frozenset[str]  # the stages applied so far
    in_play: int | None

    @property
    def name(self) -> str:
        """The view's menu button name: its stage's slot, or "all" for the end."""
        return END if self.last else self.stage

    @property
    def legend(self) -> str:
        """The blue bars' legend entry."""
        return FINAL_NAME if self.last else self.short_name

    @property
    def short_name(self) -> str:
        return "p_final" if self.last else f"p after {stage_title(self.stage)}"

    @property
    def menu_label(self) -> str:
        label = "all stages" if self.last else stage_title(self.stage)
        return label if self.in_play is None else f"{label} ({self.in_play:,})"


@dataclass(frozen=True)
class StageBar:
    """A row's bar in the p_final slot under one view: blue at its probability then, or red when cut by then."""

    p: float
    cut: bool
    text: str


def views(dist: dict) -> tuple[View, ...]:
    """One view per stage when the chain has more than one (the stage menu), else the final view alone."""
    stages, counts = list(dist.get("stages") or ()), dist.get("stage_counts") or {}
    if len(stages) < 2 or not set(stages) <= set(STAGE_SLOTS) or len(set(stages)) < len(stages):
        return (View(stages[-1] if stages else "", True, frozenset(stages), None),)
    final = len(stages) - 1
    return tuple(
        View(stage, k == final, frozenset(stages[: k + 1]), counts.get(stage)) for k, stage in enumerate(stages)
    )


def stage_bar(row: ShownRow, view: View) -> StageBar:
    """What the p_final slot of a row shows under a view (the same rules as the stage table's cells)."""
    removed = row.removed_by is not None and (view.last or row.removed_by in view.done)
    if removed and row.cut:
        mark = cut_mark(row.removed_by)
        return StageBar(row.before_removal(), True, f"{mark.symbol} {mark.note}")
    p = row.token["p_final"] if view.last else (row.token.get("stages") or {}).get(view.stage, 0.0)
    mark = removal_mark(row.removed_by) if removed else None
    return StageBar(p, False, f"{mark.symbol} {mark.note}" if mark else f"{p:.1%}")


def bars_value(
    dist: dict | None,
    ghost: dict[int, float] | None = None,
    chosen: int | None = None,
    empty: str = "",
    step: dict | None = None,
) -> dict:
    """The bars' value: the figure, and `step`, the request a Step from here sends (for the page's quick path,
    `ui/quickstep.py`). `ghost` is the previous p_final by token id, `chosen` the token picked at an inspected step."""
    return {"figure": figure(dist, ghost, chosen, empty), "step": step}


def figure(dist: dict | None, ghost: dict[int, float] | None, chosen: int | None, empty: str) -> dict:
    """The chart as Plotly's JSON (data, layout, config), the first view and the first scale shown."""
    if not dist:
        layout = _layout(0, 0) | {"annotations": [note(escape(empty or FINISHED))]}
        layout["xaxis"] |= {"visible": False}
        return {"data": [], "layout": layout | {"yaxis": {"visible": False}}, "config": CONFIG}
    rows, shown = shown_rows(dist, chosen), views(dist)
    labels = [escape(row.label) for row in rows]
    traces = [_trace(BASE_NAME, BASE_COLOR, "base", [row.token["p_base"] for row in rows], labels)]
    if ghost is not None:
        before = [ghost.get(row.token["id"], 0.0) for row in rows]
        traces.append(_ghost(Series("", GHOST_NAME, GHOST_COLOR, FINAL_COLOR), before, labels))
    for series in EXTRA_SERIES:
        x = [row.token.get(series.field) for row in rows]
        traces += [_ghost(series, x, labels)] if any(p is not None for p in x) else []
    traces += [_view_trace(rows, view, labels) for view in shown] + _cut_traces(rows, shown, labels)
    traces += _mark_keys(rows)
    legend_lines = sum(1 for trace in traces if trace.get("visible", True))
    layout = _layout(len(rows), legend_lines) | {"updatemenus": _menus(shown, traces)}
    layout["yaxis"] |= {"tickvals": list(range(len(rows))), "ticktext": _ticks(rows, labels)}
    layout["shapes"] = [_highlight(k) for k, row in enumerate(rows) if row.chosen]
    layout["meta"] = {"token_ids": [int(row.token["id"]) for row in rows]}
    return {"data": traces, "layout": layout, "config": CONFIG}


def _trace(name: str, color: str, slot: str, x: list, labels: list[str]) -> dict:
    """One horizontal bar trace; `slot` names its place in each row (traces sharing a slot overlap)."""
    return {
        "type": "bar", "orientation": "h", "y": list(range(len(x))), "x": x, "name": name,
        "marker": {"color": color}, "offsetgroup": slot, "customdata": labels,
        "hovertemplate": f"%{{customdata}}<br>{escape(name)}: %{{x:.6f}}<extra></extra>",
    }  # fmt: skip


def _ghost(series: Series, x: list, labels: list[str]) -> dict:
    """A pale bar outlined in its colour, in a slot of its own."""
    trace = _trace(series.name, series.fill, series.name, x, labels)
    trace["marker"]["line"] = {"color": series.line, "width": 1}
    return trace


def _view_trace(rows: tuple[ShownRow, ...], view: View, labels: list[str]) -> dict:
    """The blue bars under a view: each row's probability then (none for a row cut by then: its bar is red)."""
    bars = [stage_bar(row, view) for row in rows]
    trace = _trace(view.legend, FINAL_COLOR, "final", [None if bar.cut else bar.p for bar in bars], labels)
    return trace | BAR_TEXT | {
        "text": ["" if bar.cut else bar.text for bar in bars], "meta": {"views": [view.name]}, "visible": view.last,
    }  # fmt: skip


def _cut_traces(rows: tuple[ShownRow, ...], shown: tuple[View, ...], labels: list[str]) -> list[dict]:
    """Per cutting stage, red bars in the p_final slot at the probability each cut row had before the cut, shown
    in the views where that stage has been applied."""
    traces = []
    for stage in dict.fromkeys(row.removed_by for row in rows if row.cut):
        mark = cut_mark(stage)
        x = [row.before_removal() if row.removed_by == stage else None for row in rows]
        trace = _trace(mark.legend, CUT_COLOR, "final", x, labels)
        trace["hovertemplate"] = f"%{{customdata}}<br>{escape(mark.note)}; before it %{{x:.6f}}<extra></extra>"
        names = [view.name for view in shown if view.last or stage in view.done]  # the end's view always
        traces.append(trace | BAR_TEXT | {"text": [f"{mark.symbol} {mark.note}" if p is not None else "" for p in x],
                                          "meta": {"views": names}})  # fmt: skip
    return traces


def _mark_keys(rows: tuple[ShownRow, ...]) -> list[dict]:
    """A legend entry (an empty trace) for each mark present that no bar trace already explains."""
    present = dict.fromkeys(mark for row in rows for mark in row.marks if mark.symbol != CUT_SYMBOL)
    return [
        {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": mark.legend,
         "marker": {"color": "rgba(0, 0, 0, 0)"}, "hoverinfo": "skip"}
        for mark in present
    ]  # fmt: skip


def _menus(shown: tuple[View, ...], traces: list[dict]) -> list[dict]:
    """The stage menu (a dropdown, the end picked; only with more than one stage) and the scale buttons."""
    scale = [{"label": name, "name": name, "method": "relayout", "args": [_axis(name)]} for name in SCALES]
    menus = [_menu("scale", "buttons", scale)]
    if len(shown) < 2:
        return menus
    buttons = [
        {"label": f"after {view.menu_label}", "name": view.name, "method": "restyle",
         "args": [{"visible": [view.name in (t.get("meta") or {}).get("views", [view.name]) for t in traces]}]}
        for view in shown
    ]  # fmt: skip
    return [*menus, _menu("stage", "dropdown", buttons, active=len(shown) - 1)]


def _menu(name: str, kind: str, buttons: list[dict], active: int = 0) -> dict:
    """Above the plot, from its left edge: the scale's two buttons, then the stage's dropdown beside them."""
    return {"name": name, "type": kind, "direction": "right" if kind == "buttons" else "down", "buttons": buttons,
            "active": active, "x": 0, "xanchor": "left", "y": 1, "yref": "paper", "yanchor": "bottom",
            "pad": {"b": 8, "l": 0 if kind == "buttons" else SCALE_MENU_PX}, "showactive": True,
            "font": {"size": 12}}  # fmt: skip


def _axis(scale: str) -> dict:
    """The x axis under a scale, as a relayout's dotted keys."""
    return {f"xaxis.{key}": value for key, value in AXES[scale].items()} | {"xaxis.title.text": AXIS_TITLES[scale]}


def _ticks(rows: tuple[ShownRow, ...], labels: list[str]) -> list[str]:
    return [f"<b>{label}</b>" if row.chosen else label for row, label in zip(rows, labels, strict=True)]


def _highlight(k: int) -> dict:
    """The chosen row's band, across the plot behind its bars."""
    return {"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": k - 0.5, "y1": k + 0.5,
            "fillcolor": CHOSEN_COLOR, "line": {"width": 0}, "layer": "below"}  # fmt: skip


def _layout(n_rows: int, n_legend: int) -> dict:
    """Bars of a fixed thickness under the menus; the legend, one line per entry, in a bottom margin sized for it;
    the x axis on the first scale."""
    bottom = 48 + LEGEND_LINE_PX * n_legend  # the x tick labels and the axis title, then the legend lines
    axis = {key: value for key, value in AXES[SCALES[0]].items() if value is not None}
    return {
        "barmode": "group",
        "height": MENU_PX + max(160, ROW_PX * n_rows) + bottom,
        "margin": {"l": 10, "r": 130, "t": MENU_PX, "b": bottom},
        "xaxis": axis | {"title": {"text": AXIS_TITLES[SCALES[0]]}, "gridcolor": GRID_COLOR, "zeroline": False},
        "yaxis": {"autorange": "reversed", "tickfont": FONT, "automargin": True},
        "legend": {"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
        "bargap": 0.25,
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "hoverlabel": {"font": FONT},
        "template": {},
    }
