"""Attribution methods and the logit lens, checked against small independent references.

Mostly on the tiny random Llama (fast); a few on the real embedded model with short contexts.
"""

from __future__ import annotations

import json

import pytest
import torch

from attribution import AGGREGATIONS, METHODS, attribute, clear_cache, logit_lens
from attribution import attention as attention_mod
from attribution import gradients as gradients_mod
from attribution.guard import snapshot
from attribution.lens import layer_probabilities
from backends.model import LoadedModel

TARGET = 42  # a token id to attribute; the context is the `ids` fixture (conftest.py)


# --- independent references -----------------------------------------------------------------------


def reference_gradient(loaded: LoadedModel, ids: list[int], target: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(grad [L, D], embeddings [L, D], log p) of log_softmax(logits[-1])[target] with plain autograd."""
    model = loaded.model
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids]))
    embeds = embeds.clone().requires_grad_(True)
    with torch.enable_grad():
        logp = model(inputs_embeds=embeds).logits[0, -1].log_softmax(-1)[target]
        (grad,) = torch.autograd.grad(logp, embeds)
    return grad[0], embeds[0].detach(), float(logp.detach())


def reference_attention(loaded: LoadedModel, ids: list[int], last_layer_only: bool = False) -> torch.Tensor:
    """Mean attention row of the last position from one full eager forward."""
    model = loaded.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
    layers = out.attentions[-1:] if last_layer_only else out.attentions
    return torch.stack([a[0, :, -1, :] for a in layers]).mean(dim=(0, 1))


def hooks(model: torch.nn.Module) -> list[tuple]:
    return [(name, tuple(m._forward_hooks), tuple(m._forward_pre_hooks)) for name, m in model.named_modules()]


# --- gradient methods -----------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("method", ["saliency", "input_x_gradient"])
def test_gradient_methods_match_autograd(tiny, ids, method, aggregation):
    grad, embeds, logp = reference_gradient(tiny, ids, TARGET)
    per_dim = grad if method == "saliency" else grad * embeds
    expected = per_dim.norm(dim=-1) if aggregation == "l2" else per_dim.sum(dim=-1)

    result = attribute(tiny, ids, TARGET, method, aggregation=aggregation)

    assert len(result.scores) == len(ids)
    # float32 sums over the embedding in another order: a few 1e-5 apart on values near 2
    torch.testing.assert_close(torch.tensor(result.scores), expected, atol=1e-4, rtol=1e-4)
    assert result.target_logprob == pytest.approx(logp, abs=1e-5)
    shown = torch.tensor(result.normalized)
    if aggregation == "l2":
        assert float(shown.sum()) == pytest.approx(1.0, abs=1e-5)
        assert "L2 norm" in result.aggregation
    else:
        assert float(shown.abs().max()) == pytest.approx(1.0, abs=1e-6)
        assert "signed sum" in result.aggregation


def test_saliency_matches_autograd_on_embedded(embedded, tokenizer):
    short = tokenizer("Paris is the capital of")["input_ids"]
    target = tokenizer(" France")["input_ids"][0]
    grad, _, logp = reference_gradient(embedded, short, target)
    result = attribute(embedded, short, target, "saliency")
    torch.testing.assert_close(torch.tensor(result.scores), grad.norm(dim=-1), atol=1e-5, rtol=1e-4)
    assert result.target_logprob == pytest.approx(logp, abs=1e-4)


def test_gradients_work_inside_no_grad_and_leave_it_off(tiny, ids):
    with torch.no_grad():
        result = attribute(tiny, ids, TARGET, "saliency")
        assert not torch.is_grad_enabled()
    assert any(s != 0 for s in result.scores)
    assert not any(p.requires_grad for p in tiny.model.parameters())


# --- integrated gradients -------------------------------------------------------------------------


def test_integrated_gradients_complete_on_tiny(tiny, ids):
    result = attribute(tiny, ids, TARGET, "integrated_gradients", aggregation="sum", ig_steps=64)
    assert result.steps == 64
    assert result.baseline and "position 0" in result.baseline
    assert result.completeness_error is not None and result.completeness_error < 1e-3
    # Position 0 keeps its token in the baseline, so it gets nothing
    assert result.scores[0] == 0.0
    assert len(result.scores) == len(ids)


def test_integrated_gradients_reports_error_on_embedded(embedded, tokenizer):
    short = tokenizer("Paris is the capital of")["input_ids"]
    result = attribute(embedded, short, tokenizer(" France")["input_ids"][0], "integrated_gradients", ig_steps=8)
    assert result.steps == 8
    assert result.completeness_error is not None and result.completeness_error >= 0.0
    assert all(torch.isfinite(torch.tensor(result.scores)))


@pytest.mark.parametrize("steps", [0, 1, 257, 1000])
def test_integrated_gradients_steps_out_of_range(tiny, ids, steps):
    with pytest.raises(ValueError, match=f"ig_steps {steps} is out of range: accepted is an integer from 2 to 256"):
        attribute(tiny, ids, TARGET, "integrated_gradients", ig_steps=steps)


# --- attention ------------------------------------------------------------------------------------


@pytest.mark.parametrize("last_layer_only", [False, True])
def test_attention_matches_full_eager_forward(tiny, ids, last_layer_only):
    before = tiny.model.config._attn_implementation
    result = attribute(tiny, ids, TARGET, "attention", last_layer_only=last_layer_only)

    assert tiny.model.config._attn_implementation == before == "sdpa"
    assert len(result.scores) == len(result.normalized) == len(ids)
    expected = reference_attention(tiny, ids, last_layer_only)
    torch.testing.assert_close(torch.tensor(result.scores), expected, atol=1e-5, rtol=1e-5)
    assert sum(result.scores) == pytest.approx(1.0, abs=1e-5)
    # The sink: raw score kept, excluded from the display normalisation
    assert result.scores[0] > 0
    assert result.normalized[0] == 0.0
    assert sum(result.normalized[1:]) == pytest.approx(1.0, abs=1e-5)
    assert "position 0" in result.aggregation
    assert ("last layer" in result.aggregation) == last_layer_only


def test_attention_reuses_prefix_caches_correctly(tiny, ids):
    """Longer, shorter and diverging contexts reuse cached prefixes and still match a fresh forward."""
    other = [*ids[:4], 13, 14, 15]
    for context in (ids[:5], ids, ids[:3], other, ids):
        result = attribute(tiny, context, TARGET, "attention", use_cache=False)
        torch.testing.assert_close(torch.tensor(result.scores), reference_attention(tiny, context), atol=1e-5, rtol=0)
    assert len(attention_mod.CONTEXT_KV) <= attention_mod.CONTEXT_KV_ENTRIES


def test_attention_starts_from_the_decoding_cache(tiny, ids):
    """Text the engine decoded is not run again: attention copies the shared prefix cache and still matches."""
    from backends.prefix_cache import PREFIX_CACHE

    PREFIX_CACHE.logits(tiny, ids)
    attention_mod.CONTEXT_KV.clear()
    kv, length = PREFIX_CACHE.copy_prefix(tiny.key, ids[:-1])
    assert length == len(ids) - 1 and kv.get_seq_length() == length
    result = attribute(tiny, ids, TARGET, "attention", use_cache=False)
    torch.testing.assert_close(torch.tensor(result.scores), reference_attention(tiny, ids), atol=1e-5, rtol=0)
    assert PREFIX_CACHE.copy_prefix(tiny.key + 1000, ids) == (None, 0)


def test_attention_single_token(tiny):
    result = attribute(tiny, [1], TARGET, "attention")
    assert result.scores == pytest.approx((1.0,))
    assert result.normalized == (1.0,)


def test_attention_on_embedded_has_a_sink(embedded, tokenizer):
    chat = [{"role": "user", "content": "Hi"}]
    short = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"]
    result = attribute(embedded, short, 504, "attention")
    assert embedded.model.config._attn_implementation == "sdpa"
    assert sum(result.scores) == pytest.approx(1.0, abs=1e-4)
    assert result.scores[0] == max(result.scores)
    assert sum(result.normalized) == pytest.approx(1.0, abs=1e-5)


def test_attention_falls_back_to_cpu(tiny, ids, monkeypatch):
    expected = attribute(tiny, ids, TARGET, "attention", use_cache=False)
    on_gpu = LoadedModel(tiny.model, tiny.tokenizer, "tiny", "test", torch.device("cuda"), key=-99)
    real = attention_mod._eager_last_row

    def no_weights_on_device(model, *args):
        if model is tiny.model:
            raise RuntimeError("this kernel cannot return attention weights")
        return real(model, *args)

    monkeypatch.setattr(attention_mod, "_eager_last_row", no_weights_on_device)
    result = attribute(on_gpu, ids, TARGET, "attention")
    assert result.fell_back_to_cpu
    assert result.scores == pytest.approx(expected.scores, abs=1e-6)
    assert tiny.model.config._attn_implementation == "sdpa"


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context_ids": []}, "context_ids is empty: accepted is a list of 1 to 256 token ids"),
        ({"context_ids": [1] * 257}, "context_ids has 257 tokens: accepted is a list of 1 to 256 token ids"),
        ({"context_ids": [1, 10**7]}, r"context_ids\[1\] = 10000000 is outside the vocabulary: accepted is 0 to "),
        ({"target_id": -1}, "target_id -1 is outside the vocabulary: accepted is 0 to "),
        ({"target_id": 49152}, "target_id 49152 is outside the vocabulary: accepted is 0 to 49151$"),
        ({"target_id": True}, "target_id True is outside"),
        ({"method": "lime"}, "method 'lime' is not accepted: use one of attention, saliency"),
        ({"aggregation": "max"}, "aggregation 'max' is not accepted: use one of l2, sum"),
        ({"ig_steps": 1}, "ig_steps 1 is out of range: accepted is an integer from 2 to 256"),
        ({"ig_steps": 2.5}, "ig_steps 2.5 is not an integer: accepted is an integer from 2 to 256"),
        ({"last_layer_only": "yes"}, "last_layer_only 'yes' is not a boolean"),
        ({"steps": 8}, "unknown key 'steps' in the attribution parameters"),
    ],
)
def test_bad_input_raises_and_changes_nothing(tiny, ids, kwargs, message):
    request = {"context_ids": ids, "target_id": TARGET, "method": "saliency"} | kwargs
    extra = {k: request.pop(k) for k in ("aggregation", "ig_steps", "last_layer_only", "steps") if k in request}
    before = snapshot(tiny.model)
    with pytest.raises(ValueError, match=message):
        attribute(tiny, request["context_ids"], request["target_id"], request["method"], **extra)
    assert snapshot(tiny.model) == before


# --- model state ----------------------------------------------------------------------------------


def test_all_methods_leave_the_model_as_they_found_it(tiny, ids):
    logit_lens(tiny, ids)  # transformers installs its (inactive) capture hooks once, on first use
    attribute(tiny, ids, TARGET, "attention")
    clear_cache()
    before, hook_ids = snapshot(tiny.model), hooks(tiny.model)
    for method in METHODS:
        attribute(tiny, ids, TARGET, method, ig_steps=4)
    assert snapshot(tiny.model) == before
    assert hooks(tiny.model) == hook_ids
    assert not tiny.model.training


def _fail_when(model: torch.nn.Module, monkeypatch, condition) -> None:
    real = model.forward

    def forward(*args, **kwargs):
        if condition(kwargs):
            raise RuntimeError("forced failure mid-way")
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)


def test_state_restored_after_error_during_eager_attention(tiny, ids, monkeypatch):
    before = snapshot(tiny.model)
    _fail_when(tiny.model, monkeypatch, lambda kw: tiny.model.config._attn_implementation == "eager")
    with pytest.raises(RuntimeError, match="forced failure"):
        attribute(tiny, ids, TARGET, "attention")
    monkeypatch.undo()
    assert snapshot(tiny.model) == before
    assert tiny.model.config._attn_implementation == "sdpa"
    # A failed request leaves no half-used prefix cache behind, and the next one works
    assert len(attention_mod.CONTEXT_KV) == 0
    assert sum(attribute(tiny, ids, TARGET, "attention").scores) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_state_restored_after_error_during_backward_pass(tiny, ids, monkeypatch, method):
    before = snapshot(tiny.model)
    _fail_when(tiny.model, monkeypatch, lambda kw: torch.is_grad_enabled() and kw["inputs_embeds"].requires_grad)
    with torch.no_grad(), pytest.raises(RuntimeError, match="forced failure"):
        attribute(tiny, ids, TARGET, method, ig_steps=4)
    monkeypatch.undo()
    assert snapshot(tiny.model) == before
    assert torch.is_grad_enabled()
    assert not any(p.requires_grad for p in tiny.model.parameters())


def test_target_logprob_falls_back_to_its_own_forward(tiny, ids, monkeypatch):
    """The f(x) value falls back to its own forward pass if Captum stops passing our tensor through."""
    monkeypatch.setattr(gradients_mod.TargetLogProb, "__init__", _init_without_identity)
    result = attribute(tiny, ids, TARGET, "saliency")
    _, _, logp = reference_gradient(tiny, ids, TARGET)
    assert result.target_logprob == pytest.approx(logp, abs=1e-5)


def _init_without_identity(self, model, target_id, inputs, foil_id=None):
    self.model, self.target_id, self.inputs, self.at_inputs = model, target_id, inputs.detach().clone(), None
    self.foil_id = foil_id
    self._extra = {"logits_to_keep": 1}


# --- cache and serialisation ----------------------------------------------------------------------


def test_cache_hit_returns_same_object(tiny, ids):
    first = attribute(tiny, ids, TARGET, "saliency")
    assert attribute(tiny, ids, TARGET, "saliency") is first
    assert attribute(tiny, ids, TARGET, "saliency", aggregation="sum") is not first
    fresh = attribute(tiny, ids, TARGET, "saliency", use_cache=False)
    assert fresh is not first and fresh.scores == pytest.approx(first.scores, abs=1e-6)


def test_as_dict_is_json(tiny, ids):
    data = attribute(tiny, ids, TARGET, "integrated_gradients", ig_steps=4).as_dict()
    decoded = json.loads(json.dumps(data))
    assert decoded["method"] == "integrated_gradients"
    assert decoded["steps"] == 4 and len(decoded["scores"]) == len(ids)


# --- logit lens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tiny", "embedded"])
def test_logit_lens_rows_and_last_row(request, tokenizer, fixture):
    loaded = request.getfixturevalue(fixture)
    short = tokenizer("The capital of France is")["input_ids"]
    rows = logit_lens(loaded, short, top_k=5)
    assert [r.layer for r in rows] == list(range(loaded.model.config.num_hidden_layers + 1))

    with torch.no_grad():
        real = loaded.model(torch.tensor([short])).logits[0, -1].softmax(-1)
    probs, top = real.topk(5)
    assert [t[0] for t in rows[-1].tokens] == top.tolist()
    assert [t[2] for t in rows[-1].tokens] == pytest.approx(probs.tolist(), abs=1e-5)
    assert rows[-1].tokens[0][1] == tokenizer.decode([int(top[0])])
    torch.testing.assert_close(layer_probabilities(loaded, short)[-1], real, atol=1e-6, rtol=1e-4)


def test_logit_lens_rejects_bad_input(tiny):
    with pytest.raises(ValueError, match="ids is empty"):
        logit_lens(tiny, [])
    with pytest.raises(ValueError, match="top_k 0 is outside"):
        logit_lens(tiny, [1, 2], top_k=0)
    with pytest.raises(ValueError, match="token id -3 is outside"):
        logit_lens(tiny, [1, -3])
