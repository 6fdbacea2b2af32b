"""What the APIs add to a step: the engine's step called directly vs the same step over REST and Gradio's HTTP API.

Run: `uv run python bench/api_overhead.py [--runs N]`. Serves Gradio's API and the REST API from this process
(`cli.launch`, as `app.py` does, without the UI), so every method runs on the same model and the same torch
threads (a second process's idle threads would skew a small machine). At a CONTEXT_TOKENS-token raw prompt,
each method walks its own greedy completion (its own prompt, so no method reuses another's cached logits),
one new token per call, interleaved so a burst of load hits all of them:

- engine: `engine.step(engine.request(body)).as_dict()` in this process;
- service: `service.step(body)` in this process (strict parsing, budgets and the model lane on top);
- REST: `POST /api/step` with the JSON body, the JSON answer read back;
- Gradio: `POST /gradio_api/call/step` then its event stream, read to the end.

Prints a markdown table of medians (ms) and the ratio to the engine's step; the REST target is at most
1.15 x. Asserts nothing.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Hashable, Iterator

import gradio as gr
import harness
import httpx

import cli
from backends.model import EMBEDDED_ID, STORE, load_model
from bench.step import prompt_of
from decoding.engine import engine_for
from server import gradio_api
from service import operations as service
from service.prefetch import PREFETCH

CONTEXT_TOKENS = 128
RUNS = 20
TIMEOUT_S = 300
LABELS = ("Engine", "Service", "REST", "Gradio", "Client")  # one prompt per walk: first words differ


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


def gradio_step(client: httpx.Client, url: str, body: dict) -> dict:
    posted = client.post(f"{url}gradio_api/call/step", json={"data": [body]})
    posted.raise_for_status()
    stream = client.get(f"{url}gradio_api/call/step/{posted.json()['event_id']}").text
    events = [line for line in stream.splitlines() if line.startswith(("event:", "data:"))]
    if "event: complete" not in events:
        raise RuntimeError(f"the Gradio call failed: {stream[-300:]}")
    return json.loads(events[-1].removeprefix("data:"))[0]


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


def measure(runs: int) -> tuple[dict[str, list[float]], int]:
    loaded = load_model(EMBEDDED_ID, device="cpu")
    STORE.use(loaded)
    engine = engine_for(loaded)
    calls = {
        "engine": lambda body: engine.step(engine.request(body)).as_dict(),
        "service": service.step,
    }
    with serving() as url, httpx.Client(timeout=TIMEOUT_S) as client:
        calls |= {"REST": lambda b: rest_step(client, url, b), "Gradio": lambda b: gradio_step(client, url, b)}
        walks = {name: body_for(loaded.tokenizer, i) for i, name in enumerate(calls)}
        times: dict[str, list[float]] = {name: [] for name in calls}
        for name, call in calls.items():  # warm-up: the prompt's prefill, then one step
            timed(walks, name, call, {name: []})
        for _ in range(runs):
            for name, call in calls.items():
                timed(walks, name, call, times)
    context = len(engine.prompt_ids(engine.request(walks["engine"]))[0])
    return times, context


def print_table(times: dict[str, list[float]], context: int, runs: int) -> None:
    engine = harness.median(times["engine"])
    print(f"\nStep at a {context}-token context, medians of {runs} steps per method (ms):\n")
    rows = [
        (name, f"{harness.median(values):.1f}", f"{min(values):.1f}", f"{harness.median(values) / engine:.2f}")
        for name, values in times.items()
    ]
    harness.print_table(("method", "median ms", "min ms", "x engine"), rows, "lrrr")
    print("\nTarget: REST <= 1.15 x engine.")


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--runs", type=int, default=RUNS, help=f"steps per method (default {RUNS})")
    runs = parser.parse_args().runs
    # Every method pays for a cold step: with prefetch a greedy walk would be served from memory, and the
    # background forwards would compete with the engine's own steps for the same CPUs.
    PREFETCH.configure(0)
    times, context = measure(runs)
    print_table(times, context, runs)


if __name__ == "__main__":
    main()
