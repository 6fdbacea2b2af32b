"""Many users at once through the REST API: steps per second and step latency, alone and beside a long attribution.

Run: `uv run python bench/load.py [--clients 16] [--steps 40] [--ig-steps 64]`. Launches `app.py` as a
subprocess. Each client (a thread with its own HTTP connection) walks its own greedy completion from its
own ~128-token prompt, one `POST /api/step` at a time. Two rounds:

- alone: only the clients;
- with attribution: one more client first starts integrated gradients (`--ig-steps` steps) on a
  ~128-token context, and the clients start once it is running.

Prints a markdown table: total steps per second, p50 / p95 / max step latency (ms), and how long the
attribution took. The model lane serves requests in arrival order and runs the attribution in slices,
so a step waits for at most one slice of it. Asserts nothing.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import harness
import httpx

from backends.model import EMBEDDED_ID, load_model
from bench.api_overhead import TIMEOUT_S, body_for, rest_step

CLIENTS, STEPS, IG_STEPS = 16, 40, 64


@dataclass(frozen=True)
class Round:
    name: str
    wall_s: float
    latencies_ms: tuple[float, ...]
    attribution_s: float | None = None

    @property
    def steps_per_s(self) -> float:
        return len(self.latencies_ms) / self.wall_s

    def latency_cells(self) -> tuple[str, ...]:
        """steps, steps/s, p50 ms, p95 ms, max ms."""
        steps, p95 = self.latencies_ms, harness.percentile(self.latencies_ms, 0.95)
        return (
            str(len(steps)),
            f"{self.steps_per_s:.1f}",
            f"{harness.median(steps):.0f}",
            f"{p95:.0f}",
            f"{max(steps):.0f}",
        )

    def row(self) -> tuple[str, ...]:
        attribution = "-" if self.attribution_s is None else f"{self.attribution_s:.1f}"
        return self.name, *self.latency_cells(), attribution


def client_walk(url: str, body: dict, steps: int, latencies: list[float], ready: threading.Barrier) -> None:
    with httpx.Client(timeout=TIMEOUT_S) as client:
        body = body | {"completion_ids": rest_step(client, url, body)["completion_ids"]}  # the prefill, untimed
        ready.wait()
        for _ in range(steps):
            begin = time.perf_counter()
            result = rest_step(client, url, body)
            latencies.append((time.perf_counter() - begin) * 1000)
            body = body | {"completion_ids": result["completion_ids"]}


def attribution_run(url: str, body: dict, ig_steps: int, took: list[float]) -> None:
    request = body | {"target_token_id": 13, "method": "integrated_gradients", "ig_steps": ig_steps}
    begin = time.perf_counter()
    answer = httpx.post(f"{url}api/attribution", content=json.dumps(request), timeout=None)
    answer.raise_for_status()
    took.append(time.perf_counter() - begin)


def run_round(url: str, tokenizer, name: str, clients: int, steps: int, ig_steps: int | None, first: int) -> Round:
    """The clients' steps, timed from when every client has its prompt prefilled; the attribution starts first.

    Client i walks prompt `first + i`: each round has prompts of its own, so none hits another round's cache.
    """
    latencies: list[float] = []
    took: list[float] = []
    ready = threading.Barrier(clients + 1)
    jobs = [
        threading.Thread(target=client_walk, args=(url, body_for(tokenizer, first + i), steps, latencies, ready))
        for i in range(clients)
    ]
    if ig_steps is not None:
        body = body_for(tokenizer, first + clients)
        jobs.insert(0, threading.Thread(target=attribution_run, args=(url, body, ig_steps, took)))
    for job in jobs:
        job.start()
    ready.wait()
    begin = time.perf_counter()
    for job in jobs[1:] if ig_steps is not None else jobs:
        job.join()
    wall = time.perf_counter() - begin
    for job in jobs:
        job.join()
    return Round(name, wall, tuple(latencies), took[0] if took else None)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--steps", type=int, default=STEPS, help="steps per client")
    parser.add_argument("--ig-steps", type=int, default=IG_STEPS, help="integrated-gradients steps of the attribution")
    args = parser.parse_args()
    tokenizer = load_model(EMBEDDED_ID, device="cpu").tokenizer
    with tempfile.TemporaryDirectory() as folder, harness.running_app(Path(folder) / "app.log") as url:
        sizes = (args.clients, args.steps)
        rounds = [
            run_round(url, tokenizer, "alone", *sizes, None, first=0),
            run_round(url, tokenizer, "with attribution", *sizes, args.ig_steps, first=args.clients + 1),
        ]
    print(f"\n{args.clients} clients x {args.steps} steps over REST (~128-token contexts, greedy):\n")
    columns = ("round", "steps", "steps/s", "p50 ms", "p95 ms", "max ms", "attribution s")
    harness.print_table(columns, [item.row() for item in rounds], "lrrrrrr")


if __name__ == "__main__":
    main()
