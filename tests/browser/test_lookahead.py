"""The Look ahead panel in a real browser: grow a small tree, take a path with a click, export it."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from tests.browser import ui

ICICLE_JS = """() => {
  const plot = document.querySelector('#lookahead-plot .js-plotly-plot');
  const trace = plot && plot.data && plot.data[0];
  return trace ? {type: trace.type, ids: Array.from(trace.ids), paths: trace.customdata.map(c => c[0])} : null;
}"""
PATHS_JS = """() => Array.from(document.querySelectorAll('#lookahead-paths [data-testid^="cell-"][data-testid$="-0"]'))
  .map(cell => cell.textContent.trim())"""


def _grow(page, width: int, depth: int) -> list[str]:
    """Open the panel, grow a tree; the table's first-column texts once the icicle is drawn."""
    ui.open_accordion(page, "lookahead-panel")
    ui.set_slider(page, "Width (tokens per step)", width)
    ui.set_slider(page, "Depth (tokens ahead)", depth)
    page.get_by_role("button", name="Grow the tree from the position on screen", exact=True).click()
    expect(page.locator("#lookahead-note")).to_contain_text("continuations from completion position")
    page.wait_for_function(ICICLE_JS)
    expect(page.locator("#lookahead-paths [data-testid=cell-0-0]")).to_be_visible()
    return page.evaluate(PATHS_JS)


def test_a_click_on_a_path_of_the_tree_appends_it_and_the_export_holds_the_tree(page):
    ui.step(page, 1)
    paths = _grow(page, 2, 2)
    icicle = page.evaluate(ICICLE_JS)
    assert icicle["type"] == "icicle" and len(icicle["ids"]) == len(paths) + 1  # the root: the position on screen
    assert 3 <= len(paths) <= 6  # 2 next tokens, up to 2 children each
    row = next(i for i, text in enumerate(paths) if text.startswith("· "))  # a two-token path
    assert paths[row].removeprefix("· ").startswith(icicle["paths"][row + 1])  # its box hovers with the same path
    before = ui.completion_count(page)
    page.locator(f"#lookahead-paths [data-testid=cell-{row}-0]").click()
    ui.expect_completion_count(page, before + 2)
    expect(page.locator("#lookahead-note")).to_contain_text("Out of date")
    ui.open_accordion(page, "session-file")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export session (JSON)", exact=True).click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    tree = data["session"]["lookahead"]["tree"]
    assert (tree["width"], tree["depth"], tree["node_count"]) == (2, 2, len(paths))
    assert data["session"]["lookahead"]["request"]["completion_ids"] == data["session"]["branches"]["main"]["ids"][:1]
