"""What a constraint lets the completion start with: the tokens its mask allows at the first position.

Counted over the whole vocabulary and listed likeliest first under the model at that position, so the
few shown are the ones that matter ("␣Yes, ␣No" for options " Yes" and " No").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decoding.constraints import tracker_for
from decoding.engine import Engine
from decoding.request import Request

SHOWN = 8


@dataclass(frozen=True)
class ConstraintStart:
    """`count` tokens are allowed first; `tokens` shows the likeliest of them (display text, ␣ for a space)."""

    count: int
    tokens: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"count": self.count, "tokens": list(self.tokens)}


def constraint_start(engine: Engine, req: Request, shown: int = SHOWN) -> ConstraintStart:
    """The first tokens the request's constraint allows (none counted when it is off)."""
    if not req.constraint.active:
        return ConstraintStart(0, ())
    prompt, _ = engine.prompt_ids(req)
    valid = tracker_for(engine.loaded).mask(req.constraint, ()).valid
    logits = engine.cache.logits(engine.loaded, prompt, edits=req.interventions)[0]
    allowed = int(valid.sum())
    scores = logits.masked_fill(~valid, float("-inf"))  # the mask spans the model's vocabulary, as the logits do
    top = torch.topk(scores, min(shown, allowed)).indices.tolist()
    return ConstraintStart(allowed, tuple(engine.view.pill(int(i)).display for i in top))
