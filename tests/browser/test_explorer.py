"""The explorer in a real browser: stepping, forcing, deleting, knobs, constraints and branches."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ui

PROMPT = "My favourite thing to do on a rainy day is"  # open-ended: several candidates stay in play


def test_page_loads_and_the_model_becomes_ready(page):
    expect(page.locator("#model-status")).to_contain_text(f"Model {ui.MODEL_ID}")
    expect(ui.summary(page)).to_have_text(re.compile(r"^\s*0 completion tokens after a \d+-token prompt"))
    n_prompt = ui.prompt_count(page)
    assert n_prompt > 0
    expect(ui.tokens(page)).to_have_count(n_prompt)
    top_k = int(page.get_by_label("number input for Rows shown (top-k)", exact=True).input_value())
    chart = ui.bars(page)
    rows = len(chart["rows"])  # the top-k, then any rows the penalties pushed down
    assert rows >= top_k and all(0 <= row["p_base"] <= 1 and 0 <= row["blue"] <= 1 for row in chart["rows"])
    expect(ui.candidate_cell(page, rows - 1, 0)).to_be_visible()
    expect(ui.candidate_cell(page, rows, 0)).to_have_count(0)


def test_five_steps_append_five_tokens_and_redraw_the_bars(page):
    ui.set_prompt(page, PROMPT)
    before = ui.bars(page)
    prompt_tokens = ui.token_texts(page)
    ui.step(page, 5)
    expect(ui.summary(page)).to_have_text(re.compile(r"^\s*5 completion tokens?"))
    assert ui.token_texts(page)[: len(prompt_tokens)] == prompt_tokens
    after = ui.wait_for_bars_change(page, before)
    assert ui.values(after, "p_base") != ui.values(before, "p_base")


def test_clicking_a_candidate_forces_it(page):
    ui.set_prompt(page, PROMPT)
    cell = ui.candidate_cell(page, 2, 0)
    candidate = cell.inner_text().strip()
    cell.click()
    ui.expect_completion_count(page, 1)
    last = ui.tokens(page).last
    expect(last).to_have_text(candidate)
    forced_legend = page.locator("#tokens button.legend-item", has_text="forced")
    assert _background(last) == _background(forced_legend)


def _background(locator) -> str:
    return locator.evaluate("element => getComputedStyle(element).backgroundColor")


def test_delete_last_by_button_and_by_clicking_the_last_token(page):
    ui.set_prompt(page, PROMPT)
    ui.step(page, 3)
    texts = ui.token_texts(page)
    page.get_by_role("button", name="Delete last", exact=True).click()
    ui.expect_completion_count(page, 2)
    assert ui.token_texts(page) == texts[:-1]
    ui.tokens(page).last.click()
    ui.expect_completion_count(page, 1)
    assert ui.token_texts(page) == texts[:-2]


def test_temperature_changes_p_final(page):
    ui.set_prompt(page, PROMPT)
    before = ui.bars(page)
    ui.set_slider(page, "Temperature (0 = greedy)", 1.6)
    after = ui.wait_for_bars_change(page, before)
    assert ui.values(after, "p_final") != ui.values(before, "p_final")
    assert ui.values(after, "p_base") == ui.values(before, "p_base")
    expect(page.get_by_label("custom", exact=True)).to_be_checked()


def test_an_invalid_regex_shows_an_error_and_keeps_the_completion(page):
    ui.set_prompt(page, PROMPT)
    ui.step(page, 2)
    texts = ui.token_texts(page)
    ui.open_accordion(page, "constraint-panel")
    ui.set_code(page, "#constraint-panel", "[0-9")
    page.get_by_label("Constrain the output", exact=True).check()
    expect(page.locator("#constraint-problem")).to_contain_text("This regex is not valid")
    page.get_by_role("button", name="Step", exact=True).click()
    expect(ui.error_toast(page, "Step needs a valid constraint").first).to_be_visible()  # the step has finished
    ui.expect_completion_count(page, 2)
    assert ui.token_texts(page) == texts


def test_branch_from_an_earlier_token_then_switch_back_to_main(page):
    ui.set_prompt(page, PROMPT)
    n_prompt = ui.prompt_count(page)
    ui.step(page, 4)
    main_texts = ui.token_texts(page)
    ui.branch_at(page, 1)
    assert ui.token_texts(page)[: n_prompt + 1] == main_texts[: n_prompt + 1]
    assert ui.token_texts(page)[-1] != main_texts[n_prompt + 1]
    ui.open_accordion(page, "branches")
    ui.choose(page, "Branch", "main (4 tokens)")
    ui.expect_completion_count(page, 4)
    assert ui.token_texts(page) == main_texts
