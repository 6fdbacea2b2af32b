"""No silent loss of work: an edited prompt keeps the earlier completion, and a reload keeps the whole session."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser import ui

PROMPT = "The capital of Spain is"
EDITED = "The capital of Italy is"
SAVED_MS = 3_000  # the session is saved in the browser by its own event, just after the one that changed it
PILLS_JS = """() => Array.from(document.querySelectorAll('#tokens .token'))
  .map(el => [el.textContent.trim(), getComputedStyle(el).backgroundColor])"""


def pills(page) -> list:
    """Each token's text and the colour of its pill (how it was chosen: greedy, sampled, forced, prompt)."""
    return page.evaluate(PILLS_JS)


def prompt_box(page):
    return page.get_by_label("Prompt", exact=True)


def test_an_edited_prompt_keeps_the_earlier_completion_as_a_branch(page):
    ui.set_prompt(page, PROMPT)
    ui.step(page, 3)
    before = pills(page)
    ui.set_prompt(page, EDITED)  # the new prompt starts afresh on a new branch
    expect(ui.summary(page)).to_contain_text("The prompt changed: your earlier completion (3 tokens) is kept as")
    ui.open_accordion(page, "branches")
    ui.choose(page, "Branch", f"main (3 tokens, prompt “{PROMPT}”)")
    ui.expect_completion_count(page, 3)
    expect(prompt_box(page)).to_have_value(PROMPT)
    assert pills(page) == before
    ui.choose(page, "Branch", "branch 2 (0 tokens, prompt “The capital of Italy is”)")
    expect(prompt_box(page)).to_have_value(EDITED)
    ui.expect_completion_count(page, 0)


def test_a_reload_keeps_prompt_branches_tokens_and_open_panels(page, app_url):
    ui.set_prompt(page, PROMPT)
    ui.step(page, 4)
    ui.branch_at(page, 1)  # a second branch, 2 tokens, its last one forced
    ui.step(page, 1)
    ui.open_accordion(page, "branches")
    ui.open_accordion(page, "timeline-panel")
    before, summary = pills(page), ui.summary(page).inner_text()
    assert len({colour for _, colour in before}) >= 3  # prompt, drawn and forced pills differ
    page.wait_for_timeout(SAVED_MS)
    page.reload()
    ui.open_app(page, app_url)
    expect(prompt_box(page)).to_have_value(PROMPT)
    ui.expect_completion_count(page, 3)
    assert pills(page) == before
    assert ui.summary(page).inner_text().split(" · ")[:2] == summary.split(" · ")[:2]
    for panel in ("branches", "timeline-panel"):
        expect(page.locator(f"#{panel} > [data-testid=accordion-content]")).to_be_visible()
    ui.choose(page, "Branch", "main (4 tokens)")
    ui.expect_completion_count(page, 4)


def test_a_session_too_large_to_keep_says_so(page, tmp_path):
    ui.step(page, 1)
    ui.open_accordion(page, "session-file")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export session (JSON)").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    data["session"]["chat"] = [{"role": "user", "content": "x" * 2_100_000}]  # a very long conversation
    path = tmp_path / "large.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    page.locator("#session-file input[type=file]").set_input_files(str(path))
    note = page.locator("#keep-note")
    expect(note).to_contain_text(
        re.compile(r"This session is too large to keep across a reload \(2\.\d MB > 2 MB\): download it with Export")
    )
