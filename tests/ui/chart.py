"""Read the next-token bars' HTML as a person sees it under one stage of the menu (a parser, no browser)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"input", "br", "img", "hr", "meta", "link"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def all(self, cls: str) -> list[Node]:
        """Every element below this one with the class `cls`, in document order."""
        found = []
        for child in self.children:
            found += [child] if cls in child.classes else []
            found += child.all(cls)
        return found

    def content(self) -> str:
        return self.text + "".join(child.content() for child in self.children)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack = [Node("root", {})]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(Node("#text", {}, text=data))


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    assert len(builder.stack) == 1, "unclosed elements"
    return builder.stack[0]


def width(node: Node) -> float:
    """A bar's width as a probability (its CSS width is a percentage of the bar area)."""
    match = re.match(r"width: ([\d.]+)%; --nt-log: [\d.]+%$", node.attrs["style"])
    assert match, node.attrs
    return float(match.group(1)) / 100


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


def _shown(node: Node, view: str | None) -> bool:
    """Stage-dependent elements show under their views' slot class; with none given, under the end's."""
    if "nt-v" not in node.classes:
        return True
    return "nt-end" in node.classes if view is None else view in node.classes


def seen(html: str, stage: str | None = None) -> Seen:
    """What shows once the menu's radio for `stage` is picked ("all": after all stages); by default, at first."""
    root = parse(html)
    rows = root.all("nt-row")
    picks = {pick.attrs["value"]: pick for pick in root.all("nt-pick") if "disabled" not in pick.attrs}
    view = None if stage is None else next(c for c in picks[stage].classes if c.startswith("k"))
    stage_chips = [c for c in root.all("nt-chip") if not {"nt-absent", "nt-scale-chip"} & set(c.classes)]
    chips = sorted(stage_chips, key=_order)

    def one(row: Node, cls: str) -> Node | None:
        shown = [n for n in row.all(cls) if all(_shown(a, view) for a in _ancestors(row, n))]
        assert len(shown) <= 1, f"{len(shown)} visible {cls}"
        return shown[0] if shown else None

    def bar(row: Node, cls: str) -> float | None:
        node = one(row, cls)
        return None if node is None else width(node)

    return Seen(
        labels=[row.all("nt-label")[0].content() for row in rows],
        ids=[int(row.attrs["data-token-id"]) for row in rows],
        base=[width(row.all("nt-base")[0]) for row in rows],
        ghost=[width(n) for row in rows for n in row.all("nt-ghost")],
        blue=[bar(row, "nt-fin") for row in rows],
        red=[bar(row, "nt-cut") for row in rows],
        notes=[one(row, "nt-val").content() for row in rows],
        legend=[key.content() for key in root.all("nt-key") if _shown(key, view)],
        chips=[chip.content() for chip in chips],
        checked=[value for value, pick in picks.items() if "checked" in pick.attrs],
        chosen=[row.all("nt-label")[0].content() for row in rows if "nt-chosen" in row.classes],
    )


def _order(chip: Node) -> int:
    return int(chip.attrs["style"].removeprefix("order: "))


def _ancestors(top: Node, target: Node) -> list[Node]:
    """The path from `top` down to `target`, both included."""
    if top is target:
        return [top]
    for child in top.children:
        path = _ancestors(child, target)
        if path:
            return [top, *path]
    return []
