"""Ablation sweeps as JSON: which heads, MLPs or layers the target token needs (attribution.sweep does the work).

`sweep(request)` answers at once; `sweep_stream(request)` yields `{"progress": 0..1, "desc": ...}` after each
layer's slice of model work and then `{"result": {...}}`, giving the model lane back between slices (closing
it stops the work at the next slice). The request is a preview request (prompt or messages, completion_ids,
interventions) plus the target of an attribution (`target_index`, `target_token_id`, `contrast_token_id`),
`components` ("heads", "mlps" or "layers"; default heads) and `mode` ("zero" or "mean"; default zero). The
answer:

    {"components", "mode",
     "baseline": {"score", "rank"},           # log p(target) (minus log p(foil)) and its rank, 1 = likeliest
     "grid": [[{"delta", "rank", "rank_delta"}, ...] per head] per layer   # heads
           | [{"delta", "rank", "rank_delta"}] per layer                   # mlps, layers
     "score": "log p(token 7042)",            # what baseline.score and each delta measure
     "target", "contrast": token pills, "target_index", "context_length"}

`delta` is the score with that one component ablated minus the baseline (negative: the component helped the
target), `rank_delta` likewise for the rank (positive: the target fell). The request's interventions apply
throughout: each cell is the request with one more `interventions` entry (two for a layer: its attention,
then its MLP).
"""

from __future__ import annotations

from collections.abc import Iterator

from attribution.objective import describe
from attribution.sweep import Sweep, sweep_slices
from attribution.validation import check_target
from backends.base import check_gradients
from backends.interventions import edited_slices
from backends.lane import LANE, Progress
from backends.model import STORE
from decoding.engine import engine_for
from runtime import gpu, spaces
from service import parsing
from service.policy import POLICY
from service.readable import readable_errors
from service.targets import target_ids


@LANE.held
@gpu
def sweep(request: dict) -> dict:
    """The whole sweep at once (each layer still one slice: other requests use the model between them)."""
    *_, last = _items(request)
    return last["result"]


def sweep_stream(request: dict) -> Iterator[dict]:
    """`sweep` with progress; validation happens on the first `next()` (ValueError)."""
    if spaces is not None:  # ZeroGPU runs each GPU call in a process of its own: no slices across calls
        yield {"result": sweep(request)}
        return
    yield from _items(request)


def _items(request: dict) -> Iterator[dict]:
    engine, edits, prompt, context, target, foil, kind, mode = _setup(request)
    slices = sweep_slices(engine.loaded, context, target, kind, mode, foil)
    for item in LANE.sliced(edited_slices(engine.loaded.model, edits, slices)):
        if isinstance(item, Progress):
            yield {"progress": item.fraction, "desc": f"{item.desc}: {item.done} of {item.total} layers"}
            continue
        yield {"result": _answer(engine, item, len(context) - len(prompt), len(context), target, foil)}


def _answer(engine, result: Sweep, index: int, length: int, target: int, foil: int | None) -> dict:
    return result.as_dict() | {
        "score": describe(target, foil),
        "target": engine.view.pill(target).as_dict(),
        "contrast": None if foil is None else engine.view.pill(foil).as_dict(),
        "target_index": index,
        "context_length": length,
    }


@readable_errors
def _setup(request: dict) -> tuple:
    """(engine, model edits, prompt ids, context ids, target id, foil id, components, mode) of a valid sweep
    request within the budgets."""
    req, target, kind, mode = parsing.sweep_request(request)
    engine = engine_for(STORE.get())
    req = req.resolved(engine.loaded)
    check_gradients(engine.loaded, "ablation sweeps")
    prompt, _ = engine.prompt_ids(req)
    context, target_id = target_ids(target, prompt, req.completion_ids, engine.loaded.vocab_size)
    config = engine.loaded.model.config
    components = config.num_hidden_layers * (config.num_attention_heads if kind == "heads" else 1)
    POLICY.settings.budgets.check_sweep(len(context), components, kind)
    foil = target.contrast_token_id
    check_target(engine.loaded, context, target_id, foil)
    return engine, req.interventions, prompt, context, target_id, foil, kind, mode
