"""Step's quick path in the browser: the next position drawn first agrees with the full answer, or is taken back."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser import ui

PROMPT = "My favourite thing to do on a rainy day is"
PROVISIONAL_JS = "() => document.querySelector('#dist-plot .nt-plot')?.dataset.provisional === '1'"
SPECULATED_JS = "() => window.ntBars.speculated"
STEP_JS = """() => {
  const carried = document.querySelector('#dist-plot .nt-plot[data-step]');
  return carried ? JSON.parse(carried.dataset.step).completion_ids.length : null;
}"""


def click_step(page):
    page.get_by_role("button", name="Step", exact=True).click()


def test_the_quick_bars_are_the_bars_of_the_token_the_step_appends(page):
    seed = page.get_by_label("Seed (blank = random)", exact=True)
    seed.fill("")  # fresh draws: the bars shown first agree with the appended token only if it is the same step
    seed.blur()
    ui.set_prompt(page, PROMPT)  # its refresh runs after the seed's
    old = ui.values(ui.bars(page), "p_final")
    ui.set_slider(page, "Temperature (0 = greedy)", 1.5)  # a wide draw: a second, independent draw rarely agrees
    ui.wait_for_values_change(page, "p_final", old)
    for n in range(1, 4):
        before, speculated = ui.bars(page), page.evaluate(SPECULATED_JS)
        click_step(page)
        page.wait_for_function(ui.BARS_CHANGED_JS, arg=before)
        first = ui.bars(page)["rows"]  # the quick path's bars (or already the event's)
        ui.expect_completion_count(page, n)
        page.wait_for_function(f"() => !({PROVISIONAL_JS})()")
        assert page.evaluate(SPECULATED_JS) == speculated + 1
        assert ui.bars(page)["rows"] == first
        assert page.evaluate(STEP_JS) == n  # the bars carry the request of the next step


def test_bars_shown_early_are_taken_back_when_the_step_is_refused(page):
    ui.set_prompt(page, PROMPT)
    ui.step(page, 1)
    seed = page.get_by_label("Seed (blank = random)", exact=True)
    seed.fill("x")  # its refresh is refused: the bars keep the last valid request
    seed.blur()
    expect(ui.error_toast(page, "seed").first).to_contain_text("not accepted")
    ui.close_toasts(page)
    before, speculated = ui.bars(page), page.evaluate(SPECULATED_JS)
    shown = (ui.token_texts(page), ui.summary(page).inner_text(), ui.candidate_cell(page, 0, 1).inner_text())
    click_step(page)  # the bars still carry the last valid request: the quick path steps, the event refuses
    expect(ui.error_toast(page, "seed").first).to_contain_text("not accepted")
    page.wait_for_function(f"() => !({PROVISIONAL_JS})()")
    assert page.evaluate(SPECULATED_JS) == speculated + 1
    ui.expect_completion_count(page, 1)
    assert ui.bars(page) == before  # and the token view, the status line and the table: all as before the click
    assert (ui.token_texts(page), ui.summary(page).inner_text(), ui.candidate_cell(page, 0, 1).inner_text()) == shown


def test_a_step_right_after_typing_a_seed_leaves_every_panel_at_the_same_token(page):
    ui.set_prompt(page, PROMPT)
    seed = page.get_by_label("Seed (blank = random)", exact=True)
    for n in range(1, 4):
        seed.fill(str(100 + n))  # leaving the box (the click) refreshes the view just before the step
        click_step(page)
        ui.expect_completion_count(page, n)
        page.wait_for_function(f"() => !({PROVISIONAL_JS})()")
        page.wait_for_function(ui.TABLE_MATCHES_BARS_JS)
        assert page.evaluate(STEP_JS) == n
