"""Attribution: which context tokens a next-token choice depends on, and what each layer would predict.

`attribute` runs one of `METHODS` (attention, saliency, input x gradient, integrated gradients) and
returns an `AttributionResult` (`attribute_slices`: the same in slices, with progress); `logit_lens`
reads the next-token distribution at every layer.
"""

from attribution.lens import LensRow, logit_lens
from attribution.methods import (
    AGGREGATIONS,
    IG_STEPS_RANGE,
    METHODS,
    AttributionResult,
    attribute,
    attribute_slices,
    clear_cache,
)

__all__ = [
    "AGGREGATIONS",
    "IG_STEPS_RANGE",
    "METHODS",
    "AttributionResult",
    "LensRow",
    "attribute",
    "attribute_slices",
    "clear_cache",
    "logit_lens",
]
