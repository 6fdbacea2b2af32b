"""One scripted client stepping back to back, alone: REST and Gradio's API against transformers' `generate`.

Run: `uv run python bench/one_client.py [--context 695] [--runs N] [--rounds R]`. bench/api_overhead.py
measures what each layer adds with prefetch off (every step cold); a real script runs with the defaults. Here
each caller walks its own greedy completion, `--runs` steps in a row, then `generate` decodes at the same
context, and the whole round is repeated (A, B, A, B), with default settings (prefetch on: a client that never
pauses gives it no quiet turn). Prints the median of each round's medians and its ratio to `generate`'s token.
Targets: REST <= 1.15 x `generate`, Gradio <= 1.6 x. Asserts nothing.
"""

from __future__ import annotations

import time

import harness
import httpx
from api_overhead import body_for, generate_token_ms, gradio_step, rest_step, serving

from backends.model import EMBEDDED_ID, STORE, load_model
from decoding.engine import engine_for

ROUNDS = 3
RUNS = 15
WARM = 2  # steps before timing: the prompt's prefill, then one step
SETTLE_S = 3.0  # after a walk, prefetch's forwards for its last answer run out before the next caller starts


def walk(call, body: dict, runs: int) -> float:
    """Median ms of `runs` back-to-back steps of one greedy completion."""
    ids: list[int] = []
    times = []
    for i in range(WARM + runs):
        start = time.perf_counter()
        ids = call(body | {"completion_ids": ids})["completion_ids"]
        if i >= WARM:
            times.append((time.perf_counter() - start) * 1000)
    time.sleep(SETTLE_S)
    return harness.median(times)


def measure(context: int, runs: int, rounds: int) -> dict[str, list[float]]:
    loaded = load_model(EMBEDDED_ID, device="cpu")
    STORE.use(loaded)
    engine = engine_for(loaded)
    got: dict[str, list[float]] = {"engine": [], "REST": [], "Gradio": [], "generate (a token)": []}
    with serving() as url, httpx.Client(timeout=120) as client:
        calls = {
            "engine": lambda body: engine.step(engine.request(body)).as_dict(),
            "REST": lambda body: rest_step(client, url, body),
            "Gradio": lambda body: gradio_step(client, url, body),
        }
        for round_no in range(rounds):
            for i, (name, call) in enumerate(calls.items()):  # a fresh prompt per walk: no cached answers
                got[name].append(walk(call, body_for(loaded.tokenizer, 10 * round_no + i, context), runs))
            prompt = loaded.tokenizer(body_for(loaded.tokenizer, 10 * round_no, context)["prompt"])["input_ids"]
            got["generate (a token)"].append(generate_token_ms(loaded.model, prompt))
    return got


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--context", type=int, default=695, help="prompt tokens (default 695)")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"steps per walk (default {RUNS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    args = parser.parse_args()
    got = measure(args.context, args.runs, args.rounds)
    generate = harness.median(got["generate (a token)"])
    rows = [
        (name, f"{harness.median(v):.1f}", " / ".join(f"{x:.0f}" for x in v), f"{harness.median(v) / generate:.2f}")
        for name, v in got.items()
    ]
    print(f"\nOne client, back to back, ~{args.context}-token context, default settings (ms):\n")
    harness.print_table(("caller", "median of rounds", "each round", "x generate"), rows, "lrrr")
    print("\nTargets: REST <= 1.15 x generate; Gradio <= 1.6 x generate.")


if __name__ == "__main__":
    main()
