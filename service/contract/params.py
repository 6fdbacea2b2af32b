"""The `params` object of a request as a model, its knobs' ranges read from the sampling stages' registry.

`params_model` builds the knobs' model in one place from `decoding.sampling.registry.REGISTRY.schema()`, so
the schema states the ranges the code checks, and a new sampler's parameters appear in it with no edit here.
"""

from __future__ import annotations

import math
from dataclasses import fields as dataclass_fields
from typing import Annotated, Literal

from pydantic import BaseModel, Field, create_model

from decoding.sampling import params as sampling
from decoding.sampling.llama_samplers import MAX_BREAKER_BYTES
from decoding.sampling.registry import REGISTRY
from service.contract.values import STRICT, List, NonEmptyText, integer, number

NamedOrder = Literal[tuple(sampling.SAMPLER_ORDERS)]
Stage = Literal[sampling.SAMPLER_STAGES]
Breaker = Annotated[str, Field(min_length=1, max_length=MAX_BREAKER_BYTES)]  # its bytes are checked after
ORDER_ACCEPTED = "a named order, or a list naming each sampler stage once"


def _bounds(low: float, high: float | None, low_open: bool, high_open: bool) -> dict:
    """Field keywords for a range; an infinite or missing end is no bound."""
    out = {}
    if math.isfinite(low):
        out["gt" if low_open else "ge"] = low
    if high is not None and math.isfinite(high):
        out["lt" if high_open else "le"] = high
    return out


def params_model() -> type[BaseModel]:
    """The model of `params`: every DecodingParams field, nullable (null: the default), ranges from the registry."""
    defaults = {f.name: f.default for f in dataclass_fields(sampling.DecodingParams)}
    knobs = {
        p.name: ((integer if p.type is int else number)(**_bounds(p.low, p.high, p.low_open, p.high_open)), p.accepted)
        for p in REGISTRY.schema()
    }
    breakers = f"at most {sampling.MAX_SEQUENCE_BREAKERS} non-empty strings of at most {MAX_BREAKER_BYTES} bytes"
    others = {
        "greedy": (bool, "true or false"),
        "seed": (integer(ge=0, le=sampling.MAX_SEED), sampling.SEED_RANGE),
        "stop_sequences": (List[NonEmptyText], "a list of non-empty strings"),
        "dry_sequence_breakers": (Annotated[List[Breaker], Field(max_length=sampling.MAX_SEQUENCE_BREAKERS)], breakers),
        "sampler_order": (NamedOrder | List[Stage], ORDER_ACCEPTED),
    }
    specs = knobs | others
    made = {
        name: (kind | None, Field(None, description=f"{accepted} (default {defaults[name]!r})"))
        for name, (kind, accepted) in ((n, specs[n]) for n in defaults)
    }
    return create_model(
        "Params", __config__=STRICT, __doc__="The sampling knobs; a missing or null knob keeps its default.", **made
    )
