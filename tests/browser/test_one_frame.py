"""One frame per step: the token view, the bars, the table and the status line change together; clicks queue."""

from __future__ import annotations

from tests.browser import ui

PROMPT = "My favourite thing to do on a rainy day is"
# Every animation frame, what each panel says the position is: the bars (the completion length of the request
# they carry), the status line, the token view (pills after the prompt's), and the table's first id beside the
# bars' first row. Recorded from `start` until the page calls `stop`.
PROBE_JS = """() => {
  const frames = [];
  const read = () => {
    const carried = document.querySelector('#dist-plot [data-step]');
    const summary = document.querySelector('#summary [data-testid=markdown]')?.innerText || '';
    const match = summary.match(/(\\d+) completion tokens? after a (\\d+)-token prompt/);
    const firstRow = document.querySelector('#dist-plot .nt-plot')?.layout?.meta?.token_ids?.[0];
    const cell = document.querySelector('#candidates [data-testid=cell-0-1]');
    return {
      bars: carried ? JSON.parse(carried.dataset.step).completion_ids.length : null,
      status: match ? Number(match[1]) : null,
      pills: match ? document.querySelectorAll('#tokens .token').length - Number(match[2]) : null,
      barsFirst: firstRow !== undefined ? String(firstRow) : null,
      tableFirst: cell ? cell.textContent.trim() : null,
    };
  };
  window.ntProbe = {frames, stop: false};
  const tick = () => {
    frames.push(read());
    if (!window.ntProbe.stop) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def mismatched(frames: list[dict]) -> list[dict]:
    return [
        f for f in frames
        if len({f["bars"], f["status"], f["pills"]}) > 1 or f["barsFirst"] != f["tableFirst"]
    ]  # fmt: skip


def completion(page) -> list[str]:
    return ui.token_texts(page)[ui.prompt_count(page) :]


def test_a_step_changes_the_token_view_bars_table_and_status_line_in_the_same_frame(page):
    ui.set_prompt(page, PROMPT)
    page.evaluate(PROBE_JS)
    speculated = page.evaluate("() => window.ntBars.speculated")
    ui.step(page, 3)
    page.wait_for_function(ui.TABLE_MATCHES_BARS_JS)
    page.evaluate("() => { window.ntProbe.stop = true; }")
    frames = page.evaluate("() => window.ntProbe.frames")
    assert page.evaluate("() => window.ntBars.speculated") == speculated + 3  # each step drawn by the quick path
    positions = {f["bars"] for f in frames}
    assert {0, 1, 2, 3} <= positions, positions
    assert mismatched(frames) == [], f"{len(mismatched(frames))} of {len(frames)} frames show two positions"


def test_twenty_quick_clicks_give_the_twenty_tokens_of_twenty_slow_ones(page):
    ui.set_prompt(page, PROMPT)
    ui.step(page, 20)
    slow = completion(page)
    page.get_by_role("button", name="Clear completion").click()
    ui.expect_completion_count(page, 0)
    button = page.get_by_role("button", name="Step", exact=True)
    for _ in range(20):
        button.click(delay=0, no_wait_after=True)
    ui.expect_completion_count(page, 20)
    page.wait_for_timeout(1500)  # no step beyond the twentieth
    ui.expect_completion_count(page, 20)
    assert completion(page) == slow
