"""Regression tests in a real browser: each checks a behaviour the explorer once got wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser import ui

PENALTY_PROMPT = "The cat sat on the mat. The cat sat on the"
OPEN_PROMPT = "My favourite thing to do on a rainy day is"


def test_export_holds_what_the_screen_shows_on_the_first_click(page):
    ui.step(page, 2)
    ui.open_accordion(page, "session-file")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export session (JSON)", exact=True).click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert len(data["session"]["branches"]["main"]["ids"]) == 2
    ui.step(page, 1)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export session (JSON)", exact=True).click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert len(data["session"]["branches"]["main"]["ids"]) == 3


def test_tokens_a_penalty_pushes_down_stay_in_the_table(page):
    ui.set_prompt(page, PENALTY_PROMPT)
    for label, value in (("Temperature (0 = greedy)", 1), ("Top-p", 1), ("Repetition penalty", 1.5)):
        before = ui.bars(page)
        ui.set_slider(page, label, value)
        ui.wait_for_bars_change(page, before)
    table = page.locator("#candidates")
    expect(table).to_contain_text("↓")  # marked as pushed down by the penalty
    expect(table).to_contain_text("␣mat")
    expect(table).to_contain_text("␣cat")


def test_arrow_keys_on_a_slider_switch_to_custom_and_redraw(page):
    ui.set_prompt(page, OPEN_PROMPT)  # several candidates in the nucleus, so temperature moves p_final
    before = ui.bars(page)
    page.get_by_label("range slider for Temperature (0 = greedy)").focus()
    page.keyboard.press("ArrowRight")  # one press: the redraw must use the value it set
    expect(page.get_by_label("custom", exact=True)).to_be_checked()
    ui.wait_for_values_change(page, "p_final", ui.values(before, "p_final"))


def test_each_constraint_type_keeps_its_own_text(page):
    ui.open_accordion(page, "constraint-panel")
    code = page.locator("#constraint-panel .cm-content")
    ui.set_code(page, "#constraint-panel", "[a-c]+x")
    ui.choose(page, "Type", "JSON schema")
    expect(code).not_to_contain_text("[a-c]+x")
    ui.choose(page, "Type", "Regex")
    expect(code).to_have_text("[a-c]+x")


def test_the_force_box_is_emptied_after_a_successful_force(page):
    box = page.get_by_label("Force text", exact=True)
    box.fill(" and then")
    page.get_by_role("button", name="Force", exact=True).click()
    expect(ui.summary(page)).to_have_text(re.compile(r"^\s*[1-9]\d* completion tokens?"))
    expect(box).to_have_value("")


def test_a_step_after_the_completion_finished_says_why(page):
    ui.open_accordion(page, "constraint-panel")
    ui.choose(page, "Type", "Multiple choice (one option per line)")
    ui.set_code(page, "#constraint-panel", "yes")
    page.get_by_label("Constrain the output", exact=True).check()
    ui.step(page, 1)
    expect(ui.summary(page)).to_contain_text("finished")
    tokens = ui.token_texts(page)
    page.get_by_role("button", name="Step", exact=True).click()
    expect(ui.toasts(page).filter(has_text="nothing was appended").first).to_be_visible()
    assert ui.token_texts(page) == tokens
