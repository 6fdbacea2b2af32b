"""What an attribution request asks for: its own keys (target, foil, method, aggregation, granularity, steps)
parsed strictly, and the context and target token ids they name.

Parsing needs no model, so a bad attribution request is refused before any work; `target_ids` then
resolves the target against the prompt and completion of the loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass

from decoding import fields
from decoding.sampling.params import check_token_ids

GRANULARITIES = ("token", "word")
# Ablation runs about L/2 forward passes over an L-token context (each reuses the prefix before the
# ablated token), and a forward costs about half a forward-and-backward: L/4 passes in budget terms.
ABLATION_TOKENS_PER_PASS = 4
DEFAULT_IG_STEPS = 16


@dataclass(frozen=True)
class AttributionSpec:
    """What to attribute and how: the attribution request's own keys, checked without a model."""

    target_index: int | None
    target_token_id: int | None
    contrast_token_id: int | None
    method: str
    aggregation: str
    granularity: str
    ig_steps: int
    last_layer_only: bool

    @classmethod
    def from_dict(cls, data: dict) -> AttributionSpec:
        from attribution import AGGREGATIONS, IG_STEPS_RANGE, METHODS

        index, token_id, steps = data.get("target_index"), data.get("target_token_id"), data.get("ig_steps")
        foil = data.get("contrast_token_id")
        if index is None and token_id is None:
            raise ValueError(
                "give target_index (a completion position), target_token_id (a token after the whole text), or both"
                " (that token at that position)"
            )
        return cls(
            target_index=None if index is None else fields.integer("target_index", index, 0),
            target_token_id=None if token_id is None else fields.integer("target_token_id", token_id, 0),
            contrast_token_id=None if foil is None else fields.integer("contrast_token_id", foil, 0),
            method=fields.choice("method", data.get("method"), METHODS, "saliency"),
            aggregation=fields.choice("aggregation", data.get("aggregation"), AGGREGATIONS, "l2"),
            granularity=fields.choice("granularity", data.get("granularity"), GRANULARITIES, "token"),
            ig_steps=fields.integer("ig_steps", DEFAULT_IG_STEPS if steps is None else steps, *IG_STEPS_RANGE),
            last_layer_only=fields.boolean("last_layer_only", data.get("last_layer_only"), False),
        )

    def passes(self, context_tokens: int) -> int:
        """Forward-and-backward passes over the context: one per integrated-gradients step, ablation's
        forwards counted as `ABLATION_TOKENS_PER_PASS` tokens each, else one."""
        if self.method == "integrated_gradients":
            return self.ig_steps
        if self.method == "ablation":
            return max(1, -(-context_tokens // ABLATION_TOKENS_PER_PASS))
        return 1


def target_ids(spec: AttributionSpec, prompt, completion, vocab_size: int) -> tuple[tuple[int, ...], int]:
    """(context, target): the context is prompt + completion[:index]; the target the given token or the completion's."""
    index, token_id, n = spec.target_index, spec.target_token_id, len(completion)
    index = n if index is None else index
    last = n if token_id is not None else n - 1  # with a token, the position after the completion is fine too
    if index > last:
        raise ValueError(
            f"target_index {index} is out of range: accepted is 0 to {last} (the completion has {n} tokens"
            + (", and a target_token_id may also go after the last one)" if token_id is not None else ")")
            if last >= 0
            else f"target_index {index} is out of range: the completion is empty (give a target_token_id too)"
        )
    if token_id is None:
        return (*prompt, *completion[:index]), completion[index]
    (token,) = check_token_ids("target_token_id", [token_id], vocab_size)
    return (*prompt, *completion[:index]), token
