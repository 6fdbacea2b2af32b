"""The GPU check's measures (bench/gpu_check.py runs them), one function per row or few: the engine's step
against `generate` and p_base against float32 (section 1), integrated gradients against saliency (2), the
attention method's CPU fallback (3) and the look-ahead tree against one step (4); with the table's rows and
the sizes each measure takes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections import defaultdict
from collections.abc import Iterator

import harness
import torch

from attribution import attribute, clear_cache
from backends.model import LoadedModel
from bench import attribution as attribution_bench
from bench.lookahead import fresh, timed
from bench.step import PARAMS, generate_round, prompt_of, step_round
from decoding.engine import engine_for
from service import tree as tree_mod

QUESTIONS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Name three colours.",
    "How many legs does a spider have?",
)
SAMPLED = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}  # every tree node gets `width` children
TREE_WIDTH = 8
IG_TARGET = 8.0
WARM_UP = 8  # tokens of the untimed first context: first calls pay one-off costs (allocations, kernel loads)
SECTIONS = ("1 precision", "2 attribution", "3 attention fallback", "4 tree")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much to measure: the full sizes for the GPU, tiny ones for the CI dry run."""

    contexts: tuple[int, ...]  # step and generate, raw prompts of exactly these token counts
    rounds: int  # rounds of STEPS_PER_ROUND tokens per context
    prompts: int  # chat prompts whose p_base is compared across precisions
    attribution_context: int
    repeats: int  # timed repeats of each attribution method and of the tree
    attention_context: int  # kept short: the fallback runs the whole context on the CPU copy
    tree_context: int
    tree_depth: int


FULL = Sizes((128, 700), 3, 4, 256, 3, 128, 128, 3)
QUICK = Sizes((16, 32), 1, 2, 16, 1, 16, 16, 2)


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table."""

    section: str
    measure: str
    precision: str
    median_ms: str = ""
    against: str = ""
    ratio: str = ""
    note: str = ""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def ratio(value: float, against: float) -> str:
    return f"{value / against:.2f}x"


# --- 1. precision ---------------------------------------------------------------------------------


def step_rows(loaded: LoadedModel, precision: str, sizes: Sizes) -> list[Row]:
    """Median engine step against `generate` per token at each context length (greedy, raw prompts)."""
    engine, tok = engine_for(loaded), loaded.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = []
    for n in (WARM_UP, *sizes.contexts):
        ids = tok(prompt := prompt_of(tok, n))["input_ids"]
        data = {"prompt": prompt, "use_chat_template": False, "completion_ids": [], "params": PARAMS}
        engine.preview(engine.request(data))  # the prefix cache holds the prompt, as after reading the bars
        times: dict[str, list[float]] = defaultdict(list)
        for _ in range(sizes.rounds):
            generate_round(loaded.model, ids, pad_id, times["generate"])
            data = step_round(engine, data, times["step"])
        step, generate = harness.median(times["step"]), harness.median(times["generate"])
        if n != WARM_UP:
            note = f"median of {len(times['step'])} steps, greedy"
            against = f"generate {ms(generate)} ms/token"
            rows.append(
                Row(SECTIONS[0], f"step at {n} tokens", precision, ms(step), against, ratio(step, generate), note)
            )
    return rows


def p_bases(loaded: LoadedModel, count: int) -> list[torch.Tensor]:
    """The engine's p_base (float64, CPU) after each of the first `count` chat prompts."""
    engine, found = engine_for(loaded), []
    for question in QUESTIONS[:count]:
        req = engine.request({"prompt": question, "params": PARAMS})
        prompt, _ = engine.prompt_ids(req)
        found.append(engine.analysis(req, prompt, req.completion_ids)[0].p_base.double().cpu())
    return found


def agreement_row(precision: str, reference: list[torch.Tensor], dists: list[torch.Tensor]) -> Row:
    """KL(p32 || p) in nats, mean and largest over the prompts, and how many prompts keep float32's top token."""
    pairs = list(zip(reference, dists, strict=True))
    kls = [
        float((torch.special.xlogy(p32, p32) - torch.special.xlogy(p32, p.clamp_min(1e-300))).sum()) for p32, p in pairs
    ]
    same = sum(int(p32.argmax()) == int(p.argmax()) for p32, p in pairs)
    value = f"KL {sum(kls) / len(kls):.2e} nats (max {max(kls):.2e})"
    note = f"top-1 agrees on {same}/{len(kls)} prompts"
    return Row(SECTIONS[0], "p_base against float32", precision, "", "float32", value, note)


def compared(loaded: LoadedModel, precision: str, sizes: Sizes, reference: list[torch.Tensor]) -> list[Row]:
    """float32's p_base becomes the reference; another precision's is compared with it."""
    dists = p_bases(loaded, sizes.prompts)
    if precision == "float32":
        reference.extend(dists)
        return []
    if not reference:
        raise ValueError("no float32 p_base to compare with: float32 did not run")
    return [agreement_row(precision, reference, dists)]


# --- 2. attribution -------------------------------------------------------------------------------


def attribution_rows(loaded: LoadedModel, precision: str, sizes: Sizes) -> list[Row]:
    """Integrated gradients (16 points) against saliency, medians of alternating runs."""
    ids = attribution_bench.context_ids(loaded, sizes.attribution_context)
    target = attribution_bench.greedy_target(loaded, ids)
    clear_cache()
    names = ("saliency", "integrated_gradients")
    runs = {name: attribution_bench.method(loaded, ids, target, name) for name in names}
    with attribution_bench.without_faithfulness():
        seconds = attribution_bench.timings(runs, sizes.repeats)
    saliency, ig = (harness.median(seconds[name]) for name in names)
    met = "met" if ig / saliency <= IG_TARGET else "not met"
    measure = f"integrated gradients (16 points) at {len(ids)} tokens"
    note = f"target <= {IG_TARGET:g}x: {met}"
    return [Row(SECTIONS[1], measure, precision, ms(ig), f"saliency {ms(saliency)} ms", ratio(ig, saliency), note)]


# --- 3. the attention method's CPU fallback ---------------------------------------------------------


@contextlib.contextmanager
def no_attention_weights(model: torch.nn.Module) -> Iterator[None]:
    """`model` itself answers without attention weights, as a kernel that cannot return them does; copies of
    it (the fallback's CPU copy is a deep copy, hooks included) answer as before."""

    def drop(module: torch.nn.Module, args: tuple, output):
        if module is model:
            output.attentions = None
        return output

    handle = model.register_forward_hook(drop)
    try:
        yield
    finally:
        handle.remove()


def attention_run(loaded: LoadedModel, ids: list[int], target: int) -> tuple[float, object]:
    """(seconds, result) of one attention attribution, result cache bypassed, faithfulness numbers skipped."""
    with attribution_bench.without_faithfulness():
        start = time.perf_counter()
        result = attribute(loaded, ids, target, "attention", use_cache=False)
    return time.perf_counter() - start, result


def attention_rows(loaded: LoadedModel, precision: str, sizes: Sizes) -> list[Row]:
    """The device path, then the CPU fallback twice (its copy made, then kept)."""
    ids = attribution_bench.context_ids(loaded, sizes.attention_context)
    target = attribution_bench.greedy_target(loaded, ids)
    clear_cache()
    attention_run(loaded, ids, target)  # warm-up: eager attention's first call, the context's KV cached
    on_device, device = attention_run(loaded, ids, target)
    path = lambda result: "CPU copy" if result.fell_back_to_cpu else "device"  # noqa: E731
    measure = f"attention at {len(ids)} tokens, as the device returns it"
    rows = [Row(SECTIONS[2], measure, precision, ms(on_device), note=f"path: {path(device)}")]
    # The fallback exists only off the CPU: there the model is labelled as on `meta` (nothing runs on it)
    away = loaded if loaded.device.type != "cpu" else dataclasses.replace(loaded, device=torch.device("meta"))
    with no_attention_weights(loaded.model):
        for when in ("first call, CPU copy made", "again, CPU copy kept"):
            seconds, result = attention_run(away, ids, target)
            gap = max(abs(a - b) for a, b in zip(result.scores, device.scores, strict=True))
            note = f"path: {path(result)}; largest score difference from the device path {gap:.1e}"
            measure, against = f"device returns no weights: {when}", f"device path {ms(on_device)} ms"
            rows.append(Row(SECTIONS[2], measure, precision, ms(seconds), against, ratio(seconds, on_device), note))
    return rows


# --- 4. the look-ahead tree -----------------------------------------------------------------------


def tree_rows(loaded: LoadedModel, precision: str, sizes: Sizes) -> list[Row]:
    """The tree at width 8 against one cold step, each on a fresh prefix cache holding the prompt."""
    data = {"prompt": prompt_of(loaded.tokenizer, sizes.tree_context), "use_chat_template": False}
    data["params"] = SAMPLED
    times: dict[str, list[float]] = defaultdict(list)
    found: list = []
    for _ in range(1 + sizes.repeats):  # the first round is a warm-up
        engine, req = fresh(loaded, data)
        times["step"].append(timed(functools.partial(engine.step, req)))
        engine, req = fresh(loaded, data)
        found.clear()
        grow = functools.partial(tree_mod.levels, engine, req, TREE_WIDTH, sizes.tree_depth)
        times["tree"].append(timed(lambda grow=grow: found.extend(grow())))
    tree, step = (harness.median(times[name][1:]) for name in ("tree", "step"))
    measure = f"tree width {TREE_WIDTH} x depth {sizes.tree_depth} at {sizes.tree_context} tokens"
    forwards = sizes.tree_depth - 1  # the first level is the request's own position, already analysed
    note = f"{found[-1].node_count} nodes, {forwards} batched forward{'s' * (forwards != 1)}; sampled knobs"
    return [Row(SECTIONS[3], measure, precision, ms(tree), f"one step {ms(step)} ms", ratio(tree, step), note)]
