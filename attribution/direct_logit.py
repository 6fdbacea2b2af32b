"""Direct logit attribution: the target's logit split into what the embedding, each head and each MLP wrote.

The residual stream entering the final norm is the sum of the embedding and of every layer's attention and
MLP outputs; an attention output is `o_proj` of the concatenated heads, so head h wrote `W_O[:, h] @ z_h`.
The final RMSNorm divides by rms(x) of that residual: its scale is taken from the actual forward pass and
held fixed, which makes the logit (or the difference target - foil) linear in the residual and lets it
split exactly over the parts. `o_proj` and output-head biases (Llama has none) are counted in `bias`.
One forward pass with hooks at the attributed position, then small float64 products: the sums are float64
whatever the model's dtype (`sum_dtype`, `model_dtype`). In bfloat16 the model's own logit is rounded to 8
significant bits (up to 2^-8 of it off) and so is every addition to the residual, so the parts then match the
logit to about 2^-7 of it, not to float32's 1e-6.

Under model edits (backends.interventions) the parts are those of the edited model: a head ablation or an MLP
ablation is already in what the hooks see; an attention block ablated whole replaces `o_proj`'s output, which
is linear in the heads' inputs, so each head's share is taken from its input replaced the same way (zero, or
its mean over the positions); a steering vector added to the residual is a part of its own, `steering`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attribution.guard import borrowed
from attribution.lens import final_norm
from attribution.objective import target_score
from backends.giving_way import decoder_layers
from backends.interventions import Ablate, Edits, Steer, edits_on, replaced
from backends.model import LoadedModel

NORM_SCALE = "frozen from the forward pass: the final RMSNorm's 1/rms of the actual residual, held fixed"


@dataclass(frozen=True)
class LogitComponents:
    """The attributed logit and its parts; `reconstruction_error` = |sum of the parts - logit|."""

    embed: float
    heads: tuple[tuple[float, ...], ...]  # layers x heads
    mlps: tuple[float, ...]  # one per layer
    bias: float  # o_proj and output-head biases, summed (0 where the model has none)
    steering: float  # the steering vectors of the model's edits (0 without any)
    logit: float  # the target's logit, minus the foil's when one is given
    reconstruction_error: float
    rms: float  # rms(x) of the residual entering the final norm, as held fixed
    model_dtype: str  # the activations' dtype (the model's), e.g. "bfloat16"
    sum_dtype: str = "float64"  # the dtype the parts and their sum were computed in
    norm_scale: str = NORM_SCALE

    def as_dict(self) -> dict:
        return dict(self.__dict__) | {"heads": [list(row) for row in self.heads], "mlps": list(self.mlps)}


@dataclass(frozen=True)
class DirectLogit:
    """The components, and the log-probability (difference) of the same forward pass."""

    components: LogitComponents
    target_logprob: float


@dataclass(frozen=True)
class _Captured:
    """What the hooks saw at the attributed position, float64: the embedding, each layer's o_proj input and
    MLP output, and the residual entering the final norm."""

    embed: torch.Tensor
    head_inputs: list[torch.Tensor]
    mlp_outputs: list[torch.Tensor]
    residual: torch.Tensor


def _llama_shaped(layer: torch.nn.Module) -> bool:
    attention = getattr(layer, "self_attn", None)
    return isinstance(getattr(attention, "o_proj", None), torch.nn.Linear) and hasattr(layer, "mlp")


def llama_layers(model: torch.nn.Module, what: str = "method direct_logit") -> Sequence[torch.nn.Module]:
    """The decoder layers, each with `self_attn.o_proj` and `mlp`, before a final RMSNorm; ValueError naming
    `what` needs them for another architecture."""
    layers, kind = decoder_layers(model), type(model).__name__
    if layers is None or not all(map(_llama_shaped, layers)):
        raise ValueError(
            f"{what} needs a Llama-style model (decoder layers with self_attn.o_proj and mlp): {kind} is not"
        )
    norm = type(final_norm(model)).__name__
    if not norm.endswith("RMSNorm"):
        raise ValueError(f"{what} needs a final RMSNorm: {kind} has {norm}")
    return layers


def _at(tensor: torch.Tensor) -> torch.Tensor:
    return tensor[0, -1].detach().to(device="cpu", dtype=torch.float64)


def _attention_ablations(edits: Edits) -> dict[int, tuple[str, ...]]:
    """Layer -> the modes its whole attention block is ablated with, in the order applied."""
    found: dict[int, tuple[str, ...]] = {}
    for edit in edits:
        if isinstance(edit, Ablate) and edit.component == "attention":
            found[edit.layer] = (*found.get(edit.layer, ()), edit.mode)
    return found


def _head_input(z: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """`o_proj`'s input at the last position, replaced as the block's ablations replace its output."""
    for mode in modes:
        z = replaced(z, mode)
    return _at(z)


def _capture(model: torch.nn.Module, layers: Sequence[torch.nn.Module], ids: Sequence[int], ablated: dict):
    """One forward pass with hooks at the last position: (last-position logits, what the hooks saw). `ablated`:
    the modes of each layer's attention-block ablations."""
    seen: dict[str, list[torch.Tensor]] = {"embed": [], "heads": [], "mlps": [], "residual": []}
    hooks = [
        layers[0].register_forward_pre_hook(
            lambda _m, args, kwargs: seen["embed"].append(_at(args[0] if args else kwargs["hidden_states"])),
            with_kwargs=True,
        ),
        final_norm(model).register_forward_pre_hook(lambda _m, args: seen["residual"].append(_at(args[0]))),
    ]
    for i, layer in enumerate(layers):
        modes = ablated.get(i, ())
        hooks.append(layer.self_attn.o_proj.register_forward_pre_hook(
            lambda _m, a, modes=modes: seen["heads"].append(_head_input(a[0], modes))
        ))  # fmt: skip
        hooks.append(layer.mlp.register_forward_hook(lambda _m, _a, out: seen["mlps"].append(_at(out))))
    try:
        out = model(input_ids=torch.tensor([list(ids)], device=model.device), logits_to_keep=1, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return out.logits[:, -1], _Captured(seen["embed"][0], seen["heads"], seen["mlps"], seen["residual"][0])


def _readout(model: torch.nn.Module, target_id: int, foil_id: int | None) -> tuple[torch.Tensor, float]:
    """(the unembedding direction of target - foil, float64; the output head's bias along it)."""
    head = model.get_output_embeddings()

    def row(weights: torch.Tensor | None) -> torch.Tensor:
        if weights is None:
            return torch.zeros((), dtype=torch.float64)
        rows = weights.detach()[[target_id] if foil_id is None else [target_id, foil_id]]
        rows = rows.to(device="cpu", dtype=torch.float64)  # before subtracting: half-precision rows lose digits
        return rows[0] if foil_id is None else rows[0] - rows[1]

    return row(head.weight), float(row(getattr(head, "bias", None)))


def _split(model, layers, seen: _Captured, direction: torch.Tensor, head_bias: float, ablated: dict) -> dict:
    """Each part's share of the logit: direction . part, the direction already through the frozen norm."""
    heads, mlps, bias = [], [], head_bias
    n_heads = int(model.config.num_attention_heads)
    for i, (layer, z, mlp_out) in enumerate(zip(layers, seen.head_inputs, seen.mlp_outputs, strict=True)):
        o_proj = layer.self_attn.o_proj
        back = o_proj.weight.detach().to(device="cpu", dtype=torch.float64).T @ direction  # W_O^T d
        heads.append(tuple((back * z).view(n_heads, -1).sum(-1).tolist()))
        mlps.append(float(direction @ mlp_out))
        if o_proj.bias is not None and "zero" not in ablated.get(i, ()):  # a mean keeps a constant bias
            bias += float(direction @ o_proj.bias.detach().to(device="cpu", dtype=torch.float64))
    return {"embed": float(direction @ seen.embed), "heads": tuple(heads), "mlps": tuple(mlps), "bias": bias}


def _steering(edits: Edits, direction: torch.Tensor) -> float:
    """The share of the steering vectors the edits add to the residual stream (resolved edits: floats)."""
    vectors = [torch.tensor(e.vector, dtype=torch.float64) * e.alpha for e in edits if isinstance(e, Steer)]
    return float(direction @ sum(vectors)) if vectors else 0.0


def direct_logit(loaded: LoadedModel, ids: Sequence[int], target_id: int, foil_id: int | None = None) -> DirectLogit:
    """Split the logit of `target_id` (minus `foil_id`'s) after `ids` over embedding, heads, MLPs (validated input)."""
    with borrowed(loaded.model) as model, torch.no_grad():
        layers, edits = llama_layers(model), edits_on(model)
        ablated = _attention_ablations(edits)
        logits, seen = _capture(model, layers, ids, ablated)
        norm = final_norm(model)
        eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
        rms = float(torch.sqrt(seen.residual.pow(2).mean() + eps))
        unembed, head_bias = _readout(model, target_id, foil_id)
        direction = unembed * norm.weight.detach().to(device="cpu", dtype=torch.float64) / rms
        parts = _split(model, layers, seen, direction, head_bias, ablated) | {"steering": _steering(edits, direction)}
        row = logits[0].detach().to(device="cpu", dtype=torch.float64)
        logit = float(row[target_id] - (0.0 if foil_id is None else row[foil_id]))
        logprob = float(target_score(logits, target_id, foil_id)[0])
        dtype = str(model.dtype).removeprefix("torch.")
    total = parts["embed"] + sum(map(sum, parts["heads"])) + sum(parts["mlps"]) + parts["bias"] + parts["steering"]
    error = abs(total - logit)
    return DirectLogit(LogitComponents(**parts, logit=logit, reconstruction_error=error, rms=rms, model_dtype=dtype),
                       logprob)  # fmt: skip
