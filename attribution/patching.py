"""Activation patching: where in the prompt and the network a changed word matters.

A clean and a corrupted context of the same length; the logit difference d = logit(target) - logit(foil) at the
last position. For each layer L and position p, the corrupted run with one activation, the site's output (the
decoder layer's residual output, its attention block's output or its MLP's output) at (L, p), taken from the
clean run; score = (d_patched - d_corrupted) / (d_clean - d_corrupted): 0 where the activation carries nothing
of the difference, 1 where it restores all of it.

Patching position p leaves positions < p as they were in the corrupted run (the model is causal), so every cell
of column p continues the corrupted run's keys and values of [0, p) and runs only tokens p..T-1. The cells of a
column share that prefix exactly, so they are one batched forward with one row per layer (each row patched at
its own layer): a column is one slice of the model lane, and the lane is offered to others between decoder
layers within it. In all the grid runs layers x T(T+1)/2 tokens, about layers x T/2 forward passes.

Model edits active on the model (backends.interventions, the request's) apply to the clean, the corrupted and
every patched run. A mean ablation is a mean over the positions of the pass, so under one every cell runs the
whole context instead (layers x T forward passes): no column continues a cached prefix.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from attribution.gradients import lane_breaks
from attribution.guard import borrowed
from backends.giving_way import decoder_layers
from backends.interventions import edits_on, whole_context
from backends.lane import Progress
from backends.model import LoadedModel

SITES = ("residual", "attention", "mlp")
# Below this gap between the clean and corrupted logit differences the ratio is noise: no scores.
MIN_GAP = 1e-4
PATCHING_DESC = "activation patching"


@dataclass(frozen=True)
class Patch:
    """One row's patch: the site's output at `positions` (absolute) of layer `layer` taken from the clean run."""

    layer: int
    positions: tuple[int, ...]


@dataclass(frozen=True)
class PatchingGrid:
    """scores[layer][position] (None with a `reason` when the two runs give the same difference) and the baselines."""

    scores: tuple[tuple[float, ...], ...] | None
    clean: float
    corrupted: float
    site: str
    reason: str | None = None

    def as_dict(self) -> dict:
        scores = None if self.scores is None else [list(row) for row in self.scores]
        return {"scores": scores, "clean": self.clean, "corrupted": self.corrupted, "site": self.site,
                "reason": self.reason}  # fmt: skip


def site_module(layer: torch.nn.Module, site: str) -> torch.nn.Module:
    """The module whose output is the site: the decoder layer itself (residual), `self_attn` or `mlp`."""
    if site not in SITES:
        raise ValueError(f"site {site!r} is not one of {', '.join(SITES)}")
    return {"residual": layer, "attention": getattr(layer, "self_attn", None), "mlp": getattr(layer, "mlp", None)}[site]


def _replaced(output, hidden: torch.Tensor):
    """The module's output with its hidden states replaced (attention blocks answer a tuple)."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _this_thread(hook):
    """`hook` acting on this thread's passes only: between layers the lane may lend the model to another request
    (`lane_breaks`), whose passes must go through untouched."""
    me = threading.get_ident()
    return lambda module, args, output: hook(module, args, output) if threading.get_ident() == me else None


@dataclass(frozen=True)
class Run:
    """What a patched run needs: the model, the site, every layer's clean site output [T, d], target and foil."""

    model: torch.nn.Module
    site: str
    clean: tuple[torch.Tensor, ...]
    target_id: int
    foil_id: int


def difference(logits: torch.Tensor, target_id: int, foil_id: int) -> torch.Tensor:
    """[B, V] -> [B]: the logit difference target - foil, float64."""
    rows = logits.double()
    return rows[:, target_id] - rows[:, foil_id]


def _forward(model: torch.nn.Module, rows: torch.Tensor, past: DynamicCache | None):
    out = model(input_ids=rows.to(model.device), past_key_values=past, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1], out.past_key_values


def capture(model: torch.nn.Module, site: str, ids: Sequence[int]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """One forward of `ids` (a clean run): its last logits and each layer's site output [T, d]."""
    seen: list[torch.Tensor] = []
    hooks = [
        site_module(layer, site).register_forward_hook(_this_thread(lambda _m, _a, out: seen.append(_hidden(out)[0])))
        for layer in decoder_layers(model)
    ]
    try:
        logits, _ = _forward(model, torch.tensor([list(ids)]), None)
    finally:
        for hook in hooks:
            hook.remove()
    return logits, tuple(seen)


def patched(run: Run, rows: Sequence[Patch], tokens: Sequence[int], start: int, past: DynamicCache | None):
    """The logit difference [B] of each row: `tokens` from position `start` on (after `past`, the corrupted run's
    keys and values of [0, start)), row b patched as `rows[b]` says; and the run's cache."""

    def patch(layer: int):
        def hook(_module, _args, output):
            hidden = _hidden(output).clone()
            for b, row in enumerate(rows):
                if row.layer == layer:
                    at = [p for p in row.positions if p >= start]
                    hidden[b, [p - start for p in at]] = run.clean[layer][at].to(hidden.dtype)
            return _replaced(output, hidden)

        return hook

    wanted = {row.layer for row in rows if row.positions}
    hooks = [
        site_module(layer, run.site).register_forward_hook(_this_thread(patch(i)))
        for i, layer in enumerate(decoder_layers(run.model))
        if i in wanted
    ]
    try:
        logits, cache = _forward(run.model, torch.tensor(list(tokens)[start:]).repeat(len(rows), 1), past)
    finally:
        for hook in hooks:
            hook.remove()
    return difference(logits, run.target_id, run.foil_id).cpu(), cache


def score(patched_difference: torch.Tensor, clean: float, corrupted: float) -> torch.Tensor:
    """(d_patched - d_corrupted) / (d_clean - d_corrupted)."""
    return (patched_difference - corrupted) / (clean - corrupted)


def _prefix(cache: DynamicCache, length: int, rows: int) -> DynamicCache | None:
    """A private copy of the corrupted run's keys and values of [0, length), one copy per row."""
    if length == 0:
        return None
    past = copy.deepcopy(cache)
    past.crop(length - past.get_seq_length())
    past.batch_repeat_interleave(rows)
    return past


def patching_slices(
    loaded: LoadedModel, clean_ids: Sequence[int], corrupted_ids: Sequence[int], target_id: int, foil_id: int,
    site: str,
) -> Iterator[Progress | PatchingGrid]:  # fmt: skip
    """The baselines first, then one column (position) of the grid per `next()`: Progress, then the grid."""
    if len(clean_ids) != len(corrupted_ids):
        raise ValueError(f"the corrupted context has {len(corrupted_ids)} tokens and the clean one {len(clean_ids)}")
    length = len(clean_ids)
    with borrowed(loaded.model) as model, torch.no_grad():
        clean_logits, clean_acts = capture(model, site, clean_ids)
        run = Run(model, site, clean_acts, target_id, foil_id)
        corrupted_difference, cache = patched(run, [Patch(0, ())], corrupted_ids, 0, None)
    clean, corrupted = float(difference(clean_logits, target_id, foil_id)[0]), float(corrupted_difference[0])
    if abs(clean - corrupted) < MIN_GAP:
        reason = f"the clean and corrupted runs give the same logit difference ({clean:.6g}): nothing to restore"
        yield PatchingGrid(None, clean, corrupted, site, reason)
        return
    layers, whole = len(clean_acts), whole_context(edits_on(loaded.model))
    columns = []
    for p in range(length):
        start = 0 if whole else p  # a mean edit needs every position in the pass
        with borrowed(loaded.model) as model, torch.no_grad(), lane_breaks(model):
            rows = [Patch(layer, (p,)) for layer in range(layers)]
            out, _ = patched(run, rows, corrupted_ids, start, _prefix(cache, start, layers))
        columns.append(score(out, clean, corrupted))
        yield Progress(p + 1, length, PATCHING_DESC)
    grid = torch.stack(columns, dim=1)  # layers x positions
    yield PatchingGrid(tuple(tuple(row) for row in grid.tolist()), clean, corrupted, site)
