"""Ablation sweeps against a computation written here: a whole forward pass of the embedded model with one hook
of our own (a head's slice of the o_proj input, or a block's output, replaced by zero or its mean over the
positions), its log-probability and rank of the target computed by hand; random cells of every kind and mode."""

from __future__ import annotations

import random

import pytest
import torch

from attribution import sweep as sweeps
from attribution.sweep import sweep, sweep_slices
from backends.interventions import Ablate, applied

TEXT = "The capital of France is"
PARIS, LONDON = 7042, 4528  # " Paris", " London"


@pytest.fixture(scope="module")
def ids(tokenizer) -> list[int]:
    return tokenizer(TEXT)["input_ids"]


def _replace(x: torch.Tensor, mode: str) -> torch.Tensor:
    return torch.zeros_like(x) if mode == "zero" else x.mean(dim=1, keepdim=True).expand_as(x)


def _hooked_logits(model, ids, layer: int, what: str, head: int | None, mode: str) -> torch.Tensor:
    """The last position's float64 logits of one whole forward with that one part ablated by our own hooks."""
    block = model.model.layers[layer]
    hooks = []
    if what == "head":
        width = block.self_attn.head_dim

        def pre(_m, args):
            x = args[0].clone()
            x[..., head * width : (head + 1) * width] = _replace(x, mode)[..., head * width : (head + 1) * width]
            return (x,)

        hooks.append(block.self_attn.o_proj.register_forward_pre_hook(pre))
    for name in {"mlp": ["mlp"], "layer": ["self_attn", "mlp"]}.get(what, []):

        def post(_m, _a, out):
            return (_replace(out[0], mode), *out[1:]) if isinstance(out, tuple) else _replace(out, mode)

        hooks.append(getattr(block, name).register_forward_hook(post))
    try:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0, -1].double()
    finally:
        for hook in hooks:
            hook.remove()


def _score_rank(logits: torch.Tensor, foil: int | None) -> tuple[float, int]:
    logprobs = logits.log_softmax(-1)
    score = float(logprobs[PARIS] - (0.0 if foil is None else logprobs[foil]))
    return score, 1 + int((logits > logits[PARIS]).sum())


@pytest.mark.parametrize(("kind", "mode", "foil"), [("heads", "zero", None), ("heads", "mean", LONDON),
                                                    ("mlps", "mean", None), ("layers", "zero", LONDON)])  # fmt: skip
def test_random_cells_equal_one_hooked_forward_each(embedded, ids, kind, mode, foil):
    result = sweep(embedded, ids, PARIS, kind, mode, foil)
    model = embedded.model
    with torch.no_grad():
        base_score, base_rank = _score_rank(model(torch.tensor([ids])).logits[0, -1].double(), foil)
    assert result.score == pytest.approx(base_score, abs=1e-4)
    assert result.rank == base_rank
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    assert len(result.grid) == layers
    assert {len(row) for row in result.grid} == {heads if kind == "heads" else 1}
    rng = random.Random(kind + mode)
    for _ in range(4):
        layer, head = rng.randrange(layers), rng.randrange(heads) if kind == "heads" else 0
        what = {"heads": "head", "mlps": "mlp", "layers": "layer"}[kind]
        score, rank = _score_rank(_hooked_logits(model, ids, layer, what, head, mode), foil)
        cell = result.grid[layer][head]
        assert cell.delta == pytest.approx(score - base_score, abs=2e-4), (layer, head)
        assert cell.rank == rank and cell.rank_delta == rank - base_rank, (layer, head)


def test_a_layer_ablated_in_zero_mode_changes_nothing_but_its_own_update(embedded, ids):
    """A zero "layer" cell equals the two block ablations sent as interventions, and the sweep edits nothing."""
    before = {k: v.clone() for k, v in embedded.model.state_dict().items()}
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in embedded.model.modules())
    result = sweep(embedded, ids, PARIS, "layers", "zero")
    edits = (Ablate(3, component="attention"), Ablate(3, component="mlp"))
    with applied(embedded.model, edits), torch.no_grad():
        score, rank = _score_rank(embedded.model(torch.tensor([ids])).logits[0, -1].double(), None)
    assert result.grid[3][0].delta == pytest.approx(score - result.score, abs=2e-4)
    assert result.grid[3][0].rank == rank
    assert all(torch.equal(before[k], v) for k, v in embedded.model.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in embedded.model.modules()) == hooks_before


def test_runs_too_big_to_hold_together_go_in_groups_of_layers_with_the_same_cells(tiny, monkeypatch):
    """With room for one layer's runs at a time, each layer's runs are a pass of their own: same cells."""
    ids = list(range(5, 25))
    together = sweep(tiny, ids, 7, "heads", "mean")
    monkeypatch.setattr(sweeps, "MAX_HELD", 1)
    *progress, grouped = sweep_slices(tiny, ids, 7, "heads", "mean")
    assert [(p.done, p.total) for p in progress] == [(1, 3), (2, 3)]  # layers 0-1, then layer 1 alone
    assert grouped.score == together.score
    for mine, theirs in zip(grouped.grid, together.grid, strict=True):
        assert [c.delta for c in mine] == pytest.approx([c.delta for c in theirs], abs=1e-6)
        assert [c.rank for c in mine] == [c.rank for c in theirs]
