"""The `params` and `constraint` objects of a request as models, their ranges read from the sampling tables.

`params_model` builds the knobs' model in one place from the tables that hold the ranges (the numeric knobs
of `decoding.sampling.params` and the samplers' `KnobRange`s), so the schema states the ranges the code checks.
"""

from __future__ import annotations

import math
from dataclasses import fields as dataclass_fields
from typing import Annotated, Literal

from pydantic import BaseModel, Field, create_model

from decoding.sampling import params as sampling
from decoding.sampling.llama_samplers import MAX_BREAKER_BYTES
from service.contract.values import STRICT, List, NonEmptyText, integer, number

NamedOrder = Literal[tuple(sampling.SAMPLER_ORDERS)]
Stage = Literal[sampling.SAMPLER_STAGES]
Breaker = Annotated[str, Field(min_length=1, max_length=MAX_BREAKER_BYTES)]  # its bytes are checked after
ORDER_ACCEPTED = "a named order, or a list naming each sampler stage once"


def _bounds(low: float, high: float, low_open: bool, high_open: bool) -> dict:
    """Field keywords for a range; an infinite end is no bound."""
    out = {}
    if math.isfinite(low):
        out["gt" if low_open else "ge"] = low
    if math.isfinite(high):
        out["lt" if high_open else "le"] = high
    return out


def params_model() -> type[BaseModel]:
    """The model of `params`: every DecodingParams field, nullable (null takes the default), ranges from the tables."""
    defaults = {f.name: f.default for f in dataclass_fields(sampling.DecodingParams)}
    knobs = {
        name: (number(**_bounds(low, high, low_open, False)), accepted)
        for name, (low, high, low_open, accepted) in sampling.NUMBER_RANGES.items()
    } | {
        name: ((integer if r.integer else number)(**_bounds(r.low, r.high, r.low_open, r.high_open)), r.accepted)
        for name, r in sampling.SAMPLER_RANGES.items()
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
