"""Regression tests in a real browser: auto-step, the model picker, settings across reloads, Cancel."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ui

SETTLE_MS = 3_000  # long enough for a step already on its way to land


def test_auto_step_shows_the_rate_it_achieves_and_pause_stops_before_the_next_step(page):
    ui.open_accordion(page, "auto-panel")
    ui.set_slider(page, "Auto-step speed (steps per second)", 10)
    page.get_by_role("button", name="▶ Play", exact=True).click()
    expect(ui.summary(page)).to_contain_text(
        re.compile(r"auto-step: [3-9]\d* steps at \d+\.\d per second \(asked 10\)")
    )
    page.get_by_role("button", name="⏸ Pause", exact=True).click()
    expect(page.get_by_role("button", name="▶ Play", exact=True)).to_be_visible()
    at_pause = ui.completion_count(page)
    page.wait_for_timeout(SETTLE_MS)
    settled = ui.completion_count(page)
    assert settled <= at_pause + 1  # at most the step already running when Pause was pressed
    page.wait_for_timeout(SETTLE_MS)
    assert ui.completion_count(page) == settled


def test_a_failed_model_load_says_why_and_leaves_no_trace_after_a_reload(page, app_url):
    ui.open_accordion(page, "model-panel")
    box = page.get_by_label("Model: pick one, or type a hub id or local folder", exact=True)
    box.fill("/no/such/model-folder")
    box.press("Enter")
    page.get_by_role("button", name="Load model", exact=True).click()
    expect(ui.toasts(page).filter(has_text="/no/such/model-folder").first).to_be_visible()
    expect(page.locator("#model-status")).to_contain_text(f"Model {ui.MODEL_ID}")
    expect(page.locator("#model-status")).not_to_contain_text("Error")
    expect(box).to_have_value(ui.MODEL_ID)
    page.reload()
    ui.open_app(page, app_url)
    expect(page.get_by_label("Model: pick one, or type a hub id or local folder", exact=True)).to_have_value(
        ui.MODEL_ID
    )


def test_settings_keep_the_aggregation_and_the_open_panels_across_a_reload(page, app_url):
    ui.open_accordion(page, "attribution-panel")
    page.get_by_label("Signed sum", exact=True).check()
    ui.open_accordion(page, "lens-panel")
    page.wait_for_timeout(SETTLE_MS)  # the settings are saved in the browser after each change
    page.reload()
    ui.open_app(page, app_url)
    expect(page.get_by_label("Signed sum", exact=True)).to_be_checked()
    expect(page.locator("#lens-panel > [data-testid=accordion-content]")).to_be_visible()
    expect(page.locator("#constraint-panel > [data-testid=accordion-content]")).to_be_hidden()


def test_cancel_stops_integrated_gradients_which_reports_real_progress(page):
    ui.step(page, 2)
    ui.open_accordion(page, "attribution-panel")
    ui.choose(page, "Method", "Integrated gradients (slow)")
    ui.set_slider(page, "Integrated-gradients steps", 64)
    cancel = page.get_by_role("button", name="Cancel", exact=True)
    expect(cancel).to_have_count(0)  # no Cancel on screen while nothing runs
    page.get_by_role("button", name=re.compile(r"^Explain this token")).click()
    expect(page.get_by_text(re.compile(r"[1-9]\d* of \d+ passes")).first).to_be_visible()
    cancel.click()
    expect(cancel).to_have_count(0)  # gone again once cancelled
    ui.step(page, 1)  # served at once, not after the cancelled computation
    page.wait_for_timeout(SETTLE_MS)
    expect(page.locator("#attribution .attr-cell")).to_have_count(0)  # the cancelled result never arrives
