"""Answers to the question on screen, in a real browser: Explain's target and foil, and the branch comparison."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser import ui

EXPLAIN = re.compile(r"^Explain this token")
TARGET_PICKER = re.compile(r"^Explain: the token at the position")
FOIL_PICKER = re.compile(r"^Why this token rather than")
BARE_ID = re.compile(r"^\s*\d+\s*$")


def _pick(page: Page, label: re.Pattern, nth: int = 1) -> str:
    """Open a candidate picker and pick its `nth` option; the option's text."""
    page.get_by_label(label).click()
    option = page.get_by_role("option").nth(nth)
    expect(option).to_be_visible()
    text = option.inner_text().strip()
    option.click()
    return text


def _picker(page: Page, elem_id: str):
    return page.locator(f"#{elem_id} input")


def _open_attribution(page: Page, method: str = "Saliency (gradient)") -> None:
    ui.open_accordion(page, "attribution-panel")
    ui.choose(page, "Method", method)


def test_a_pick_resets_when_the_position_changes_and_the_result_names_its_position(page):
    ui.step(page, 3)
    _open_attribution(page)
    n_prompt = ui.prompt_count(page)
    ui.tokens(page).nth(n_prompt).click()  # inspect token 1, pick another candidate there and a foil
    expect(ui.summary(page)).to_contain_text("Token 1")
    candidate = _pick(page, TARGET_PICKER).rsplit(" (", 1)[0]
    _pick(page, FOIL_PICKER, 2)
    page.get_by_role("button", name="Back to the end of the completion").click()
    last = ui.token_texts(page)[-1]
    expect(_picker(page, "explain-token")).to_have_value(f"{last} (the token there)")
    expect(_picker(page, "foil")).to_have_value(f"(none: why {last} at all)")
    page.get_by_role("button", name=EXPLAIN).click()
    heatmap = page.locator("#attribution")
    expect(heatmap.locator(".attr-heading")).to_have_text(f"Token 3 of the completion: {last}")
    expect(heatmap.locator(".attr-target")).to_have_text(f"→ {last}")
    assert candidate != last


def test_a_reloaded_page_shows_token_text_in_the_pickers_never_an_id(page, app_url):
    _open_attribution(page)
    _pick(page, TARGET_PICKER)
    _pick(page, FOIL_PICKER, 2)
    page.wait_for_timeout(3_000)  # the settings are saved in the browser after each change
    page.reload()
    ui.open_app(page, app_url)
    top = ui.bars(page)["rows"][0]["label"].strip()
    expect(_picker(page, "explain-token")).to_have_value(f"{top} (the most likely next token)")
    expect(_picker(page, "foil")).to_have_value(f"(none: why {top} at all)")
    for elem_id in ("explain-token", "foil"):
        assert not BARE_ID.match(_picker(page, elem_id).input_value())


def test_attention_disables_the_foil_picker_and_says_why(page):
    ui.step(page, 1)
    _open_attribution(page, "Saliency (gradient)")
    expect(_picker(page, "foil")).to_be_enabled()
    _pick(page, FOIL_PICKER)
    ui.choose(page, "Method", "Attention (fast)")
    expect(_picker(page, "foil")).to_be_disabled()
    expect(page.locator("#foil")).to_contain_text("no foil with this method: attention does not depend on the target")
    page.get_by_role("button", name=EXPLAIN).click()
    expect(page.locator("#attribution .attr-heading")).to_have_text(re.compile(r"^Token 1 of the completion: \S+$"))
    expect(ui.toasts(page)).to_have_count(0)  # nothing refused in API words


def _compare(page: Page, top_p: float | None = None):
    """Four steps, a branch at token 2, then Compare it with main (under `top_p` if given); the comparison."""
    ui.step(page, 4)
    ui.branch_at(page, 1)
    ui.open_accordion(page, "branches")
    ui.choose(page, "Compare the current branch with", "main (4 tokens)")
    if top_p is not None:
        ui.set_slider(page, "Top-p", top_p)
    page.get_by_role("button", name="Compare", exact=True).click()
    compare = page.locator("#compare")
    expect(compare).to_contain_text("Shared prefix: 1 token(s)")
    return compare


def test_the_comparison_goes_out_of_date_when_a_knob_changes(page):
    compare = _compare(page)
    ui.set_slider(page, "Temperature (0 = greedy)", 1.2)
    expect(compare).to_contain_text("Out of date")
    expect(compare.locator("table")).to_have_count(0)  # no numbers of the old settings


def test_an_infinite_kl_is_explained_on_its_own_row_under_its_step(page):
    compare = _compare(page, top_p=0.3)  # small nuclei: two different contexts keep different tokens
    why = compare.locator("tr.kl-why")
    expect(why.first).to_contain_text(re.compile(r"^Step \d, KL p_final: infinite: .* keeps: \S+ \(\d+\.\d%\)"))
    for row in range(why.count()):
        step = re.match(r"Step (\d)", why.nth(row).inner_text()).group(1)
        above = why.nth(row).locator("xpath=preceding-sibling::tr[1]")
        expect(above.locator("td").first).to_have_text(re.compile(rf"^{step}\b"))
        expect(above.locator("td").nth(6)).to_have_text("∞")
    expect(compare.locator("p", has_text="KL p_final:")).to_have_count(0)  # no notes that name no step
