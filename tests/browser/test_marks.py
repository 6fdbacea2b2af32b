"""What the next-token bars' marks and legend and the attribution colours look like in a real browser.

The bars are read as drawn (row labels, visible legend entries and bar notes, the drawn width of the red
bars), so these tests see what a person sees.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser import ui

PAINTED_JS = """method => {
  const hover = Array.from(document.querySelectorAll('#attribution-hover .attr-tokens span'));
  const explained = Array.from(document.querySelectorAll('#attribution .attr-cell'));
  const legend = sel => (document.querySelector(sel) || {}).textContent || '';
  const hoverLegend = legend('#attribution-hover .attr-legend-text');
  const explainLegend = legend('#attribution .attr-legend-text');
  if (!explained.length || !hoverLegend.startsWith(method + ' for') || !explainLegend.startsWith(method + ' for')) {
    return null;
  }
  const bg = e => getComputedStyle(e).backgroundColor;
  return {hover: hover.slice(0, explained.length).map(bg), explained: explained.map(bg), hoverLegend, explainLegend};
}"""


def _redrawn_after(page: Page, action) -> dict:
    """Labels, legend, bar notes and the number of red bars drawn with a length, once the bars changed."""
    before = ui.bars(page)
    action()
    chart = ui.wait_for_bars_change(page, before)
    rows = chart["rows"]
    return {
        "ticks": [row["label"] for row in rows],
        "legend": chart["legend"],
        "barTexts": [row["note"] for row in rows],
        "redBars": sum(row["drawnRed"] > 0 for row in rows),
    }


def test_greedy_preset_marks_greedy_and_never_says_top_p(page):
    drawn = _redrawn_after(page, lambda: page.get_by_label("greedy", exact=True).check())
    assert any(tick.startswith("○") for tick in drawn["ticks"]), drawn["ticks"]
    assert any(entry.startswith("○ not the greedy choice") for entry in drawn["legend"]), drawn["legend"]
    everything = [*drawn["ticks"], *drawn["legend"], *drawn["barTexts"]]
    assert not [text for text in everything if "top-p" in text or "✂" in text]
    assert drawn["redBars"] == 0
    expect(page.locator("#candidates")).not_to_contain_text("top-p")
    expect(page.locator("#candidates")).not_to_contain_text("✂")


def test_top_p_cut_draws_red_bars_and_their_legend(page):
    # on this prompt 0.99 keeps six candidates where the default 0.8 keeps one: the blue bars change, the rest are cut
    ui.set_prompt(page, "The capital of France is")
    drawn = _redrawn_after(page, lambda: ui.set_slider(page, "Top-p", 0.99))
    cut_ticks = [tick for tick in drawn["ticks"] if "✂" in tick]
    assert cut_ticks, drawn["ticks"]
    assert drawn["redBars"] == len(cut_ticks)  # one visible red bar per cut candidate
    assert any(entry.startswith("✂ cut by top-p") for entry in drawn["legend"]), drawn["legend"]
    assert not any(entry.startswith("○") for entry in drawn["legend"])


def _explain_and_hover(page: Page, method: str) -> dict:
    """Hover the last completion token and explain it (the same target); both panels' colours once drawn."""
    page.locator("#attribution-hover .attr-tokens .comp").last.hover()
    page.get_by_role("button", name=re.compile(r"^Explain this token")).click()
    page.wait_for_function(PAINTED_JS, arg=method, timeout=ui.EVENT_TIMEOUT_MS)
    # the hover may still show the previous method's answer for a moment: wait until it is this method's (its
    # legend), and fail if the two never agree
    page.wait_for_function(
        f"m => {{ const p = ({PAINTED_JS})(m); return p && JSON.stringify(p.hover) === JSON.stringify(p.explained); }}",
        arg=method, timeout=ui.EVENT_TIMEOUT_MS,
    )  # fmt: skip
    return page.evaluate(PAINTED_JS, method)


def test_hover_and_explain_panels_paint_the_same_colours(page):
    ui.step(page, 3)
    ui.open_accordion(page, "attribution-panel")
    unsigned = _explain_and_hover(page, "attention")  # attention: never negative, one hue
    assert unsigned["hover"] == unsigned["explained"]
    assert len({re.sub(r"[\d.]+\)$", ")", c) for c in unsigned["explained"]}) == 1
    assert "never negative" in unsigned["hoverLegend"] and "never negative" in unsigned["explainLegend"]

    ui.choose(page, "Method", "Saliency (gradient)")
    page.get_by_label("Signed sum", exact=True).check()
    expect(page.locator("#attribution-hover .attr")).to_have_attribute("data-method", "saliency")
    page.mouse.move(0, 0)
    signed = _explain_and_hover(page, "saliency")
    assert signed["hover"] == signed["explained"]
    assert "red = pushes against" in signed["hoverLegend"] and "red = pushes against" in signed["explainLegend"]
