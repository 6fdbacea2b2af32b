"""Faithfulness of one attribution by deletion: do its top tokens matter more than random ones?

comprehensiveness = f(context) - f(context with the top `TOP_FRACTION` of positions by |score| replaced by
the baseline id), where f is the attributed quantity (`objective.target_score`); `random_baseline` is the
same drop for as many positions drawn at random, the mean of `RANDOM_DRAWS` draws. Signed scores are
ranked by magnitude: a token that pushes strongly against the target matters as much as one that pushes
for it. The draws are seeded by the context ids (a pure function of the request); f(context) is the
value the method already measured, and the top-k and the random contexts run as one batched forward.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from attribution.gradients import lane_breaks
from attribution.guard import borrowed
from attribution.objective import baseline_id, target_score
from backends.model import LoadedModel

TOP_FRACTION = 0.2
RANDOM_DRAWS = 5


@dataclass(frozen=True)
class Faithfulness:
    """Drops of the attributed quantity (nats) when `k` tokens are replaced: the top-scored ones, and random ones."""

    comprehensiveness: float
    random_baseline: float
    k: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def top_k(length: int) -> int:
    return max(1, round(TOP_FRACTION * length))


def top_positions(importance: Sequence[float], k: int) -> list[int]:
    """The k positions of largest |importance| (ties: the earlier position first)."""
    order = sorted(range(len(importance)), key=lambda i: (-abs(importance[i]), i))
    return sorted(order[:k])


def random_positions(context_ids: Sequence[int], k: int, draws: int = RANDOM_DRAWS) -> list[list[int]]:
    """`draws` sets of k distinct positions, seeded by the context ids."""
    seed = zlib.crc32(np.asarray(context_ids, dtype=np.int64).tobytes())
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(len(context_ids), size=k, replace=False).tolist()) for _ in range(draws)]


def faithfulness(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    importance: Sequence[float],
    value: float,
    target_id: int,
    foil_id: int | None = None,
) -> Faithfulness:
    """Comprehensiveness of `importance` (one score per context position) and its random baseline.

    `value` is f at the real context (the method's `target_logprob`).
    """
    k = top_k(len(context_ids))
    removed = [top_positions(importance, k), *random_positions(context_ids, k)]
    rows = torch.tensor(list(context_ids)).repeat(len(removed), 1)
    replacement = baseline_id(loaded)
    for row, positions in enumerate(removed):
        rows[row, positions] = replacement
    with borrowed(loaded.model) as model, lane_breaks(model), torch.no_grad():
        logits = model(input_ids=rows.to(model.device), use_cache=False, logits_to_keep=1).logits[:, -1]
    values = target_score(logits, target_id, foil_id).cpu()
    drops = (value - values).tolist()
    return Faithfulness(comprehensiveness=drops[0], random_baseline=float(np.mean(drops[1:])), k=k)
