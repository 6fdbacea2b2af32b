"""Cost of an ablation sweep on the embedded model at a context of 128 tokens, in forward passes.

Run with `python bench/sweep.py` on an idle machine. Prints one markdown table; asserts nothing. The unit is
one plain forward pass of the whole context (no cache, last position's logits only), timed in the same run
and interleaved with the sweeps, so a burst of load hits both; the target is 100 forward passes for the 270
heads (issue: ablation sweeps). Each sweep runs through `attribution.sweep` as the service does, one slice
per layer, the context's clean pass included.
"""

from __future__ import annotations

import os
import time

import harness
import torch

from attribution.sweep import sweep
from backends.model import EMBEDDED_ID, load_model

CONTEXT = 128
ROUNDS = 3
FORWARDS_PER_ROUND = 5
PROMPT = "The river wound through the valley, past old mills and quiet farms,"
KINDS = (("heads", "zero"), ("heads", "mean"), ("mlps", "zero"), ("layers", "zero"))


def context(loaded) -> list[int]:
    ids = loaded.tokenizer(PROMPT)["input_ids"]
    filler = loaded.tokenizer(" a" * CONTEXT, add_special_tokens=False)["input_ids"]
    return (ids + filler)[:CONTEXT]


def forward_s(model, ids: list[int]) -> float:
    tokens = torch.tensor([ids])
    start = time.perf_counter()
    with torch.no_grad():
        model(input_ids=tokens, logits_to_keep=1, use_cache=False)
    return time.perf_counter() - start


def main() -> None:
    threads = harness.parser(__doc__, threads=True).parse_args().threads
    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(EMBEDDED_ID, device="cpu")
    ids = context(loaded)
    target = int(loaded.tokenizer(" the", add_special_tokens=False)["input_ids"][0])
    forwards: list[float] = []
    times: dict[str, list[float]] = {f"{kind} {mode}": [] for kind, mode in KINDS}
    for _ in range(ROUNDS):
        forwards += [forward_s(loaded.model, ids) for _ in range(FORWARDS_PER_ROUND)]
        for kind, mode in KINDS:
            start = time.perf_counter()
            sweep(loaded, ids, target, kind, mode)
            times[f"{kind} {mode}"].append(time.perf_counter() - start)
    unit = harness.median(forwards)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    config = loaded.model.config
    print(f"\nSmolLM2-135M-Instruct, float32, CPU, torch threads {torch.get_num_threads()}, context {CONTEXT} tokens;")
    print(f"one forward pass: median {unit * 1e3:,.1f} ms of {len(forwards)} (load average {load:.1f} on "
          f"{os.cpu_count()} CPUs); sweeps: median of {ROUNDS}\n")  # fmt: skip
    counts = {"heads": config.num_hidden_layers * config.num_attention_heads, "mlps": config.num_hidden_layers}
    rows = [
        (name, counts.get(name.split()[0], config.num_hidden_layers), f"{harness.median(values):,.2f}",
         f"{harness.median(values) / unit:,.1f}")
        for name, values in times.items()
    ]  # fmt: skip
    harness.print_table(("sweep", "components", "time (s)", "/ forward pass"), rows, "lrrr")
    print(f"\nheads zero / forward pass: {harness.median(times['heads zero']) / unit:.1f} (target <= 100)")


if __name__ == "__main__":
    main()
