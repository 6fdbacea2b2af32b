"""Long prompts and small screens, and the status line's wording, in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ui

LONG_PROMPT = " ".join(["The quick brown fox jumps over the lazy dog."] * 556)  # about 5,000 words
# each element's box in page coordinates
BOXES_JS = """ids => Object.fromEntries(ids.map(id => {
  const r = document.getElementById(id).getBoundingClientRect();
  return [id, {top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right}];
}))"""
# the last token's box lies inside the token view's visible (scrolled) area
NEWEST_SHOWN_JS = """() => {
  const field = document.querySelector('#tokens .textfield');
  const all = field.querySelectorAll('.token');
  const last = all[all.length - 1].getBoundingClientRect(), view = field.getBoundingClientRect();
  return last.bottom <= view.bottom + 1 && last.top >= view.top - 1;
}"""


def boxes(page) -> dict:
    return page.evaluate(BOXES_JS, ["step-button", "tokens", "dist-plot", "candidates"])


def test_a_long_prompt_scrolls_in_the_token_view_and_step_bars_and_table_stay_within_reach(page):
    ui.set_prompt(page, LONG_PROMPT)
    ui.step(page)
    box, screen = boxes(page), page.viewport_size["height"]
    assert box["tokens"]["bottom"] - box["tokens"]["top"] < screen / 3, box
    assert max(box["dist-plot"]["bottom"], box["candidates"]["bottom"]) - box["step-button"]["top"] <= screen, box
    assert page.evaluate("document.documentElement.scrollHeight") < 3 * screen
    page.wait_for_function(NEWEST_SHOWN_JS)  # the token just appended is in view without scrolling


def test_at_800_px_wide_the_bars_come_before_the_table_within_one_screen_of_step(page):
    page.set_viewport_size({"width": 800, "height": 1000})
    ui.step(page)
    box = boxes(page)
    bars, table = box["dist-plot"], box["candidates"]
    beside = abs(bars["top"] - table["top"]) < 2 and bars["right"] <= table["left"]
    assert beside or bars["bottom"] <= table["top"], box  # bars first: to the left, or above
    assert max(bars["bottom"], table["bottom"]) - box["step-button"]["top"] <= 1000, box


def test_the_status_line_counts_in_the_singular_and_names_a_new_branch_once(page):
    ui.step(page, 2)
    ui.branch_at(page, 0)
    line = ui.summary(page)
    expect(line).to_have_text(re.compile(r"^\s*1 completion token after a \d+-token prompt"))
    expect(line).to_contain_text("branch 2")
    assert "branch branch" not in line.inner_text()
    assert "branch branch" not in " ".join(ui.toasts(page).all_inner_texts())


def test_a_finished_completion_says_its_finish_reason_once_when_stepped(page):
    stops = page.get_by_label("Stop sequences (one per line)", exact=True)
    stops.fill("zebra")
    stops.blur()
    box = page.get_by_label("Force text", exact=True)
    box.fill(" zebra")
    page.get_by_role("button", name="Force", exact=True).click()
    expect(ui.summary(page)).to_contain_text("finished: stop sequence")
    page.get_by_role("button", name="Step", exact=True).click()
    expect(ui.summary(page)).to_contain_text("nothing was appended")
    assert ui.summary(page).inner_text().count("stop sequence") == 1, ui.summary(page).inner_text()


def test_a_refused_custom_order_is_told_in_the_words_of_the_screen(page):
    ui.open_accordion(page, "samplers-panel")
    ui.choose(page, "Sampler order", "custom (the list below)")
    box = page.locator("#custom-order textarea")
    box.fill("temperature, nonsense")
    box.press("Enter")
    toast = ui.error_toast(page, "the custom order")
    expect(toast).to_contain_text("nonsense")
    assert "sampler_order" not in toast.inner_text()
