"""Read the next-token bars' figure as a person sees it under one button of the stage menu (no browser).

A button is pressed as Plotly presses it: its `visible` list over the traces. Hidden traces are not seen, and a
trace's legend entry shows while it is visible. Texts are unescaped as Plotly shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import unescape

from ui.draw import bars


@dataclass(frozen=True)
class Seen:
    """What the chart shows under one view: per row its label, bars and note; the legend; the stage menu."""

    labels: list[str]
    ids: list[int]
    base: list[float]
    ghost: list[float]
    blue: list[float | None]
    red: list[float | None]
    notes: list[str]
    legend: list[str]
    chips: list[str]
    checked: list[str]
    chosen: list[str]


def menu(figure: dict, name: str) -> dict | None:
    return next((m for m in figure["layout"].get("updatemenus", ()) if m["name"] == name), None)


def visible(figure: dict, stage: str | None) -> list[bool]:
    """Which traces show once the stage menu's button `stage` is pressed ("all": after all stages); at first
    (None), each trace's own `visible`."""
    stages = menu(figure, "stage")
    if stage is None or stages is None:
        assert stage in (None, bars.END), f"no stage menu to pick {stage!r} in"
        return [trace.get("visible", True) is True for trace in figure["data"]]
    button = next(b for b in stages["buttons"] if b["name"] == stage)
    return list(button["args"][0]["visible"])


def seen(value: dict, stage: str | None = None) -> Seen:
    """What shows in the bars' value (`bars.bars_value`) at first, or once the menu's button `stage` is pressed."""
    figure = value["figure"]
    shown = [t for t, on in zip(figure["data"], visible(figure, stage), strict=True) if on]
    by_name = {trace["name"]: trace for trace in figure["data"]}
    ticks = figure["layout"].get("yaxis", {}).get("ticktext", [])
    labels = [unescape(text.removeprefix("<b>").removesuffix("</b>")) for text in ticks]
    final = [t for t in shown if t.get("offsetgroup") == "final"]
    blue = [t for t in final if t["marker"]["color"] == bars.FINAL_COLOR]
    red = [t for t in final if t["marker"]["color"] == bars.CUT_COLOR]
    assert len(blue) <= 1, f"{len(blue)} blue traces shown"
    stages = menu(figure, "stage")
    return Seen(
        labels=labels,
        ids=list(figure["layout"].get("meta", {}).get("token_ids", [])),
        base=list(by_name[bars.BASE_NAME]["x"]) if bars.BASE_NAME in by_name else [],
        ghost=list(by_name[bars.GHOST_NAME]["x"]) if bars.GHOST_NAME in by_name else [],
        blue=list(blue[0]["x"]) if blue else [],
        red=[_one([t["x"][k] for t in red]) for k in range(len(labels))],
        notes=[unescape(_one([t["text"][k] for t in final if t["text"][k]]) or "") for k in range(len(labels))],
        legend=[unescape(t["name"]) for t in shown if t.get("showlegend", True)],
        chips=[b["label"].removeprefix("after ") for b in stages["buttons"]] if stages else [],
        checked=[stages["buttons"][stages["active"]]["name"]] if stages else [],
        chosen=[label for label, tick in zip(labels, ticks, strict=True) if tick.startswith("<b>")],
    )


def _one(values: list):
    """The one value that is not None in a row's slot (two bars in one slot would overlap)."""
    present = [v for v in values if v is not None]
    assert len(present) <= 1, f"{len(present)} bars in one slot"
    return present[0] if present else None
