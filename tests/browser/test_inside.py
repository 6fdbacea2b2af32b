"""The "Inside the model" maps in a real browser: every number the page holds (and each hovered cell's text) equals
the API's answer for the same request (computed here through the service), also on a chat branch and under a
model edit, the corrupted prompt is suggested when the panel opens, a changed input marks a map out of date, and
clicking a head of the split or the sweep map ablates it on the branch."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from backends.model import STORE
from service import operations as service
from service import patching
from service import sweep as sweeps
from tests.browser import ui

PROMPT = "The capital of France is"
PARIS = 7042
CHAT_MESSAGE = "Name one colour."
PATCHING_TIMEOUT_MS = 240_000  # a chat's 40-odd positions x 30 layers, a column at a time on a busy machine
REQUEST = {"prompt": PROMPT, "use_chat_template": False, "completion_ids": [], "branch_id": "default"}
FIGURE_JS = "id => { const plot = document.querySelector(`#${id} .js-plotly-plot`); return plot && plot.data ? " \
    "{z: plot.data[0].z, x: plot.data[0].x, title: plot.layout.title.text} : null }"  # fmt: skip
CELL_JS = """([id, x, y]) => {
  const plot = document.querySelector(`#${id} .js-plotly-plot`);
  const size = plot._fullLayout._size, box = plot.getBoundingClientRect();
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
  return {x: box.left + size.l + xa.d2p(x), y: box.top + size.t + ya.d2p(y)};
}"""


@pytest.fixture
def model(embedded):
    STORE.use(embedded)
    return embedded


def figure(page: Page, elem_id: str, timeout_ms: int = ui.EVENT_TIMEOUT_MS) -> dict:
    page.wait_for_function(f"() => ({FIGURE_JS})('{elem_id}') !== null", timeout=timeout_ms)
    return page.evaluate(FIGURE_JS, elem_id)


def cell_at(page: Page, elem_id: str, x: str, y: str) -> dict:
    """The page coordinates of the centre of the map's cell (x, y), after scrolling the map into view."""
    page.locator(f"#{elem_id}").scroll_into_view_if_needed()
    return page.evaluate(CELL_JS, [elem_id, x, y])


def hover_text(page: Page, elem_id: str, x: str, y: str) -> str:
    """Move the mouse over the map's cell (x, y) and read the tooltip Plotly draws."""
    cell = cell_at(page, elem_id, x, y)
    page.mouse.move(cell["x"], cell["y"])
    tooltip = page.locator(f"#{elem_id} .hoverlayer .hovertext")
    expect(tooltip).to_have_count(1)
    return tooltip.text_content() or ""  # an SVG group: its text, not inner_text


def click_ablates(page: Page, elem_id: str, layer: int, head: int) -> None:
    """A real click on the map's cell (Plotly's own click event) ablates that head: the status line names the
    edit and the bars become the service's for the prompt with that head ablated."""
    before = ui.bars(page)
    cell = cell_at(page, elem_id, f"H{head}", f"L{layer}")
    page.mouse.click(cell["x"], cell["y"])
    expect(ui.summary(page)).to_contain_text(f"edited: head {head} of layer {layer} ablated (zero)")
    after = ui.wait_for_bars_change(page, before)
    ablated = {"interventions": [{"type": "ablate", "layer": layer, "head": head}]}
    answer = service.preview(REQUEST | ablated)["dist"]
    assert ui.values(after, "p_base")[0] == pytest.approx(answer["tokens"][0]["p_base"], abs=1e-4)


def run_patching(page: Page) -> tuple[str, dict]:
    """Open the panel, take the suggested corrupted prompt, press Patch: (that prompt, the map as drawn)."""
    ui.open_accordion(page, "inside-panel")
    corrupted = page.get_by_label("Corrupted prompt")
    expect(page.locator("#corrupted-note")).to_contain_text("Suggested: the word")
    text = corrupted.input_value()
    page.get_by_role("button", name="Patch every layer and position").click()
    return text, figure(page, "inside-patching", PATCHING_TIMEOUT_MS)


def test_the_direct_logit_map_holds_the_api_s_numbers(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "inside-panel")
    expect(page.locator("#inside-dla-note")).to_contain_text("Not run yet. Split the logit draws")
    expect(page.locator("#inside-dla")).to_be_hidden()  # no empty axes before the map is drawn
    page.get_by_role("button", name="Split the logit over heads and MLPs").click()
    shown = figure(page, "inside-dla")
    answer = service.attribution(REQUEST | {"target_token_id": PARIS, "method": "direct_logit"})["components"]
    assert "Paris" in shown["title"]
    assert shown["z"][0][0] == pytest.approx(answer["embed"], rel=1e-5)
    for layer, (heads, mlp) in enumerate(zip(answer["heads"], answer["mlps"], strict=True)):
        assert shown["z"][layer + 1] == pytest.approx([*heads, mlp], rel=1e-4, abs=1e-6)
    expect(page.locator("#inside-dla-note")).to_contain_text("the parts sum to")
    assert f"layer 5, head 3 adds {answer['heads'][5][3]:+.6g} to logit(" in hover_text(page, "inside-dla", "H3", "L5")
    assert f"layer 9, MLP adds {answer['mlps'][9]:+.6g}" in hover_text(page, "inside-dla", "MLP", "L9")

    ui.step(page)  # the explained position moves on: the map is out of date
    expect(page.locator("#inside-dla-note")).to_contain_text("Out of date")
    expect(page.locator("#inside-dla")).to_be_hidden()


def test_the_patching_map_holds_the_api_s_numbers(page: Page, model):
    ui.set_prompt(page, PROMPT)
    text, shown = run_patching(page)
    expect(page.locator("#corrupted-note")).to_contain_text("Suggested: the word 'France' replaced by")
    foil = service.preview(REQUEST)["dist"]["tokens"][1]  # no foil picked: the most likely other candidate
    answer = patching.patching(REQUEST | {"corrupted": text, "target_token_id": PARIS, "contrast_token_id": foil["id"]})
    assert foil["display"] in shown["title"]
    assert_scores(shown, answer)
    pairs = zip(answer["clean_tokens"], answer["corrupted_tokens"], strict=True)
    changed = next(p for p, (a, b) in enumerate(pairs) if a["id"] != b["id"])
    label = shown["x"][changed]
    assert "France" in label and " / " in label  # each position labelled with its clean (and corrupted) token
    tooltip = hover_text(page, "inside-patching", label, "L3")
    assert f"layer 3's residual output at {label} copied from the clean run restores" in tooltip
    assert f"restores {answer['scores'][3][changed]:+.4g} of the" in tooltip

    corrupted = page.get_by_label("Corrupted prompt")
    corrupted.fill(text.replace("is", "was"))  # another corrupted prompt: the map is out of date
    corrupted.blur()
    expect(page.locator("#patching-note")).to_contain_text("Out of date")


def assert_scores(shown: dict, answer: dict) -> None:
    assert len(shown["z"]) == len(answer["scores"])
    for row, expected in zip(shown["z"], answer["scores"], strict=True):
        assert row == pytest.approx(expected, abs=1e-4)


def test_patching_on_a_chat_branch_corrupts_the_last_user_message(page: Page, model):
    ui.send_chat(page, CHAT_MESSAGE, 2)
    page.get_by_role("button", name=re.compile(r"^Open the conversation in the explorer")).click()
    expect(ui.summary(page)).to_contain_text("branch chat (a conversation of 1 messages)")
    text, shown = run_patching(page)
    assert text != CHAT_MESSAGE and len(text.split()) == len(CHAT_MESSAGE.split())  # one word of the message
    session = ui.export_session(page)["session"]
    branch = session["branches"][session["current"]]
    last = branch["meta"][-1]  # the explained position: the reply's last token, against its runner-up
    foil = next(row["id"] for row in last["dist"]["tokens"] if row["id"] != last["token"]["id"])
    request = {"messages": branch["messages"], "use_chat_template": True, "completion_ids": branch["ids"],
               "branch_id": session["current"], "target_index": len(branch["ids"]) - 1, "contrast_token_id": foil}  # fmt: skip
    answer = patching.patching(request | {"corrupted": text, "site": "residual"})
    assert_scores(shown, answer)
    assert any(" / " in label for label in shown["x"])  # the changed word of the user's turn, labelled


def test_patching_follows_the_branch_s_model_edit(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "edits-panel")
    before = ui.bars(page)
    page.get_by_label("Layer (from 0)", exact=True).fill("1")
    ui.choose(page, "Ablate", "the attention block")
    page.get_by_role("button", name="Add ablation", exact=True).click()
    ui.wait_for_bars_change(page, before)
    text, shown = run_patching(page)
    edited = REQUEST | {"interventions": [{"type": "ablate", "layer": 1, "mode": "zero", "component": "attention"}]}
    top, runner_up = service.preview(edited)["dist"]["tokens"][:2]  # the edited model's next token and its foil
    target = {"target_token_id": top["id"], "contrast_token_id": runner_up["id"], "corrupted": text}
    answer = patching.patching(edited | target)
    assert_scores(shown, answer)
    unedited = patching.patching(REQUEST | target)["scores"]
    assert np.abs(np.array(answer["scores"]) - np.array(unedited)).max() > 1e-3  # the edit shows in the scores


def test_the_sweep_map_holds_the_api_s_numbers_and_a_click_ablates_its_head(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "inside-panel")
    expect(page.locator("#sweep-note")).to_contain_text("Not run yet. Sweep draws")
    page.get_by_role("button", name="Sweep: ablate each head alone").click()
    shown = figure(page, "inside-sweep")
    answer = sweeps.sweep(REQUEST | {"target_token_id": PARIS, "components": "heads", "mode": "zero"})
    assert len(shown["z"]) == len(answer["grid"])
    for row, cells in zip(shown["z"], answer["grid"], strict=True):
        assert row == pytest.approx([cell["delta"] for cell in cells], abs=1e-4)
    expect(page.locator("#sweep-note")).to_contain_text("how much log p(␣Paris) changes when that head alone is zeroed")
    cell = answer["grid"][7][2]
    tooltip = hover_text(page, "inside-sweep", "H2", "L7")
    assert f"layer 7, head 2 ablated: log p(␣Paris) changes by {cell['delta']:+.6g}" in tooltip
    assert f"rank becomes {cell['rank']} ({cell['rank_delta']:+d})" in tooltip

    click_ablates(page, "inside-sweep", 7, 2)


def test_clicking_a_head_of_the_split_map_ablates_it_on_the_branch(page: Page, model):
    ui.set_prompt(page, PROMPT)
    ui.open_accordion(page, "inside-panel")
    page.get_by_role("button", name="Split the logit over heads and MLPs").click()
    figure(page, "inside-dla")
    click_ablates(page, "inside-dla", 5, 3)
    ui.open_accordion(page, "edits-panel")
    expect(page.locator("#edits-list").get_by_label("ablate head 3 of layer 5 (zero)", exact=True)).to_be_checked()
