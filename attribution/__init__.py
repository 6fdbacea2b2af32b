"""Attribution: which context tokens a next-token choice depends on, and what each layer would predict.

`attribute` runs one of `METHODS` (attention, saliency, input x gradient, integrated gradients,
ablation), optionally contrastive (target rather than a foil), and returns an `AttributionResult` with
its faithfulness numbers (`attribute_slices`: the same in slices, with progress); `words` groups token
scores into words; `rank_agreement` / `agreement` say whether two methods agree; `logit_lens` reads the
next-token distribution at every layer.
"""

from attribution.agreement import DISAGREE_BELOW, agreement, rank_agreement
from attribution.lens import LensRow, logit_lens
from attribution.methods import AttributionResult, attribute, attribute_slices, clear_cache
from attribution.validation import AGGREGATIONS, IG_STEPS_RANGE, METHODS
from attribution.words import Word, words

__all__ = [
    "AGGREGATIONS",
    "DISAGREE_BELOW",
    "IG_STEPS_RANGE",
    "METHODS",
    "AttributionResult",
    "LensRow",
    "Word",
    "agreement",
    "attribute",
    "attribute_slices",
    "clear_cache",
    "logit_lens",
    "rank_agreement",
    "words",
]
