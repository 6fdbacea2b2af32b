"""The same many-user load on each engine: transformers (prefix KV cache) against vLLM, side by side.

Run in an environment with the vllm extra (a separate one, so the default stays as it is):

    UV_PROJECT_ENVIRONMENT=.venv-vllm uv run --extra vllm python bench/engines.py [--clients 16] [--steps 40]

For each engine it launches `app.py --engine NAME` as a subprocess and runs `bench/load.py`'s "alone" round:
each client (a thread with its own HTTP connection) walks its own greedy completion from its own
~128-token prompt, one `POST /api/step` at a time. Prints one markdown table: total steps per second and
p50 / p95 / max step latency per engine, and the vLLM engine's throughput relative to transformers.
`--eager` starts vLLM without torch.compile (faster start, slower steps). Asserts nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import harness
import httpx

from backends.model import EMBEDDED_ID, load_model
from backends.settings import BACKENDS
from bench.api_overhead import body_for, rest_step
from bench.load import CLIENTS, STEPS, Round, run_round

START_TIMEOUT_S = 900  # the first request waits for the model: vLLM compiles it on its first start (minutes)


def engine_round(engine: str, tokenizer, clients: int, steps: int, eager: bool) -> Round:
    """`load.py`'s clients against an app served by `engine`, after one untimed request has loaded the model."""
    values = {"NEXTTOKEN_ENGINE": engine}
    if engine == "vllm":
        values["NEXTTOKEN_ENFORCE_EAGER"] = "1" if eager else "0"
    with tempfile.TemporaryDirectory() as folder, harness.running_app(Path(folder) / "app.log", values) as url:
        with httpx.Client(timeout=START_TIMEOUT_S) as client:
            rest_step(client, url, body_for(tokenizer, 10_000))  # waits for the model to load
        return run_round(url, tokenizer, engine, clients, steps, None, first=0)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--steps", type=int, default=STEPS, help="steps per client")
    parser.add_argument("--engines", default=",".join(BACKENDS), help="comma-separated, in order (default: all)")
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile")
    args = parser.parse_args()
    tokenizer = load_model(EMBEDDED_ID, device="cpu").tokenizer
    names = [name.strip() for name in args.engines.split(",") if name.strip()]
    rounds = [engine_round(name, tokenizer, args.clients, args.steps, args.eager) for name in names]
    print(f"\n{args.clients} clients x {args.steps} steps over REST (~128-token contexts, greedy):\n")
    columns = ("engine", "steps", "steps/s", "p50 ms", "p95 ms", "max ms")
    harness.print_table(columns, [(item.name, *item.latency_cells()) for item in rounds], "lrrrrr")
    by_name = {item.name: item.steps_per_s for item in rounds}
    if {"transformers", "vllm"} <= by_name.keys():
        print(f"\nvLLM throughput: {by_name['vllm'] / by_name['transformers']:.2f} x transformers")


if __name__ == "__main__":
    main()
