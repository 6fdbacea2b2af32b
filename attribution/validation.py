"""What an attribution accepts: token ids, the method, its aggregation and parameters, and the foil, checked
before any model work.

`validate` raises ValueError with one line naming the bad value and what is accepted, in the words of the
request fields (`decoding.fields`); what a method accepts comes from `attribution.registry`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from attribution import registry
from attribution.aggregations import AGGREGATIONS
from backends.model import LoadedModel
from decoding import fields


def as_int(value: object) -> int | None:
    """The integer a token id stands for (numpy and torch integers too), or None; bools are not ids."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_target(loaded: LoadedModel, context_ids: Sequence[int], target_id: int, foil_id: object) -> None:
    """The context, target and foil ids of any method (or ablation sweep); ValueError naming the bad value."""
    _check_ids(loaded, context_ids, target_id)
    if foil_id is None:
        return
    if as_int(foil_id) is None or not 0 <= foil_id < loaded.vocab_size:
        raise ValueError(f"contrast_token_id {foil_id!r} {_outside(loaded.vocab_size)}")
    if foil_id == target_id:
        raise ValueError(f"contrast_token_id {foil_id} is the target token itself: give another token as the foil")


def validate(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    target_id: int,
    method: str,
    aggregation: str,
    foil_id: int | None = None,
    **parameters: object,
) -> dict[str, int | bool]:
    """The method parameters checked (defaults for those not given); ValueError naming the bad value and what is
    accepted. Touches nothing on the model."""
    check_target(loaded, context_ids, target_id, foil_id)
    entry = registry.method(method)
    fields.one_of("aggregation", aggregation, tuple(AGGREGATIONS))
    fields.obj("the attribution parameters", parameters, registry.PARAMETERS)
    checked = registry.read_parameters({k: v if (i := as_int(v)) is None else i for k, v in parameters.items()})
    if foil_id is not None:
        registry.check_foil(entry)
    return checked


def _outside(rows: int) -> str:
    return f"is outside the vocabulary: accepted is 0 to {rows - 1}"


def _check_ids(loaded: LoadedModel, context_ids: Sequence[int], target_id: int) -> None:
    accepted = f"accepted is a list of 1 to {loaded.context_length} token ids (the model's context length)"
    if len(context_ids) == 0:
        raise ValueError(f"context_ids is empty: {accepted}")
    embed_rows = int(loaded.model.get_input_embeddings().weight.shape[0])
    for position, token in enumerate(context_ids):
        if as_int(token) is None or not 0 <= token < embed_rows:
            raise ValueError(f"context_ids[{position}] = {token!r} {_outside(embed_rows)}")
    if len(context_ids) > loaded.context_length:
        raise ValueError(f"context_ids has {len(context_ids)} tokens: {accepted}")
    if as_int(target_id) is None or not 0 <= target_id < loaded.vocab_size:
        raise ValueError(f"target_id {target_id!r} {_outside(loaded.vocab_size)}")
