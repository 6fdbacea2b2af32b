"""Direct logit attribution against a computation written here: a plain forward for the logit, and hooks of
our own on each attention block, MLP and layer for the pieces, through the final RMSNorm with its 1/rms
taken from that forward; the sum of the parts is the logit, a foil gives the difference, and a model that is
not Llama-shaped is refused in one line."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from attribution import attribute
from backends.model import LoadedModel

TEXT = "The capital of France is"
PARIS, LONDON = 7042, 4528  # " Paris", " London"


@pytest.fixture(scope="module")
def ids(tokenizer) -> list[int]:
    return tokenizer(TEXT)["input_ids"]


@pytest.fixture(scope="module")
def reference(embedded, ids) -> dict:
    """Our own hooked pass: each attention block's o_proj input and output, each MLP's output, the embedding,
    the last layer's output (the residual entering the final norm) and the logits, all at the last position."""
    model, seen, hooks = embedded.model, {}, []
    layers = model.model.layers
    for i, layer in enumerate(layers):
        hooks.append(layer.self_attn.o_proj.register_forward_hook(
            lambda _m, args, out, i=i: seen.update({("z", i): args[0][0, -1].double(), ("attn", i): out[0, -1].double()})
        ))  # fmt: skip
        hooks.append(layer.mlp.register_forward_hook(lambda _m, _a, out, i=i: seen.update({("mlp", i): out[0, -1]})))
    hooks.append(layers[-1].register_forward_hook(lambda _m, _a, out: seen.update(x=out[0, -1].double())))
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True)
    finally:
        for hook in hooks:
            hook.remove()
    x = seen["x"]
    rms = torch.sqrt(x.pow(2).mean() + model.model.norm.variance_epsilon)
    return seen | {"logits": out.logits[0, -1].double(), "embed": out.hidden_states[0][0, -1].double(), "rms": rms}


def _direction(embedded: LoadedModel, reference: dict, token: int) -> torch.Tensor:
    """The unembedding row of `token` through the final norm's weight and the frozen 1/rms."""
    model = embedded.model
    return model.lm_head.weight[token].double() * model.model.norm.weight.double() / reference["rms"]


def _components(embedded, ids, foil=None):
    return attribute(embedded, ids, PARIS, "direct_logit", contrast_token_id=foil, use_cache=False).components


def test_the_parts_sum_to_the_model_s_own_logit(embedded, ids, reference):
    parts = _components(embedded, ids)
    assert parts.logit == pytest.approx(float(reference["logits"][PARIS]), rel=1e-6)
    total = parts.embed + sum(map(sum, parts.heads)) + sum(parts.mlps) + parts.bias
    assert abs(total - parts.logit) < 1e-3 * abs(parts.logit)
    assert parts.reconstruction_error == pytest.approx(abs(total - parts.logit), abs=1e-9)
    assert parts.bias == 0.0 and parts.rms == pytest.approx(float(reference["rms"]), rel=1e-9)
    assert len(parts.heads) == len(parts.mlps) == 30 and {len(row) for row in parts.heads} == {9}
    assert "frozen from the forward pass" in parts.norm_scale


def test_one_head_by_hand_and_every_layer_s_attention_and_mlp(embedded, ids, reference):
    parts, direction = _components(embedded, ids), _direction(embedded, reference, PARIS)
    layer, head = 17, 4
    w_o = embedded.model.model.layers[layer].self_attn.o_proj.weight.double()
    columns = slice(head * 64, (head + 1) * 64)
    by_hand = float(direction @ (w_o[:, columns] @ reference["z", layer][columns]))
    assert parts.heads[layer][head] == pytest.approx(by_hand, rel=1e-6, abs=1e-9)
    for i in range(30):
        assert sum(parts.heads[i]) == pytest.approx(float(direction @ reference["attn", i]), rel=1e-5, abs=1e-6)
        assert parts.mlps[i] == pytest.approx(float(direction @ reference["mlp", i].double()), rel=1e-5, abs=1e-6)
    assert parts.embed == pytest.approx(float(direction @ reference["embed"]), rel=1e-6, abs=1e-9)


def test_a_foil_gives_the_difference_of_the_two_splits(embedded, ids, reference):
    both, paris = _components(embedded, ids, LONDON), _components(embedded, ids)
    london = attribute(embedded, ids, LONDON, "direct_logit", use_cache=False).components
    assert both.logit == pytest.approx(float(reference["logits"][PARIS] - reference["logits"][LONDON]), rel=1e-6)
    assert both.embed == pytest.approx(paris.embed - london.embed, abs=1e-6)
    assert both.mlps == pytest.approx([p - q for p, q in zip(paris.mlps, london.mlps, strict=True)], abs=1e-6)
    for mine, p_row, q_row in zip(both.heads, paris.heads, london.heads, strict=True):
        assert mine == pytest.approx([p - q for p, q in zip(p_row, q_row, strict=True)], abs=1e-6)
    assert both.reconstruction_error < 1e-3 * abs(both.logit)


def test_the_result_is_the_log_probability_of_the_same_pass_and_scores_no_tokens(embedded, ids, reference):
    result = attribute(embedded, ids, PARIS, "direct_logit", use_cache=False)
    expected = float(reference["logits"].log_softmax(-1)[PARIS])
    # two float32 forward passes of another shape: 2e-5 apart on some CPUs
    assert result.target_logprob == pytest.approx(expected, abs=1e-4)
    assert result.scores == result.normalized == () and result.faithfulness is None and result.signed
    assert set(result.as_dict()["components"]) == {
        "embed", "heads", "mlps", "bias", "logit", "reconstruction_error", "rms", "norm_scale",
    }  # fmt: skip


def test_a_model_that_is_not_llama_shaped_is_refused_in_one_line(tokenizer):
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)
    gpt2 = LoadedModel(GPT2LMHeadModel(config).eval(), tokenizer, "tiny-gpt2", "test", torch.device("cpu"), key=-2)
    with pytest.raises(ValueError, match=r"^method direct_logit needs a Llama-style model .*GPT2LMHeadModel is not$"):
        attribute(gpt2, [1, 2, 3], 5, "direct_logit", use_cache=False)
