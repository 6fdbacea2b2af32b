"""Benchmark: the cost of a grammar-constraint mask per decoding step, next to one KV-cached model step.

Run: `uv run python bench/constraints.py`. For each constraint type, decodes greedily on the embedded model with
a DynamicCache and times, per step, `ConstraintTracker.mask` on the new prefix (one consumed token plus one mask)
and the incremental forward. Prints medians and their ratio (the target is at most 5 %); asserts nothing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import harness
import torch
from transformers import DynamicCache

from backends.model import LoadedModel, load_model
from decoding.constraints import ConstraintTracker
from decoding.sampling.params import ConstraintSpec

MAX_STEPS = 24
CASES = {
    "multiple_choice": (
        "Which planet is the largest? Answer with the name only.",
        "Mercury\nVenus\nEarth\nMars\nJupiter\nSaturn\nUranus\nNeptune",
    ),
    "regex": ("Give a US phone number for a pizza place.", r"\(\d{3}\) \d{3}-\d{4}"),
    "cfg": (
        "Write a small arithmetic expression.",
        'start: expr\nexpr: term (("+" | "-") term)*\nterm: NUMBER | "(" expr ")"\nNUMBER: /\\d{1,3}/\n',
    ),
    "json_schema": (
        "Describe a book as JSON with title, author and year.",
        json.dumps(
            {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 40},
                    "author": {"type": "string", "maxLength": 30},
                    "year": {"type": "integer", "minimum": 1000, "maximum": 2100},
                },
                "required": ["title", "author", "year"],
                "additionalProperties": False,
            }
        ),
    ),
}


@dataclass(frozen=True)
class Row:
    kind: str
    steps: int
    first_mask_ms: float
    mask_ms: float
    hit_ms: float
    model_ms: float
    text: str

    @property
    def ratio(self) -> float:
        return self.mask_ms / self.model_ms


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - start) * 1000


def run_case(loaded: LoadedModel, tracker: ConstraintTracker, kind: str, prompt: str, schema: str) -> Row:
    tokenizer, model = loaded.tokenizer, loaded.model
    spec = ConstraintSpec(True, kind, schema)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True).logits[0, -1]
    completion: list[int] = []
    mask_ms, hit_ms, model_ms = [], [], []
    for _ in range(MAX_STEPS):
        mask, cost = _timed(lambda: tracker.mask(spec, completion))
        mask_ms.append(cost)
        hit_ms.append(_timed(lambda: tracker.mask(spec, completion))[1])
        if mask.complete:
            break
        token = int(logits.masked_fill(~mask.valid, float("-inf")).argmax())
        if token == tokenizer.eos_token_id:
            break
        completion.append(token)
        with torch.inference_mode():
            out, cost = _timed(
                lambda: model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True)  # noqa: B023
            )
        model_ms.append(cost)
        logits = out.logits[0, -1]
    return Row(
        kind,
        len(completion),
        mask_ms[0],
        harness.median(mask_ms[1:] or mask_ms),
        harness.median(hit_ms),
        harness.median(model_ms) if model_ms else float("nan"),
        tokenizer.decode(completion),
    )


def main() -> None:
    harness.parser(__doc__).parse_args()  # no options: --help describes the run
    loaded = load_model("embedded", device="cpu")
    tracker, build_ms = _timed(lambda: ConstraintTracker(loaded.tokenizer, loaded.vocab_size))
    print(f"model {loaded.model_id}, vocab {loaded.vocab_size}, torch threads {torch.get_num_threads()}")
    print(f"llguidance tokenizer built once per model in {build_ms:.0f} ms")
    # Model steps slow down several-fold on a busy machine; the load tells how far to trust the model column.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    rows = [run_case(loaded, tracker, kind, *case) for kind, case in CASES.items()]
    columns = ("type", "steps", "first mask (compile) ms", "mask/step ms", "cached mask ms", "model step ms", "ratio")
    cells = [
        (r.kind, r.steps, f"{r.first_mask_ms:.2f}", f"{r.mask_ms:.3f}", f"{r.hit_ms:.3f}", f"{r.model_ms:.1f}",
         f"{r.ratio:.1%}")
        for r in rows
    ]  # fmt: skip
    harness.print_table(columns, cells, "lrrrrrr")
    print("\nmask/step: median over steps after the first (one consumed token + one mask, cache miss);")
    print("cached mask: the same prefix asked again (a preview after a step); model step: one KV-cached token.")
    print("ratio: mask/step over model step (target at most 5 %). Outputs:")
    for r in rows:
        print(f"  {r.kind}: {r.text!r}")


if __name__ == "__main__":
    main()
