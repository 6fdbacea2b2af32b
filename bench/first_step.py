"""Is the first forward pass after a pause slower than one made back to back, and does the thread wait policy help?

Run: `uv run python bench/first_step.py [--context 90] [--runs 12] [--pause 0.8]`. For each setting it starts a
fresh process (the OpenMP settings are read once, when torch starts its threads) that loads the embedded model,
runs the prompt's prefill, then times one-token forwards from the cached prefix (the KV cropped back after each,
so every pass sees the same context): back to back, and each after `--pause` seconds of sleep, interleaved so a
burst of load hits both. Prints a markdown table: the medians and the ratio after a pause / back to back, and the
process's CPU seconds per second of pause (what keeping the threads awake costs the other users of the machine).

Settings (torch here uses GNU OpenMP, libgomp: `torch.__config__.parallel_info()`; `KMP_BLOCKTIME` is Intel's and
does nothing to it):

- default: libgomp spins a waiting thread about 300,000 times, then sleeps it on a futex;
- `OMP_WAIT_POLICY=PASSIVE`: no spinning, a waiting thread sleeps at once;
- `GOMP_SPINCOUNT=10000000` (about 10x longer spinning, still sleeping through a long pause);
- `OMP_WAIT_POLICY=ACTIVE`: spin forever (costs a whole CPU while idle);
- one intra-op thread (`torch.set_num_threads(1)`): no partner thread to wake.

Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import harness

CONTEXT = 90
RUNS = 12
PAUSE_S = 0.8
SETTINGS = {
    "default": ({}, None),
    "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "GOMP_SPINCOUNT=10000000": ({"GOMP_SPINCOUNT": "10000000"}, None),
    "OMP_WAIT_POLICY=ACTIVE": ({"OMP_WAIT_POLICY": "ACTIVE"}, None),
    "one intra-op thread": ({}, 1),
}


def child(context: int, runs: int, pause_s: float, threads: int | None) -> dict:
    """In the fresh process: the forward times back to back and after a pause, and CPU seconds per paused second."""
    import torch
    from transformers import DynamicCache

    from backends.model import EMBEDDED_ID, load_model
    from bench.step import prompt_of

    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(EMBEDDED_ID, device="cpu")
    ids = loaded.tokenizer(prompt_of(loaded.tokenizer, context))["input_ids"]
    kv = DynamicCache(config=loaded.model.config)
    with torch.no_grad():
        loaded.model(input_ids=torch.tensor([ids[:-1]]), past_key_values=kv, use_cache=True)

    def forward() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            loaded.model(input_ids=torch.tensor([ids[-1:]]), past_key_values=kv, use_cache=True, logits_to_keep=1)
        kv.crop(-1)  # back to the prefix: every pass sees the same context
        return (time.perf_counter() - start) * 1000

    for _ in range(3):
        forward()
    back, paused, idle_cpu = [], [], []
    for _ in range(runs):
        forward()
        back.append(forward())
        cpu = time.process_time()
        time.sleep(pause_s)
        idle_cpu.append((time.process_time() - cpu) / pause_s)
        paused.append(forward())
    return {"back": back, "paused": paused, "idle_cpu": harness.median(idle_cpu), "threads": torch.get_num_threads()}


def run_setting(env: dict, threads: int | None, args) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps([args.context, args.runs, args.pause, threads])]
    done = subprocess.run(command, env=os.environ | env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--context", type=int, default=CONTEXT, help=f"prompt tokens (default {CONTEXT})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"pairs of passes per setting (default {RUNS})")
    parser.add_argument("--pause", type=float, default=PAUSE_S, help=f"seconds idle before a pass (default {PAUSE_S})")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the measuring process's own arguments
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    rows = []
    for name, (env, threads) in SETTINGS.items():
        found = run_setting(env, threads, args)
        back, paused = harness.median(found["back"]), harness.median(found["paused"])
        rows.append(
            (name, str(found["threads"]), f"{back:.1f}", f"{paused:.1f}", f"{paused / back:.2f}",
             f"{found['idle_cpu']:.2f}")
        )  # fmt: skip
    print(f"\nOne-token forward at a {args.context}-token context, medians of {args.runs} (ms); load: {load()}\n")
    header = ("setting", "threads", "back to back", f"after {args.pause:g} s", "ratio", "CPU s per idle s")
    harness.print_table(header, rows, "lrrrrr")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
