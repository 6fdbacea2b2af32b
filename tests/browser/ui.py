"""What the browser tests read from and do to the page: the explorer's controls, tokens, summary and plot.

Every wait is a retrying `expect` or `wait_for_function` with a generous timeout: a step takes 0.1-1.5 s on
a busy 2-core machine and the first preview after start can take far longer. Nothing waits on network idle.
"""

from __future__ import annotations

import contextlib
import re

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MODEL_ID = "SmolLM2-135M-Instruct"
TEST_SEED = 1
READY_TIMEOUT_MS = 180_000  # first page: model load (or first-run conversion) and the first preview
EVENT_TIMEOUT_MS = 45_000  # one event (step, preview, delete) on a loaded machine
expect.set_options(timeout=EVENT_TIMEOUT_MS)  # every retrying expect, not only those given a timeout

FIGURE_JS = """() => {
  const plot = document.querySelector('#dist-plot .js-plotly-plot');
  if (!plot || !plot.data) return null;
  return plot.data.map(trace => ({name: trace.name || '', x: Array.from(trace.x || [])}));
}"""
FIGURE_CHANGED_JS = f"old => JSON.stringify(({FIGURE_JS})()) !== JSON.stringify(old)"
PROMPT_SHOWN_JS = """expected => Array.from(document.querySelectorAll('#tokens .token .text'))
  .map(span => span.textContent).join('') === expected"""
TABLE_MATCHES_PLOT_JS = """() => {
  const plot = document.querySelector('#dist-plot .js-plotly-plot');
  const base = plot && plot.data && plot.data.find(trace => (trace.name || '').startsWith('p_base'));
  if (!base) return false;
  return Array.from(base.x).every((p, row) => {
    const cell = document.querySelector(`#candidates [data-testid=cell-${row}-2]`);
    return cell && Math.abs(parseFloat(cell.textContent) - 100 * p) < 0.051;
  });
}"""
SPACE_MARK = "␣"  # how the token view shows a space
REFUSED = "Warning"  # the title of the toast that says why an action was refused


def open_app(page: Page, url: str) -> None:
    """Load the page and wait until the model is ready and the first preview is drawn."""
    page.goto(url, wait_until="load")
    expect(page.locator("#model-status")).to_contain_text(f"Model {MODEL_ID}", timeout=READY_TIMEOUT_MS)
    expect(summary(page)).to_have_text(re.compile(r"^\s*\d+ completion tokens"), timeout=READY_TIMEOUT_MS)
    page.wait_for_function(FIGURE_JS, timeout=READY_TIMEOUT_MS)


def fix_seed(page: Page, seed: int = TEST_SEED) -> None:
    """Type a seed: the default (blank) samples afresh each session, and a rare draw (an early eos) would
    end a completion that a test steps through."""
    box = page.get_by_label("Seed (blank = random)", exact=True)
    box.fill(str(seed))
    box.blur()


def summary(page: Page) -> Locator:
    """The summary's markdown (not its block: that also shows the status tracker's "Error")."""
    return page.locator("#summary [data-testid=markdown]")


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
    expect(summary(page)).to_have_text(re.compile(rf"^\s*{n} completion tokens"))
    expect(tokens(page)).to_have_count(prompt_count(page) + n)


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
    """Wait until the plot shows other data than `before` and the candidates table shows the same rows."""
    page.wait_for_function(FIGURE_CHANGED_JS, arg=before, timeout=EVENT_TIMEOUT_MS)
    page.wait_for_function(TABLE_MATCHES_PLOT_JS, timeout=EVENT_TIMEOUT_MS)
    return figure(page)


def wait_for_trace_change(page: Page, prefix: str, old: list[float]) -> list[float]:
    """Wait until the trace whose name starts with `prefix` shows other values than `old`; return them."""
    changed = f"""([prefix, old]) => {{
      const trace = (({FIGURE_JS})() || []).find(t => t.name.startsWith(prefix));
      return !!trace && JSON.stringify(trace.x) !== JSON.stringify(old);
    }}"""
    page.wait_for_function(changed, arg=[prefix, old], timeout=EVENT_TIMEOUT_MS)
    return trace_x(figure(page), prefix)


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
    """Type into the visible slider's number box and leave it: the slider fires `release` on blur."""
    box = page.get_by_label(f"number input for {label}", exact=True).filter(visible=True)
    box.fill(str(value))
    box.blur()


def toasts(page: Page) -> Locator:
    return page.get_by_test_id("toast-body")


def error_toast(page: Page, text: str) -> Locator:
    return toasts(page).filter(has_text=REFUSED).filter(has_text=text)


def close_toasts(page: Page) -> None:
    """Close every toast (one may vanish on its own while we click)."""
    close = page.get_by_test_id("toast-close")
    for _ in range(20):
        if not close.count():
            break
        with contextlib.suppress(PlaywrightError):
            close.first.click(timeout=2_000)
    expect(toasts(page)).to_have_count(0)


def open_accordion(page: Page, elem_id: str) -> None:
    """Open the accordion with this elem_id by clicking its header."""
    page.locator(f"#{elem_id} > button.label-wrap").click()
    expect(page.locator(f"#{elem_id} > [data-testid=accordion-content]")).to_be_visible()


def set_code(page: Page, container: str, text: str) -> None:
    """Replace the text of a code editor; insert_text types no keys, so no brackets are auto-closed."""
    page.locator(f"{container} .cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(text)


def choose(page: Page, label: str, option: str) -> None:
    """Pick an option of a dropdown by its visible text."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def branch_at(page: Page, index: int) -> None:
    """Inspect completion token `index` and pick a different candidate there: a new branch of index + 1 tokens."""
    n_prompt = prompt_count(page)
    chosen = token_texts(page)[n_prompt + index]
    before = figure(page)
    tokens(page).nth(n_prompt + index).click()
    expect(summary(page)).to_contain_text(f"Token {index + 1}")
    wait_for_figure_change(page, before)  # the candidates of that step, not of the end
    expect(page.get_by_role("button", name="Back to the end of the completion")).to_be_visible()
    candidate_cell(page, _row_other_than(page, chosen), 0).click()
    expect_completion_count(page, index + 1)


def _row_other_than(page: Page, chosen: str) -> int:
    for row in range(10):
        if candidate_cell(page, row, 0).inner_text().strip() != chosen:
            return row
    raise AssertionError(f"every candidate is {chosen!r}")
