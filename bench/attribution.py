"""Benchmark of the attribution methods on the embedded model, against the cost of plain model passes.

Run with `uv run python bench/attribution.py [--contexts 64 256] [--repeats 3]`. For each context length
it prints the median time of every method (result cache bypassed) beside two references, one
KV-cached incremental step and one full forward+backward, with the ratios the targets are stated in:
attention <= 2 x one step; saliency and input x gradient <= 1.5 x one forward+backward;
integrated gradients (16 steps) <= 8 x saliency; ablation <= 4 x integrated gradients; direct logit
attribution <= 2 x one forward pass (a third reference: the whole context, no cache). Methods are timed
without their faithfulness numbers, which every result also carries: their cost (one batched forward of
6 contexts) is a row of its own. Attention is shown cold (context prefilled for the request) and warm
(its prefix KV cache kept from an earlier request on the same text). Nothing is asserted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import harness
import torch

from attribution import attention as attention_mod
from attribution import attribute, clear_cache, methods
from attribution.faithfulness import faithfulness
from backends.model import LoadedModel, load_model

TEXT = (
    "Attribution methods explain a prediction by assigning a score to every input token. Gradient methods "
    "look at how the output changes when an embedding moves a little; attention methods read where the model "
    "looked. Neither is the whole story, and comparing them side by side is the point of this view. "
)


def context_ids(loaded: LoadedModel, length: int) -> list[int]:
    """A chat-formatted context cut to `length` tokens (so it starts like the app's contexts do)."""
    chat = [{"role": "user", "content": TEXT * (1 + length // 40)}]
    ids = loaded.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"]
    return list(ids[:length])


def one_cached_step(loaded: LoadedModel, ids: list[int]) -> Callable[[], None]:
    """One new token through a DynamicCache that already holds the rest of the context."""
    from transformers import DynamicCache

    model = loaded.model
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(torch.tensor([ids[:-1]]), past_key_values=cache, use_cache=True)
    last = torch.tensor([ids[-1:]])

    def step() -> None:
        with torch.no_grad():
            model(last, past_key_values=cache, use_cache=True)
        cache.crop(-1)  # back to the context, ready for the next repeat

    return step


def one_forward(loaded: LoadedModel, ids: list[int]) -> Callable[[], None]:
    """The whole context through the model once, no cache, the last position's logits: what a hooked pass costs."""
    tokens = torch.tensor([ids])

    def run() -> None:
        with torch.no_grad():
            loaded.model(tokens, logits_to_keep=1, use_cache=False)

    return run


def forward_backward(loaded: LoadedModel, ids: list[int], target: int) -> Callable[[], None]:
    """The plain way: full forward (all logits) from embeddings, backward of log p(target) to them."""
    model = loaded.model
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids]))

    def run() -> None:
        leaf = embeds.clone().requires_grad_(True)
        logp = model(inputs_embeds=leaf).logits[0, -1].log_softmax(-1)[target]
        torch.autograd.grad(logp, leaf)

    return run


def method(loaded: LoadedModel, ids: list[int], target: int, name: str, cold: bool = False) -> Callable[[], None]:
    def run() -> None:
        if cold:  # untimed in spirit but cheap: forgetting the prefix KV caches is a dict clear
            attention_mod.CONTEXT_KV.clear()
        attribute(loaded, ids, target, name, ig_steps=16, use_cache=False)

    return run


def timings(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Seconds per run; the runs take turns, so a busy neighbour on a shared CPU slows them all alike."""
    for run in runs.values():
        run()  # warm-up: allocator, lazily installed hooks, and the prefix cache for warm attention
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


# (label, reference label, target ratio)
ROWS = (
    ("one cached step", "", 0.0),
    ("forward+backward", "", 0.0),
    ("one forward", "", 0.0),
    ("attention (cold)", "one cached step", 2.0),
    ("attention (warm prefix)", "one cached step", 2.0),
    ("saliency", "forward+backward", 1.5),
    ("input_x_gradient", "forward+backward", 1.5),
    ("integrated_gradients (16)", "saliency", 8.0),
    ("ablation", "integrated_gradients (16)", 4.0),
    ("direct_logit", "one forward", 2.0),
    ("faithfulness numbers", "saliency", 0.0),
)


def greedy_target(loaded: LoadedModel, ids: list[int]) -> int:
    """The model's most likely next token after `ids`: the token each method attributes."""
    with torch.no_grad():
        return int(loaded.model(torch.tensor([ids], device=loaded.device), logits_to_keep=1).logits[0, -1].argmax())


@contextlib.contextmanager
def without_faithfulness() -> Iterator[None]:
    """The methods alone: the faithfulness numbers every result carries are skipped (their cost is their own row)."""
    real = methods.faithfulness
    methods.faithfulness = lambda *args: None
    try:
        yield
    finally:
        methods.faithfulness = real


def bench_context(loaded: LoadedModel, length: int, repeats: int) -> list[list[str]]:
    ids = context_ids(loaded, length)
    target = greedy_target(loaded, ids)
    clear_cache()
    runs = {
        "one cached step": one_cached_step(loaded, ids),
        "forward+backward": forward_backward(loaded, ids, target),
        "one forward": one_forward(loaded, ids),
        "attention (cold)": method(loaded, ids, target, "attention", cold=True),
        "attention (warm prefix)": method(loaded, ids, target, "attention"),
        "saliency": method(loaded, ids, target, "saliency"),
        "input_x_gradient": method(loaded, ids, target, "input_x_gradient"),
        "integrated_gradients (16)": method(loaded, ids, target, "integrated_gradients"),
        "ablation": method(loaded, ids, target, "ablation", cold=True),
        "direct_logit": method(loaded, ids, target, "direct_logit"),
        "faithfulness numbers": lambda: faithfulness(loaded, ids, [float(i % 7) for i in range(len(ids))], 0.0, target),
    }
    with without_faithfulness():
        seconds = timings(runs, repeats)
    median = {name: harness.median(values) for name, values in seconds.items()}
    error = attribute(loaded, ids, target, "integrated_gradients", ig_steps=16).completeness_error
    print(f"context {len(ids)}: IG16 completeness error {error:.3f} nats", flush=True)
    rows = []
    for name, against, goal in ROWS:
        cells = [str(len(ids)), name, f"{median[name] * 1000:,.0f}", f"{min(seconds[name]) * 1000:,.0f}"]
        if against:
            ratio = median[name] / median[against]
            meets = ("yes" if ratio <= goal else "no") if goal else ""
            cells += [against, f"{ratio:.2f}x", f"<= {goal:g}x" if goal else "", meets]
        else:
            cells += ["", "", "", ""]
        rows.append(cells)
    return rows


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--contexts", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    loaded = load_model("embedded", device="cpu")
    print(f"model {loaded.model_id}, device {loaded.device}, torch threads {torch.get_num_threads()}", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    rows = []
    for length in args.contexts:
        rows += bench_context(loaded, length, args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f} (ratios use medians; a busy CPU inflates both sides)\n")
    columns = ("context", "what", "median ms", "min ms", "against", "ratio", "target", "meets")
    harness.print_table(columns, rows, "rlrrlrrc")


if __name__ == "__main__":
    main()
