"""Does prefetch ever slow a caller? REST and Gradio steps with prefetch off and on, back to back and at a pace.

Run: `uv run python bench/prefetch_pace.py [--context 695] [--runs 20] [--pace 0.3]`. Serves both APIs from this
process (as `bench/api_overhead.py` does). Every row walks its own greedy completion from its own prompt of
about `--context` tokens, one token per call: back to back (the next call as soon as the answer is read), or
`--pace` seconds after it (a person reading the bars). Rows are measured in interleaved rounds, so a burst of
load hits all of them. Also measures transformers' `generate`: the per-token time of its decoding loop at the
same context ((time for 1 + n new tokens - time for 1) / n, greedy).

Prints one markdown table: median ms per row, its ratio to the same caller with prefetch off back to back, and
to `generate`'s token. Targets: back to back, prefetch on <= 1.05 x off; at the pace, <= 0.15 x a cold step;
REST <= 1.15 x `generate`. Asserts nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import harness
import httpx

from backends.model import EMBEDDED_ID, STORE, load_model
from bench.api_overhead import TIMEOUT_S, body_for, generate_token_ms, gradio_step, rest_step, serving, timed
from service.prefetch import DEFAULT_COUNT, PREFETCH

CONTEXT = 695
RUNS = 20
PACE_S = 0.3


@dataclass(frozen=True)
class Row:
    """One way of calling: which API, prefetch count, and the pause before each call."""

    api: str
    prefetch: int
    pace_s: float

    @property
    def name(self) -> str:
        pace = "back to back" if self.pace_s == 0 else f"{self.pace_s:g} s pace"
        return f"{self.api}, prefetch {'off' if self.prefetch == 0 else self.prefetch}, {pace}"


def rows_for(pace_s: float) -> list[Row]:
    return [Row(api, count, pace) for api in ("REST", "Gradio") for count in (0, DEFAULT_COUNT) for pace in (0, pace_s)]


def sequence(call, walks: dict[Row, dict], row: Row, times: dict[Row, list[float]]) -> None:
    """A caller's turn: once the model is quiet, one call unmeasured, then three back to back or one after the pause.

    The unmeasured call starts the walk's own rhythm (its answer schedules its prefetch); what comes after it is
    what a script or a person meets.
    """
    PREFETCH.configure(row.prefetch)
    PREFETCH.wait_idle(TIMEOUT_S)
    timed(walks, row, call, {row: []})
    for _ in range(1 if row.pace_s else 3):
        time.sleep(row.pace_s)
        timed(walks, row, call, times)


def measure(context: int, runs: int, pace_s: float) -> tuple[dict[Row, list[float]], float, int]:
    loaded = load_model(EMBEDDED_ID, device="cpu")
    STORE.use(loaded)
    rows = rows_for(pace_s)
    times: dict[Row, list[float]] = {row: [] for row in rows}
    with serving() as url, httpx.Client(timeout=TIMEOUT_S) as client:
        calls = {"REST": lambda b: rest_step(client, url, b), "Gradio": lambda b: gradio_step(client, url, b)}
        walks = {row: body_for(loaded.tokenizer, 100 + i, context) for i, row in enumerate(rows)}
        for row in rows:  # warm-up: each walk's prefill
            timed(walks, row, calls[row.api], {row: []})
        for _ in range(runs):
            for row in rows:
                sequence(calls[row.api], walks, row, times)
    PREFETCH.configure(0)
    ids = loaded.tokenizer(walks[rows[0]]["prompt"])["input_ids"]
    return times, generate_token_ms(loaded.model, ids), len(ids)


def print_table(times: dict[Row, list[float]], generate_ms: float, context: int) -> None:
    print(f"\nA greedy step at a ~{context}-token context; transformers generate: {generate_ms:.1f} ms a token\n")
    cold = {row.api: harness.median(t) for row, t in times.items() if row.prefetch == 0 and row.pace_s == 0}
    table = [
        (
            row.name,
            f"{harness.median(t):.1f}",
            f"{harness.median(t) / cold[row.api]:.2f}",
            f"{harness.median(t) / generate_ms:.2f}",
        )
        for row, t in times.items()
    ]
    harness.print_table(("caller", "median ms", "x cold (same API)", "x generate"), table, "lrrr")
    print("\nTargets: back to back, prefetch on <= 1.05 x off; at the pace <= 0.15 x cold; REST <= 1.15 x generate.")


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--context", type=int, default=CONTEXT, help=f"prompt tokens (default {CONTEXT})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"rounds (default {RUNS})")
    parser.add_argument("--pace", type=float, default=PACE_S, help=f"seconds before a paced call (default {PACE_S})")
    args = parser.parse_args()
    times, generate_ms, context = measure(args.context, args.runs, args.pace)
    print_table(times, generate_ms, context)


if __name__ == "__main__":
    main()
