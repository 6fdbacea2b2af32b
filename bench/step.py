"""Per-step cost on the embedded model: full recompute vs this project's cached step vs `generate`.

Run with `uv run python bench/step.py`. Prints one markdown table; asserts nothing. For each context
length (a raw prompt of exactly that many tokens, greedy decoding) it measures the median over STEPS
steps of:

- recompute: `model(all ids, logits_to_keep=1)` per step, no cache (what reference tools do);
- step: `engine_for(loaded).step(request)` through the public engine API, each step feeding the
  previous result's completion_ids, the prefix cache warmed by a preview first;
- generate: transformers' greedy `generate` per new token, timed between consecutive calls of a
  logits processor that only records the time (so the prompt's prefill is excluded).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from decoding.engine import engine_for
from decoding.model import EMBEDDED_ID, load_model

CONTEXTS = (32, 128, 512, 1024)
STEPS = 8
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


def recompute_ms(model, ids: list[int]) -> float:
    times, ids = [], list(ids)
    with torch.no_grad():
        for _ in range(STEPS):
            start = time.perf_counter()
            logits = model(torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
            times.append(time.perf_counter() - start)
            ids.append(int(torch.argmax(logits)))
    return statistics.median(times) * 1e3


def step_ms(engine, prompt: str) -> float:
    data = {"prompt": prompt, "use_chat_template": False, "completion_ids": [], "params": PARAMS}
    engine.preview(engine.request(data))  # warms the prefix cache with the prompt
    times = []
    for _ in range(STEPS):
        start = time.perf_counter()
        result = engine.step(engine.request(data))
        times.append(time.perf_counter() - start)
        data = {**data, "completion_ids": result.completion_ids}
    return statistics.median(times) * 1e3


class Stamp(LogitsProcessor):
    """Records when generate asks for the next token's scores; leaves the scores alone."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores


def generate_ms(model, ids: list[int], pad_id: int) -> float:
    stamp = Stamp()
    inputs = torch.tensor([ids])
    with torch.no_grad():
        model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=STEPS + 1,
            min_new_tokens=STEPS + 1,
            do_sample=False,
            top_k=None,
            top_p=None,
            temperature=None,
            pad_token_id=pad_id,
            logits_processor=LogitsProcessorList([stamp]),
        )
    gaps = [b - a for a, b in zip(stamp.times, stamp.times[1:], strict=False)]
    return statistics.median(gaps) * 1e3


def main() -> None:
    loaded = load_model(EMBEDDED_ID, device="cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    engine = engine_for(loaded)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    step_ms(engine, prompt_of(tokenizer, 16))  # warm-up: first calls pay one-off costs
    rows = []
    for n in CONTEXTS:
        prompt = prompt_of(tokenizer, n)
        ids = tokenizer(prompt)["input_ids"]
        gen = generate_ms(model, ids, pad_id)
        step = step_ms(engine, prompt)
        full = recompute_ms(model, ids)
        rows.append((n, full, step, gen))
        print(f"context {n}: recompute {full:.1f} ms, step {step:.1f} ms, generate {gen:.1f} ms", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nSmolLM2-135M-Instruct, float32, CPU, torch threads {torch.get_num_threads()}, median of {STEPS} steps")
    print(f"(load average at the end: {load:.1f} on {os.cpu_count()} CPUs)\n")
    print("| context | recompute (ms) | step (ms) | generate (ms/token) | step / generate | recompute / step |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, full, step, gen in rows:
        print(f"| {n} | {full:,.1f} | {step:,.1f} | {gen:,.1f} | {step / gen:.2f} | {full / step:.1f} |")
    by_n = {n: (full, step, gen) for n, full, step, gen in rows}
    print()
    worst = max(step / gen for _, _, step, gen in rows)
    print(f"- step / generate, worst context: {worst:.2f} (target <= 1.15)")
    first, last = by_n[CONTEXTS[0]], by_n[CONTEXTS[-1]]
    print(f"- step@{CONTEXTS[-1]} / step@{CONTEXTS[0]}: {last[1] / first[1]:.2f} (target <= 1.25)")
    print(f"- recompute / step at {CONTEXTS[-1]}: {last[0] / last[1]:.1f} (target >= 20)")


if __name__ == "__main__":
    main()
