"""The sampler chain in a real browser: the llama.cpp order in the stage table, the chart after any stage, min-p cuts."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser import ui

HEADERS_JS = (
    "() => Array.from(document.querySelectorAll('#stages thead th')).map(th => th.textContent.replace('⋮', '').trim())"
)
LEGEND_JS = "() => Array.from(document.querySelectorAll('#dist-plot .legendtext')).map(e => e.textContent)"


def _llama_cpp_with_min_p(page: Page) -> None:
    before = ui.figure(page)
    page.get_by_label("llama.cpp default", exact=True).check()
    ui.wait_for_figure_change(page, before)
    ui.open_accordion(page, "samplers-panel")
    before = ui.figure(page)
    ui.set_slider(page, "Min-p (0 = off)", 0.3)
    ui.wait_for_figure_change(page, before)


def test_llama_cpp_preset_orders_the_stage_table_and_min_p_cuts_are_named(page):
    _llama_cpp_with_min_p(page)
    ui.open_accordion(page, "stages-panel")
    page.wait_for_function(f"() => ({HEADERS_JS})().some(h => h.startsWith('min-p ('))")
    names = [re.sub(r" \(.*", "", h) for h in page.evaluate(HEADERS_JS)]
    samplers = [n for n in names if n in ("top-k", "top-p", "min-p", "temperature")]
    assert samplers == ["top-k", "top-p", "min-p", "temperature"], names
    assert "top-k (40)" in page.evaluate(HEADERS_JS), page.evaluate(HEADERS_JS)
    expect(page.locator("#stages")).to_contain_text("✂ cut by min-p")
    expect(page.locator("#candidates")).to_contain_text("✂ min-p")
    assert any(e.startswith("✂ cut by min-p") for e in page.evaluate(LEGEND_JS))


def test_choosing_a_stage_redraws_the_blue_bars_after_it(page):
    _llama_cpp_with_min_p(page)
    final = ui.trace_x(ui.figure(page), "p_final")
    page.locator("#dist-plot .updatemenu-header").click()
    page.locator("#dist-plot .updatemenu-dropdown-button", has_text="Showing: after top-k").click()
    after_top_k = ui.wait_for_trace_change(page, "p after top-k", [])
    assert after_top_k != final
    assert not any(e.startswith("✂ cut by min-p") for e in page.evaluate(LEGEND_JS))  # not applied yet
    page.locator("#dist-plot .updatemenu-header").click()
    page.locator("#dist-plot .updatemenu-dropdown-button", has_text="Showing: after all stages").click()
    assert ui.wait_for_trace_change(page, "p_final", []) == final


def test_a_custom_order_is_applied_and_a_bad_one_refused(page):
    ui.open_accordion(page, "samplers-panel")
    ui.choose(page, "Sampler order", "custom (the list below)")
    box = page.locator("#custom-order textarea")
    box.fill("temperature, top_k, temperature")
    box.press("Enter")
    expect(ui.error_toast(page, "names 'temperature' twice")).to_be_visible()
    ui.close_toasts(page)
    ui.open_accordion(page, "stages-panel")
    before = page.evaluate(HEADERS_JS)
    box.fill("xtc, top_p, top_k, min_p, typical_p, top_n_sigma, epsilon_cutoff, eta_cutoff, temperature")
    box.press("Enter")
    page.wait_for_function(f"old => JSON.stringify(({HEADERS_JS})()) !== JSON.stringify(old)", arg=before)
    names = [re.sub(r" \(.*", "", h) for h in page.evaluate(HEADERS_JS)]
    assert names.index("top-p") < names.index("temperature"), names
