"""The next-token distribution, stage by stage: base, penalties, temperature, constraint, top-p or greedy.

`compute` runs the decoding pipeline over one logits vector and keeps every stage, so the UI can
show what each knob did. `Distribution` is the JSON-ready summary: the display rows (top-k of the
pre-nucleus distribution, so excluded tokens stay visible, each naming the stage that removed it), the
top-k by p_base that penalties pushed out of those rows, the mass of everything else, entropies.

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


@dataclass(frozen=True)
class Stage:
    """One applied stage: its name, the full-vocabulary probabilities after it, and the tokens still in play.

    `survivors` is cumulative (a token an earlier stage removed stays removed) and None when the stage
    removes nothing; the last stage of a chain always gives it, since its survivors are the kept tokens.
    """

    name: str
    probs: torch.Tensor
    survivors: torch.Tensor | None = None


@dataclass(frozen=True)
class Stages:
    """Full-vocabulary tensors of one step, stage by stage in the order applied; the last is what is chosen from.

    The chain is base, penalties, temperature, constraint, then top_p when sampling or greedy when greedy.
    """

    chain: tuple[Stage, ...]
    valid: torch.Tensor | None
    greedy: bool
    constraint_type: str | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.chain)

    @property
    def probs(self) -> dict[str, torch.Tensor]:
        return {stage.name: stage.probs for stage in self.chain}

    @property
    def kept(self) -> torch.Tensor:
        return self.chain[-1].survivors

    @property
    def p_base(self) -> torch.Tensor:
        return self.chain[0].probs

    @property
    def p_final(self) -> torch.Tensor:
        return self.chain[-1].probs

    @property
    def shown(self) -> torch.Tensor:
        """The pre-truncation distribution the display rows are ranked by (penalties and temperature applied)."""
        return self.probs["temperature"]

    def argmax(self) -> int:
        return int(torch.argmax(self.p_final))

    def removed_by(self, index: torch.Tensor) -> list[str | None]:
        """For each token of `index`: the name of the first stage that removed it, None when it is kept."""
        out: list[str | None] = [None] * len(index)
        for stage in self.chain:
            if stage.survivors is None:
                continue
            for row, alive in enumerate(stage.survivors[index].tolist()):
                if not alive and out[row] is None:
                    out[row] = stage.name
        return out


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
        out["pushed_down"] = [t.as_dict() for t in self.pushed_down]
        out["stages"] = list(self.stages)
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
    penalised, tempered = _warped(base, context_ids, completion_ids, params)
    masked = knobs.apply_mask(tempered, valid)
    if valid is not None and not torch.isfinite(masked).any():
        raise ValueError("the constraint allows no token here: no candidate is valid")
    p_base, p_penalised, p_tempered, p_masked = _softmaxes((base, penalised, tempered, masked))
    last = _greedy(masked) if params.is_greedy else _top_p(masked, p_masked, params.top_p)
    chain = (
        Stage("base", p_base),
        Stage("penalties", p_penalised),
        Stage("temperature", p_tempered),
        Stage("constraint", p_masked, valid),
        last,
    )
    return Stages(chain, valid, params.is_greedy, constraint_type)


def final_log_probs(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: DecodingParams,
    kept: torch.Tensor,
) -> torch.Tensor:
    """log p_final in float64: the penalties and temperature of `compute` redone in float64, log-softmax over `kept`.

    `kept` (a subset of the valid tokens) comes from `compute`, so the constraint needs no second mask here.
    """
    _, tempered = _warped(logits.double(), context_ids, completion_ids, params)
    return torch.log_softmax(tempered.masked_fill(~kept, float("-inf")), dim=-1)


def _warped(logits: torch.Tensor, context_ids, completion_ids, params: DecodingParams):
    """(penalised, tempered) logits: repetition, presence and frequency penalties, then temperature."""
    penalised = knobs.repetition_penalty(logits, context_ids, params.repetition_penalty)
    penalised = knobs.presence_frequency_penalty(
        penalised, completion_ids, params.presence_penalty, params.frequency_penalty
    )
    return penalised, knobs.temperature(penalised, 0.0 if params.is_greedy else params.temperature)


def _greedy(masked: torch.Tensor) -> Stage:
    """The argmax of the constrained distribution, alone: probability 1, every other token removed."""
    index = int(torch.argmax(masked))
    kept = knobs.zeros_like(masked, torch.bool)
    kept[index] = True
    final = knobs.zeros_like(masked, masked.dtype)
    final[index] = 1.0
    return Stage("greedy", final, kept)


def _top_p(masked: torch.Tensor, p_masked: torch.Tensor, top_p: float) -> Stage:
    if top_p >= 1.0:  # nothing beyond the constraint is cut
        return Stage("top_p", p_masked, knobs.nucleus(masked, top_p))
    kept = knobs.nucleus(masked, top_p, probs=p_masked)
    return Stage("top_p", _softmax_within(masked, kept), kept)


def _softmaxes(logits_by_stage: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Softmax of each stage; a stage that left the logits unchanged (the same tensor) shares its probabilities."""
    probs: list[torch.Tensor] = []
    previous_logits, previous_probs = None, None
    for logits in logits_by_stage:
        if logits is not previous_logits:
            previous_logits, previous_probs = logits, torch.softmax(logits, dim=-1)
        probs.append(previous_probs)
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
    kept_count = count_true(stages.kept)
    ids = row_ids(stages, top_k, kept_count)
    rows = summarize_ids(stages, view, ids)
    return Distribution(
        tokens=tuple(rows),
        pushed_down=tuple(summarize_ids(stages, view, pushed_down_ids(stages, top_k, ids))),
        stages=stages.names,
        other_p_base=max(0.0, 1.0 - math.fsum(r.p_base for r in rows)),
        other_p_final=max(0.0, 1.0 - math.fsum(r.p_final for r in rows)),
        kept_token_count=kept_count,
        constraint_active=stages.valid is not None,
        constraint_type=stages.constraint_type,
        entropy_base=entropy_bits(stages.p_base),
        entropy_final=entropy_bits(stages.p_final),
        greedy=stages.greedy,
    )
