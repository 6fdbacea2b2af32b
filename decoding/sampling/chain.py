"""The stage chain of one step: every stage's probabilities and the tokens still in play after it.

`compute` runs the decoding pipeline over one logits vector: base, the registry's fixed stages (penalties,
DRY), the constraint mask, then the registry's other stages in `params.sampler_order`, then greedy when
greedy; each stage is applied by its function in the registry (see `registry`). Each stage takes the
logits the previous one left (as transformers' warpers compose), and only the stages that are on appear,
so each column of the stage table is a knob that is in force. The truncation samplers each keep at least
one token, and the constraint mask comes before them, so the final distribution is never empty and never
holds a token the constraint forbids.

When greedy, temperature is off (it cannot change the argmax) and the other samplers still apply, as in
llama.cpp, where temperature 0 keeps the most likely token of what the samplers before it left.

Counting, zero-filling and finiteness tests over the vocabulary go through NumPy views of the CPU
tensors, which run on one thread (see `knobs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from decoding.sampling import knobs
from decoding.sampling import llama_samplers as ls
from decoding.sampling.params import Settings
from decoding.sampling.stage import Inputs
from decoding.sampling.stage import Stage as Entry


@dataclass(frozen=True)
class Stage:
    """One applied stage: its name, the full-vocabulary probabilities after it, and the tokens still in play.

    `survivors` is cumulative (a token an earlier stage removed stays removed) and None when the stage
    removed nothing; `in_play` counts the survivors.
    """

    name: str
    probs: torch.Tensor
    survivors: torch.Tensor | None
    in_play: int


@dataclass(frozen=True)
class Stages:
    """Full-vocabulary tensors of one step, stage by stage in the order applied; the last is what is chosen from.

    `kept`: the tokens in play after every stage. `shown`: the distribution after penalties and DRY, before
    any stage removes a token, by which the display rows are ranked (so removed tokens stay visible).
    """

    chain: tuple[Stage, ...]
    valid: torch.Tensor | None
    greedy: bool
    constraint_type: str | None
    kept: torch.Tensor
    shown: torch.Tensor

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.chain)

    @property
    def probs(self) -> dict[str, torch.Tensor]:
        return {stage.name: stage.probs for stage in self.chain}

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(stage.in_play for stage in self.chain)

    @property
    def p_base(self) -> torch.Tensor:
        return self.chain[0].probs

    @property
    def p_final(self) -> torch.Tensor:
        return self.chain[-1].probs

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


class _Chain:
    """The chain under construction: the current logits, their probabilities and the stages so far."""

    def __init__(self, base: torch.Tensor) -> None:
        self.logits = base
        self.probs = torch.softmax(base, dim=-1)
        finite = _finite(base)
        self.in_play = count_true(finite)
        # A model may give some tokens -inf (a padded vocabulary, say): the base stage is what removed those.
        self.survivors = finite if self.in_play < base.numel() else None
        self.stages = [Stage("base", self.probs, self.survivors, self.in_play)]

    def moved(self, name: str, logits: torch.Tensor) -> None:
        """A stage that changes logits without removing any token (penalties, DRY, temperature)."""
        if logits is not self.logits:  # an unchanged stage shares the previous probabilities
            self.logits, self.probs = logits, torch.softmax(logits, dim=-1)
        self.stages.append(Stage(name, self.probs, None, self.in_play))

    def removed(self, name: str, logits: torch.Tensor) -> None:
        """A stage that sets the removed tokens to -inf (so the finite logits are the survivors, cumulatively)."""
        if logits is self.logits:  # on, but nothing to remove at this position
            self.moved(name, logits)
            return
        self.logits = logits
        self.probs = torch.softmax(logits, dim=-1)
        self._cut(name, _finite(logits))

    def kept(self, name: str, kept: torch.Tensor, last: bool) -> None:
        """A stage that gives the kept tokens (top-p): probabilities renormalised over them only (as fast as it gets).

        The logits with the cut tokens at -inf are only made when a stage follows (`last` is False).
        """
        self.probs = _softmax_within(self.logits, kept)
        if not last:
            self.logits = knobs.kept_only(self.logits, kept)
        self._cut(name, kept)

    def apply(self, stage: Entry, params: Settings, inputs: Inputs, last: bool) -> None:
        """One stage of the registry on the logits the previous one left, recorded as its effect says."""
        out = stage.apply(self.logits, self.probs, params, inputs)
        if stage.effect == "moves":
            self.moved(stage.name, out)
        elif stage.effect == "removes":
            self.removed(stage.name, out)
        else:
            self.kept(stage.name, out, last)

    def greedy(self) -> None:
        """The argmax of what the stages left, alone: probability 1, every other token removed."""
        index = int(torch.argmax(self.logits))
        kept = knobs.zeros_like(self.logits, torch.bool)
        kept[index] = True
        self.probs = knobs.zeros_like(self.logits, self.logits.dtype)
        self.probs[index] = 1.0
        self._cut("greedy", kept)

    def _cut(self, name: str, survivors: torch.Tensor) -> None:
        self.survivors, self.in_play = survivors, count_true(survivors)
        self.stages.append(Stage(name, self.probs, survivors, self.in_play))


def compute(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: Settings,
    valid: torch.Tensor | None = None,
    constraint_type: str | None = None,
    *,
    breakers: ls.Breakers = ls.NO_BREAKERS,
    xtc_draw: float = 0.0,
) -> Stages:
    """Apply the stages in order to float32 logits for one position; the input is not modified.

    `breakers`: DRY's sequence breakers for this vocabulary (see `llama_samplers.sequence_breakers`);
    `xtc_draw`: this position's uniform draw in [0, 1) for XTC, which acts when it is <= xtc_probability
    (the default 0.0 makes XTC act whenever it is on).
    """
    inputs = Inputs(context_ids, completion_ids, breakers, xtc_draw)
    chain = _Chain(logits.float())
    active = params.registry.active(params)
    fixed = [stage for stage in active if stage.fixed]
    for stage in fixed:  # penalties and DRY: before the constraint mask, whatever the order
        chain.apply(stage, params, inputs, last=False)
    shown = chain.probs
    if valid is not None:
        masked = knobs.apply_mask(chain.logits, valid)
        if not torch.isfinite(masked).any():
            raise ValueError("the constraint allows no token here: no candidate is valid")
        chain.removed("constraint", masked)
    for stage in active[len(fixed) :]:  # the samplers of `params.sampler_order` that are on
        chain.apply(stage, params, inputs, last=stage is active[-1] and not params.is_greedy)
    if params.is_greedy:
        chain.greedy()
    kept = chain.survivors if chain.survivors is not None else _finite(chain.logits)
    return Stages(tuple(chain.stages), valid, params.is_greedy, constraint_type, kept, shown)


def final_log_probs(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: Settings,
    kept: torch.Tensor,
    breakers: ls.Breakers = ls.NO_BREAKERS,
) -> torch.Tensor:
    """log p_final in float64: the stages of `compute` that move logits (penalties, DRY, temperature) redone in
    float64, in order, and a log-softmax over `kept`.

    `kept` comes from `compute` (every removal, the constraint's included), so no stage that only removes
    tokens is needed here; temperature divides the kept logits wherever it stands in the order.
    """
    inputs = Inputs(context_ids, completion_ids, breakers, 0.0)
    scores = logits.double()
    for stage in params.registry.active(params):
        if stage.effect == "moves":
            scores = stage.apply(scores, None, params, inputs)
    return torch.log_softmax(knobs.kept_only(scores, kept), dim=-1)


def _finite(logits: torch.Tensor) -> torch.Tensor:
    """The tokens still in play (finite logits); on CPU through NumPy, on one thread."""
    if logits.device.type != "cpu":
        return torch.isfinite(logits)
    return torch.from_numpy(np.isfinite(_numpy(logits)))


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
