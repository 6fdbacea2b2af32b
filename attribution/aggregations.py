"""How per-dimension attributions become one score per token: the aggregations, and the display normalisation.

A gradient method gives one vector per context token; an aggregation reduces it over the embedding
dimension (`reduce_embedding`) and scales the scores for display (`normalise`). Whether the scores are
signed follows from the aggregation: an L2 norm is a magnitude, a sum keeps the direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Aggregation:
    """One way to reduce the embedding dimension: its request name, UI label, result text and signedness."""

    name: str
    label: str
    description: str  # the result's `aggregation` text
    signed: bool


L2 = Aggregation(
    "l2", "L2 norm (Inseq)", "L2 norm over the embedding dimension, scaled to sum to 1 (Inseq convention)", False
)
SUM = Aggregation(
    "sum",
    "Signed sum",
    "signed sum over the embedding dimension, divided by the largest |score| (Captum convention)",
    True,
)
AGGREGATIONS = {a.name: a for a in (L2, SUM)}  # iterating gives the names, in the order requests list them


def reduce_embedding(attributions: torch.Tensor, aggregation: str) -> torch.Tensor:
    """[L, D] -> [L]: L2 norm (magnitude only) or signed sum over the embedding dimension."""
    if aggregation == L2.name:
        return attributions.norm(dim=-1)
    return attributions.sum(dim=-1)


def normalise(scores: torch.Tensor, aggregation: str) -> torch.Tensor:
    """Magnitudes scaled to sum to 1; signed scores divided by the largest |score|."""
    if aggregation == L2.name:
        total = float(scores.sum())
        return scores / total if total > 0 else torch.zeros_like(scores)
    peak = float(scores.abs().max())
    return scores / peak if peak > 0 else torch.zeros_like(scores)
