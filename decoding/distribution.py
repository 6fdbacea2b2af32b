"""The JSON-ready summary of one step's stage chain (see `chain`, whose `compute` builds the stages).

`Distribution` holds the display rows (top-k of the distribution before any stage removes a token, so
removed tokens stay visible, each naming the stage that removed it and its probability after every
stage), the top-k by p_base that penalties pushed out of those rows, the stages in the order applied with
the number of tokens in play after each, the mass of everything else, and entropies.

Entropies over the vocabulary go through NumPy views of the CPU tensors: NumPy runs them on one
thread, while torch splits a 49k-element elementwise op across its threads, and on a busy two-CPU host
each such split can wait a scheduler tick (about 4 ms) for its partner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from decoding.edit_effect import EditEffect
from decoding.reference import ReferenceEffect
from decoding.sampling.chain import Stages, compute, count_true, final_log_probs
from decoding.tokens import TokenView

__all__ = ["Candidate", "Distribution", "Stages", "compute", "final_log_probs", "summarize", "summarize_ids"]


@dataclass(frozen=True)
class Candidate:
    """One display row; `stages` maps each applied stage to the token's probability after it."""

    id: int
    text: str
    display: str
    special: bool
    p_base: float
    p_final: float
    kept: bool
    valid: bool
    removed_by: str | None
    stages: dict[str, float]

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["stages"] = dict(self.stages)  # a fresh dict: summaries are memoised and shared
        return out


@dataclass(frozen=True)
class Distribution:
    """`tokens`: the display rows; `pushed_down`: the top-k by p_base missing from them (penalties pushed them down)."""

    tokens: tuple[Candidate, ...]
    pushed_down: tuple[Candidate, ...]
    stages: tuple[str, ...]
    stage_counts: tuple[int, ...]
    other_p_base: float
    other_p_final: float
    kept_token_count: int
    constraint_active: bool
    constraint_type: str | None
    entropy_base: float
    entropy_final: float
    greedy: bool
    edit: EditEffect | None = None  # the unedited model beside this one, under model edits
    reference: ReferenceEffect | None = None  # the request's reference model beside this one

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        beside = [effect for effect in (out.pop("edit"), out.pop("reference")) if effect is not None]
        out["tokens"] = [t.as_dict() for t in self.tokens]
        out["pushed_down"] = [t.as_dict() for t in self.pushed_down]
        out["stages"] = list(self.stages)
        out["stage_counts"] = dict(zip(self.stages, self.stage_counts, strict=True))  # tokens in play after each
        for effect in beside:
            out = effect.annotate(out)
        return out

    def row(self, row: dict) -> dict:
        """A row of a token outside the display rows, with the unedited model's and the reference's probabilities."""
        for effect in (self.edit, self.reference):
            row = row if effect is None else effect.row(row)
        return row


def entropy_bits(probs: torch.Tensor) -> float:
    """Shannon entropy in bits; 0.0 (never -0.0) for a one-hot distribution."""
    p = probs.float().detach().cpu().numpy()  # NumPy: one thread
    p = p[p > 0]
    return max(0.0, float(-(p * np.log2(p)).sum(dtype=np.float64)))


def row_ids(stages: Stages, top_k: int, kept_count: int | None = None) -> list[int]:
    """Top-k of the distribution before any removal, plus any of the top-k final tokens not already there."""
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
    picked = {name: probs[index].tolist() for name, probs in stages.probs.items()}
    valid = stages.valid[index].tolist() if stages.valid is not None else [True] * len(ids)
    removed_by = stages.removed_by(index)
    final = stages.names[-1]
    rows = []
    for row, token_id in enumerate(ids):
        pill = view.pill(token_id)
        row_stages = {name: values[row] for name, values in picked.items()}
        rows.append(
            Candidate(
                token_id,
                pill.text,
                pill.display,
                pill.special,
                row_stages["base"],
                row_stages[final],
                removed_by[row] is None,  # survivors are cumulative: kept means no stage removed it
                bool(valid[row]),
                removed_by[row],
                row_stages,
            )
        )
    return rows


def pushed_down_ids(stages: Stages, top_k: int, rows: Sequence[int]) -> list[int]:
    """The top-k tokens by p_base that are not among the display rows (what the penalties pushed down), by p_base."""
    shown = set(rows)
    return [token for token in torch.topk(stages.p_base, top_k).indices.tolist() if token not in shown]


def summarize(stages: Stages, view: TokenView, top_k: int) -> Distribution:
    """The JSON-ready summary with `top_k` display rows, plus the pushed-down tokens of the top-k by p_base."""
    kept_count = stages.counts[-1]
    ids = row_ids(stages, top_k, kept_count)
    rows = summarize_ids(stages, view, ids)
    return Distribution(
        tokens=tuple(rows),
        pushed_down=tuple(summarize_ids(stages, view, pushed_down_ids(stages, top_k, ids))),
        stages=stages.names,
        stage_counts=stages.counts,
        other_p_base=max(0.0, 1.0 - math.fsum(r.p_base for r in rows)),
        other_p_final=max(0.0, 1.0 - math.fsum(r.p_final for r in rows)),
        kept_token_count=kept_count,
        constraint_active=stages.valid is not None,
        constraint_type=stages.constraint_type,
        entropy_base=entropy_bits(stages.p_base),
        entropy_final=entropy_bits(stages.p_final),
        greedy=stages.greedy,
    )
