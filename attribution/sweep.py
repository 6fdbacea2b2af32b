"""Ablation sweeps: every attention head, MLP or whole layer ablated alone, and what that does to the target.

For each component the target's score (`objective.target_score`: log p(target), or log p(target) - log p(foil),
which equals the logit difference) and its rank are measured with that one component ablated, exactly as one
`interventions` entry does it (backends.interventions): a head's slice of the attention output before `o_proj`,
or a block's output, set to zero or to its mean over the context's positions. A "layer" is both blocks of
that decoder layer ablated (the attention output, then the MLP output: two `interventions` entries), so the
layer's whole update of the residual stream is zero (mode zero).

Ablating a part of layer L changes nothing below L, so one clean forward pass keeps each layer's input
hidden states, and each ablated run starts at layer L from them. The heads of one layer share even layer L's
attention: that runs once, and its output becomes one row per head (each with its own head ablated) just
before `o_proj`, so the 9 heads of a layer are one batch from there on. One slice of model work per layer.
Edits already active on the model (the request's interventions) apply to the clean pass and every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from attribution.direct_logit import llama_layers
from attribution.guard import borrowed
from attribution.lens import final_norm
from attribution.objective import target_score
from backends.interventions import replaced
from backends.lane import Progress
from backends.model import LoadedModel

KINDS = ("heads", "mlps", "layers")
SWEEP_DESC = "ablation sweep"


@dataclass(frozen=True)
class Cell:
    """One component ablated: the score's change, the target's rank then (1 = likeliest) and its change."""

    delta: float
    rank: int
    rank_delta: int

    def as_dict(self) -> dict:
        return {"delta": self.delta, "rank": self.rank, "rank_delta": self.rank_delta}


@dataclass(frozen=True)
class Sweep:
    """The baseline (score and rank with no component ablated) and one row of cells per layer (one cell per
    head for `heads`, a single cell for `mlps` and `layers`)."""

    kind: str
    mode: str
    score: float
    rank: int
    grid: tuple[tuple[Cell, ...], ...]

    def as_dict(self) -> dict:
        rows = [[cell.as_dict() for cell in row] for row in self.grid]
        grid = rows if self.kind == "heads" else [row[0] for row in rows]
        return {"components": self.kind, "mode": self.mode, "baseline": {"score": self.score, "rank": self.rank},
                "grid": grid}  # fmt: skip


@dataclass(frozen=True)
class _Clean:
    """The clean pass: each decoder layer's input hidden states, the keyword arguments every layer got, the
    baseline score and rank."""

    inputs: tuple[torch.Tensor, ...]
    kwargs: dict
    score: float
    rank: int


def ranks(logits: torch.Tensor, target_id: int) -> torch.Tensor:
    """[B, V] -> [B]: 1 + the number of tokens with a higher logit than the target."""
    return 1 + (logits > logits[:, target_id : target_id + 1]).sum(-1)


def _clean(model: nn.Module, layers: Sequence[nn.Module], ids: Sequence[int], target_id: int, foil_id: int | None):
    inputs, kwargs = [], {}

    def keep(_module, args, given):
        inputs.append(args[0] if args else given["hidden_states"])
        kwargs.update({k: v for k, v in given.items() if k != "hidden_states"})

    hooks = [layer.register_forward_pre_hook(keep, with_kwargs=True) for layer in layers]
    try:
        tokens = torch.tensor([list(ids)], device=model.device)
        logits = model(input_ids=tokens, logits_to_keep=1, use_cache=False).logits[:, -1]
    finally:
        for hook in hooks:
            hook.remove()
    score = float(target_score(logits, target_id, foil_id)[0])
    return _Clean(tuple(inputs), kwargs, score, int(ranks(logits, target_id)[0]))


def _head_rows(attention: nn.Module, heads: int, mode: str) -> Callable:
    """An `o_proj` pre-hook turning the one row of attention output into `heads` rows, row h with head h ablated."""
    width = attention.head_dim

    def hook(_module, args: tuple) -> tuple:
        x = args[0]
        inside = torch.zeros(heads, 1, x.shape[-1], dtype=torch.bool, device=x.device)
        for h in range(heads):
            inside[h, :, h * width : (h + 1) * width] = True
        return (torch.where(inside, replaced(x, mode), x), *args[1:])

    return hook


def _block(mode: str) -> Callable:
    """A forward hook replacing a block's output (attention: the first of its outputs)."""

    def hook(_module, _args, output):
        if isinstance(output, tuple):
            return (replaced(output[0], mode), *output[1:])
        return replaced(output, mode)

    return hook


def _hooks(layer: nn.Module, kind: str, heads: int, mode: str) -> list:
    if kind == "heads":
        return [layer.self_attn.o_proj.register_forward_pre_hook(_head_rows(layer.self_attn, heads, mode))]
    blocks = [layer.mlp] if kind == "mlps" else [layer.self_attn, layer.mlp]
    return [block.register_forward_hook(_block(mode)) for block in blocks]


def _from_layer(model: nn.Module, layers: Sequence[nn.Module], clean: _Clean, start: int, hooks: list) -> torch.Tensor:
    """[rows, V] last-position logits of the runs from layer `start` (its input from the clean pass) with `hooks`
    installed, which are removed on the way out."""
    try:
        hidden = clean.inputs[start]
        for layer in layers[start:]:
            out = layer(hidden, **clean.kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
    finally:
        for hook in hooks:
            hook.remove()
    return model.get_output_embeddings()(final_norm(model)(hidden[:, -1]))


def sweep_slices(
    loaded: LoadedModel, ids: Sequence[int], target_id: int, kind: str, mode: str, foil_id: int | None = None
) -> Iterator[Progress | Sweep]:
    """One layer's ablated runs per `next()` (the first also runs the clean pass): Progress after each, then the
    `Sweep`. Validated input expected (`kind` in KINDS, `mode` in MODES)."""
    heads = int(loaded.model.config.num_attention_heads)
    grid: list[tuple[Cell, ...]] = []
    with borrowed(loaded.model) as model, torch.no_grad():
        layers = llama_layers(model, "ablation sweeps")
        clean = _clean(model, layers, ids, target_id, foil_id)
    for start, layer in enumerate(layers):
        with borrowed(loaded.model) as model, torch.no_grad():
            logits = _from_layer(model, layers, clean, start, _hooks(layer, kind, heads, mode))
            scores, found = target_score(logits, target_id, foil_id).tolist(), ranks(logits, target_id).tolist()
        grid.append(tuple(Cell(s - clean.score, r, r - clean.rank) for s, r in zip(scores, found, strict=True)))
        if start < len(layers) - 1:
            yield Progress(start + 1, len(layers), SWEEP_DESC)
    yield Sweep(kind, mode, clean.score, clean.rank, tuple(grid))


def sweep(
    loaded: LoadedModel, ids: Sequence[int], target_id: int, kind: str, mode: str, foil_id: int | None = None
) -> Sweep:
    """`sweep_slices` run to the end."""
    *_, last = sweep_slices(loaded, ids, target_id, kind, mode, foil_id)
    return last
