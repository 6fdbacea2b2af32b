"""Chat replies that can be examined, and a legible explorer, in a real browser: the chat's preset and settings,
pills told apart beyond colour, a candidate table that does not wrap at 800 px, a default worth looking at."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ui

QUESTION = "What is the capital of France?"
# Per text node inside an element, the number of lines it takes (a word broken across lines takes two)
LINES_JS = """el => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const tops = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
    out.push([node.textContent.trim(), tops.size]);
  }
  return out;
}"""
# Each completion pill's mark after it and its underline, and each legend entry's mark
MARKS_JS = """n => ({
  pills: Array.from(document.querySelectorAll('#tokens .token')).slice(n).map(el =>
    [getComputedStyle(el, '::after').content, getComputedStyle(el).borderBottomStyle]),
  legend: Object.fromEntries(Array.from(document.querySelectorAll('#tokens .legend-item')).map(el =>
    [el.textContent.trim(), getComputedStyle(el, '::after').content])),
})"""


def test_a_chat_reply_opened_in_the_explorer_rewinds_to_any_of_its_tokens(page):
    page.get_by_role("tab", name="Chat").click()
    ui.set_slider(page, "Max reply tokens", 6)
    page.get_by_label("Message", exact=True).fill(QUESTION)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#chatbot [data-testid=bot]").last).not_to_be_empty()
    expect(page.locator("#chatbot [data-testid=status-tracker]")).to_have_class(re.compile(r"\bhide\b"))
    page.get_by_role("button", name=re.compile(r"^Open the conversation in the explorer")).click()
    expect(ui.summary(page)).to_contain_text("branch chat (a conversation of 1 messages)")
    conversation = page.locator("#conversation textarea")
    expect(conversation).to_have_value(f"User: {QUESTION}")  # the conversation stands where the prompt was
    expect(page.get_by_label("Prompt", exact=True)).to_be_hidden()
    n_prompt = ui.prompt_count(page)
    chosen = ui.token_texts(page)[n_prompt + 1]
    before = ui.bars(page)
    ui.tokens(page).nth(n_prompt + 1).click()
    expect(ui.summary(page)).to_contain_text(re.compile(r"Token 2 \S+ was sampled, draw u = 0\.\d{4}"))
    chart = ui.wait_for_bars_change(page, before)  # the distribution in force at that token
    assert any(row["label"].endswith(f" {chosen}") or row["label"] == chosen for row in chart["rows"])
    expect(page.get_by_role("button", name="Back to the end of the completion")).to_be_visible()


def test_the_chat_shows_its_preset_and_settings(page):
    page.get_by_role("tab", name="Chat").click()
    settings = page.locator("#chat-settings")
    expect(settings).to_contain_text("temperature 0.2 · repetition penalty 1.1 · top-p 0.5 (preset chat")
    ui.choose(page, "Chat preset", "creative")
    expect(settings).to_contain_text("temperature 1.1")
    expect(settings).to_contain_text("(preset creative")
    expect(page.get_by_label("number input for Reply temperature (0 = greedy)", exact=True)).to_have_value("1.1")


def test_greedy_sampled_and_forced_pills_differ_beyond_colour(page):
    ui.step(page, 1)  # sampled (the default preset)
    page.get_by_placeholder(re.compile("^Force text")).fill(" and")
    page.get_by_role("button", name="Force", exact=True).click()
    ui.expect_completion_count(page, 2)
    ui.set_slider(page, "Temperature (0 = greedy)", 0)
    expect(page.get_by_label("number input for Temperature (0 = greedy)", exact=True)).to_have_value("0")
    ui.step(page, 1)
    marks = page.evaluate(MARKS_JS, ui.prompt_count(page))
    sampled, forced, greedy = (tuple(pill) for pill in marks["pills"])
    assert len({sampled, forced, greedy}) == 3  # a different mark and underline each, not only a colour
    assert all(mark not in ("none", "normal", "") for mark, _ in (sampled, forced, greedy))
    assert {marks["legend"][how] for how in ("greedy", "sampled", "forced")} == {greedy[0], sampled[0], forced[0]}


def test_the_candidate_table_does_not_wrap_at_800_px(page):
    page.set_viewport_size({"width": 800, "height": 1000})
    ui.step(page, 1)
    expect(ui.candidate_cell(page, 0, 1)).to_be_visible()
    table = page.locator("#candidates")
    cells = [*table.locator("th").all(), *(ui.candidate_cell(page, row, 1) for row in range(3))]
    lines = [line for cell in cells for line in cell.evaluate(LINES_JS)]
    assert any(text.startswith("p_base") for text, _ in lines)
    assert [text for text, count in lines if count > 1] == []


def test_the_default_first_step_has_several_tokens_in_play(page):
    chart = ui.bars(page)
    visible = [row["label"] for row in chart["rows"] if row["p_final"] >= 0.05]
    assert len(visible) >= 2, visible
    expect(ui.summary(page)).not_to_contain_text(" 1 in play")
