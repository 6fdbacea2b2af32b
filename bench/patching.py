"""Benchmark of activation patching on the embedded model: the whole grid of each site against one forward pass.

Run with `uv run python bench/patching.py [--tokens 32] [--repeats 3]`. The grid is layers x positions (30 x 32
on SmolLM2-135M at 32 tokens); each column continues the corrupted run's cached prefix, so the grid runs about
layers x (T + 1) / 2 forward passes' worth of tokens, in batches of one row per layer. Prints the median time of
the grid for each site beside one full forward pass over the same context (no cache), and the ratio; the
budget the API holds a grid to is in cells (`--max-patching-cells`). Nothing is asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import harness
import torch

from attribution.patching import SITES, patching_slices
from backends.model import EMBEDDED_ID, LoadedModel, load_model

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Paul gave a drink to"


def contexts(loaded: LoadedModel, tokens: int) -> tuple[list[int], list[int]]:
    """Clean and corrupted contexts of `tokens` tokens that differ in one word (the text repeated to fit)."""
    encode = loaded.tokenizer
    clean, corrupted = (encode(" ".join([text] * (1 + tokens // 10)))["input_ids"] for text in (CLEAN, CORRUPTED))
    return clean[-tokens:], corrupted[-tokens:]


def seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return harness.median(times)


def main() -> None:
    parser = harness.parser(__doc__, threads=True)
    parser.add_argument("--tokens", type=int, default=32, help="context length (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(EMBEDDED_ID, device="cpu")
    clean, corrupted = contexts(loaded, args.tokens)
    target, foil = loaded.tokenizer(" Mary")["input_ids"][0], loaded.tokenizer(" John")["input_ids"][0]
    ids = torch.tensor([clean])

    def forward() -> None:
        with torch.no_grad():
            loaded.model(ids, logits_to_keep=1, use_cache=False)

    one = seconds(forward, max(5, args.repeats))
    layers = int(loaded.model.config.num_hidden_layers)
    rows = [["one forward pass", "", f"{one * 1000:.0f}", "1.0"]]
    for site in SITES:
        took = seconds(
            lambda site=site: list(patching_slices(loaded, clean, corrupted, target, foil, site)), args.repeats
        )
        rows.append([f"grid, {site}", f"{layers} x {args.tokens}", f"{took * 1000:.0f}", f"{took / one:.1f}"])
    print(f"threads {torch.get_num_threads()}, {args.tokens} tokens, medians of {args.repeats}")
    harness.print_table(["what", "cells", "ms", "x one forward"], rows, "lrrr")


if __name__ == "__main__":
    main()
