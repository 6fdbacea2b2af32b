"""The bars' scale: log first (low probabilities readable), switched to linear in the page, named on the axis."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import ui
from ui.draw import bars


def test_the_bars_start_on_a_log_scale_named_on_the_axis_and_switch_to_linear_in_the_page(page):
    chart = ui.bars(page)
    axis = page.locator("#dist-plot .nt-axis-title")
    assert chart["scale"] == "log"
    expect(axis).to_have_text("probability (log scale)", use_inner_text=True)
    base = [row["p_base"] for row in chart["rows"]]
    drawn = page.evaluate("() => Array.from(document.querySelectorAll('#dist-plot .nt-row'), row => "
                          "row.querySelector('.nt-base').getBoundingClientRect().width / "
                          "row.querySelector('.nt-track').getBoundingClientRect().width)")  # fmt: skip
    assert drawn == pytest.approx([bars.log_position(p) for p in base], abs=0.01)
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.locator("#dist-plot .nt-scale-chip", has_text="linear").click()
    expect(axis).to_have_text("probability (linear scale)", use_inner_text=True)
    assert ui.bars(page)["scale"] == "linear"
    assert not [url for url in requests if "/gradio_api/" in url]  # switching asks the server nothing
    ui.step(page)
    assert ui.bars(page)["scale"] == "linear"  # the scale picked stays picked at the next token
