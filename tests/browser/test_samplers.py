"""The sampler chain in a real browser: the llama.cpp order in the stage table, the chart after any stage, min-p cuts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import ui
from tests.browser.test_bar_scale import log_position
from ui.draw import bars

HEADERS_JS = (
    "() => Array.from(document.querySelectorAll('#stages thead th')).map(th => th.textContent.replace('⋮', '').trim())"
)


def _llama_cpp_with_min_p(page: Page) -> None:
    before = ui.bars(page)
    page.get_by_label("llama.cpp default", exact=True).check()
    ui.wait_for_bars_change(page, before)
    ui.open_accordion(page, "samplers-panel")
    before = ui.bars(page)
    ui.set_slider(page, "Min-p (0 = off)", 0.3)
    ui.wait_for_bars_change(page, before)


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
    assert any(e.startswith("✂ cut by min-p") for e in ui.bars(page)["legend"])


def test_choosing_a_stage_redraws_the_blue_bars_after_it_in_the_browser_and_it_stays_while_stepping(page):
    _llama_cpp_with_min_p(page)
    final = ui.bars(page)
    assert final["stage"] == "all" and bars.FINAL_NAME in final["legend"]
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    ui.pick_stage(page, "after top-k (")
    ui.wait_for_values_change(page, "blue", ui.values(final, "blue"))
    assert not [url for url in requests if "/gradio_api/" in url]  # switching stages asks the server nothing
    chart = ui.bars(page)
    _expect_after_top_k(page, chart)
    ui.step(page)
    chart = ui.wait_for_bars_change(page, chart)
    _expect_after_top_k(page, chart)  # the stage picked stays picked at the next token
    ui.pick_stage(page, "after all stages")
    assert ui.wait_for_values_change(page, "blue", ui.values(chart, "blue")) == [
        0.0 if row["cut"] else row["p_final"] for row in chart["rows"]
    ]
    assert bars.FINAL_NAME in ui.bars(page)["legend"]


def _expect_after_top_k(page: Page, chart: dict) -> None:
    """The blue bars as drawn are the probabilities after top-k, and nothing min-p (a later stage) cut shows."""
    assert chart["stage"] == "top_k" and "p after top-k" in chart["legend"]
    assert not any(e.startswith("✂ cut by min-p") for e in chart["legend"])
    assert not any(row["drawnRed"] for row in chart["rows"])
    at = log_position if chart["scale"] == "log" else float  # where the scale picked draws a probability
    assert [row["drawnBlue"] for row in chart["rows"]] == pytest.approx(
        [at(p) for p in ui.values(chart, "blue")], abs=0.01
    )
    expect(ui.stage_menu(page)).to_contain_text("after top-k (")


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
