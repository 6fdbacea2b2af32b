"""Benchmark: how long a person waits from clicking Step to the whole screen at the next token, next to a cold step.

Run: `uv run python bench/ui_latency.py`. Launches the app as a subprocess (as the browser tests do), opens it in
the system Chromium, types a ~128-token prompt (no chat template), warms up, then times STEPS clicks on Step in the
page: from the click to the first animation frame in which the token view, the bars, the candidate table and the
status line all show the new position, and the page's own drawing time of each quick answer. In the same run and
interleaved with the clicks, the same steps run in-process on the engine (`engine.step` at the same context, same
seed and knobs, no prefetch: a cold step) and through the UI handler (engine + building the components' values).
The app runs twice: with prefetch off (target: browser / engine at most 2) and with prefetch on at its default
count (target: below 1, the next token on screen sooner than the model could compute it; the pause after each
click is the user reading the bars, when the app prefetches). The prefetching run times the browser alone, against
the cold engine step of the first run: an engine step in this process would compete with the app's prefetch for
the same CPUs and slow both. Prints a markdown table of medians. Asserts nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import harness

from backends.model import EMBEDDED_ID, STORE, load_model
from backends.prefix_cache import PrefixCache
from decoding.engine import Engine
from service.prefetch import DEFAULT_COUNT, PREFETCH

CONTEXT_TOKENS = 128
STEPS = 10
WARMUP_STEPS = 2
SETTLE_S = 1.0  # after each click, let the follow-up events (attribution panel, settings) finish
SEED = 1234
TARGETS = {0: 2.0, DEFAULT_COUNT: 1.0}  # prefetch count (0 = off) -> the most browser / engine may be
TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps as his father had "
    "taught him. There were one hundred and twelve of them, worn smooth in the middle by a century of boots. At the "
    "top he trimmed the wick, polished the great lens until it caught the last of the daylight, and wrote the "
    "weather in a leather logbook: wind from the south-west, a long swell, fog expected before midnight. Ships "
    "still passed the headland, though fewer than before, and most of them carried their own lights and radios. "
    "Nobody in the village could say whether the lamp was still needed, but nobody wanted to be the one to put it "
    "out. So he kept climbing, and the beam kept turning, sweeping across the dark water and the sleeping roofs, "
    "and on clear nights the fishermen coming home said they could see it from twenty miles away, a small steady "
    "star that meant the harbour was near and the kettle was on."
)
STEP_JS = """async () => {
  // where each panel is: the bars (the completion length of the request they carry), the status line, the
  // token view (pills after the prompt's), and the table's first id beside the bars' first row
  const where = () => {
    const carried = document.querySelector('#dist-plot [data-step]');
    const summary = document.querySelector('#summary [data-testid=markdown]')?.innerText || '';
    const match = summary.match(/(\\d+) completion tokens? after a (\\d+)-token prompt/);
    const first = document.querySelector('#dist-plot .nt-plot')?.layout?.meta?.token_ids?.[0]?.toString();
    const cell = document.querySelector('#candidates [data-testid=cell-0-1]')?.textContent.trim();
    return {
      bars: carried ? JSON.parse(carried.dataset.step).completion_ids.length : null,
      status: match ? Number(match[1]) : null,
      pills: match ? document.querySelectorAll('#tokens .token').length - Number(match[2]) : null,
      table: first !== undefined && first === cell,
    };
  };
  const consistentAt = (n) => {
    const w = where();
    return w.bars === n && w.status === n && w.pills === n && w.table;
  };
  const button = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Step');
  const n = where().status + 1;
  const start = performance.now();
  button.click();
  return await new Promise((resolve, reject) => {
    const poll = () => {
      if (consistentAt(n)) { resolve(performance.now() - start); return; }
      if (performance.now() - start > 60000) { reject(new Error('the screen was not consistent within 60 s')); return; }
      requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
}"""
DRAW_MS_JS = "() => window.ntBars ? window.ntBars.drawMs.slice() : []"


@dataclass(frozen=True)
class Timings:
    browser_ms: list[float]
    engine_ms: list[float]
    handler_ms: list[float]
    draw_ms: tuple[float, ...] | list[float] = ()  # in the page: quick answer's panels set -> next frame


def context_prompt(tokenizer, n_tokens: int) -> str:
    """A natural-text prompt of about n_tokens tokens (decoding a cut can re-encode one or two tokens off)."""
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    if len(ids) < n_tokens:
        raise ValueError(f"the benchmark text has {len(ids)} tokens, fewer than {n_tokens}")
    return tokenizer.decode(ids[:n_tokens]).strip()


def request(prompt: str, completion_ids: list[int]) -> dict:
    """The request the explorer sends for the main branch under the default (balanced) knobs and a fixed seed."""
    return {
        "branch_id": "main",
        "prompt": prompt,
        "use_chat_template": False,
        "completion_ids": completion_ids,
        "top_k": 10,
        "params": {"temperature": 0.7, "top_p": 0.8, "repetition_penalty": 1.05, "seed": SEED},
    }


class ServerSide:
    """The same steps in-process: `engine.step` alone, and the UI handler (engine + component values).

    The engine gets a prefix cache of its own, so neither path finds logits the other has just computed.
    """

    def __init__(self, loaded, prompt: str) -> None:
        STORE.use(loaded)
        self.engine = Engine(loaded, cache=PrefixCache())
        self.prompt = prompt
        self.ids: list[int] = []
        self.handler_state = None

    def engine_step_ms(self) -> float:
        req = self.engine.request(request(self.prompt, self.ids))
        start = time.perf_counter()
        result = self.engine.step(req)
        elapsed = (time.perf_counter() - start) * 1000
        self.ids = list(result.completion_ids)
        return elapsed

    def handler_step_ms(self) -> float:
        """The explorer's Step action and the view (engine + every changed panel's content), default knobs."""
        from dataclasses import replace

        from ui import actions
        from ui.controls import Controls
        from ui.state import Prefs, Session
        from ui.view import Frame, view

        controls = replace(Controls(), prompt=self.prompt, seed=str(SEED))
        session = self.handler_state or Session()
        start = time.perf_counter()
        outcome = actions.step(session, controls)
        self.handler_state, _ = view(Frame(outcome.session, controls, Prefs(), outcome.result))
        return (time.perf_counter() - start) * 1000


def browser_step_ms(page) -> float:
    n = harness.counts(page)[0]
    elapsed = page.evaluate(STEP_JS)
    harness.wait_for_completion(page, n + 1)
    if "finished" in harness.summary_text(page):
        raise RuntimeError("the completion finished during the benchmark: change SEED or TEXT")
    return elapsed


def prepare_page(page, url: str, prompt: str) -> None:
    harness.open_app(page, url)
    page.get_by_label("Seed (blank = random)", exact=True).fill(str(SEED))
    harness.set_prompt(page, prompt)


def measure(page, server: ServerSide | None) -> Timings:
    """Browser steps, each followed by the same step in this process (unless `server` is None)."""
    browser, engine, handler = [], [], []
    for i in range(WARMUP_STEPS + STEPS):
        b = browser_step_ms(page)
        time.sleep(SETTLE_S)
        e, h = (server.engine_step_ms(), server.handler_step_ms()) if server is not None else (None, None)
        if i >= WARMUP_STEPS:  # the server side walks the warm-up steps too: the same tokens at the same context
            browser.append(b)
            engine += [e] if e is not None else []
            handler += [h] if h is not None else []
    return Timings(browser, engine, handler)


def run(prompt: str, server: ServerSide | None, prefetch: int) -> tuple[Timings, int]:
    """One app (prefetching `prefetch` candidates after each step) and one page, timed step by step."""
    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp(prefix="ui-latency-")) / "app.log"
    env = {"NEXTTOKEN_PREFETCH": str(prefetch)}  # the app subprocess reads it at start
    with harness.running_app(log, env) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=harness.CHROMIUM, args=harness.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(harness.PAGE_TIMEOUT_MS)
        prepare_page(page, url, prompt)
        n_prompt = harness.counts(page)[1]
        timings = replace(measure(page, server), draw_ms=page.evaluate(DRAW_MS_JS)[-STEPS:])
        browser.close()
    return timings, n_prompt


COLUMNS = [
    "prefetch", "context (tokens)", "browser click → whole screen, median ms", "server engine.step (cold), median ms",
    "handler (engine + view), median ms", "page draw, median ms", "ratio browser / server", "target",
]  # fmt: skip


def print_table(runs: dict[int, Timings], n_prompt: int) -> None:
    engine = harness.median(runs[0].engine_ms)  # the cold step, timed while the app was idle
    rows = []
    for prefetch, t in runs.items():
        browser = harness.median(t.browser_ms)
        handler = f"{harness.median(t.handler_ms):.0f}" if t.handler_ms else "n/a"
        ratio, target = browser / engine, TARGETS[prefetch]
        verdict = "met" if ratio <= target else "missed"
        name = f"on ({prefetch})" if prefetch else "off"
        span = f"{n_prompt}→{n_prompt + WARMUP_STEPS + STEPS}"
        draw = f"{harness.median(t.draw_ms):.1f}" if t.draw_ms else "n/a"
        cells = (f"{browser:.0f}", f"{engine:.0f}", handler, draw, f"{ratio:.2f}", f"≤ {target} ({verdict})")
        rows.append((name, span, *cells))
    harness.print_table(COLUMNS, rows, "lrrrrrrl")
    for prefetch, t in runs.items():
        print(f"\nprefetch {prefetch}: browser ms: {', '.join(f'{x:.0f}' for x in t.browser_ms)}")
        if t.engine_ms:
            print(f"prefetch {prefetch}: engine ms:  {', '.join(f'{x:.0f}' for x in t.engine_ms)}")


def main() -> None:
    harness.parser(__doc__).parse_args()  # no options: --help describes the run
    if not Path(harness.CHROMIUM).exists():
        sys.exit(f"Chromium not found at {harness.CHROMIUM}: install the Debian package `chromium`")
    PREFETCH.configure(0)  # this process's handler column: no background work of its own
    loaded = load_model(EMBEDDED_ID, device="cpu")
    prompt = context_prompt(loaded.tokenizer, CONTEXT_TOKENS)
    print(f"model {loaded.model_id}; {STEPS} steps after {WARMUP_STEPS} warm-up steps; seed {SEED}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other jobs slow both columns)\n")
    runs, n_prompt = {}, 0
    server = ServerSide(loaded, prompt)  # a prefix cache of its own: its steps stay cold
    for _ in range(WARMUP_STEPS):  # the first step at a new prompt runs the whole prompt
        server.engine_step_ms()
    server.ids = []
    for prefetch in TARGETS:
        runs[prefetch], n_prompt = run(prompt, server if prefetch == 0 else None, prefetch)
    print_table(runs, n_prompt)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("\nbrowser: click on Step → first frame in which the token view, the bars, the table and the status")
    print("line all show the new position. page draw: the quick answer's panels set → the next frame. server:")
    print("engine.step in this process at the same context, cold, interleaved with the clicks of the prefetch-off")
    print("run; both rows divide by it.")


if __name__ == "__main__":
    main()
