"""What an attribution accepts: methods, aggregations, steps, token ids and the foil, checked before any model work.

`validate` raises ValueError with one line naming the bad value and what is accepted; it touches nothing.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from backends.model import LoadedModel

METHODS = ("attention", "saliency", "input_x_gradient", "integrated_gradients", "ablation")
AGGREGATIONS = ("l2", "sum")
IG_STEPS_RANGE = (2, 256)


def as_int(value: object) -> int | None:
    """The integer a token id stands for (numpy and torch integers too), or None; bools are not ids."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")


def _check_foil(foil_id: object, target_id: int, method: str, vocab: int) -> None:
    if foil_id is None:
        return
    if as_int(foil_id) is None or not 0 <= foil_id < vocab:
        raise ValueError(f"contrast_token_id {foil_id!r} is outside the vocabulary [0, {vocab})")
    if foil_id == target_id:
        raise ValueError(f"contrast_token_id {foil_id} is the target token itself: give another token as the foil")
    if method == "attention":
        raise ValueError(
            "contrast_token_id does not apply to attention (attention does not depend on the target):"
            " choose saliency, input_x_gradient, integrated_gradients or ablation, or send null"
        )


def validate(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    target_id: int,
    method: str,
    aggregation: str,
    ig_steps: int,
    foil_id: int | None = None,
) -> None:
    """Raise ValueError naming the bad value and the accepted range; touches nothing on the model."""
    if len(context_ids) == 0:
        raise ValueError("context_ids is empty: attribution needs at least one context token")
    vocab = loaded.vocab_size
    embed_rows = int(loaded.model.get_input_embeddings().weight.shape[0])
    for position, token in enumerate(context_ids):
        if as_int(token) is None or not 0 <= token < embed_rows:
            raise ValueError(
                f"context token {token!r} at position {position} is outside the vocabulary [0, {embed_rows})"
            )
    if len(context_ids) > loaded.context_length:
        raise ValueError(f"context has {len(context_ids)} tokens; the model accepts at most {loaded.context_length}")
    if as_int(target_id) is None or not 0 <= target_id < vocab:
        raise ValueError(f"target_id {target_id!r} is outside the vocabulary [0, {vocab})")
    _check_choice("attribution method", method, METHODS)
    _check_choice("aggregation", aggregation, AGGREGATIONS)
    low, high = IG_STEPS_RANGE
    if as_int(ig_steps) is None or not low <= ig_steps <= high:
        raise ValueError(f"ig_steps {ig_steps!r} is outside the accepted range {low}..{high}")
    _check_foil(foil_id, target_id, method, vocab)
