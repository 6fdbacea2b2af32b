"""A reference beside the embedded model: llama.cpp's KL summary of a fixed 500-token text, and the cost of a step.

Run with `python bench/reference.py` (`uv run`: the int8 reference needs torchao) on an idle machine. Prints two
markdown tables; asserts nothing.

1. The summary: the embedded model in float32 against itself in bfloat16, float16 (where the CPU runs it) and
   weight-only int8 (torchao), teacher-forced over a fixed text of TEXT_TOKENS tokens cut from the docs (one
   `POST /api/diff` each, through the service): mean KL of p_base in bits, its 90 / 99 / 99.9 percentiles and
   maximum, the share of positions with the same top token, the RMS of delta p of the actual token, the first
   position where greedy decoding would part, and the diff's time.
2. The cost of a step at a context of CONTEXT tokens without a reference and with one: the same float32 model
   loaded again from its folder (two forward passes of the same cost: the target is <= 2.1 x), bfloat16 and
   int8. The modes are interleaved in ROUNDS rounds of STEPS_PER_ROUND steps, prefetch off, each mode warmed
   by a step first and given a prompt of its own (no mode reads what another computed); medians and the ratio
   to the step without a reference.
"""

from __future__ import annotations

import os
import random
import time

import harness
import torch

from backends.model import EMBEDDED_ID, STORE, load_model
from backends.model.embedded import embedded_folder
from bench.step import STEPS_PER_ROUND
from service import operations as service
from service.diff import diff
from service.prefetch import PREFETCH
from service.reference import remove_reference

TEXT_TOKENS = 500
CONTEXT = 128
ROUNDS = 3
PROMPT = "Read this."
PLAIN = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0, "greedy": True}
FORMS = {"bfloat16": {"dtype": "bfloat16"}, "float16": {"dtype": "float16"}, "int8": {"quantization": "int8"}}


def fixed_text(tokenizer, tokens: int) -> list[int]:
    """`tokens` token ids of prose cut from the docs, the same on every run (seeded)."""
    text = harness.docs_prompt(random.Random(25), 600)
    return tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]


def summary_rows(completion: list[int]) -> list[tuple]:
    rows = []
    for name, reference in FORMS.items():
        request = {"prompt": PROMPT, "use_chat_template": False, "params": PLAIN, "completion_ids": completion}
        start = time.perf_counter()
        try:
            found = diff(request | {"reference": reference})["summary"]
        except ValueError as exc:  # e.g. float16 on a CPU without it
            rows.append((name, *["-"] * 8, str(exc)[:60]))
            continue
        kl = found["kl_base"]
        rows.append(
            (name, *(f"{kl[k]:.5f}" for k in ("mean", "p90", "p99", "p99_9", "max")), f"{found['same_top']:.1%}",
             f"{found['rms_delta_p_base']:.4f}", found["first_divergence"], f"{time.perf_counter() - start:.1f}")
        )  # fmt: skip
    return rows


def step_times(completion: list[int]) -> dict[str, list[float]]:
    """Median-ready step times of each mode, interleaved; each mode continues its own greedy sequence."""
    modes = {"no reference": None, "float32 again": {"model": str(embedded_folder(STORE.settings.cache_dir))}}
    modes |= {"bfloat16": FORMS["bfloat16"], "int8": FORMS["int8"]}
    base = {"use_chat_template": False, "params": PLAIN, "send_prompt_tokens": False}
    # A prompt of its own for each mode: the modes follow the same greedy text, so with one prompt a mode
    # would read the main model's rows from the prefix cache another mode just filled.
    requests = {
        name: base | {"prompt": f"{PROMPT} ({name})", "completion_ids": completion[:CONTEXT], "reference": ref}
        for name, ref in modes.items()
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for name in modes:
        service.step(requests[name])  # warm: the reference loaded, its prefix cached
    for _ in range(ROUNDS):
        for name in modes:
            for _ in range(STEPS_PER_ROUND):
                start = time.perf_counter()
                result = service.step(requests[name])
                times[name].append(time.perf_counter() - start)
                requests[name] = requests[name] | {"completion_ids": result["completion_ids"]}
    return times


def main() -> None:
    threads = harness.parser(__doc__, threads=True).parse_args().threads
    if threads:
        torch.set_num_threads(threads)
    PREFETCH.configure(0)
    STORE.use(load_model(EMBEDDED_ID, device="cpu"))
    completion = fixed_text(STORE.get().tokenizer, TEXT_TOKENS)
    print(f"\nSmolLM2-135M-Instruct float32 against a reference, {len(completion)} tokens teacher-forced, KL in bits\n")
    columns = ("reference", "mean KL", "p90", "p99", "p99.9", "max", "same top", "RMS dp", "first split", "time (s)")
    harness.print_table(columns, summary_rows(completion), "lrrrrrrrrr")
    times = step_times(completion)
    remove_reference()
    med = {name: harness.median(values) * 1e3 for name, values in times.items()}
    load = os.getloadavg()[0]
    print(f"\nstep at a context of {CONTEXT} tokens, median of {ROUNDS * STEPS_PER_ROUND} steps, torch threads")
    print(f"{torch.get_num_threads()} (load average at the end: {load:.1f} on {os.cpu_count()} CPUs)\n")
    rows = [(name, f"{ms:,.1f}", f"{ms / med['no reference']:.2f}") for name, ms in med.items()]
    harness.print_table(("reference", "step (ms)", "/ no reference"), rows, "lrr")
    print(f"\nfloat32 again / no reference: {med['float32 again'] / med['no reference']:.2f} (target <= 2.1)")


if __name__ == "__main__":
    main()
