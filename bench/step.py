"""Per-step cost on the embedded model: full recompute vs this project's cached step vs `generate`.

Run with `uv run python bench/step.py`. Prints one markdown table; asserts nothing. For each context
length (a raw prompt of exactly that many tokens, greedy decoding) it measures, per new token:

- recompute: `model(all ids, logits_to_keep=1)`, no cache (what reference tools do);
- step: `engine_for(loaded).step(request)` through the public engine API, each step feeding the
  previous result's completion_ids, the prefix cache warmed by a preview first;
- generate: transformers' greedy `generate`, timed between consecutive calls of a logits processor
  that only records the time (so the prompt's prefill is excluded).

The three are interleaved in ROUNDS rounds of STEPS_PER_ROUND tokens each (the step and recompute
sequences continue across rounds), so a burst of load on a shared machine hits all of them. The
table gives medians; the minima, less sensitive to other processes, follow it.

`--threads N` sets torch's intra-op threads first (default: torch's own choice). On a shared machine
one thread gives steadier numbers, since a multi-threaded op there waits for a descheduled partner.
"""

from __future__ import annotations

import os
import sys
import time

import harness
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from backends.model import EMBEDDED_ID, load_model
from decoding.engine import engine_for

CONTEXTS = (32, 128, 512, 1024)
ROUNDS = 2
STEPS_PER_ROUND = 4
PARAMS = {"greedy": True, "repetition_penalty": 1.0, "top_p": 1.0}
TEXT = (
    "The river wound through the valley, past old mills and quiet farms, where the morning fog lay low over "
    "the fields and the first light caught the tops of the poplars. Travellers stopped at the bridge to "
    "watch the water, and the miller's children counted the boats that drifted down towards the sea."
)


def prompt_of(tokenizer, n: int) -> str:
    """A raw prompt that encodes to exactly n tokens: whole words of TEXT, then ' a' to fill the gap."""
    count = lambda s: len(tokenizer(s)["input_ids"])  # noqa: E731
    words, text, i = TEXT.split(), "", 0
    while count(f"{text} {words[i % len(words)]}") <= n - 1:
        text, i = f"{text} {words[i % len(words)]}", i + 1
    while count(text) < n:
        text += " a"
    if count(text) != n:
        raise RuntimeError(f"could not build a prompt of exactly {n} tokens")
    return text


def recompute_round(model, ids: list[int], times: list[float]) -> list[int]:
    """STEPS_PER_ROUND greedy tokens, each from a full forward over all ids; returns the longer ids."""
    ids = list(ids)
    with torch.no_grad():
        for _ in range(STEPS_PER_ROUND):
            start = time.perf_counter()
            logits = model(torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
            times.append(time.perf_counter() - start)
            ids.append(int(torch.argmax(logits)))
    return ids


def step_round(engine, data: dict, times: list[float]) -> dict:
    """STEPS_PER_ROUND engine steps, each fed the previous result's completion; returns the next request."""
    for _ in range(STEPS_PER_ROUND):
        start = time.perf_counter()
        result = engine.step(engine.request(data))
        times.append(time.perf_counter() - start)
        data = {**data, "completion_ids": result.completion_ids}
    return data


class Stamp(LogitsProcessor):
    """Records when generate asks for the next token's scores; leaves the scores alone."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores


def generate_round(model, ids: list[int], pad_id: int, times: list[float]) -> None:
    """One greedy generate of STEPS_PER_ROUND + 1 tokens: STEPS_PER_ROUND gaps between decoding steps."""
    stamp = Stamp()
    inputs = torch.tensor([ids], device=model.device)
    with torch.no_grad():
        model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=STEPS_PER_ROUND + 1,
            do_sample=False,
            top_k=None,
            top_p=None,
            temperature=None,
            pad_token_id=pad_id,
            logits_processor=LogitsProcessorList([stamp]),
        )
    times.extend(b - a for a, b in zip(stamp.times, stamp.times[1:], strict=False))  # fewer if it hit EOS


def measure(loaded, engine, n: int, pad_id: int) -> dict[str, list[float]]:
    prompt = prompt_of(loaded.tokenizer, n)
    ids = loaded.tokenizer(prompt)["input_ids"]
    data = {"prompt": prompt, "use_chat_template": False, "completion_ids": [], "params": PARAMS}
    engine.preview(engine.request(data))  # warms the prefix cache with the prompt
    times: dict[str, list[float]] = {"recompute": [], "step": [], "generate": []}
    recompute_ids = ids
    for _ in range(ROUNDS):
        generate_round(loaded.model, ids, pad_id, times["generate"])
        data = step_round(engine, data, times["step"])
        recompute_ids = recompute_round(loaded.model, recompute_ids, times["recompute"])
    return times


def main() -> None:
    threads = harness.parser(__doc__, threads=True).parse_args().threads
    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(EMBEDDED_ID, device="cpu")
    engine = engine_for(loaded)
    tok = loaded.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    measure(loaded, engine, 16, pad_id)  # warm-up: first calls pay one-off costs
    med, low = {}, {}
    for n in CONTEXTS:
        times = measure(loaded, engine, n, pad_id)
        med[n] = {k: harness.median(v) * 1e3 for k, v in times.items()}
        low[n] = {k: min(v) * 1e3 for k, v in times.items()}
        print(f"context {n}: median {med[n]}, min {low[n]}", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    steps = ROUNDS * STEPS_PER_ROUND
    print(f"\nSmolLM2-135M-Instruct, float32, CPU, torch threads {torch.get_num_threads()}, median of {steps} steps")
    print(f"(load average at the end: {load:.1f} on {os.cpu_count()} CPUs)\n")
    columns = ("context", "recompute (ms)", "step (ms)", "generate (ms/token)", "step / generate", "recompute / step")
    rows = [
        (n, f"{m['recompute']:,.1f}", f"{m['step']:,.1f}", f"{m['generate']:,.1f}", f"{m['step'] / m['generate']:.2f}",
         f"{m['recompute'] / m['step']:.1f}")
        for n, m in med.items()
    ]  # fmt: skip
    harness.print_table(columns, rows, "rrrrrr")
    first, last = CONTEXTS[0], CONTEXTS[-1]
    for name, table in (("medians", med), ("minima", low)):
        worst = max(m["step"] / m["generate"] for m in table.values())
        print(
            f"\n{name}: step / generate, worst context {worst:.2f} (target <= 1.15); "
            f"step@{last} / step@{first} {table[last]['step'] / table[first]['step']:.2f} (target <= 1.25); "
            f"recompute / step at {last} {table[last]['recompute'] / table[last]['step']:.1f} (target >= 20)"
        )
    print("\nminima (ms): " + "; ".join(f"{n}: " + ", ".join(f"{k} {v:,.1f}" for k, v in low[n].items()) for n in low))


if __name__ == "__main__":
    main()
