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
before `o_proj`. All the runs then go on together, one decoder layer at a time: slice L runs layer L for the
rows of every layer below (in batches of `ROWS_PER_BATCH`, which a CPU runs faster per row than the 9 rows
of one layer alone) and starts layer L's own rows; after the last layer, the final norm and the output layer
read each row's last position only. One slice of model work per layer. Edits already active on the model
(the request's interventions) apply to the clean pass and every run; rows never mix (each is its own batch
row), so each cell is what that one ablation alone gives.
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
# Rows of 128 tokens through one decoder layer of the embedded model on 2 CPU cores, time per row relative to
# 9 rows: 18 rows 0.6, 36 rows 0.45, 72 rows 0.5 (and 72 rows hold twice the memory): 36 it is.
ROWS_PER_BATCH = 36
# Floats of rows carried between layers (256 MiB in float32): where every run of every layer would hold more
# (long contexts), the layers' runs start in groups of consecutive layers, each group a pass of its own.
MAX_HELD = 2**26


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


def _through(layer: nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
    out = layer(hidden, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def _step(layer: nn.Module, rows: list[torch.Tensor], clean: _Clean, start: int, install: Callable | None):
    """Decoder layer `start` for the batches of rows of the layers below and, with `install`, for its clean input,
    which the hooks `install()` returns (installed after those rows, removed on the way out) turn into this
    layer's ablated rows: all the batches after the layer, the new rows joining the last batch while it has
    room (batches kept apart: one tensor of every row, cut again each layer, cost ~5 % of a sweep in copies)."""
    done = [_through(layer, batch, clean.kwargs) for batch in rows]
    if install is None:
        return done
    hooks = install()
    try:
        new = _through(layer, clean.inputs[start], clean.kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    if done and len(done[-1]) + len(new) <= ROWS_PER_BATCH:
        return [*done[:-1], torch.cat([done[-1], new])]
    return [*done, new]


def _cells(model: nn.Module, rows: list[torch.Tensor], clean: _Clean, target_id: int, foil_id: int | None):
    """Each row's cell: its last position through the final norm and the output layer, scored against the clean."""
    logits = model.get_output_embeddings()(final_norm(model)(torch.cat([batch[:, -1] for batch in rows])))
    scores, found = target_score(logits, target_id, foil_id).tolist(), ranks(logits, target_id).tolist()
    return [Cell(s - clean.score, r, r - clean.rank) for s, r in zip(scores, found, strict=True)]


def sweep_slices(
    loaded: LoadedModel, ids: Sequence[int], target_id: int, kind: str, mode: str, foil_id: int | None = None
) -> Iterator[Progress | Sweep]:
    """One decoder layer for every run (of a group) per `next()` (the first also runs the clean pass): Progress
    after each, then the `Sweep`. Validated input expected (`kind` in KINDS, `mode` in MODES)."""
    heads = int(loaded.model.config.num_attention_heads)
    per_layer = heads if kind == "heads" else 1
    with borrowed(loaded.model) as model, torch.no_grad():
        layers = llama_layers(model, "ablation sweeps")
        clean = _clean(model, layers, ids, target_id, foil_id)
    groups = _groups(len(layers), per_layer * clean.inputs[0].numel())
    total, done, cells = sum(len(layers) - group.start for group in groups), 0, []
    for group in groups:
        rows: list[torch.Tensor] = []
        for start in range(group.start, len(layers)):
            install = (lambda layer=layers[start]: _hooks(layer, kind, heads, mode)) if start in group else None
            with borrowed(loaded.model) as model, torch.no_grad():
                rows = _step(layers[start], rows, clean, start, install)
                if start == len(layers) - 1:
                    cells += _cells(model, rows, clean, target_id, foil_id)
            done += 1
            if done < total:
                yield Progress(done, total, SWEEP_DESC)
    grid = tuple(tuple(cells[i : i + per_layer]) for i in range(0, len(cells), per_layer))
    yield Sweep(kind, mode, clean.score, clean.rank, grid)


def _groups(layers: int, floats_per_layer: int) -> list[range]:
    """Consecutive start layers whose runs together hold at most MAX_HELD floats (at least one layer each)."""
    size = max(1, MAX_HELD // floats_per_layer)
    return [range(first, min(first + size, layers)) for first in range(0, layers, size)]


def sweep(
    loaded: LoadedModel, ids: Sequence[int], target_id: int, kind: str, mode: str, foil_id: int | None = None
) -> Sweep:
    """`sweep_slices` run to the end."""
    *_, last = sweep_slices(loaded, ids, target_id, kind, mode, foil_id)
    return last
