"""The names the edges (ui/, server/) use from below the service, handed on in one place.

The edges import the service and nothing under it (a contract in pyproject.toml): the operations are in
`service.operations`; this module names the rest they need: the model lane's concurrency and its errors,
the sampler stages, their registry (each knob's range, default and slider; its `schema()` for an API
schema) and orders with the typed parameters, the presets, the constraint examples, token display,
the agreement of two attribution results and the bounded cache.

The attribution methods come from their registry (`attribution.registry`): its entries (labels, which run on
hover, signedness, which take a foil), the aggregations, the IG steps' range, and `attribution_schema()` for an
API schema.
"""

from __future__ import annotations

from attribution.aggregations import AGGREGATIONS as ATTRIBUTION_AGGREGATIONS
from attribution.agreement import agreement
from attribution.registry import IG_STEPS
from attribution.registry import REGISTRY as ATTRIBUTION_METHODS
from attribution.registry import schema as attribution_schema
from backends.bounded import BoundedCache
from backends.lane import EVENT_CONCURRENCY, LANE, Cancelled, LaneFull
from backends.model import default_model_id
from decoding.constraints import EXAMPLES, REGEX_HELP
from decoding.constraints import PRESETS as CONSTRAINT_PRESETS
from decoding.sampling.params import SAMPLER_ORDERS, SAMPLER_STAGES, DecodingParams, check_sampler_order
from decoding.sampling.presets import PRESETS
from decoding.sampling.registry import REGISTRY as SAMPLER_REGISTRY
from decoding.tokens import show_whitespace

CONCURRENCY_ID = "model"  # Gradio's pool of workers in front of the lane, shared by the UI's model events and the API


def expect_event(within_s: float) -> None:
    """Tell prefetch that a request is on its way (a Step event after the quick path): it waits for it."""
    LANE.expect(within_s)


def event_arrived() -> None:
    """The expected request arrived: prefetch may run again."""
    LANE.expected_arrived()


__all__ = [
    "ATTRIBUTION_AGGREGATIONS",
    "ATTRIBUTION_METHODS",
    "CONCURRENCY_ID",
    "CONSTRAINT_PRESETS",
    "EVENT_CONCURRENCY",
    "EXAMPLES",
    "IG_STEPS",
    "PRESETS",
    "REGEX_HELP",
    "SAMPLER_ORDERS",
    "SAMPLER_REGISTRY",
    "SAMPLER_STAGES",
    "BoundedCache",
    "Cancelled",
    "DecodingParams",
    "LaneFull",
    "agreement",
    "attribution_schema",
    "check_sampler_order",
    "default_model_id",
    "event_arrived",
    "expect_event",
    "show_whitespace",
]
