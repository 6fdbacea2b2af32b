"""Activation patching against a computation written here: our own hooks copy one clean activation into a
plain corrupted forward pass (no cache, no batch); patching a whole layer's residual is exactly 1, patching
nothing exactly 0; the model is left as it was."""

from __future__ import annotations

import pytest
import torch

from attribution.patching import Patch, PatchingGrid, Run, capture, patched, patching_slices, score

CLEAN, CORRUPTED = "The capital of France is", "The capital of Italy is"
PARIS, ROME = 7042, 7268  # " Paris", " Rome"


def _module(layer: torch.nn.Module, site: str) -> torch.nn.Module:
    return {"residual": layer, "attention": layer.self_attn, "mlp": layer.mlp}[site]


def _hidden(out):
    return out[0] if isinstance(out, tuple) else out


def reference_cell(model, clean, corrupted, site: str, layer: int, position: int) -> float:
    """From scratch: the clean site output at (layer, position) put into a plain corrupted forward."""
    module, seen = _module(model.model.layers[layer], site), {}
    hook = module.register_forward_hook(lambda _m, _a, out: seen.update(a=_hidden(out)[0, position].clone()))
    with torch.no_grad():
        clean_logits = model(torch.tensor([clean])).logits[0, -1].double()
    hook.remove()

    def put(_m, _a, out):
        hidden = _hidden(out).clone()
        hidden[0, position] = seen["a"]
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

    with torch.no_grad():
        corrupted_logits = model(torch.tensor([corrupted])).logits[0, -1].double()
        hook = module.register_forward_hook(put)
        try:
            patched_logits = model(torch.tensor([corrupted])).logits[0, -1].double()
        finally:
            hook.remove()

    def diff(row):
        return float(row[PARIS] - row[ROME])

    return (diff(patched_logits) - diff(corrupted_logits)) / (diff(clean_logits) - diff(corrupted_logits))


def grid(loaded, clean, corrupted, site) -> PatchingGrid:
    *_, last = patching_slices(loaded, clean, corrupted, PARIS, ROME, site)
    return last


@pytest.fixture(scope="module")
def texts(tokenizer):
    clean, corrupted = tokenizer(CLEAN)["input_ids"], tokenizer(CORRUPTED)["input_ids"]
    assert len(clean) == len(corrupted)
    return clean, corrupted


@pytest.mark.parametrize("site", ["residual", "attention", "mlp"])
def test_cells_equal_a_hooked_patch_written_here(tiny, texts, site):
    found = grid(tiny, *texts, site)
    layers, positions = len(tiny.model.model.layers), len(texts[0])
    assert len(found.scores) == layers and all(len(row) == positions for row in found.scores)
    for layer in range(layers):
        for position in range(positions):
            expected = reference_cell(tiny.model, *texts, site, layer, position)
            assert found.scores[layer][position] == pytest.approx(expected, abs=1e-4), (layer, position)


def test_embedded_residual_cells_and_baselines(embedded, texts):
    found = grid(embedded, *texts, "residual")
    france = 3  # the token that differs
    assert texts[0][france] != texts[1][france]
    for layer, position in [(0, france), (12, france), (29, len(texts[0]) - 1), (5, 1)]:
        expected = reference_cell(embedded.model, *texts, "residual", layer, position)
        assert found.scores[layer][position] == pytest.approx(expected, abs=1e-3)
    assert found.clean > found.corrupted  # Paris over Rome for France, the other way for Italy
    assert found.scores[0][1] == pytest.approx(0.0, abs=1e-4)  # an unchanged token early on restores nothing


def test_a_whole_layer_s_residual_gives_exactly_one_and_nothing_gives_zero(embedded, texts):
    clean, corrupted = texts
    model = embedded.model
    with torch.no_grad():
        clean_logits, acts = capture(model, "residual", clean)
        run = Run(model, "residual", acts, PARIS, ROME)
        clean_d = float(clean_logits[0, PARIS].double() - clean_logits[0, ROME].double())
        nothing, _ = patched(run, [Patch(7, ())], corrupted, 0, None)
        whole, _ = patched(run, [Patch(7, tuple(range(len(clean))))], corrupted, 0, None)
    corrupted_d = float(nothing[0])
    assert float(score(whole, clean_d, corrupted_d)[0]) == 1.0
    assert float(score(nothing, clean_d, corrupted_d)[0]) == 0.0


def test_the_same_difference_gives_no_scores_and_a_reason(tiny, texts):
    found = grid(tiny, texts[0], texts[0], "mlp")
    assert found.scores is None and "same logit difference" in found.reason


def test_lengths_must_match(tiny, texts):
    with pytest.raises(ValueError, match="corrupted context has 3 tokens and the clean one 5"):
        grid(tiny, texts[0], texts[1][:3], "residual")


def test_the_model_is_unchanged(tiny, texts):
    ids = torch.tensor([texts[0]])
    with torch.no_grad():
        before = tiny.model(ids).logits
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tiny.model.modules())
    grid(tiny, *texts, "attention")
    with torch.no_grad():
        assert torch.equal(tiny.model(ids).logits, before)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tiny.model.modules()) == hooks
