"""Logit lens: what each layer would predict for the next token if the model stopped there.

Each hidden state of the last position goes through the model's final norm and output head. Row 0 is
the embedding output, row N the last layer; transformers already returns the last hidden state after
the final norm, so the last row is the model's real next-token distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attribution.guard import borrowed
from backends.model import LoadedModel

_FINAL_NORM_NAMES = ("norm", "final_layernorm", "ln_f", "final_layer_norm")


@dataclass(frozen=True)
class LensRow:
    """The top-k next tokens read from one layer: (id, decoded text, probability)."""

    layer: int
    tokens: tuple[tuple[int, str, float], ...]

    def as_dict(self) -> dict:
        return {"layer": self.layer, "tokens": [list(t) for t in self.tokens]}


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The norm applied between the last layer and the output head."""
    base = getattr(model, "base_model", model)
    for holder in (base, getattr(base, "decoder", None), model):
        for name in _FINAL_NORM_NAMES:
            module = getattr(holder, name, None) if holder is not None else None
            if isinstance(module, torch.nn.Module):
                return module
    raise ValueError(f"{type(model).__name__}: no final norm found (looked for {', '.join(_FINAL_NORM_NAMES)})")


def _top(probs: torch.Tensor, top_k: int, tokenizer) -> tuple[tuple[int, str, float], ...]:
    values, ids = probs.topk(top_k)
    return tuple(
        (int(i), tokenizer.decode([int(i)]), float(p)) for p, i in zip(values.tolist(), ids.tolist(), strict=True)
    )


def layer_probabilities(loaded: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    """[num_hidden_layers + 1, V] next-token probabilities read at every layer (float32, CPU)."""
    if len(ids) == 0:
        raise ValueError("ids is empty: the logit lens needs at least one token")
    rows = int(loaded.model.get_input_embeddings().weight.shape[0])
    bad = next((t for t in ids if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < rows), None)
    if bad is not None:
        raise ValueError(f"token id {bad!r} is outside the vocabulary [0, {rows})")
    with borrowed(loaded.model) as model, torch.no_grad():
        tokens = torch.tensor([list(ids)], device=model.device)
        out = model(input_ids=tokens, output_hidden_states=True, logits_to_keep=1)
        states = [h[0, -1] for h in out.hidden_states]
        # The last state is already normalised (it is `last_hidden_state`); the others are not
        inner = torch.stack(states[:-1])
        head = model.get_output_embeddings()
        logits = torch.cat([head(final_norm(model)(inner)), out.logits[0, -1:]]).float()
    return logits.softmax(-1).cpu()


def logit_lens(loaded: LoadedModel, ids: Sequence[int], top_k: int = 5) -> tuple[LensRow, ...]:
    """One row per layer (embeddings = layer 0) with the top-k tokens for the position after `ids`."""
    if not 1 <= top_k <= loaded.vocab_size:
        raise ValueError(f"top_k {top_k!r} is outside 1..{loaded.vocab_size}")
    probs = layer_probabilities(loaded, ids)
    return tuple(LensRow(layer, _top(row, top_k, loaded.tokenizer)) for layer, row in enumerate(probs))
