"""What every bench script shares: the project on sys.path, the app on a free port, medians and percentiles,
markdown tables, prompts cut from the docs, and the few page reads `bench/ui_latency.py` needs.

Import it before the project (`import harness`): `python bench/x.py` puts bench/ on sys.path but not the
repository, so this module puts the repository first (ahead of bench/, whose `attribution.py` would otherwise
hide the `attribution` package). Nothing here imports the tests: a benchmark stands on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

START_TIMEOUT_S = 180  # import torch + gradio on a busy 2-core machine, plus a first-run model conversion
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGE_TIMEOUT_MS = 45_000  # one event (step, preview) on a loaded machine
READY_TIMEOUT_MS = 180_000  # the first page: the model load and the first preview
ALIGN = {"l": "---", "r": "---:", "c": ":---:"}
PROMPT_WORDS = (16, 240)  # words of a docs prompt: about 20-300 tokens
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[.,;:]?")  # prose words: no markdown, code or table rules


def parser(doc: str, threads: bool = False) -> argparse.ArgumentParser:
    """The script's command line, described by its docstring's first line; `threads` adds --threads N."""
    made = argparse.ArgumentParser(description=doc.splitlines()[0])
    if threads:
        made.add_argument("--threads", type=int, help="torch's intra-op threads, set first (default: torch's choice)")
    return made


def median(values: Iterable[float]) -> float:
    """The middle value (the mean of the middle two for an even count)."""
    return statistics.median(values)


def percentile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile: the sorted value at rank round(fraction x (n - 1)); 0.95 gives p95."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], align: str) -> str:
    """A markdown table; `align` has one letter per column: l(eft), r(ight) or c(entre)."""
    if len(align) != len(columns):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(columns)} columns: give one per column")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(ALIGN[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[object]], align: str) -> None:
    print(table(columns, rows, align))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(log_path: Path, chars: int = 3000) -> str:
    return log_path.read_text(errors="replace")[-chars:] if log_path.exists() else "(no log)"


def wait_for_http(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll `url` until it answers 200; fail early, with the log tail, when the app exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode}:\n{_log_tail(log_path)}")
        if _responds(url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {timeout_s:.0f} s:\n{_log_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@dataclass(frozen=True)
class App:
    """A launched app: where it answers, and its process id (for its memory)."""

    url: str
    pid: int


@contextlib.contextmanager
def launched_app(log_path: Path, env: Mapping[str, str] | None = None) -> Iterator[App]:
    """Start `app.py` on a free port (with `env` added to this process's environment), yield it once it
    answers HTTP, stop it on exit. Its output goes to `log_path`."""
    port = free_port()
    settings = {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    full_env = os.environ | {"GRADIO_ANALYTICS_ENABLED": "False"} | settings | dict(env or {})
    full_env.pop("GRADIO_SHARE", None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_http(url, process, log_path)
            yield App(url, process.pid)
        finally:
            _stop(process)


@contextlib.contextmanager
def running_app(log_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`launched_app`, yielding only its URL."""
    with launched_app(log_path, env) as app:
        yield app.url


@functools.cache
def _docs_words() -> tuple[str, ...]:
    return tuple(word for path in sorted((ROOT / "docs").glob("*.md")) for word in WORD.findall(path.read_text()))


def docs_prompt(rng: random.Random, words: int) -> str:
    """`words` consecutive prose words of the project's docs from a place `rng` picks: varied, readable
    prompts without a tokenizer at hand (about 1.3 tokens a word with the embedded model)."""
    text = _docs_words()
    start = rng.randrange(len(text) - words)
    return " ".join(text[start : start + words])


# The explorer's page, as the summary line reads: "N completion tokens after a P-token prompt ..."
SUMMARY = "#summary [data-testid=markdown]"
COUNTS = re.compile(r"\s*(\d+) completion tokens? after a (\d+)-token prompt")
COUNTS_JS = """([selector, completion]) => {
  const match = /^\\s*(\\d+) completion tokens? after a (\\d+)-token prompt/.exec(
    document.querySelector(selector)?.innerText ?? '');
  if (!match || Number(match[1]) !== completion) return false;
  return document.querySelectorAll('#tokens .token').length === Number(match[2]) + completion;
}"""


def summary_text(page) -> str:
    return page.locator(SUMMARY).inner_text()


def counts(page) -> tuple[int, int]:
    """(completion tokens, prompt tokens) as the summary line says."""
    match = COUNTS.match(summary_text(page))
    if not match:
        raise RuntimeError(f"unexpected summary: {summary_text(page)!r}")
    return int(match.group(1)), int(match.group(2))


def wait_for_completion(page, n: int) -> None:
    """Until the summary says n completion tokens and the token view shows prompt + n tokens."""
    page.wait_for_function(COUNTS_JS, arg=[SUMMARY, n], timeout=PAGE_TIMEOUT_MS)


ROWS_JS = """() => {
  const plot = document.querySelector('#dist-plot .nt-plot');
  const ids = plot?.layout?.meta?.token_ids ?? [];
  return ids.length ? JSON.stringify([ids, plot.data.map(trace => trace.x)]) : '[]';
}"""


def open_app(page, url: str) -> None:
    """Load the page and wait until the model is ready (the summary counts tokens) and the bars are drawn."""
    page.goto(url, wait_until="load")
    ready = f"() => ({COUNTS_JS})([{SUMMARY!r}, 0]) && ({ROWS_JS})() !== '[]'"
    page.wait_for_function(ready, timeout=READY_TIMEOUT_MS)


def set_prompt(page, text: str) -> None:
    """Type a new prompt and leave the box; wait until the token view shows it and the bars have changed."""
    before = page.evaluate(ROWS_JS)
    box = page.get_by_label("Prompt", exact=True)
    box.fill(text)
    box.blur()
    shown = """expected => Array.from(document.querySelectorAll('#tokens .token .text'))
      .map(span => span.textContent).join('') === expected"""
    page.wait_for_function(shown, arg=text.replace(" ", "␣"), timeout=PAGE_TIMEOUT_MS)
    wait_for_completion(page, 0)
    page.wait_for_function(f"old => ({ROWS_JS})() !== old", arg=before, timeout=PAGE_TIMEOUT_MS)
