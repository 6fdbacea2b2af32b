"""A fixed set of requests over every service operation, and the answers they gave, kept as a regression record.

`python -m tests.service.golden_cases record` writes `golden.json` from the current code; the test in
`test_golden.py` replays the same requests and compares (floats within a tolerance, timings left out).
A change that moves code without changing behaviour leaves every answer as recorded.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

GOLDEN = Path(__file__).with_name("golden.json")
PROMPT = "The capital of France is"
BASE = {"prompt": PROMPT, "use_chat_template": False, "top_k": 6}
TIMING_KEYS = frozenset({"elapsed_s", "elapsed_ms", "ms", "seconds"})

SAMPLER_PARAMS = [
    {"greedy": True},
    {"temperature": 0.7, "seed": 3},
    {"temperature": 1.3, "top_k": 5, "seed": 5},
    {"top_p": 0.8, "seed": 7},
    {"min_p": 0.1, "seed": 7},
    {"typical_p": 0.6, "seed": 7},
    {"top_n_sigma": 1.0, "seed": 7},
    {"epsilon_cutoff": 0.02, "seed": 7},
    {"eta_cutoff": 0.01, "seed": 7},
    {"xtc_probability": 1.0, "xtc_threshold": 0.05, "seed": 7},
    {"repetition_penalty": 1.3, "seed": 7},
    {"presence_penalty": 0.8, "frequency_penalty": 0.5, "seed": 7},
    {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 1, "seed": 7},
    {"temperature": 0.9, "top_k": 20, "top_p": 0.9, "min_p": 0.05, "sampler_order": "llama.cpp", "seed": 9},
    {"temperature": 0.8, "top_p": 0.95, "seed": 11, "stop_sequences": ["."]},
]
CONSTRAINTS = [
    {"enabled": True, "type": "multiple_choice", "schema": " Paris\n Lyon\n Nice"},
    {"enabled": True, "type": "regex", "schema": r" [A-Z][a-z]+\."},
    {
        "enabled": True,
        "type": "json_schema",
        "schema": '{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}',
    },
    {"enabled": True, "type": "cfg", "schema": 'start: " " WORD\nWORD: /[a-z]+/'},
]
COMPLETION = [7042, 30]  # " Paris", "."


def _cases() -> list[tuple[str, str, Callable]]:
    """(name, operation, call) for every recorded request; each call takes the service module."""
    cases = []
    for i, params in enumerate(SAMPLER_PARAMS):
        req = BASE | {"params": params, "completion_ids": [7042] if i % 3 else []}
        cases.append((f"preview/sampler{i}", "preview", lambda s, r=req: s.preview(r)))
        cases.append((f"step/sampler{i}", "step", lambda s, r=req: s.step(r)))
    for i, constraint in enumerate(CONSTRAINTS):
        req = BASE | {"params": {"greedy": True}, "constraint": constraint}
        cases.append((f"preview/constraint{i}", "preview", lambda s, r=req: s.preview(r)))
        cases.append((f"step/constraint{i}", "step", lambda s, r=req: s.step(r)))
    greedy = BASE | {"params": {"greedy": True}}
    cases += [
        ("step/force_token", "step", lambda s: s.step(greedy | {"force_token_id": 4528})),
        ("step/force_text", "step", lambda s: s.step(greedy | {"force_text": " a city"})),
        (
            "step/chat",
            "step",
            lambda s: s.step({"messages": [{"role": "user", "content": "Hi"}], "top_k": 4, "params": {"seed": 5}}),
        ),
        (
            "step/system",
            "step",
            lambda s: s.step(
                {"prompt": "Name a fruit.", "system_prompt": "Be brief.", "top_k": 4, "params": {"greedy": True}}
            ),
        ),
        ("render", "render", lambda s: s.render(greedy | {"completion_ids": COMPLETION})),
        ("append_text", "append_text", lambda s: s.append_text(greedy, " Paris.")),
        ("tree/greedy", "tree", lambda s: s.tree(greedy | {"width": 3, "depth": 2})),
        (
            "tree/sampled",
            "tree",
            lambda s: s.tree(BASE | {"params": {"temperature": 0.8, "top_p": 0.9, "seed": 1}, "width": 2, "depth": 3}),
        ),
        ("compare", "compare", lambda s: s.compare(greedy | {"completion_ids": COMPLETION}, [4528, 30])),
        ("logit_lens", "logit_lens", lambda s: s.logit_lens(greedy | {"completion_ids": [7042]}, 3)),
        ("model_status", "model_status", lambda s: s.model_status()),
    ]
    for method in ("attention", "saliency", "input_x_gradient", "integrated_gradients", "ablation"):
        req = greedy | {"target_token_id": 7042, "method": method}
        cases.append((f"attribution/{method}", "attribution", lambda s, r=req: s.attribution(r)))
    cases += [
        (
            "attribution/foil_word",
            "attribution",
            lambda s: s.attribution(
                greedy
                | {"target_token_id": 7042, "contrast_token_id": 4528, "method": "ablation", "granularity": "word"}
            ),
        ),
        (
            "attribution/sum_index",
            "attribution",
            lambda s: s.attribution(
                greedy
                | {"completion_ids": COMPLETION, "target_index": 1, "method": "input_x_gradient", "aggregation": "sum"}
            ),
        ),
        (
            "attribution/ig_steps",
            "attribution",
            lambda s: s.attribution(
                greedy | {"target_token_id": 7042, "method": "integrated_gradients", "ig_steps": 4}
            ),
        ),
    ]
    return cases + _refusals()


REFUSALS = [
    ("preview", BASE | {"params": {"top_p": 1.5}}),
    ("preview", BASE | {"params": {"temperature": -1}}),
    ("preview", BASE | {"params": {"sampler_order": ["top_k"]}}),
    ("preview", BASE | {"params": {"nope": 1}}),
    ("preview", BASE | {"unknown_key": 1}),
    ("preview", BASE | {"completion_ids": [10**9]}),
    ("preview", BASE | {"completion_ids": "abc"}),
    ("preview", BASE | {"top_k": -2}),
    ("preview", {"use_chat_template": False}),
    ("preview", BASE | {"constraint": {"enabled": True, "type": "regex", "schema": "("}}),
    ("preview", BASE | {"constraint": {"enabled": True, "type": "bogus", "schema": "x"}}),
    ("preview", BASE | {"messages": [{"role": "robot", "content": "x"}]}),
    ("step", BASE | {"force_token_id": -1}),
    ("step", BASE | {"force_text": 5}),
    ("tree", BASE | {"width": 0, "depth": 2}),
    ("attribution", BASE | {"method": "magic", "target_token_id": 7042}),
    ("attribution", BASE | {"method": "attention", "target_token_id": 7042, "contrast_token_id": 4528}),
    ("attribution", BASE | {"target_token_id": 7042, "contrast_token_id": 7042}),
    ("attribution", BASE | {"target_index": 3}),
    ("attribution", BASE | {"target_token_id": 7042, "ig_steps": 1, "method": "integrated_gradients"}),
    ("attribution", BASE | {"target_token_id": 7042, "aggregation": "max"}),
]


def _refusals() -> list[tuple[str, str, Callable]]:
    return [(f"refusal{i}/{op}", op, lambda s, o=op, r=req: getattr(s, o)(r)) for i, (op, req) in enumerate(REFUSALS)]


def answer(service, call: Callable) -> dict:
    """The call's answer, or the one-line refusal it raised."""
    try:
        return {"answer": _plain(call(service))}
    except ValueError as exc:
        return {"refused": str(exc)}


def _plain(value):
    """JSON-ready, with timing fields dropped (they differ from run to run)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def differences(expected, actual, path: str = "", tol: float = 1e-6) -> list[str]:
    """Where two answers differ (floats compared within `tol`, absolute and relative)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return [f"{path}: keys {sorted(set(expected) ^ set(actual))}"]
        return [d for k in expected for d in differences(expected[k], actual[k], f"{path}.{k}", tol)]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: length {len(expected)} != {len(actual)}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, f"{path}[{i}]", tol)
        ]
    numbers = isinstance(expected, (int, float)) and isinstance(actual, (int, float))
    if numbers and (isinstance(expected, float) or isinstance(actual, float)):
        return [] if math.isclose(expected, actual, rel_tol=tol, abs_tol=tol) else [f"{path}: {expected} != {actual}"]
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


def run_all(service) -> dict:
    return {name: answer(service, call) for name, _, call in _cases()}


def main() -> None:
    import importlib

    from backends import model as model_mod

    service = importlib.import_module(sys.argv[2] if len(sys.argv) > 2 else "service.operations")
    model_mod.STORE.use(model_mod.load_model(model_mod.EMBEDDED_ID, device="cpu"))
    service.PREFETCH.count = 0
    GOLDEN.write_text(json.dumps(run_all(service), indent=1, sort_keys=True))
    print(f"recorded {len(_cases())} requests to {GOLDEN}")


if __name__ == "__main__" and sys.argv[1:2] == ["record"]:
    main()
