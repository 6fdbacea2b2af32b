"""Attribution: which context tokens a next-token choice depends on, and what each layer would predict.

`attribute` runs one of `METHODS` (attention, saliency, input x gradient, integrated gradients,
ablation, and direct logit attribution, which splits the logit over heads and MLPs instead of tokens;
`attribution.registry` holds one entry per method, `schema` gives it as JSON values),
optionally contrastive (target rather than a foil), and returns an `AttributionResult` with its
faithfulness numbers (`attribute_slices`: the same in slices, with progress); `words` groups token
scores into words; `rank_agreement` / `agreement` say whether two methods agree; `logit_lens` reads the
next-token distribution at every layer.
"""

from attribution.aggregations import AGGREGATIONS
from attribution.agreement import DISAGREE_BELOW, agreement, rank_agreement
from attribution.lens import LensRow, logit_lens
from attribution.methods import AttributionResult, attribute, attribute_slices, clear_cache
from attribution.registry import METHODS, PARAMETERS, schema
from attribution.words import Word, words

__all__ = [
    "AGGREGATIONS",
    "DISAGREE_BELOW",
    "METHODS",
    "PARAMETERS",
    "AttributionResult",
    "LensRow",
    "Word",
    "agreement",
    "attribute",
    "attribute_slices",
    "clear_cache",
    "logit_lens",
    "rank_agreement",
    "schema",
    "words",
]
