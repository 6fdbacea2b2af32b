"""The Edit the model panel in the browser: an ablation and a preset move the bars and name themselves in the status
line, a switch turns an edit off, a steering edit's strength changes in place, an edit on a branch with tokens starts an
announced branch, a reload keeps edits."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ui

SAVED_MS = 3_000  # the session is saved in the browser by its own event, just after the one that changed it
ABLATION = "ablate attention block of layer 1 (zero)"
NAMED = "toward “I love this” / away from “I hate this”"
STEERING = f"steer {NAMED} after layer 9, strength 4"


def edit_switch(page, label: str):
    return page.locator("#edits-list").get_by_label(label, exact=True)


def test_an_ablation_moves_the_bars_names_itself_and_its_switch_turns_it_off(page):
    ui.open_accordion(page, "edits-panel")
    before = ui.bars(page)
    page.get_by_label("Layer (from 0)", exact=True).fill("1")
    ui.choose(page, "Ablate", "the attention block")
    page.get_by_role("button", name="Add ablation", exact=True).click()
    after = ui.wait_for_bars_change(page, before)
    assert after["rows"][0]["label"] != before["rows"][0]["label"]  # the top token moved
    expect(ui.summary(page)).to_contain_text(
        re.compile(r"edited: attention block of layer 1 ablated \(zero\) · edit moves p_final by \S+")
    )
    expect(edit_switch(page, ABLATION)).to_be_checked()
    edit_switch(page, ABLATION).uncheck()  # off: the unedited model again, on the same (empty) branch
    ui.wait_for_bars_change(page, after)
    expect(ui.summary(page)).not_to_contain_text("edited:")
    assert [r["label"] for r in ui.bars(page)["rows"]] == [r["label"] for r in before["rows"]]


def test_a_bad_layer_is_refused_in_screen_words_and_nothing_changes(page):
    ui.open_accordion(page, "edits-panel")
    page.get_by_label("Layer (from 0)", exact=True).fill("40")
    page.get_by_role("button", name="Add ablation", exact=True).click()
    expect(ui.error_toast(page, "layer 40 is out of range: this model has layers 0 to 29")).to_be_visible()
    expect(ui.summary(page)).not_to_contain_text("edited:")
    expect(page.locator("#edits-list input")).to_have_count(0)


def test_the_steering_preset_moves_the_top_token(page):
    ui.open_accordion(page, "edits-panel")
    before = ui.bars(page)
    page.locator("#edit-preset-steer").click()
    after = ui.wait_for_bars_change(page, before)
    assert after["rows"][0]["label"] != before["rows"][0]["label"]
    expect(ui.summary(page)).to_contain_text(f"edited: layer 9 steered {NAMED} x 4")
    expect(edit_switch(page, STEERING)).to_be_checked()


def test_an_edit_on_a_branch_with_tokens_starts_an_announced_branch(page):
    ui.step(page, 2)
    ui.open_accordion(page, "edits-panel")
    page.locator("#edit-preset-ablate").click()
    expect(ui.summary(page)).to_contain_text("The model edit starts branch 2; branch main keeps the unedited model.")
    expect(ui.summary(page)).to_contain_text("edited: attention block of layer 1 ablated")
    ui.expect_completion_count(page, 2)
    ui.open_accordion(page, "branches")
    ui.choose(page, "Branch", "main (2 tokens)")
    expect(ui.summary(page)).not_to_contain_text("edited:")
    expect(page.locator("#edits-list input")).to_have_count(0)
    ui.choose(page, "Branch", "branch 2 (2 tokens)")
    expect(ui.summary(page)).to_contain_text("edited: attention block of layer 1 ablated")
    expect(edit_switch(page, ABLATION)).to_be_checked()


def test_a_reload_keeps_the_edits_of_each_branch(page, app_url):
    ui.open_accordion(page, "edits-panel")
    before = ui.bars(page)
    page.locator("#edit-preset-steer").click()
    ui.wait_for_bars_change(page, before)
    ui.step(page, 1)
    steered = ui.bars(page)
    page.wait_for_timeout(SAVED_MS)
    page.reload()
    ui.open_app(page, app_url)
    ui.expect_completion_count(page, 1)
    expect(ui.summary(page)).to_contain_text(f"edited: layer 9 steered {NAMED} x 4")
    assert [r["label"] for r in ui.bars(page)["rows"]] == [r["label"] for r in steered["rows"]]
    expect(page.locator("#edits-panel > [data-testid=accordion-content]")).to_be_visible()  # still open
    expect(edit_switch(page, STEERING)).to_be_checked()


def test_a_vector_made_from_typed_examples_steers_set_strength_changes_it_and_remove_takes_it_away(page):
    ui.open_accordion(page, "edits-panel")
    page.get_by_role("button", name="Make the vector and steer", exact=True).click()
    expect(ui.error_toast(page, "type at least one example to steer toward")).to_be_visible()
    before = ui.bars(page)
    page.get_by_label("Toward (one example per line)", exact=True).fill("I love this")
    page.get_by_label("Away from (one per line)", exact=True).fill("I hate this")
    page.get_by_role("button", name="Make the vector and steer", exact=True).click()
    steered = ui.wait_for_bars_change(page, before)
    expect(ui.summary(page)).to_contain_text(f"edited: layer 9 steered {NAMED} x 4")
    expect(edit_switch(page, STEERING)).to_be_checked()
    ui.choose(page, "Edit to change or remove", STEERING)
    page.get_by_label("New strength", exact=True).fill("-6")
    page.get_by_role("button", name="Set strength", exact=True).click()
    steered = ui.wait_for_bars_change(page, steered)  # changed in place: the same branch, no notice
    expect(ui.summary(page)).to_contain_text(f"edited: layer 9 steered {NAMED} x -6")
    expect(edit_switch(page, f"steer {NAMED} after layer 9, strength -6")).to_be_checked()
    expect(page.locator("#edits-list input")).to_have_count(1)
    ui.choose(page, "Edit to change or remove", f"steer {NAMED} after layer 9, strength -6")
    page.get_by_role("button", name="Remove", exact=True).click()
    ui.wait_for_bars_change(page, steered)
    expect(ui.summary(page)).not_to_contain_text("edited:")
    expect(page.locator("#edits-list input")).to_have_count(0)
