"""Attribution a user can check, in a real browser: a foil from the candidates, the faithfulness line, words."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser import ui

FOIL_LABEL = re.compile(r"^Why this token rather than")
EXPLAIN = re.compile(r"^Explain this token")


def _pick_a_foil(page: Page, label=FOIL_LABEL) -> str:
    """Open a candidate picker (filled from the candidates there) and pick the first candidate; its label."""
    page.get_by_label(label).click()
    options = page.get_by_role("option")
    expect(options.nth(1)).to_be_visible()
    label = options.nth(1).inner_text().strip()
    options.nth(1).click()
    return label


def test_explain_with_a_foil_says_how_faithful_it_is_then_per_word(page, app_url):
    ui.set_prompt(page, "Photosynthesis in chloroplasts is")
    ui.step(page, 2)
    ui.open_accordion(page, "attribution-panel")
    ui.choose(page, "Method", "Saliency (gradient)")
    foil = _pick_a_foil(page)
    page.get_by_role("button", name=EXPLAIN).click()
    heatmap = page.locator("#attribution")
    expect(heatmap.locator(".attr-legend-text")).to_contain_text(f"rather than {foil.rsplit(' (', 1)[0]}")
    expect(heatmap.locator(".attr-faith")).to_contain_text(re.compile(r"top 20 % of tokens .* random tokens: .*chance"))
    tokens = heatmap.locator(".attr-cell").count()

    page.get_by_label("Per word", exact=True).check()
    expect(page.locator("#attribution-legend")).to_contain_text("Out of date")
    page.get_by_role("button", name=EXPLAIN).click()
    expect(heatmap.locator(".attr-word").first).to_be_visible()
    assert 0 < heatmap.locator(".attr-word").count() < tokens
    expect(heatmap.locator(".attr-faith")).to_contain_text("Faithfulness")

    page.wait_for_timeout(3_000)  # the settings are saved in the browser after each change
    page.reload()
    ui.open_app(page, app_url)
    expect(page.get_by_label("Per word", exact=True)).to_be_checked()


def test_two_methods_on_one_token_are_compared(page):
    ui.step(page, 3)
    ui.open_accordion(page, "attribution-panel")
    ui.choose(page, "Method", "Saliency (gradient)")
    page.get_by_role("button", name=EXPLAIN).click()
    expect(page.locator("#attribution .attr-faith")).to_be_visible()
    ui.choose(page, "Method", "Ablation: remove each token (slow)")
    page.get_by_role("button", name=EXPLAIN).click()
    expect(page.locator("#attribution-legend")).to_contain_text(re.compile(r"Spearman ρ between ablation and saliency"))


def test_hovering_says_how_faithful_it_is_and_explains_an_inspected_tokens_candidate_there(page):
    ui.step(page, 3)
    ui.open_accordion(page, "attribution-panel")
    ui.choose(page, "Method", "Saliency (gradient)")
    page.locator("#attribution-hover .attr-tokens .comp").last.hover()
    expect(page.locator("#attribution-hover .attr-faith")).to_contain_text("Faithfulness: top 20 % of tokens")
    ui.tokens(page).nth(ui.prompt_count(page)).click()  # inspect the first completion token
    expect(page.locator("#attribution-hover .attr-cands")).to_contain_text("Candidates at token 1")
    page.locator("#attribution-hover [data-cand]").nth(1).hover()
    target = page.locator("#attribution-hover .attr-tokens .target")
    expect(target).to_have_count(1)  # the inspected position is outlined: its candidate is explained there
    expect(page.locator("#attribution-hover .attr-faith")).to_be_visible()


def test_explain_a_candidate_of_an_inspected_token_at_its_position(page):
    ui.step(page, 3)
    ui.open_accordion(page, "attribution-panel")
    ui.choose(page, "Method", "Saliency (gradient)")
    ui.tokens(page).nth(ui.prompt_count(page)).click()  # inspect the first completion token
    expect(ui.summary(page)).to_contain_text("Token 1")
    candidate = _pick_a_foil(page, re.compile(r"^Explain: the token at the position"))
    page.get_by_role("button", name=EXPLAIN).click()
    heatmap = page.locator("#attribution")
    expect(heatmap.locator(".attr-target")).to_have_text(f"→ {candidate.rsplit(' (', 1)[0]}")
    expect(heatmap.locator(".attr-cell")).to_have_count(ui.prompt_count(page))  # the context before token 1
