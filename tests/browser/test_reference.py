"""The Reference model panel in the browser: bfloat16 applied gives the bars a second series and the status line its
KL; the diff draws a KL timeline, the tokens coloured by it and the summary, and says when it is out of date;
continuing with the main model itself as the reference finds no divergence and changes nothing; the look-ahead
table shows the reference's p_final of each path, and Compare each branch's KL and top agreement with the reference,
as the API answers them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import ui
from ui.request import request_for
from ui.session_json import from_json

SERIES = "p_final, reference"
REFERENCE_X_JS = f"""() => {{
  const gd = document.querySelector('#dist-plot .nt-plot');
  const trace = gd && (gd.data ?? []).find(t => t.name === {SERIES!r});
  return trace ? trace.x : null;
}}"""
SAVED_MS = 3_000  # the session is saved in the browser by its own event, just after the one that changed it
STATUS = re.compile(r"reference \(bfloat16\): KL \d+\.\d{4} bits · top token (agrees|differs \(rank \d+)")


def apply_bfloat16(page) -> dict:
    ui.open_accordion(page, "reference-panel")
    before = ui.bars(page)
    page.get_by_label("the main model in bfloat16", exact=True).check()
    page.get_by_role("button", name="Apply", exact=True).click()
    return ui.wait_for_bars_change(page, before)


def test_bfloat16_as_the_reference_draws_its_series_and_its_kl_in_the_status_line(page):
    after = apply_bfloat16(page)
    assert SERIES in after["legend"]
    reference = page.evaluate(REFERENCE_X_JS)
    # a bfloat16 copy is close to the float32 model: each of its bars near the blue one
    assert all(abs(q - row["p_final"]) < 0.05 for q, row in zip(reference, after["rows"], strict=True))
    expect(ui.summary(page)).to_contain_text(STATUS)
    expect(page.locator("#reference-status")).to_contain_text("Reference: bfloat16 · ready")
    page.locator("#remove-reference").click()
    expect(ui.summary(page)).not_to_contain_text("reference (")
    assert SERIES not in ui.bars(page)["legend"]


def test_the_diff_draws_a_kl_timeline_coloured_tokens_and_the_summary(page):
    ui.step(page, 3)
    apply_bfloat16(page)
    page.get_by_role("button", name="Diff with the reference", exact=True).click()
    expect(page.locator("#diff-timeline .barlayer .point")).to_have_count(3)
    expect(page.locator("#diff-tokens .diff-token")).to_have_count(3)
    expect(page.locator("#diff-summary")).to_contain_text("mean KL")
    expect(page.locator("#diff-summary")).to_contain_text("same top token")
    expect(page.locator("#diff-note")).to_contain_text("over 3 tokens, teacher-forced")
    ui.step(page, 1)
    expect(page.locator("#diff-note")).to_contain_text("Out of date")
    expect(page.locator("#diff-tokens .diff-token")).to_have_count(0)


def test_a_diff_without_a_reference_is_refused_in_screen_words(page):
    ui.open_accordion(page, "reference-panel")
    page.get_by_role("button", name="Diff with the reference", exact=True).click()
    expect(ui.error_toast(page, "there is no reference to diff with: pick one and press Apply")).to_be_visible()


def test_continue_with_the_main_model_itself_as_the_reference_finds_no_divergence_and_changes_nothing(page):
    ui.step(page, 2)
    ui.open_accordion(page, "reference-panel")
    before = ui.bars(page)
    page.get_by_label("the main model in float32", exact=True).check()  # the embedded model's own dtype: itself
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(ui.summary(page)).to_contain_text("KL 0.0000 bits · top token agrees")
    page.get_by_role("button", name="Continue with the reference from the first divergence", exact=True).click()
    expect(ui.error_toast(page, "the reference's top token is the main model's at every token")).to_be_visible()
    ui.expect_completion_count(page, 2)
    assert [r["label"] for r in ui.bars(page)["rows"]] == [r["label"] for r in before["rows"]]


def test_a_reload_keeps_the_reference(page, app_url):
    apply_bfloat16(page)
    page.wait_for_timeout(SAVED_MS)
    page.reload()
    ui.open_app(page, app_url)
    expect(ui.summary(page)).to_contain_text(STATUS)
    assert SERIES in ui.bars(page)["legend"]


def _exported(page) -> dict:
    ui.open_accordion(page, "session-file")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export session (JSON)", exact=True).click()
    return json.loads(Path(download.value.path()).read_text(encoding="utf-8"))


def test_the_look_ahead_table_shows_the_reference_p_final_of_each_path_as_the_api_answers(page, app_url):
    apply_bfloat16(page)
    ui.open_accordion(page, "lookahead-panel")
    ui.set_slider(page, "Width (tokens per step)", 3)
    ui.set_slider(page, "Depth (tokens ahead)", 1)
    page.get_by_role("button", name="Grow the tree from the position on screen", exact=True).click()
    expect(page.locator("#lookahead-note")).to_contain_text("continuations from completion position")
    cells = page.locator('#lookahead-paths [data-testid^="cell-"][data-testid$="-1"]')
    expect(cells).to_have_count(3)
    request = _exported(page)["session"]["lookahead"]["request"]
    assert request["reference"] == {"dtype": "bfloat16"}
    answer = page.request.post(f"{app_url.rstrip('/')}/api/tree", data=request | {"width": 3, "depth": 1}).json()
    assert "children" in answer, answer
    expected = [f"{n['p_final']:.2%} (reference {n['p_final_reference']:.2%})" for n in answer["children"]]
    assert [cell.strip() for cell in cells.all_text_contents()] == expected


def _diff(page, app_url: str, request: dict, ids: list[int]) -> list[dict]:
    """The API's teacher-forced diff of `ids` under the page's request: each position's KL and top agreement."""
    answer = page.request.post(f"{app_url.rstrip('/')}/api/diff", data=request | {"completion_ids": ids}).json()
    assert "positions" in answer, answer
    return answer["positions"]


def test_compare_shows_each_branch_against_the_reference_as_the_api_diff_gives(page, app_url):
    ui.step(page, 3)
    ui.branch_at(page, 1)  # the current branch: 2 tokens, the main one 3
    apply_bfloat16(page)
    ui.open_accordion(page, "branches")
    ui.choose(page, "Compare the current branch with", "main (3 tokens)")
    page.get_by_role("button", name="Compare", exact=True).click()
    compare = page.locator("#compare")
    expect(compare).to_contain_text(re.compile(r"Against the reference \(.*bfloat16\)"))
    rows = compare.locator("tr:not(.kl-why)")
    expect(rows).to_have_count(1 + 3)
    controls, _, session = from_json(_exported(page))
    request = request_for(session, controls)
    branches = {"current": session.branch.ids, "other": session.branches["main"].ids}
    for column, name in ((7, "current"), (8, "other")):
        positions = _diff(page, app_url, request, list(branches[name]))
        for step in range(3):
            cell = rows.nth(1 + step).locator("td").nth(column)
            if step < len(positions):  # the diff has the positions before each token of the branch
                kl, agrees = cell.inner_text().split(" · top ")
                want = positions[step]
                assert float(kl) == pytest.approx(want["kl_base"], rel=1e-3, abs=1e-12)
                assert agrees == ("agrees" if want["top_agrees"] else "differs")


def test_apply_says_loading_at_once_and_waits_until_the_reference_is_ready(page):
    ui.open_accordion(page, "reference-panel")
    page.get_by_label("the main model in int8", exact=True).check()
    apply = page.get_by_role("button", name="Apply", exact=True)
    apply.click()
    status = page.locator("#reference-status")
    expect(status).to_contain_text("Reference: int8 · loading the reference…")
    expect(apply).to_be_disabled()  # a second click cannot start a second load
    expect(status).to_contain_text("Reference: int8 · ready")
    expect(apply).to_be_enabled()
