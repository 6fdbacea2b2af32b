"""Direct logit attribution against a computation written here: a plain forward for the logit, and hooks of
our own on each attention block, MLP and layer for the pieces, through the final RMSNorm with its 1/rms
taken from that forward; the sum of the parts is the logit, a foil gives the difference, and a model that is
not Llama-shaped is refused in one line. Under model edits the parts are the edited model's; in bfloat16 the
sums are float64 and match the model's own (rounded) logit to 2^-7 of it."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from attribution import attribute
from backends.interventions import Ablate, Steer, applied
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
        "embed", "heads", "mlps", "bias", "steering", "logit", "reconstruction_error", "rms", "model_dtype",
        "sum_dtype", "norm_scale",
    }  # fmt: skip


def test_a_model_that_is_not_llama_shaped_is_refused_in_one_line(tokenizer):
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)
    gpt2 = LoadedModel(GPT2LMHeadModel(config).eval(), tokenizer, "tiny-gpt2", "test", torch.device("cpu"), key=-2)
    with pytest.raises(ValueError, match=r"^method direct_logit needs a Llama-style model .*GPT2LMHeadModel is not$"):
        attribute(gpt2, [1, 2, 3], 5, "direct_logit", use_cache=False)


STEER = Steer(5, tuple(0.1 * (-1) ** i for i in range(576)), 3.0)


@pytest.mark.parametrize(
    "edit",
    [Ablate(3, head=2), Ablate(3, component="attention"), Ablate(3, component="attention", mode="mean"),
     Ablate(3, component="mlp", mode="mean"), STEER],
    ids=lambda edit: edit.describe(),
)  # fmt: skip
def test_under_an_edit_the_parts_are_the_edited_model_s(embedded, ids, edit):
    """Our own hooks on the edited model (installed after the edit's, so they see what it left): layer 3's
    attention output split over heads, its MLP, and the steering vector through the frozen norm."""
    model, seen = embedded.model, {}
    layers = model.model.layers
    with applied(model, (edit,)), torch.no_grad():
        hooks = [layers[3].self_attn.register_forward_hook(lambda _m, _a, out: seen.update(attn=out[0][0, -1])),
                 layers[3].mlp.register_forward_hook(lambda _m, _a, out: seen.update(mlp=out[0, -1])),
                 layers[-1].register_forward_hook(lambda _m, _a, out: seen.update(x=out[0, -1].double()))]  # fmt: skip
        try:
            logits = model(torch.tensor([ids])).logits[0, -1].double()
        finally:
            for hook in hooks:
                hook.remove()
    parts = attribute(embedded, ids, PARIS, "direct_logit", use_cache=False, edits=(edit,)).components
    rms = torch.sqrt(seen["x"].pow(2).mean() + model.model.norm.variance_epsilon)
    direction = model.lm_head.weight[PARIS].double() * model.model.norm.weight.double() / rms
    assert parts.logit == pytest.approx(float(logits[PARIS]), rel=1e-6)
    assert parts.reconstruction_error < 1e-3 * abs(parts.logit)
    assert sum(parts.heads[3]) == pytest.approx(float(direction @ seen["attn"].double()), rel=1e-5, abs=1e-6)
    assert parts.mlps[3] == pytest.approx(float(direction @ seen["mlp"].double()), rel=1e-5, abs=1e-6)
    steering = float(direction @ (torch.tensor(STEER.vector, dtype=torch.float64) * STEER.alpha))
    assert parts.steering == pytest.approx(steering if edit is STEER else 0.0, rel=1e-9, abs=1e-12)
    if edit == Ablate(3, head=2) or edit == Ablate(3, component="attention"):
        assert parts.heads[3][2] == 0.0


@pytest.mark.parametrize("text", [TEXT, "Once upon a time there was a", "def add(a, b):\n    return"])
def test_in_bfloat16_the_float64_sums_match_the_model_s_rounded_logit(embedded, tokenizer, text):
    """bfloat16 keeps 8 significant bits: the model's own logit is up to 2^-8 of itself off, and every addition
    to the residual stream rounds as much; the parts, summed in float64, stay within 2^-7 of the logit."""
    half = dataclasses.replace(embedded, model=copy.deepcopy(embedded.model).to(torch.bfloat16), key=-8)
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        target = int(half.model(torch.tensor([ids])).logits[0, -1].argmax())
    parts = attribute(half, ids, target, "direct_logit", use_cache=False).components
    assert parts.reconstruction_error < 2**-7 * abs(parts.logit)
    assert (parts.model_dtype, parts.sum_dtype) == ("bfloat16", "float64")
    assert _components(embedded, ids).model_dtype == "float32"
