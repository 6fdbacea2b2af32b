"""What the browser tests read from and do to the page: the explorer's controls, tokens, summary and bars.

Every wait is a retrying `expect` or `wait_for_function` with a generous timeout: a step takes 0.1-1.5 s on
a busy 2-core machine and the first preview after start can take far longer. Nothing waits on network idle.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MODEL_ID = "SmolLM2-135M-Instruct"
TEST_SEED = 1
READY_TIMEOUT_MS = 180_000  # first page: model load (or first-run conversion) and the first preview
EVENT_TIMEOUT_MS = 45_000  # one event (step, preview, delete) on a loaded machine
expect.set_options(timeout=EVENT_TIMEOUT_MS)  # every retrying expect, not only those given a timeout

# The next-token bars as drawn by Plotly, read from the plot's own data (its div's `data`, `layout` and `_fullData`,
# the traces' visibility after the menus) and its SVG: per row the token, the values, the note and the drawn right
# end of its blue and red bars as a fraction of the plot area (the scale picked places them); the visible legend
# entries; the stage and scale picked (the active buttons of the figure's menus).
BARS_JS = """() => {
  const gd = document.querySelector('#dist-plot .nt-plot');
  if (!gd || !gd._fullLayout || !gd._fullData) return null;
  const text = html => { const t = document.createElement('textarea'); t.innerHTML = html; return t.value; };
  const picked = Object.fromEntries((gd.layout.updatemenus ?? []).map(m => [m.name, m.buttons[m.active ?? 0].name]));
  const traces = gd.data.map((trace, i) => ({...trace, shown: gd._fullData[i].visible === true, index: i}));
  const final = traces.filter(t => t.shown && t.offsetgroup === 'final');
  const blue = final.find(t => t.marker.color === '#2563eb');
  const end = traces.find(t => (t.meta?.views ?? []).length === 1 && t.meta.views[0] === 'all');
  const base = traces.find(t => t.offsetgroup === 'base');
  const area = gd.querySelector('.nsewdrag').getBoundingClientRect();
  const drawn = {};  // trace index -> row -> right end of its bar, as a fraction of the plot area
  for (const group of gd.querySelectorAll('.barlayer .trace')) {
    const index = group.__data__[0].trace.index;
    drawn[index] = {};
    for (const point of group.querySelectorAll('.point')) {
      const box = point.querySelector('path').getBoundingClientRect();
      if (box.width > 0) drawn[index][point.__data__.i] = (Math.min(box.right, area.right) - area.left) / area.width;
    }
  }
  const at = (trace, k) => (trace && drawn[trace.index]?.[k]) || 0;
  const ticks = gd.layout.yaxis?.ticktext ?? [];
  const rows = (gd.layout.meta?.token_ids ?? []).map((id, k) => {
    const red = final.find(t => t.marker.color === '#ef4444' && t.x[k] != null);
    const note = final.map(t => (t.text ?? [])[k]).find(Boolean) ?? '';
    return {
      id, label: text(ticks[k].replace(/^<b>|<\\/b>$/g, '')), p_base: base.x[k], p_final: end ? end.x[k] ?? 0 : 0,
      cut: !!red, blue: red || !blue ? 0 : blue.x[k], note: text(note), drawnBlue: at(blue, k), drawnRed: at(red, k),
      drawnBase: at(base, k),
    };
  });
  const legend = traces.filter(t => t.shown && t.showlegend !== false).map(t => text(t.name));
  return {rows, legend, stage: picked.stage ?? 'all', scale: picked.scale ?? null, empty: !gd.data.length};
}"""
BARS_CHANGED_JS = f"old => JSON.stringify(({BARS_JS})()) !== JSON.stringify(old)"
PROMPT_SHOWN_JS = """expected => Array.from(document.querySelectorAll('#tokens .token .text'))
  .map(span => span.textContent).join('') === expected"""
TABLE_MATCHES_BARS_JS = f"""() => {{
  const chart = ({BARS_JS})();
  if (!chart || chart.empty) return false;
  return chart.rows.every((row, i) => {{
    const cell = document.querySelector(`#candidates [data-testid=cell-${{i}}-2]`);
    return cell && Math.abs(parseFloat(cell.textContent) - 100 * row.p_base) < 0.051;
  }});
}}"""
SPACE_MARK = "␣"  # how the token view shows a space
REFUSED = "Warning"  # the title of the toast that says why an action was refused


def open_app(page: Page, url: str) -> None:
    """Load the page and wait until the model is ready and the first preview is drawn."""
    page.goto(url, wait_until="load")
    expect(page.locator("#model-status")).to_contain_text(f"Model {MODEL_ID}", timeout=READY_TIMEOUT_MS)
    expect(summary(page)).to_have_text(re.compile(r"^\s*\d+ completion tokens?"), timeout=READY_TIMEOUT_MS)
    page.wait_for_function(BARS_JS, timeout=READY_TIMEOUT_MS)


def fix_seed(page: Page, seed: int = TEST_SEED) -> None:
    """Type a seed: the default (blank) samples afresh each session, and a rare draw (an early eos) would
    end a completion that a test steps through. Leaving the box refreshes the view; the test starts once
    that refresh has drawn (the bars then show the ghost of the previous p_final), so it races nothing."""
    box = page.get_by_label("Seed (blank = random)", exact=True)
    box.fill(str(seed))
    box.blur()
    expect(page.locator("#dist-plot")).to_contain_text("p_final before the change")


def summary(page: Page) -> Locator:
    """The summary's markdown (not its block: that also shows the status tracker's "Error")."""
    return page.locator("#summary [data-testid=markdown]")


def tokens(page: Page) -> Locator:
    return page.locator("#tokens .token")


def token_texts(page: Page) -> list[str]:
    return [text.strip() for text in tokens(page).all_inner_texts()]


def completion_count(page: Page) -> int:
    match = re.match(r"\s*(\d+) completion tokens? after a (\d+)-token prompt", summary(page).inner_text())
    assert match, f"unexpected summary: {summary(page).inner_text()!r}"
    return int(match.group(1))


def prompt_count(page: Page) -> int:
    match = re.search(r"after a (\d+)-token prompt", summary(page).inner_text())
    assert match, f"unexpected summary: {summary(page).inner_text()!r}"
    return int(match.group(1))


def expect_completion_count(page: Page, n: int) -> None:
    """The summary says n completion tokens and the token view shows prompt + n tokens."""
    expect(summary(page)).to_have_text(re.compile(rf"^\s*{n} completion tokens?\b"))
    expect(tokens(page)).to_have_count(prompt_count(page) + n)


def bars(page: Page) -> dict | None:
    """The next-token bars as drawn (see BARS_JS), or None before they exist."""
    return page.evaluate(BARS_JS)


def values(chart: dict, key: str) -> list:
    """One value per row: "p_base", "p_final", or "blue" (the blue bars as shown, after the stage picked)."""
    return [row[key] for row in chart["rows"]]


def wait_for_bars_change(page: Page, before: dict | None) -> dict:
    """Wait until the bars show other data than `before` and the candidates table shows the same rows."""
    page.wait_for_function(BARS_CHANGED_JS, arg=before, timeout=EVENT_TIMEOUT_MS)
    page.wait_for_function(TABLE_MATCHES_BARS_JS, timeout=EVENT_TIMEOUT_MS)
    return bars(page)


def wait_for_values_change(page: Page, key: str, old: list) -> list:
    """Wait until the rows' `key` values differ from `old`; return them."""
    changed = f"""([key, old]) => {{
      const chart = ({BARS_JS})();
      return !!chart && JSON.stringify(chart.rows.map(row => row[key])) !== JSON.stringify(old);
    }}"""
    page.wait_for_function(changed, arg=[key, old], timeout=EVENT_TIMEOUT_MS)
    return values(bars(page), key)


def set_prompt(page: Page, text: str) -> None:
    """Type a new prompt and leave the box; wait until the tokens and the bars show that prompt."""
    before = bars(page)
    box = page.get_by_label("Prompt", exact=True)
    box.fill(text)
    box.blur()
    page.wait_for_function(PROMPT_SHOWN_JS, arg=text.replace(" ", SPACE_MARK), timeout=EVENT_TIMEOUT_MS)
    expect_completion_count(page, 0)
    wait_for_bars_change(page, before)


def step(page: Page, times: int = 1) -> None:
    """Press Step `times` times, waiting for each new token before the next press."""
    for _ in range(times):
        n = completion_count(page)
        page.get_by_role("button", name="Step", exact=True).click()
        expect_completion_count(page, n + 1)


def pick_scale(page: Page, scale: str) -> None:
    """Press the bars' scale button ("log" or "linear")."""
    page.locator("#dist-plot .updatemenu-button", has_text=scale).click()


def stage_menu(page: Page) -> Locator:
    """The bars' stage menu (a dropdown that shows the stage picked)."""
    return page.locator("#dist-plot .updatemenu-header-group", has_text="after ")


def pick_stage(page: Page, label: str) -> None:
    """Open the bars' stage menu and pick the entry whose label starts with `label` (e.g. "after top-k (")."""
    stage_menu(page).click()
    page.locator("#dist-plot .updatemenu-dropdown-button", has_text=label).first.click()


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
    before = bars(page)
    tokens(page).nth(n_prompt + index).click()
    expect(summary(page)).to_contain_text(f"Token {index + 1}")
    wait_for_bars_change(page, before)  # the candidates of that step, not of the end
    expect(page.get_by_role("button", name="Back to the end of the completion")).to_be_visible()
    candidate_cell(page, _row_other_than(page, chosen), 0).click()
    expect_completion_count(page, index + 1)


def _row_other_than(page: Page, chosen: str) -> int:
    for row in range(10):
        if candidate_cell(page, row, 0).inner_text().strip() != chosen:
            return row
    raise AssertionError(f"every candidate is {chosen!r}")


def send_chat(page: Page, message: str, max_tokens: int) -> None:
    """Send `message` in the Chat tab with a reply of at most `max_tokens` tokens; wait until the reply has ended."""
    page.get_by_role("tab", name="Chat").click()
    set_slider(page, "Max reply tokens", max_tokens)
    page.get_by_label("Message", exact=True).fill(message)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#chatbot [data-testid=bot]").last).not_to_be_empty(timeout=EVENT_TIMEOUT_MS)
    tracker = page.locator("#chatbot [data-testid=status-tracker]")
    expect(tracker).to_have_class(re.compile(r"\bhide\b"))  # the stream has ended


def export_session(page: Page) -> dict:
    """The session as the Session file accordion exports it (opened first if closed)."""
    if not page.locator("#session-file > [data-testid=accordion-content]").is_visible():
        open_accordion(page, "session-file")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export session (JSON)", exact=True).click()
    return json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
