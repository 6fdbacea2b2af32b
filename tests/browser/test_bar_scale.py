"""The bars' scale: log first (low probabilities readable), switched to linear in the page, named on the axis."""

from __future__ import annotations

import math

import pytest
from playwright.sync_api import expect

from tests.browser import ui


def log_position(p: float) -> float:
    """Where the log axis (0.01% to 100%) puts p, as a fraction of the plot area; below its start, at its start."""
    return min(max(1 + math.log10(p) / 4, 0.0), 1.0) if p > 0 else 0.0


def test_the_bars_start_on_a_log_scale_named_on_the_axis_and_switch_to_linear_in_the_page(page):
    chart = ui.bars(page)
    axis = page.locator("#dist-plot .xtitle")
    assert chart["scale"] == "log"
    expect(axis).to_have_text("probability (log scale)")
    base = [row["p_base"] for row in chart["rows"]]
    assert [row["drawnBase"] for row in chart["rows"]] == pytest.approx([log_position(p) for p in base], abs=0.01)
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    ui.pick_scale(page, "linear")
    expect(axis).to_have_text("probability (linear scale)")
    chart = ui.bars(page)
    assert chart["scale"] == "linear"
    assert [row["drawnBase"] for row in chart["rows"]] == pytest.approx(base, abs=0.01)
    assert not [url for url in requests if "/gradio_api/" in url]  # switching asks the server nothing
    ui.step(page)
    page.wait_for_function(ui.TABLE_MATCHES_BARS_JS)
    assert ui.bars(page)["scale"] == "linear"  # the scale picked stays picked at the next token
    expect(axis).to_have_text("probability (linear scale)")


def test_the_arrow_keys_move_through_the_stage_menu_and_the_stage_stays_while_stepping(page):
    assert ui.bars(page)["stage"] == "all"
    chart = page.locator("#dist-plot .nt-plot")
    expect(chart).to_have_attribute("tabindex", "0")  # Tab reaches it
    chart.press("ArrowLeft")  # the stage before the end: temperature under the default knobs
    page.wait_for_function(f"() => ({ui.BARS_JS})().stage === 'temperature'")
    assert "p after temperature" in ui.bars(page)["legend"]
    expect(ui.stage_menu(page)).to_contain_text("after temperature (")
    ui.step(page)
    page.wait_for_function(ui.TABLE_MATCHES_BARS_JS)
    assert ui.bars(page)["stage"] == "temperature"
    chart.press("ArrowRight")
    page.wait_for_function(f"() => ({ui.BARS_JS})().stage === 'all'")
