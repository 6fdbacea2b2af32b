"""What the browser tests read from and do to the page: the explorer's controls, tokens, summary and plot.

Every wait is a retrying `expect` or `wait_for_function` with a generous timeout: a step takes 0.1-1.5 s on
a busy 2-core machine and the first preview after start can take far longer. Nothing waits on network idle.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MODEL_ID = "SmolLM2-135M-Instruct"
READY_TIMEOUT_MS = 180_000  # first page: model load (or first-run conversion) and the first preview
EVENT_TIMEOUT_MS = 45_000  # one event (step, preview, delete) on a loaded machine

FIGURE_JS = """() => {
  const plot = document.querySelector('#dist-plot .js-plotly-plot');
  if (!plot || !plot.data) return null;
  return plot.data.map(trace => ({name: trace.name || '', x: Array.from(trace.x || [])}));
}"""
FIGURE_CHANGED_JS = f"old => JSON.stringify(({FIGURE_JS})()) !== JSON.stringify(old)"
PROMPT_SHOWN_JS = """expected => Array.from(document.querySelectorAll('#tokens .token .text'))
  .map(span => span.textContent).join('') === expected"""
SPACE_MARK = "␣"  # how the token view shows a space


def open_app(page: Page, url: str) -> None:
    """Load the page and wait until the model is ready and the first preview is drawn."""
    page.goto(url, wait_until="load")
    expect(page.locator("#model-status")).to_contain_text(f"Model {MODEL_ID}", timeout=READY_TIMEOUT_MS)
    expect(summary(page)).to_have_text(re.compile(r"^\s*\d+ completion tokens"), timeout=READY_TIMEOUT_MS)
    page.wait_for_function(FIGURE_JS, timeout=READY_TIMEOUT_MS)


def summary(page: Page) -> Locator:
    return page.locator("#summary")


def tokens(page: Page) -> Locator:
    return page.locator("#tokens .token")


def token_texts(page: Page) -> list[str]:
    return [text.strip() for text in tokens(page).all_inner_texts()]


def completion_count(page: Page) -> int:
    match = re.match(r"\s*(\d+) completion tokens after a (\d+)-token prompt", summary(page).inner_text())
    assert match, f"unexpected summary: {summary(page).inner_text()!r}"
    return int(match.group(1))


def prompt_count(page: Page) -> int:
    match = re.search(r"after a (\d+)-token prompt", summary(page).inner_text())
    assert match, f"unexpected summary: {summary(page).inner_text()!r}"
    return int(match.group(1))


def expect_completion_count(page: Page, n: int) -> None:
    """The summary says n completion tokens and the token view shows prompt + n tokens."""
    expect(summary(page)).to_have_text(re.compile(rf"^\s*{n} completion tokens"), timeout=EVENT_TIMEOUT_MS)
    expect(tokens(page)).to_have_count(prompt_count(page) + n, timeout=EVENT_TIMEOUT_MS)


def figure(page: Page) -> list[dict] | None:
    """The Plotly traces as drawn: [{name, x}], or None before the plot exists."""
    return page.evaluate(FIGURE_JS)


def trace_x(traces: list[dict], prefix: str) -> list[float]:
    """x values of the first trace whose name starts with `prefix` (e.g. "p_final")."""
    for trace in traces:
        if trace["name"].startswith(prefix):
            return trace["x"]
    raise AssertionError(f"no trace named {prefix}...: {[t['name'] for t in traces]}")


def wait_for_figure_change(page: Page, before: list[dict] | None) -> list[dict]:
    page.wait_for_function(FIGURE_CHANGED_JS, arg=before, timeout=EVENT_TIMEOUT_MS)
    return figure(page)


def set_prompt(page: Page, text: str) -> None:
    """Type a new prompt and leave the box; wait until the tokens and the bars show that prompt."""
    before = figure(page)
    box = page.get_by_label("Prompt", exact=True)
    box.fill(text)
    box.blur()
    page.wait_for_function(PROMPT_SHOWN_JS, arg=text.replace(" ", SPACE_MARK), timeout=EVENT_TIMEOUT_MS)
    expect_completion_count(page, 0)
    wait_for_figure_change(page, before)


def step(page: Page, times: int = 1) -> None:
    """Press Step `times` times, waiting for each new token before the next press."""
    for _ in range(times):
        n = completion_count(page)
        page.get_by_role("button", name="Step", exact=True).click()
        expect_completion_count(page, n + 1)


def candidate_cell(page: Page, row: int, col: int) -> Locator:
    return page.locator(f"#candidates [data-testid=cell-{row}-{col}]")


def set_slider(page: Page, label: str, value: float) -> None:
    """Type into the slider's number box and leave it: the slider fires `release` on blur."""
    box = page.get_by_label(f"number input for {label}", exact=True)
    box.fill(str(value))
    box.blur()


def error_toast(page: Page) -> Locator:
    return page.locator(".toast-body").filter(has_text="Error")


def open_accordion(page: Page, title: str) -> None:
    page.get_by_role("button", name=title, exact=True).click()
