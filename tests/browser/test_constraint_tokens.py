"""Constraints that respect the tokenizer, in a real browser: options keep their leading space, ready-made
patterns allow the space before a value (a visible option, on by default), and the panel shows the tokens
the constraint allows first."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser import ui

SPACE = ui.SPACE_MARK


def first_completion_token(page) -> str:
    return ui.token_texts(page)[ui.prompt_count(page)]


def constrain(page, prompt: str | None = None) -> None:
    """Greedy, the prompt shown (None: the default), the constraint panel open."""
    if prompt is not None:
        ui.set_prompt(page, prompt)
    ui.set_slider(page, "Temperature (0 = greedy)", 0)
    ui.open_accordion(page, "constraint-panel")


def test_options_keep_their_leading_space_and_the_panel_shows_the_allowed_first_tokens(page):
    constrain(page, "The capital of France is")
    ui.choose(page, "Type", "Multiple choice (one option per line)")
    ui.set_code(page, "#constraint-panel", " Paris\n London")
    page.get_by_label("Constrain the output", exact=True).check()
    ui.step(page, 1)
    assert first_completion_token(page) == f"{SPACE}Paris"  # the model's own token, not "Paris" glued on
    start = page.locator("#constraint-start")
    expect(start).to_contain_text("Allowed first tokens")
    expect(start).to_contain_text(f"{SPACE}Paris")
    expect(start).to_contain_text(f"{SPACE}London")


def test_a_ready_made_pattern_allows_the_space_before_the_value_by_default(page):
    constrain(page, "The meeting is on")
    ui.choose(page, "Ready-made pattern (Outlines types)", "date (YYYY-MM-DD)")
    page.get_by_label("Constrain the output", exact=True).check()
    ui.step(page, 1)
    assert first_completion_token(page).startswith(SPACE)  # "The meeting is on␣2024…", not "on2024…"
    option = page.get_by_label("Regex: allow one leading space (the space before a word)", exact=True)
    expect(option).to_be_visible()
    expect(option).to_be_checked()
    start = page.locator("#constraint-start")
    expect(start).to_contain_text(SPACE)
    option.uncheck()  # without it the value must start with a digit
    expect(start).to_contain_text("Allowed first tokens")
    expect(start).not_to_contain_text(SPACE)
