"""Steering vectors made from examples (contrastive activation addition), kept per model in a bounded cache.

A vector for decoder layer L is the mean over pairs of (the residual stream after layer L at the last token
of a positive text) minus (the same for its negative text); the texts are tokenized as they are (no chat
template). The i-th positive text pairs with the i-th negative one, so both lists must be equally long. A
vector's id is a digest of the model, the layer and the texts: the same examples give the same id. The
vectors of the current model live in its per-model memo (dropped when another model is loaded), at most
`MAX_VECTORS`, the least recently used going first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

from backends.bounded import BoundedCache
from backends.interventions import residual_after
from backends.lane import LANE
from backends.model import LoadedModel
from backends.model.memo import per_model

MAX_VECTORS = 64
MAX_PAIRS = 32


@dataclass(frozen=True)
class SteeringVector:
    """One steering vector: its id, layer, floats (d_model), L2 norm, number of pairs and the examples."""

    id: str
    layer: int
    vector: tuple[float, ...]
    norm: float
    pairs: int
    positive: tuple[str, ...]
    negative: tuple[str, ...]

    def summary(self) -> dict:
        """What the API answers: the vector's id, layer, norm and pairs, and its examples."""
        keys = ("id", "layer", "norm", "pairs", "positive", "negative")
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in self.__dict__.items()
            if key in keys
        }


def direction(positive: tuple[str, ...], negative: tuple[str, ...]) -> str:
    """A vector named by its examples: 'toward “good” / away from “bad”', its first pair, the others counted."""
    more = len(positive) - 1
    more = f" (+{more} more pair{'s' if more > 1 else ''})" if more else ""
    return f"toward “{_short(positive[0])}” / away from “{_short(negative[0])}”{more}"


def _short(text: str, most: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1] + "…"


def _vectors(loaded: LoadedModel) -> BoundedCache[str, SteeringVector]:
    return per_model(loaded, "steering vectors", lambda _: BoundedCache(max_entries=MAX_VECTORS))


def vector_of(loaded: LoadedModel, vector_id: str) -> SteeringVector | None:
    """The current model's steering vector `vector_id`, or None when it has none of that id."""
    return _vectors(loaded).get(vector_id)


def listed(loaded: LoadedModel) -> list[SteeringVector]:
    """The current model's steering vectors, oldest first."""
    store = _vectors(loaded)
    with store.atomic():
        return [found for key in list(store) if (found := store.peek(key)) is not None]


def make(loaded: LoadedModel, layer: int, positive: tuple[str, ...], negative: tuple[str, ...]) -> SteeringVector:
    """The steering vector of these examples at `layer` (computed once, then kept), checked first."""
    _check(loaded, layer, positive, negative)
    digest = json.dumps([loaded.model_id, layer, positive, negative], ensure_ascii=False).encode()
    vector_id = "sv-" + hashlib.sha256(digest).hexdigest()[:12]
    store = _vectors(loaded)
    if (found := store.get(vector_id)) is not None:
        return found
    with LANE.hold(), torch.no_grad():
        diffs = [
            _residual(loaded, layer, p) - _residual(loaded, layer, n) for p, n in zip(positive, negative, strict=True)
        ]
    mean = torch.stack(diffs).mean(dim=0)
    found = SteeringVector(vector_id, layer, tuple(mean.tolist()), float(mean.norm()), len(diffs), positive, negative)
    store.put(vector_id, found)
    return found


def _residual(loaded: LoadedModel, layer: int, text: str) -> torch.Tensor:
    ids = [int(i) for i in loaded.tokenizer(text)["input_ids"]]
    if not ids:
        raise ValueError(f"the example {text!r} encodes to no tokens: give some text")
    return residual_after(loaded.model, layer, ids, loaded.device)


def _check(loaded: LoadedModel, layer: int, positive: tuple[str, ...], negative: tuple[str, ...]) -> None:
    if loaded.backend is not None:
        raise ValueError(
            f"a steering vector needs the model's residual stream, which the {loaded.backend_name} engine does not "
            "give: load the model with the transformers engine"
        )
    layers = loaded.model.config.num_hidden_layers
    if not 0 <= layer < layers:
        raise ValueError(f"layer {layer} is out of range: this model has layers 0 to {layers - 1}")
    if not positive or len(positive) != len(negative) or len(positive) > MAX_PAIRS:
        raise ValueError(
            f"positive has {len(positive)} texts and negative {len(negative)}: give as many of each, "
            f"1 to {MAX_PAIRS} (the i-th positive text pairs with the i-th negative one)"
        )
    for name, texts in (("positive", positive), ("negative", negative)):
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"{name}[{i}] is empty: each example needs some text")
