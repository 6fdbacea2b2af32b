"""What the explorer shows of each candidate, and the Plotly helpers of its figures.

`shown_rows` is the one place that decides the rows of the next-token bars and the candidate table: the display
rows, then the rows penalties pushed down, each with its marks. A candidate that a stage removed carries that
stage's mark in its label (✂ and a red bar for a truncation cut, ○ for greedy, ⊘ for the constraint, ↓ for
pushed down, ▶ for the token chosen at an inspected step), and a legend names each mark present.

Figures (the timeline) are built from plain dicts without Plotly's per-property validation and without a
template, so building them and the JSON sent to the browser stay small.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

GRID_COLOR = "#e5e7eb"


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


def light_figure(traces: list[dict], layout: dict) -> go.Figure:
    # Validation costs milliseconds per trace on every redraw; these dicts are built to Plotly's schema.
    return go.Figure(data=traces, layout=layout, _validate=False)


def note(text: str) -> dict:
    return {"text": text, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}
