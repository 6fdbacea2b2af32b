"""What the APIs add to a step: the engine's step called directly vs the same step over REST and Gradio's HTTP API.

Run: `uv run python bench/api_overhead.py [--context 695] [--runs N] [--rounds R]`. Serves Gradio's API and the
REST API from this process (`cli.launch`, as `app.py` does, without the UI), so every method runs on the same model
and the same torch threads (a second process's idle threads would skew a small machine). At a `--context`-token raw
prompt, each method walks its own greedy completion (its own prompt, so no method reuses another's cached logits),
one new token per call, `--runs` calls in a row as a script steps (a method interleaved with the others paid for
their caches' memory traffic: ~1.35 x `generate` over REST where a script alone takes ~1.05 x), the methods in
turn, the whole round `--rounds` times (A, B, A, B) so a burst of load hits all of them:

- engine: `engine.step(engine.request(body)).as_dict()` in this process;
- service: `service.step(body)` in this process (strict parsing, budgets and the model lane on top);
- REST: `POST /api/step` with the JSON body, the JSON answer read back; "slim": with `send_prompt_tokens: false`;
- Gradio: `POST /gradio_api/call/step` (the queue) then its event stream, read to the end; "slim" as above;
- Gradio direct: `POST /gradio_api/run/step`, slim: Gradio's route without the queue or the event stream.

Also transformers' `generate` per token at the same context after each round (bench/prefetch_pace.py's measure).
Prints a markdown table of medians (ms) and their ratios to the engine's step and to `generate`'s token, then where
a Gradio step's time goes beyond the function (the queue's join, the event stream, Gradio's own processing,
serialisation). Targets: REST <= 1.15 x `generate`, Gradio <= 1.6 x. Asserts nothing.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Hashable, Iterator

import gradio as gr
import harness
import httpx
import orjson
import torch

import cli
from backends.model import EMBEDDED_ID, STORE, load_model
from bench.step import prompt_of
from decoding.engine import engine_for
from server import gradio_api
from service import operations as service
from service.prefetch import PREFETCH

CONTEXT_TOKENS = 695
RUNS = 8
ROUNDS = 3
GENERATE_TOKENS = 16
SERIALISE_RUNS = 50
TIMEOUT_S = 300
# one prompt per walk: first words differ
LABELS = ("Engine", "Service", "REST", "Slim", "Gradio", "Lean", "Direct", "Client")


def body_for(tokenizer, walk: int, context: int = CONTEXT_TOKENS) -> dict:
    """A greedy raw-prompt step request of about `context` tokens whose first word names the walk."""
    label = LABELS[walk % len(LABELS)] + str(walk)
    prompt = f"{label}: {prompt_of(tokenizer, context - len(tokenizer(label + ':')['input_ids']))}"
    return {
        "prompt": prompt,
        "use_chat_template": False,
        "completion_ids": [],
        "top_k": 10,
        "params": {"greedy": True},
    }


def rest_step(client: httpx.Client, url: str, body: dict) -> dict:
    answer = client.post(f"{url}api/step", content=json.dumps(body), headers={"content-type": "application/json"})
    answer.raise_for_status()
    return answer.json()


def gradio_step(client: httpx.Client, url: str, body: dict, phases: dict | None = None) -> dict:
    """A step over Gradio's queue: join, then the event stream; `phases` gets each one's ms appended."""
    start = time.perf_counter()
    posted = client.post(f"{url}gradio_api/call/step", json={"data": [body]})
    posted.raise_for_status()
    joined = time.perf_counter()
    stream = client.get(f"{url}gradio_api/call/step/{posted.json()['event_id']}").text
    if phases is not None:
        phases.setdefault("queue join (POST /call)", []).append((joined - start) * 1000)
        phases.setdefault("event stream (GET, the function inside)", []).append((time.perf_counter() - joined) * 1000)
    events = [line for line in stream.splitlines() if line.startswith(("event:", "data:"))]
    if "event: complete" not in events:
        raise RuntimeError(f"the Gradio call failed: {stream[-300:]}")
    return json.loads(events[-1].removeprefix("data:"))[0]


def generate_token_ms(model, ids: list[int], tokens: int = GENERATE_TOKENS) -> float:
    """transformers' greedy decoding time per token at this context, the prefill left out."""

    def run(n: int) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False)
        return time.perf_counter() - start

    run(1)  # warm-up
    return harness.median((run(1 + tokens) - run(1)) * 1000 / tokens for _ in range(3))


def gradio_direct_step(client: httpx.Client, url: str, body: dict, phases: dict | None = None) -> dict:
    """A step over Gradio's route without the queue (`/gradio_api/run/step`); `phases` gets the function's ms
    as Gradio timed it."""
    answer = client.post(f"{url}gradio_api/run/step", json={"data": [body]})
    answer.raise_for_status()
    data = answer.json()
    if phases is not None:
        phases.setdefault("direct: the function, as Gradio timed it", []).append(data["duration"] * 1000)
    return data["data"][0]


def timed(walks: dict, name: Hashable, call: Callable[[dict], dict], times: dict) -> None:
    """One step of the walk `name`: the call's wall time, and the walk's completion extended."""
    start = time.perf_counter()
    result = call(walks[name])
    times[name].append((time.perf_counter() - start) * 1000)
    walks[name] = walks[name] | {"completion_ids": result["completion_ids"]}


@contextlib.contextmanager
def serving() -> Iterator[str]:
    """Gradio's API endpoints and the REST API on a free local port of this process; yields the URL."""
    with gr.Blocks() as demo:
        gradio_api.register(demo)
    demo.queue()
    cli.launch(demo, cli.parse_args(["--host", "127.0.0.1"], {}), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


def measure(context: int, runs: int, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """Each method's step times, the Gradio phases, and the context in tokens."""
    loaded = load_model(EMBEDDED_ID, device="cpu")
    STORE.use(loaded)
    engine = engine_for(loaded)
    slim = {"send_prompt_tokens": False}
    phases: dict[str, list[float]] = {}
    calls = {
        "engine": lambda body: engine.step(engine.request(body)).as_dict(),
        "service": service.step,
    }
    with serving() as url, httpx.Client(timeout=TIMEOUT_S) as client:
        calls |= {
            "REST": lambda b: rest_step(client, url, b),
            "REST, slim": lambda b: rest_step(client, url, b | slim),
            "Gradio": lambda b: gradio_step(client, url, b, phases),
            "Gradio, slim": lambda b: gradio_step(client, url, b | slim),
            "Gradio direct, slim": lambda b: gradio_direct_step(client, url, b | slim, phases),
        }
        walks = {name: body_for(loaded.tokenizer, i, context) for i, name in enumerate(calls)}
        times: dict[str, list[float]] = {name: [] for name in calls}
        for name, call in calls.items():  # warm-up: the prompt's prefill, then one step
            timed(walks, name, call, {name: []})
        phases.clear()
        ids = loaded.tokenizer(walks["engine"]["prompt"])["input_ids"]
        times["generate (a token)"] = []
        for _ in range(rounds):
            for name, call in calls.items():
                for _ in range(runs):
                    timed(walks, name, call, times)
            times["generate (a token)"].append(generate_token_ms(loaded.model, ids))
    return times, phases | serialisation(service.step(walks["service"])), len(ids)


def serialisation(answer: dict) -> dict[str, list[float]]:
    """What encoding one answer costs (orjson, as REST and Gradio's event stream do), full and slim."""
    out = {}
    for label, value in (("full", answer), ("slim", answer | {"prompt_tokens": []})):
        size = len(orjson.dumps(value))
        start = time.perf_counter()
        for _ in range(SERIALISE_RUNS):
            orjson.dumps(value)
        out[f"orjson encoding, {label} answer ({size / 1024:.0f} KiB)"] = [
            (time.perf_counter() - start) * 1000 / SERIALISE_RUNS
        ]
    return out


def print_table(times: dict[str, list[float]], phases: dict[str, list[float]], context: int, runs: int) -> None:
    engine, generate = harness.median(times["engine"]), harness.median(times["generate (a token)"])
    print(f"\nStep at a {context}-token context, medians of {runs} steps per method (ms; generate: of rounds):\n")
    rows = [
        (name, f"{harness.median(values):.1f}", f"{min(values):.1f}", f"{harness.median(values) / engine:.2f}",
         f"{harness.median(values) / generate:.2f}")
        for name, values in times.items()
    ]  # fmt: skip
    harness.print_table(("method", "median ms", "min ms", "x engine", "x generate"), rows, "lrrrr")
    print("\nTargets: REST <= 1.15 x generate; Gradio <= 1.6 x generate.")
    print("\nWhere a Gradio step's time goes (medians, ms):\n")
    function = harness.median(times["service"])
    rows = [(name, f"{harness.median(values):.2f}") for name, values in phases.items()]
    rows.append(("the function (service step, in process)", f"{function:.1f}"))
    beyond = harness.median(times["Gradio"]) - function
    rows.append(("Gradio beyond the function (queue, event stream, serialisation)", f"{beyond:.1f}"))
    rows.append(("REST beyond the function", f"{harness.median(times['REST']) - function:.1f}"))
    harness.print_table(("part", "ms"), rows, "lr")


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--context", type=int, default=CONTEXT_TOKENS, help=f"prompt tokens (default {CONTEXT_TOKENS})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"steps in a row per method and round (default {RUNS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    args = parser.parse_args()
    # Every method pays for a cold step: with prefetch a greedy walk would be served from memory, and the
    # background forwards would compete with the engine's own steps for the same CPUs.
    PREFETCH.configure(0)
    times, phases, context = measure(args.context, args.runs, args.rounds)
    print_table(times, phases, context, args.runs * args.rounds)


if __name__ == "__main__":
    main()
