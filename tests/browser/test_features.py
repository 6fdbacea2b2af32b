"""Attribution heatmap, chat tab and compare section in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ui

CHAT_MESSAGE = "Name one colour."
CHAT_MAX_TOKENS = 8


def _open_attribution(page) -> None:
    ui.step(page, 3)
    ui.open_accordion(page, "attribution-panel")


def test_explain_shows_a_heatmap_over_the_context_of_the_last_token(page):
    _open_attribution(page)
    texts = ui.token_texts(page)
    page.get_by_role("button", name=re.compile(r"^Explain this token")).click()
    heat = page.locator("#attribution .attr-cell")
    expect(heat).to_have_count(len(texts) - 1)
    assert [t.strip() for t in heat.all_inner_texts()] == texts[:-1]  # every context token, in order
    expect(page.locator("#attribution .attr-target")).to_have_text(f"→ {texts[-1]}")  # then the target
    colours = {heat.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(len(texts) - 1)}
    assert len(colours) > 1  # painted by score, not one flat colour
    expect(page.locator("#attribution .attr-legend-text")).to_contain_text("attention")


def test_hovering_a_completion_token_colours_its_context(page):
    _open_attribution(page)
    panel = page.locator("#attribution-hover")
    expect(panel.locator(".attr-tokens span")).to_have_count(ui.tokens(page).count())
    panel.locator(".attr-tokens .comp").last.hover()
    expect(panel.locator(".attr-legend")).to_contain_text("attention for")
    expect(panel.locator(".attr-tokens span[title^='score']").first).to_be_visible()


def test_chat_streams_a_reply(page):
    ui.send_chat(page, CHAT_MESSAGE, CHAT_MAX_TOKENS)
    expect(page.locator("#chatbot [data-testid=user]")).to_have_text(CHAT_MESSAGE)
    expect(page.locator("#chatbot [data-testid=bot]")).to_have_count(1)
    expect(page.get_by_label("Message", exact=True)).to_have_value("")


def test_a_conversation_opens_on_a_new_branch_and_keeps_the_work(page):
    ui.step(page, 2)
    work = ui.token_texts(page)
    ui.send_chat(page, CHAT_MESSAGE, CHAT_MAX_TOKENS)
    page.get_by_role("button", name=re.compile(r"^Open the conversation in the explorer")).click()
    expect(page.get_by_role("tab", name="Explorer")).to_have_attribute("aria-selected", "true")
    expect(ui.summary(page)).to_contain_text("branch chat (a conversation of 1 messages)")
    expect(ui.summary(page)).to_have_text(re.compile(rf"^\s*[1-{CHAT_MAX_TOKENS}] completion tokens?"))
    assert "␣colour" in ui.token_texts(page)  # the user's turn, in the chat template
    ui.open_accordion(page, "branches")
    ui.choose(page, "Branch", "main (2 tokens)")
    ui.expect_completion_count(page, 2)
    assert ui.token_texts(page) == work


def test_compare_shows_where_two_branches_diverge(page):
    ui.step(page, 4)
    ui.branch_at(page, 1)
    ui.open_accordion(page, "branches")
    ui.choose(page, "Compare the current branch with", "main (4 tokens)")
    page.get_by_role("button", name="Compare", exact=True).click()
    compare = page.locator("#compare")
    expect(compare).to_contain_text("Shared prefix: 1 token(s)")
    rows = compare.locator("tr:not(.kl-why)")  # a KL with no value is explained on a row of its own
    expect(rows).to_have_count(1 + 4)  # header, then one row per step of the longer branch
    expect(rows.nth(2)).to_contain_text("diverge")
    expect(rows.nth(1).locator("td").nth(5)).to_have_text("0")  # same context at step 1: no divergence yet
    expect(rows.nth(3).locator("td").nth(5)).not_to_have_text("0")  # different contexts: a real divergence
