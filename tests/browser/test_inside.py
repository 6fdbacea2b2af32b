"""The "Inside the model" maps in a real browser: every number the page holds equals the API's answer for the same
request (computed here through the service), the corrupted prompt is suggested when the panel opens, and a
changed input marks a map out of date."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from backends.model import STORE
from service import operations as service
from service import patching
from service import sweep as sweeps
from tests.browser import ui

PROMPT = "The capital of France is"
PARIS = 7042
REQUEST = {"prompt": PROMPT, "use_chat_template": False, "completion_ids": [], "branch_id": "default"}
FIGURE_JS = "id => { const plot = document.querySelector(`#${id} .js-plotly-plot`); return plot && plot.data ? " \
    "{z: plot.data[0].z, title: plot.layout.title.text} : null }"  # fmt: skip


@pytest.fixture
def model(embedded):
    STORE.use(embedded)
    return embedded


def figure(page: Page, elem_id: str) -> dict:
    page.wait_for_function(f"() => ({FIGURE_JS})('{elem_id}') !== null", timeout=ui.EVENT_TIMEOUT_MS)
    return page.evaluate(FIGURE_JS, elem_id)


def test_the_direct_logit_map_holds_the_api_s_numbers(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "inside-panel")
    page.get_by_role("button", name="Split the logit over heads and MLPs").click()
    shown = figure(page, "inside-dla")
    answer = service.attribution(REQUEST | {"target_token_id": PARIS, "method": "direct_logit"})["components"]
    assert "Paris" in shown["title"]
    assert shown["z"][0][0] == pytest.approx(answer["embed"], rel=1e-5)
    for layer, (heads, mlp) in enumerate(zip(answer["heads"], answer["mlps"], strict=True)):
        assert shown["z"][layer + 1] == pytest.approx([*heads, mlp], rel=1e-4, abs=1e-6)
    expect(page.locator("#inside-dla-note")).to_contain_text("the parts sum to")

    ui.step(page)  # the explained position moves on: the map is out of date
    expect(page.locator("#inside-dla-note")).to_contain_text("Out of date")


def test_the_patching_map_holds_the_api_s_numbers(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "inside-panel")
    corrupted = page.get_by_label("Corrupted prompt")
    expect(corrupted).not_to_have_value("")  # suggested on opening
    expect(page.locator("#corrupted-note")).to_contain_text("Suggested: the word 'France' replaced by")
    text = corrupted.input_value()
    page.get_by_role("button", name="Patch every layer and position").click()
    shown = figure(page, "inside-patching")
    foil = service.preview(REQUEST)["dist"]["tokens"][1]  # no foil picked: the most likely other candidate
    answer = patching.patching(REQUEST | {"corrupted": text, "target_token_id": PARIS, "contrast_token_id": foil["id"]})
    assert foil["display"] in shown["title"]
    assert len(shown["z"]) == len(answer["scores"])
    for row, expected in zip(shown["z"], answer["scores"], strict=True):
        assert row == pytest.approx(expected, abs=1e-4)

    corrupted.fill(text.replace("is", "was"))  # another corrupted prompt: the map is out of date
    corrupted.blur()
    expect(page.locator("#patching-note")).to_contain_text("Out of date")


def test_the_sweep_map_holds_the_api_s_numbers(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "inside-panel")
    page.get_by_role("button", name="Sweep: ablate each head alone").click()
    shown = figure(page, "inside-sweep")
    answer = sweeps.sweep(REQUEST | {"target_token_id": PARIS, "components": "heads", "mode": "zero"})
    assert len(shown["z"]) == len(answer["grid"])
    for row, cells in zip(shown["z"], answer["grid"], strict=True):
        assert row == pytest.approx([cell["delta"] for cell in cells], abs=1e-4)
    expect(page.locator("#sweep-note")).to_contain_text("with that head zeroed alone")


CELL_JS = """([id, x, y]) => {
  const plot = document.querySelector(`#${id} .js-plotly-plot`);
  const size = plot._fullLayout._size, box = plot.getBoundingClientRect();
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
  return {x: box.left + size.l + xa.d2p(x), y: box.top + size.t + ya.d2p(y)};
}"""


def test_clicking_a_head_of_the_split_map_ablates_it_on_the_branch(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "inside-panel")
    page.get_by_role("button", name="Split the logit over heads and MLPs").click()
    figure(page, "inside-dla")
    before = ui.bars(page)
    page.locator("#inside-dla").scroll_into_view_if_needed()
    cell = page.evaluate(CELL_JS, ["inside-dla", "H3", "L5"])
    page.mouse.click(cell["x"], cell["y"])  # a real click on the heatmap's cell: Plotly's own click event
    expect(ui.summary(page)).to_contain_text("edited: head 3 of layer 5 ablated (zero)")
    after = ui.wait_for_bars_change(page, before)
    answer = service.preview(REQUEST | {"interventions": [{"type": "ablate", "layer": 5, "head": 3}]})["dist"]
    assert ui.values(after, "p_base")[0] == pytest.approx(answer["tokens"][0]["p_base"], abs=1e-4)
    ui.open_accordion(page, "edits-panel")
    expect(page.locator("#edits-list").get_by_label("ablate head 3 of layer 5 (zero)", exact=True)).to_be_checked()
