"""The next-token distribution, stage by stage: base, penalties, temperature, constraint, top-p.

`compute` runs the pipeline of DESIGN.md over one logits vector and keeps every stage, so the UI can
show what each knob did. `Distribution` is the JSON-ready summary: the display rows (top-k of the
pre-nucleus distribution, so excluded tokens stay visible), the mass of everything else, entropies.

Counting, zero-filling and entropies over the vocabulary go through NumPy views of the CPU tensors:
NumPy runs them on one thread, while torch splits a 49k-element elementwise op across its threads,
and on a busy two-CPU host each such split can wait a scheduler tick (about 4 ms) for its partner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import knobs
from .params import DecodingParams
from .tokens import TokenView

STAGES = ("base", "penalties", "temperature", "constraint", "top_p")


@dataclass(frozen=True)
class Stages:
    """Full-vocabulary tensors of one step; `final` is what greedy and sampling choose from."""

    probs: dict[str, torch.Tensor]
    valid: torch.Tensor | None
    kept: torch.Tensor
    greedy: bool
    constraint_type: str | None

    @property
    def p_base(self) -> torch.Tensor:
        return self.probs["base"]

    @property
    def p_final(self) -> torch.Tensor:
        return self.probs["top_p"]

    @property
    def shown(self) -> torch.Tensor:
        """The pre-nucleus distribution the display rows are ranked by (penalties and temperature applied)."""
        return self.probs["temperature"]

    def argmax(self) -> int:
        return int(torch.argmax(self.p_final))


@dataclass(frozen=True)
class Candidate:
    """One display row."""

    id: int
    text: str
    display: str
    special: bool
    p_base: float
    p_final: float
    kept: bool
    valid: bool
    stages: dict[str, float]

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["stages"] = dict(self.stages)  # a fresh dict: summaries are memoised and shared
        return out


@dataclass(frozen=True)
class Distribution:
    tokens: tuple[Candidate, ...]
    other_p_base: float
    other_p_final: float
    kept_token_count: int
    constraint_active: bool
    constraint_type: str | None
    entropy_base: float
    entropy_final: float
    greedy: bool

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["tokens"] = [t.as_dict() for t in self.tokens]
        return out


def compute(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: DecodingParams,
    valid: torch.Tensor | None = None,
    constraint_type: str | None = None,
) -> Stages:
    """Apply the stages in order to float32 logits for one position; the input is not modified."""
    base = logits.float()
    penalised = knobs.repetition_penalty(base, context_ids, params.repetition_penalty)
    penalised = knobs.presence_frequency_penalty(
        penalised, completion_ids, params.presence_penalty, params.frequency_penalty
    )
    tempered = knobs.temperature(penalised, 0.0 if params.is_greedy else params.temperature)
    masked = knobs.apply_mask(tempered, valid)
    if valid is not None and not torch.isfinite(masked).any():
        raise ValueError("the constraint allows no token here: no candidate is valid")
    probs = _stage_probs({"base": base, "penalties": penalised, "temperature": tempered, "constraint": masked})
    if params.is_greedy:
        index = int(torch.argmax(masked))
        kept = knobs.zeros_like(masked, torch.bool)
        kept[index] = True
        final = knobs.zeros_like(masked, masked.dtype)
        final[index] = 1.0
    elif params.top_p >= 1.0:
        kept = knobs.nucleus(masked, params.top_p)
        final = probs["constraint"]  # nothing beyond the constraint is cut
    else:
        kept = knobs.nucleus(masked, params.top_p, probs=probs["constraint"])
        final = _softmax_within(masked, kept)
    probs["top_p"] = final
    return Stages(probs, valid, kept, params.is_greedy, constraint_type)


def _stage_probs(logits_by_stage: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Softmax of each stage; a stage that left the logits unchanged (the same tensor) shares its probabilities."""
    probs: dict[str, torch.Tensor] = {}
    previous_logits, previous_probs = None, None
    for name, logits in logits_by_stage.items():
        if logits is not previous_logits:
            previous_logits, previous_probs = logits, torch.softmax(logits, dim=-1)
        probs[name] = previous_probs
    return probs


def _softmax_within(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(logits.masked_fill(~mask, -inf)), computed over the masked-in entries only."""
    if mask.device.type == "cpu":
        index = torch.from_numpy(np.flatnonzero(_numpy(mask)))
    else:
        index = torch.nonzero(mask).flatten()
    out = knobs.zeros_like(logits, logits.dtype)
    out[index] = torch.softmax(logits[index], dim=-1)
    return out


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def count_true(mask: torch.Tensor) -> int:
    return int(np.count_nonzero(_numpy(mask)))


def entropy_bits(probs: torch.Tensor) -> float:
    """Shannon entropy in bits; 0.0 (never -0.0) for a one-hot distribution."""
    p = _numpy(probs.float())
    p = p[p > 0]
    return max(0.0, float(-(p * np.log2(p)).sum(dtype=np.float64)))


def row_ids(stages: Stages, top_k: int, kept_count: int | None = None) -> list[int]:
    """Top-k of the pre-nucleus distribution, plus any of the top-k final tokens not already there."""
    kept_count = count_true(stages.kept) if kept_count is None else kept_count
    shown = torch.topk(stages.shown, top_k).indices.tolist()
    final_top = torch.topk(stages.p_final, min(top_k, kept_count)).indices.tolist()
    ids = list(dict.fromkeys(shown + final_top))
    index = torch.tensor(ids, dtype=torch.long)
    keys = dict(
        zip(ids, zip((-stages.p_final[index]).tolist(), (-stages.shown[index]).tolist(), strict=True), strict=True)
    )
    return sorted(ids, key=keys.__getitem__)


def summarize_ids(stages: Stages, view: TokenView, ids: list[int]) -> list[Candidate]:
    """Display rows for the given token ids, in that order."""
    index = torch.tensor(ids, dtype=torch.long)
    picked = {name: stages.probs[name][index].tolist() for name in STAGES}
    valid = stages.valid[index].tolist() if stages.valid is not None else [True] * len(ids)
    kept = stages.kept[index].tolist()
    rows = []
    for row, token_id in enumerate(ids):
        pill = view.pill(token_id)
        row_stages = {name: picked[name][row] for name in STAGES}
        rows.append(
            Candidate(
                token_id,
                pill.text,
                pill.display,
                pill.special,
                row_stages["base"],
                row_stages["top_p"],
                bool(kept[row]),
                bool(valid[row]),
                row_stages,
            )
        )
    return rows


def summarize(stages: Stages, view: TokenView, top_k: int) -> Distribution:
    """The JSON-ready summary with `top_k` display rows."""
    kept_count = count_true(stages.kept)
    rows = summarize_ids(stages, view, row_ids(stages, top_k, kept_count))
    return Distribution(
        tokens=tuple(rows),
        other_p_base=max(0.0, 1.0 - math.fsum(r.p_base for r in rows)),
        other_p_final=max(0.0, 1.0 - math.fsum(r.p_final for r in rows)),
        kept_token_count=kept_count,
        constraint_active=stages.valid is not None,
        constraint_type=stages.constraint_type,
        entropy_base=entropy_bits(stages.p_base),
        entropy_final=entropy_bits(stages.p_final),
        greedy=stages.greedy,
    )
