"""The next-token bars: a distribution dict -> the HTML of its chart (rows, stage menu, legend).

One row per shown candidate (`plots.shown_rows`, the rows the candidate table shows too), most likely first:
its label with the marks of `plots`, a grey p_base bar, a blue p_final bar with its value beside it, a pale
ghost bar (the previous p_final) after a knob change, and a red bar at the probability before the cut for a
candidate a truncation stage removed. Widths are percentages of the bar area, so a probability of 1 fills it; each
bar also carries its width on a log scale (0.01% to 100%), and a scale menu (log first, so low probabilities stay
readable) picks which one is drawn, the axis naming the scale, by CSS alone as the stage menu does.

The stage menu shows the blue bars after any stage of the chain. It is plain HTML and CSS: every row carries
its bar for each stage, radio inputs pick one, and `:has(:checked)` rules hide the others, so switching is
instant and needs no script and no server round trip. Each stage the chain can have owns a fixed slot `k<i>`
(`STAGE_SLOTS`, then `END` for "after all stages"); the menu always holds one radio per slot, disabled where
the chain lacks that stage. The page updates this HTML in place, node by node, so a radio keeps its checked
state across redraws: the stage picked stays picked while stepping, and falls back to the end while the chain
lacks it. Elements that differ by stage carry `nt-v` and one `k<i>` class per slot they show in; the end's
also carry `nt-end`, shown when no enabled radio is checked. Everything drawn from the data goes through
`html.escape` (token texts are the user's).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape

from service.public import SAMPLER_REGISTRY, SAMPLER_STAGES

from ..assets import asset
from .plots import CUT_SYMBOL, ShownRow, cut_mark, removal_mark, shown_rows, stage_title

BASE_NAME = "p_base (raw model)"
FINAL_NAME = "p_final (after all stages)"
GHOST_NAME = "p_final before the change"
FINISHED = "No distribution: the completion is finished."
# Every stage a chain can have: base, penalties, DRY and the constraint before the samplers, greedy after them.
STAGE_SLOTS = ("base", *SAMPLER_REGISTRY.fixed, "constraint", *SAMPLER_STAGES, "greedy")
END = len(STAGE_SLOTS)  # the slot of the view after all stages
LABEL_CH = (4, 22)  # the label column's width in characters: the longest label, within these bounds
LOG_DECADES = 4  # the log scale spans 0.01% to 100%, a decade per quarter of the bar area (as the grid lines)
SCALES = ("log", "linear")  # the scale menu's options; the first is picked at first: low probabilities readable
AXIS_TITLES = {"log": "probability (log scale)", "linear": "probability (linear scale)"}
TICKS = {"log": ("0.01%", "0.1%", "1%", "10%", "100%"), "linear": ("0%", "25%", "50%", "75%", "100%")}


@dataclass(frozen=True)
class View:
    """The chart after one stage of the chain; the last view is after all of them (the blue bars are p_final)."""

    index: int  # the stage's slot (END for the last view)
    position: int  # its place in the chain, the order of the menu's chips
    stage: str
    last: bool
    done: frozenset[str]  # the stages applied so far
    in_play: int | None

    @property
    def name(self) -> str:
        """The blue bars' legend entry."""
        return FINAL_NAME if self.last else self.short_name

    @property
    def short_name(self) -> str:
        return "p_final" if self.last else f"p after {stage_title(self.stage)}"

    @property
    def menu_label(self) -> str:
        label = "all stages" if self.last else stage_title(self.stage)
        return label if self.in_play is None else f"{label} ({self.in_play:,})"

    @property
    def classes(self) -> str:
        return f"nt-v k{self.index}" + (" nt-end" if self.last else "")


@dataclass(frozen=True)
class StageBar:
    """A row's bar in the p_final slot under one view: blue at its probability then, or red when cut by then."""

    p: float
    cut: bool
    text: str
    title: str


def views(dist: dict) -> tuple[View, ...]:
    """One view per stage when the chain has more than one (the stage menu), else the final view alone."""
    stages, counts = list(dist.get("stages") or ()), dist.get("stage_counts") or {}
    if len(stages) < 2 or not set(stages) <= set(STAGE_SLOTS) or len(set(stages)) < len(stages):
        return (View(END, 0, stages[-1] if stages else "", True, frozenset(stages), None),)
    final = len(stages) - 1
    return tuple(
        View(END if k == final else STAGE_SLOTS.index(stage), k, stage, k == final, frozenset(stages[: k + 1]),
             counts.get(stage))
        for k, stage in enumerate(stages)
    )  # fmt: skip


def stage_bar(row: ShownRow, view: View) -> StageBar:
    """What the p_final slot of a row shows under a view (the same rules as the stage table's cells)."""
    removed = row.removed_by is not None and (view.last or row.removed_by in view.done)
    if removed and row.cut:
        mark, before = cut_mark(row.removed_by), row.before_removal()
        return StageBar(before, True, f"{mark.symbol} {mark.note}", f"{mark.note}; before it {before:.4f}")
    p = row.token["p_final"] if view.last else (row.token.get("stages") or {}).get(view.stage, 0.0)
    mark = removal_mark(row.removed_by) if removed else None
    text = f"{mark.symbol} {mark.note}" if mark else f"{p:.1%}"
    return StageBar(p, False, text, f"{view.short_name} {p:.4f}")


def bars_html(
    dist: dict | None,
    ghost: dict[int, float] | None = None,
    chosen: int | None = None,
    empty: str = "",
    step: dict | None = None,
) -> str:
    """The chart; `ghost` is the previous p_final by token id, `chosen` the token picked at an inspected step,
    `step` the request a Step from here sends (carried for the page's quick path, `ui/quickstep.py`)."""
    if not dist:
        return f'<div class="nt-bars nt-empty"><p>{escape(empty or FINISHED)}</p></div>'
    rows, shown = shown_rows(dist, chosen), views(dist)
    width = min(max([len(row.label) for row in rows] + [LABEL_CH[0]]), LABEL_CH[1])
    carried = f' data-step="{escape(json.dumps(step, ensure_ascii=False))}"' if step is not None else ""
    parts = [f'<div class="nt-bars"{carried} style="--nt-label: {width}ch">']
    parts += [_menu(shown)] if len(shown) > 1 else []
    parts += ['<div class="nt-rows">', *(_row(row, shown, ghost) for row in rows), _axis(), "</div>", _scale_menu()]
    parts += [_legend(rows, shown, ghost is not None), "</div>"]
    return "".join(parts)


def _menu(shown: tuple[View, ...]) -> str:
    """A radio chip per slot, in chain order; the end (after all stages) is checked at first."""
    by_slot = {view.index: view for view in shown}
    chips = "".join(_chip(slot, by_slot.get(slot)) for slot in range(END + 1))
    return f'<div class="nt-menu" role="radiogroup" aria-label="Stage"><span>Showing: after</span>{chips}</div>'


def _chip(slot: int, view: View | None) -> str:
    """One slot's radio; a slot the chain lacks keeps its place, disabled and hidden."""
    value = "all" if slot == END else STAGE_SLOTS[slot]
    pick = f'<input type="radio" name="nt-stage" class="nt-pick k{slot}" value="{value}"'
    pick += " checked" if slot == END else ""
    if view is None:
        return f'<label class="nt-chip nt-absent">{pick} disabled><span>{escape(stage_title(value))}</span></label>'
    chip = f'<label class="nt-chip" style="order: {view.position + 1}">'
    return f"{chip}{pick}><span>{escape(view.menu_label)}</span></label>"


def _row(row: ShownRow, shown: tuple[View, ...], ghost: dict[int, float] | None) -> str:
    token, symbols = row.token, "".join(mark.symbol for mark in row.marks)
    label = escape(row.label)
    title = escape(f"{row.label} · p_base {token['p_base']:.4f} · p_final {token['p_final']:.4f}")
    data = (
        f'data-token-id="{int(token["id"])}" data-p-base="{float(token["p_base"])!r}"'
        f' data-p-final="{float(token["p_final"])!r}" data-mark="{escape(symbols)}"'
        f' data-removed-by="{escape(row.removed_by or "")}"'
    )
    bars = [_bar("nt-base", token["p_base"], f"p_base {token['p_base']:.4f}")]
    if ghost is not None:
        before = ghost.get(token["id"], 0.0)
        bars.append(_bar("nt-ghost", before, f"{GHOST_NAME} {before:.4f}"))
    bars.append(f'<span class="nt-slot">{"".join(_slot(row, view) for view in shown)}</span>')
    return (
        f'<div class="nt-row{" nt-chosen" if row.chosen else ""}" {data}>'
        f'<span class="nt-label" title="{title}">{label}</span><span class="nt-track">{"".join(bars)}</span></div>'
    )


def _slot(row: ShownRow, view: View) -> str:
    bar = stage_bar(row, view)
    kind = "nt-cut" if bar.cut else "nt-fin"
    return (
        f'<span class="{view.classes}" data-p="{float(bar.p)!r}" data-cut="{int(bar.cut)}">'
        f'{_bar(kind, bar.p, bar.title)}<span class="nt-val">{escape(bar.text)}</span></span>'
    )


def _bar(kind: str, p: float, title: str) -> str:
    """A bar as wide as `p` on the linear scale (`width`), and on the log scale (`--nt-log`, used while picked)."""
    linear, log = 100 * min(max(p, 0.0), 1.0), 100 * log_position(p)
    return f'<span class="{kind}" style="width: {linear:.2f}%; --nt-log: {log:.2f}%" title="{escape(title)}"></span>'


def log_position(p: float) -> float:
    """Where `p` lies on the log scale, as a fraction of the bar area: 0 at 0.01% and below, 1 at 100%."""
    return 0.0 if p <= 0 else min(max(1 + math.log10(p) / LOG_DECADES, 0.0), 1.0)


def _axis() -> str:
    """Tick labels and the axis title of each scale; the scale picked shows its own (`bars.css`)."""
    ticks = "".join(
        f'<i class="nt-sc-{scale}" style="left: {25 * k}%">{label}</i>'
        for scale in SCALES
        for k, label in enumerate(TICKS[scale])
    )
    titles = "".join(f'<span class="nt-sc-{scale}">{AXIS_TITLES[scale]}</span>' for scale in SCALES)
    axis = f'<div class="nt-axis"><span></span><span class="nt-ticks">{ticks}</span></div>'
    return f'{axis}<div class="nt-axis nt-axis-title"><span></span><span>{titles}</span></div>'


def _scale_menu() -> str:
    """A radio chip per scale, the first checked; switching is CSS alone, like the stage menu."""
    chips = "".join(
        f'<label class="nt-chip nt-scale-chip"><input type="radio" name="nt-scale" class="nt-scale-pick"'
        f' value="{scale}"{" checked" if k == 0 else ""}><span>{scale}</span></label>'
        for k, scale in enumerate(SCALES)
    )
    return f'<div class="nt-menu nt-scale" role="radiogroup" aria-label="Scale"><span>Scale:</span>{chips}</div>'


def _legend(rows: tuple[ShownRow, ...], shown: tuple[View, ...], ghost: bool) -> str:
    """One entry per bar kind and per mark present; the blue and red entries follow the stage shown."""
    keys = [_key(BASE_NAME, "base")] + ([_key(GHOST_NAME, "ghost")] if ghost else [])
    keys += [_key(view.name, "fin", view.classes) for view in shown]
    for stage in dict.fromkeys(row.removed_by for row in rows if row.cut):
        applied = [view.index for view in shown if view.last or stage in view.done]  # the end's view always
        classes = "nt-v " + " ".join(f"k{index}" for index in applied) + " nt-end"
        keys.append(_key(cut_mark(stage).legend, "cut", classes))
    marks = dict.fromkeys(mark for row in rows for mark in row.marks if mark.symbol != CUT_SYMBOL)
    keys += [_key(mark.legend) for mark in marks]
    return f'<div class="nt-legend">{"".join(keys)}</div>'


def _key(name: str, swatch: str = "", classes: str = "") -> str:
    box = f'<i class="nt-sw nt-sw-{swatch}"></i>' if swatch else ""
    return f'<span class="{f"nt-key {classes}".strip()}">{box}{escape(name)}</span>'


def _stage_rules() -> str:
    """Per slot: while its radio is checked and enabled, hide what belongs to the other slots (none: the end's)."""
    rules = [".nt-bars:not(:has(.nt-pick:checked:enabled)) .nt-v:not(.nt-end) { display: none; }"]
    rules += [
        f".nt-bars:has(.nt-pick.k{k}:checked:enabled) .nt-v:not(.k{k}) {{ display: none; }}" for k in range(END + 1)
    ]
    return "\n".join(rules)


CSS = asset("bars.css", END=END) + _stage_rules() + "\n"  # the chart's rules, then one per stage slot
