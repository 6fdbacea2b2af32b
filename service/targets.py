"""What an attribution request asks for: its own keys (target, foil, method, aggregation, granularity, and the
methods' parameters, as `attribution.registry` lists them) parsed strictly, and the context and target token
ids they name. `Target` is the target and foil alone, which an ablation sweep names too.

Parsing needs no model, so a bad attribution request is refused before any work; `target_ids` then
resolves the target against the prompt and completion of the loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution.aggregations import AGGREGATIONS
from attribution.registry import DEFAULT_AGGREGATION, DEFAULT_METHOD, METHODS, read_parameters
from decoding import fields
from decoding.sampling.params import check_token_ids

GRANULARITIES = ("token", "word")


@dataclass(frozen=True)
class Target:
    """The target token a request names (a completion position, a token id, or both) and its optional foil."""

    target_index: int | None
    target_token_id: int | None
    contrast_token_id: int | None

    @classmethod
    def from_dict(cls, data: dict) -> Target:
        index, token_id, foil = data.get("target_index"), data.get("target_token_id"), data.get("contrast_token_id")
        if index is None and token_id is None:
            raise ValueError(
                "give target_index (a completion position), target_token_id (a token after the whole text), or both"
                " (that token at that position)"
            )
        return cls(
            target_index=None if index is None else fields.integer("target_index", index, 0),
            target_token_id=None if token_id is None else fields.integer("target_token_id", token_id, 0),
            contrast_token_id=None if foil is None else fields.integer("contrast_token_id", foil, 0),
        )


@dataclass(frozen=True)
class AttributionSpec:
    """What to attribute and how: the attribution request's own keys, checked without a model.

    `parameters` holds every method parameter of the registry (`ig_steps`, `last_layer_only`), checked.
    """

    target_index: int | None
    target_token_id: int | None
    contrast_token_id: int | None
    method: str
    aggregation: str
    granularity: str
    parameters: dict[str, int | bool]

    @classmethod
    def from_dict(cls, data: dict) -> AttributionSpec:
        target = Target.from_dict(data)
        method = fields.choice("method", data.get("method"), tuple(METHODS), DEFAULT_METHOD)
        granularity = fields.choice("granularity", data.get("granularity"), GRANULARITIES, "token")
        if granularity == "word" and not METHODS[method].token_scores:
            raise ValueError(f"granularity 'word' does not apply to {method} (it scores no tokens): send 'token'")
        return cls(
            target_index=target.target_index,
            target_token_id=target.target_token_id,
            contrast_token_id=target.contrast_token_id,
            method=method,
            aggregation=fields.choice("aggregation", data.get("aggregation"), tuple(AGGREGATIONS), DEFAULT_AGGREGATION),
            granularity=granularity,
            parameters=read_parameters(data),
        )

    def passes(self, context_tokens: int) -> int:
        """Forward-and-backward passes over the context, as the method's registry entry counts them."""
        return METHODS[self.method].passes(context_tokens, self.parameters)


def target_ids(spec: Target | AttributionSpec, prompt, completion, vocab_size: int) -> tuple[tuple[int, ...], int]:
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
