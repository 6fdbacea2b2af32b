"""Look-ahead costs on the embedded model: batched children, prefetched steps, the tree against previews.

Run with `uv run python bench/lookahead.py`. Prints one markdown table of medians over ROUNDS rounds;
asserts nothing. At a raw prompt of CONTEXT tokens it measures:

- a batch: one batched forward over 8 children of the prompt (`PrefixCache.batch_logits`, 8 rows),
  against one single-token forward the same way (1 row); target <= 2x;
- a step that lands on a prefetched candidate (greedy, after the prefetch finished) against a cold step
  (greedy, the previous position cached by its preview, as a user's step after reading the bars); target
  <= 0.3x;
- the tree with width 4 and depth 3 (3 batched forwards) against previews of its 21 inner nodes one after
  another (what a client without the tree endpoint would send).

Each round starts from a fresh prefix cache warmed by a preview of the prompt. `--threads N` sets torch's
intra-op threads first (default: torch's own choice).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import harness
import torch

from backends.model import EMBEDDED_ID, load_model
from backends.prefix_cache import PrefixCache
from bench.step import prompt_of
from decoding.engine import Engine
from service import tree as tree_mod
from service.prefetch import Prefetcher

CONTEXT = 128
ROUNDS = 7
CHILDREN = 8
WIDTH, DEPTH = 4, 3


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fresh(loaded, data: dict) -> tuple[Engine, object]:
    """An engine on an empty prefix cache, the prompt's position previewed (so cached)."""
    engine = Engine(loaded, PrefixCache())
    req = engine.request(data)
    engine.preview(req)
    return engine, req


def batch_round(loaded, data: dict, times: dict[str, list[float]]) -> None:
    engine, req = fresh(loaded, data)
    base = engine.prompt_ids(req)[0]
    children = tree_mod.top_tokens(engine.analysis(req, base, ())[0].p_base, CHILDREN + 1)
    times["one child"].append(timed(lambda: engine.cache.batch_logits(loaded, base, [(children[0],)])))
    times["8 children, one batch"].append(
        timed(lambda: engine.cache.batch_logits(loaded, base, [(t,) for t in children[1:]]))
    )


def step_round(loaded, data: dict, times: dict[str, list[float]]) -> None:
    engine, req = fresh(loaded, data)
    times["cold step"].append(timed(lambda: engine.step(req)))
    engine, req = fresh(loaded, data)
    prefetcher = Prefetcher(count=4)
    prefetcher.schedule(engine, req)
    prefetcher.wait_idle()
    times["step onto a prefetched token"].append(timed(lambda: engine.step(req)))


def tree_round(loaded, data: dict, times: dict[str, list[float]]) -> None:
    engine, req = fresh(loaded, data)
    found: list = []
    times["tree 4 x 3"].append(timed(lambda: found.extend(tree_mod.levels(engine, req, WIDTH, DEPTH))))
    inner = [(), *(n.path_ids for n in _inner(found[-1].children))]
    engine, req = fresh(loaded, data)
    previews = [engine.request(data | {"completion_ids": list(path)}) for path in inner]
    times[f"{len(inner)} previews"].append(timed(lambda: [engine.preview(r) for r in previews]))


def _inner(nodes):
    for node in nodes:
        if node.children:
            yield node
            yield from _inner(node.children)


def table(times: dict[str, list[float]]) -> str:
    median = {name: harness.median(values) * 1000 for name, values in times.items()}
    pairs = [
        ("8 children, one batch", "one child", "<= 2x"),
        ("step onto a prefetched token", "cold step", "<= 0.3x"),
        ("tree 4 x 3", next(n for n in median if n.endswith("previews")), "< 1x"),
    ]
    rows = [
        (name, f"{median[name]:.1f}", other, f"{median[other]:.1f}", f"{median[name] / median[other]:.2g}x", target)
        for name, other, target in pairs
    ]
    return harness.table(("measure", "median ms", "against", "median ms", "ratio", "target"), rows, "lrlrrl")


def main() -> None:
    threads = harness.parser(__doc__, threads=True).parse_args().threads
    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(EMBEDDED_ID, device="cpu")
    data = {"prompt": prompt_of(loaded.tokenizer, CONTEXT), "use_chat_template": False}
    data["params"] = {"greedy": True, "top_p": 1.0, "repetition_penalty": 1.0}
    sampled = data | {"params": {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}}
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(ROUNDS):
        batch_round(loaded, data, times)
        step_round(loaded, data, times)
        tree_round(loaded, sampled, times)  # sampled: every node has 4 children (greedy keeps one)
    print(f"context {CONTEXT} tokens, {ROUNDS} rounds, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print(table(times))


if __name__ == "__main__":
    main()
