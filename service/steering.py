"""Steering vectors over the API: make one from example texts, list the current model's.

`steering_vector({"layer": L, "positive": [...], "negative": [...]})` answers `{id, layer, norm, pairs,
positive, negative}` (backends.steering computes and keeps it); a request's steer edit names it by id.
The body goes through its request model first, then the hand parser, and is held to the prompt budget
per text, before any model work.
"""

from __future__ import annotations

from backends import steering
from backends.model import STORE
from decoding import fields
from runtime import gpu
from service import contract
from service.contract.requests import SteeringVectorRequest
from service.policy import POLICY
from service.readable import readable_errors

KEYS = ("layer", "positive", "negative")


def _parsed(body: object) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """(layer, positive texts, negative texts), strictly and within the prompt budget."""
    if not isinstance(body, dict):
        raise ValueError(f"the body must be a JSON object with {', '.join(KEYS)}, got {fields.type_name(body)}")
    body = fields.obj("the body", body, KEYS)
    if body.get("layer") is None:
        raise ValueError("layer is missing: give the decoder layer whose residual stream to read, counting from 0")
    layer = fields.integer("layer", body["layer"], 0, accepted="a layer number >= 0")
    positive, negative = fields.texts("positive", body.get("positive")), fields.texts("negative", body.get("negative"))
    texts = {f"positive[{i}]": t for i, t in enumerate(positive)} | {
        f"negative[{i}]": t for i, t in enumerate(negative)
    }
    POLICY.settings.budgets.check_texts("max_prompt_chars", texts)
    return layer, positive, negative


@gpu
@readable_errors
def steering_vector(body: object) -> dict:
    """The steering vector of the body's examples at its layer (made once per model, then kept)."""
    layer, positive, negative = contract.parse(SteeringVectorRequest, body, _parsed)
    return steering.make(STORE.get(), layer, positive, negative).summary()


@readable_errors
def steering_floats(vector_id: str) -> tuple[float, ...]:
    """The floats of the current model's steering vector `vector_id` (a session file keeps them, so that its
    steering edits work in a process that never made the vector)."""
    found = steering.vector_of(STORE.get(), vector_id)
    if found is None:
        raise ValueError(f"vector {vector_id!r} is not a steering vector of this model: make one first")
    return found.vector


def vector_name(positive: tuple[str, ...], negative: tuple[str, ...]) -> str:
    """A steering vector in words, by its first pair of examples: as a request's edits name a vector id's."""
    return steering.direction(positive, negative)


@readable_errors
def steering_vectors() -> dict:
    """The current model's steering vectors, oldest first: `{"vectors": [...]}`."""
    return {"vectors": [found.summary() for found in steering.listed(STORE.get())]}
