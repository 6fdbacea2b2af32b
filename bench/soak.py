"""Load and soak over REST: locust's simulated users per operation, then many steps for the server's memory.

Both modes launch `app.py` (through the harness) with `--engine` (transformers by default; vllm only where
it is importable, else the run says it is skipped), and wait for one preview (the model loaded) first.
On vllm the app also loads a transformers copy of the model (`--attribution-copy`): vLLM's forward pass gives
no gradients, so without it the mix's attributions would all be refused; with it they run on the copy, in the
app's process (behind the same model lane), and everything else on vLLM.

- `load`: runs `bench/locustfile.py` headless in a subprocess (locust imports gevent, which patches the
  standard library: never in this process) with `--users` users started `--spawn-rate` a second for
  `--time`, and prints one markdown table: per operation the requests, requests per second, p50 / p95 /
  p99 ms (locust's percentiles: times above 100 ms rounded to 2 significant digits) and errors.
- `soak`: `--steps` greedy steps in total from `--clients` threads, each starting a new prompt (16-240
  words of the docs) every `--session-steps` steps, reading the server's resident memory (VmRSS in
  /proc; the app's own process: with vLLM its engine processes are not counted) every `--sample-every`
  steps (printed as it goes); prints it after the first 1,000 steps (a third of a shorter run), at the
  end, their ratio, the errors, and the step latencies.

Quick runs: `python bench/soak.py load --users 4 --time 20s`, `python bench/soak.py soak --steps 300`.
`soak --kv-cache-mb 64` bounds the app's prefix KV cache low, so it is full within the first few hundred steps.
Asserts nothing; exits 1 when locust leaves no statistics.
"""

from __future__ import annotations

import argparse
import collections
import csv
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import harness
import httpx

from backends.settings import BACKENDS

LOCUSTFILE = harness.ROOT / "bench" / "locustfile.py"
START_TIMEOUT_S = 900  # the first request waits for the model: vLLM compiles it on its first start (minutes)
WARM_UP = {"prompt": "The capital of France is", "use_chat_template": False, "top_k": 1}


def arguments() -> argparse.Namespace:
    parser = harness.parser(__doc__)
    parser.add_argument("--engine", choices=BACKENDS, default=BACKENDS[0], help="app's engine (default %(default)s)")
    modes = parser.add_subparsers(dest="mode", required=True)
    load = modes.add_parser("load", help="locust users at a human pace, one table per operation")
    load.add_argument("--users", type=int, default=32, help="simulated users (default %(default)s)")
    load.add_argument("--spawn-rate", type=float, default=4, help="users started per second (default %(default)s)")
    load.add_argument("--time", default="120s", help="how long, in locust's form: 20s, 2m (default %(default)s)")
    load.add_argument("--think", default="0.3,2", help="seconds between a user's turns: MIN,MAX (default 0.3,2)")
    load.add_argument("--attribution-every", type=float, default=60, help="seconds between a user's attributions")
    soak = modes.add_parser("soak", help="many steps over many sessions, the server's memory sampled")
    soak.add_argument("--steps", type=int, default=10_000, help="steps in total (default %(default)s)")
    soak.add_argument("--clients", type=int, default=16, help="concurrent clients (default %(default)s)")
    soak.add_argument("--session-steps", type=int, default=100, help="steps before a client's new prompt")
    soak.add_argument("--sample-every", type=int, default=250, help="steps between memory samples")
    soak.add_argument(
        "--kv-cache-mb", type=float, help="the app's prefix KV cache bound (NEXTTOKEN_KV_CACHE_MB; default: the app's)"
    )
    return parser.parse_args()


def engine_env(engine: str) -> dict[str, str] | None:
    """The app's environment for `engine` (vllm with its attribution copy); None when vLLM is not importable here."""
    if engine != "vllm":
        return {"NEXTTOKEN_ENGINE": engine}
    if importlib.util.find_spec("vllm") is None:
        return None
    return {"NEXTTOKEN_ENGINE": engine, "NEXTTOKEN_ATTRIBUTION_COPY": "yes"}


def warm_up(url: str) -> None:
    """One preview, so the model is loaded before anything is timed."""
    httpx.post(f"{url}api/preview", json=WARM_UP, timeout=START_TIMEOUT_S).raise_for_status()


def load_average() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def locust_command(args: argparse.Namespace, url: str, prefix: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.time, "--host", url.rstrip("/"),
        "--csv", str(prefix), "--think", args.think, "--attribution-every", str(args.attribution_every),
        "--loglevel", "WARNING",
    ]  # fmt: skip


def run_locust(args: argparse.Namespace, url: str, folder: Path) -> Path:
    """Locust headless in its own process; the path of its per-operation statistics."""
    prefix = folder / "locust"
    begin = time.monotonic()
    done = subprocess.run(locust_command(args, url, prefix), cwd=harness.ROOT, capture_output=True, text=True)
    print(f"locust ran {time.monotonic() - begin:.0f} s (exit code {done.returncode}: 1 when a request failed)")
    stats = prefix.with_name("locust_stats.csv")
    if not stats.exists():
        print(f"locust left no statistics at {stats}:\n{done.stderr[-2000:]}")
    return stats


def stats_rows(stats: Path) -> list[tuple[str, ...]]:
    """One row per operation (by name), then the total: requests, req/s, p50, p95, p99, errors."""
    with stats.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda row: (row["Name"] == "Aggregated", row["Name"]))
    return [
        (
            "all" if row["Name"] == "Aggregated" else row["Name"],
            row["Request Count"],
            f"{float(row['Requests/s']):.2f}",
            row["50%"],
            row["95%"],
            row["99%"],
            row["Failure Count"],
        )
        for row in rows
    ]


def load_report(args: argparse.Namespace, app: harness.App, folder: Path) -> int:
    stats = run_locust(args, app.url, folder)
    if not stats.exists():
        return 1
    print(f"\n{args.users} users (started {args.spawn_rate}/s) for {args.time}, think {args.think} s:\n")
    columns = ("operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors")
    harness.print_table(columns, stats_rows(stats), "lrrrrrr")
    failures = stats.with_name("locust_failures.csv")
    if failures.exists():
        for row in csv.DictReader(failures.open(newline="")):
            print(f"- {row['Name']}: {row['Occurrences']} x {row['Error'][:200]}")
    return 0


def rss_mib(pid: int) -> float:
    """The process's resident memory (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


@dataclass
class Soak:
    """The clients' shared count: steps handed out and done, latencies, errors, memory samples."""

    pid: int
    total: int
    baseline: int
    sample_every: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    handed: int = 0
    done: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: collections.Counter = field(default_factory=collections.Counter)
    samples: dict[int, float] = field(default_factory=dict)  # steps done -> RSS MiB

    def take(self) -> bool:
        """Whether one more step may be sent."""
        with self.lock:
            self.handed += 1
            return self.handed <= self.total

    def finished(self, latency_ms: float) -> None:
        with self.lock:
            self.done += 1
            self.latencies_ms.append(latency_ms)
            if self.done in (self.baseline, self.total) or self.done % self.sample_every == 0:
                self.samples[self.done] = rss_mib(self.pid)
                # as it goes: a long soak on a busy machine runs for an hour, its table comes at the end
                print(f"{self.done} steps: {self.samples[self.done]:.0f} MiB", flush=True)

    def failed(self, exc: Exception) -> None:
        kind = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        with self.lock:
            self.errors[kind] += 1


def session_body(session: int) -> dict:
    """A greedy raw-prompt step request whose prompt (16-240 words of the docs) the session number picks."""
    rng = random.Random(session)
    prompt = f"Session {session}: {harness.docs_prompt(rng, rng.randint(*harness.PROMPT_WORDS))}"
    return {"prompt": prompt, "use_chat_template": False, "completion_ids": [], "top_k": 10, "params": {"greedy": True}}


def soak_client(url: str, soak: Soak, first: int, stride: int, session_steps: int) -> None:
    """New sessions first, first + stride, ...: each walks up to `session_steps` steps, until no steps are left."""
    with httpx.Client(timeout=START_TIMEOUT_S) as client:
        for session in range(first, sys.maxsize, stride):
            body = session_body(session)
            for _ in range(session_steps):
                if not soak.take():
                    return
                begin = time.perf_counter()
                try:
                    answer = client.post(f"{url}api/step", json=body)
                    answer.raise_for_status()
                except httpx.HTTPError as exc:
                    soak.failed(exc)
                    break
                soak.finished((time.perf_counter() - begin) * 1000)
                state = answer.json()
                body["completion_ids"] = state["completion_ids"]
                if state["finished"]:
                    break


def soak_report(args: argparse.Namespace, app: harness.App, folder: Path) -> int:
    soak = Soak(app.pid, args.steps, min(1000, args.steps // 3), args.sample_every)
    start_mib, begin = rss_mib(app.pid), time.monotonic()
    jobs = [
        threading.Thread(target=soak_client, args=(app.url, soak, i, args.clients, args.session_steps))
        for i in range(args.clients)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    wall = time.monotonic() - begin
    soak.samples[soak.done] = rss_mib(app.pid)
    base, end = soak.samples.get(soak.baseline, start_mib), soak.samples[soak.done]
    print(f"\n{soak.done} steps from {args.clients} clients, a new prompt every {args.session_steps} steps:\n")
    columns = ("steps", "wall s", "steps/s", "p50 ms", "p95 ms", "errors")
    lat = soak.latencies_ms
    p50, p95 = harness.median(lat), harness.percentile(lat, 0.95)
    cells = (soak.done, f"{wall:.0f}", f"{soak.done / wall:.1f}", f"{p50:.0f}", f"{p95:.0f}", sum(soak.errors.values()))
    harness.print_table(columns, [cells], "rrrrrr")
    print("\nserver RSS (MiB):\n")
    first = soak.baseline
    columns = ("after warm-up", f"after {first} steps", f"after {soak.done} steps", f"end / after {first}")
    harness.print_table(columns, [(f"{start_mib:.0f}", f"{base:.0f}", f"{end:.0f}", f"{end / base:.3f}")], "rrrr")
    print("\nsamples (steps: MiB): " + ", ".join(f"{n}: {mib:.0f}" for n, mib in sorted(soak.samples.items())))
    for kind, count in soak.errors.items():
        print(f"- {kind}: {count}")
    return 0


def main() -> None:
    args = arguments()
    env = engine_env(args.engine)
    if env is None:
        print(f"engine {args.engine}: skipped, vllm is not importable in {sys.executable}")
        return
    # a small bound is full early: what grows after it is not the cache
    if getattr(args, "kv_cache_mb", None) is not None:
        env["NEXTTOKEN_KV_CACHE_MB"] = f"{args.kv_cache_mb:g}"
    print(f"engine {args.engine}, load average at the start (1/5/15 min): {load_average()}")
    with tempfile.TemporaryDirectory() as folder, harness.launched_app(Path(folder) / "app.log", env) as app:
        warm_up(app.url)
        report = load_report if args.mode == "load" else soak_report
        code = report(args, app, Path(folder))
    print(f"\nload average at the end (1/5/15 min): {load_average()}")
    sys.exit(code)


if __name__ == "__main__":
    main()
