"""Cost of an edited step vs an unedited one on the embedded model, at a context of 128 tokens.

Run with `python bench/edits.py` on an idle machine (`--threads 1` on a loaded one: steadier ratios). Prints one
markdown table; asserts nothing. Each mode steps greedily from the same 128-token context (a short prompt plus
completion ids) with a prefix cache of its own (nothing computed for one mode serves another), warmed by a
preview of that position first, prefetch off:

- unedited: no interventions;
- head zero / block zero / steer: one edit, position-wise, so the edited prefix's keys and values are
  extended like the unedited ones; the answer carries the unedited rows too, and a step runs the edited
  and the unedited row at the new position in one forward (backends.two_rows: one row below the edited
  layer, two from it on, the 2-row keys and values one cache entry extended step after step);
- head mean: a mean over the context's positions, so every step runs the whole context again.

The modes are interleaved in ROUNDS rounds of STEPS_PER_ROUND steps (each mode's sequence continues across
rounds), so a burst of load hits all of them; the table gives medians and the ratio to the unedited step.
"""

from __future__ import annotations

import os

import harness
import torch

from backends.model import EMBEDDED_ID, load_model
from backends.prefix_cache import PrefixCache
from bench.step import STEPS_PER_ROUND, step_round
from decoding.engine import Engine
from service.prefetch import PREFETCH

CONTEXT = 128
ROUNDS = 3
PROMPT = "The river wound through the valley, past old mills and quiet farms,"
STEER = [0.05] * 576  # SmolLM2-135M's residual width
MODES = {
    "unedited": [],
    "head zero": [{"type": "ablate", "layer": 10, "head": 3, "mode": "zero"}],
    "block zero": [{"type": "ablate", "layer": 10, "component": "mlp", "mode": "zero"}],
    "steer": [{"type": "steer", "layer": 12, "vector": STEER, "alpha": 4.0}],
    "head mean": [{"type": "ablate", "layer": 10, "head": 3, "mode": "mean"}],
}


def start(engine, edits: list) -> dict:
    """A request at a context of exactly CONTEXT tokens under `edits`, its position previewed (cache warm)."""
    ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    filler = engine.loaded.tokenizer(" a" * CONTEXT, add_special_tokens=False)["input_ids"]
    data = {"prompt": PROMPT, "use_chat_template": False, "params": {"greedy": True}, "interventions": edits}
    data["completion_ids"] = filler[: CONTEXT - len(ids)]
    engine.preview(engine.request(data))
    return data


def main() -> None:
    threads = harness.parser(__doc__, threads=True).parse_args().threads
    if threads:
        torch.set_num_threads(threads)
    PREFETCH.configure(0)
    loaded = load_model(EMBEDDED_ID, device="cpu")
    engines = {name: Engine(loaded, PrefixCache()) for name in MODES}
    requests = {name: start(engines[name], edits) for name, edits in MODES.items()}
    times: dict[str, list[float]] = {name: [] for name in MODES}
    for _ in range(ROUNDS):
        for name in MODES:
            requests[name] = step_round(engines[name], requests[name], times[name])
    med = {name: harness.median(values) * 1e3 for name, values in times.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nSmolLM2-135M-Instruct, float32, CPU, torch threads {torch.get_num_threads()}, context {CONTEXT} tokens,")
    print(
        f"median of {ROUNDS * STEPS_PER_ROUND} steps (load average at the end: {load:.1f} on {os.cpu_count()} CPUs)\n"
    )
    rows = [
        (name, f"{ms:,.1f}", f"{min(times[name]) * 1e3:,.1f}", f"{ms / med['unedited']:.2f}")
        for name, ms in med.items()
    ]
    harness.print_table(("mode", "step (ms)", "min (ms)", "/ unedited"), rows, "lrrr")
    worst = max(ms / med["unedited"] for name, ms in med.items() if name not in ("unedited", "head mean"))
    print(f"\nworst position-wise edit / unedited: {worst:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
