"""The stage chain of one step: every stage's probabilities and the tokens still in play after it.

`compute` runs the decoding pipeline over one logits vector: base, penalties (repetition, presence,
frequency), DRY, the constraint mask, then the sampler stages in `params.sampler_order`, then greedy when
greedy. Each stage takes the logits the previous one left (as transformers' warpers compose), and only the
stages that are on appear, so each column of the stage table is a knob that is in force. The truncation
samplers each keep at least one token, and the constraint mask comes before them, so the final
distribution is never empty and never holds a token the constraint forbids.

When greedy, temperature is off (it cannot change the argmax) and the other samplers still apply, as in
llama.cpp, where temperature 0 keeps the most likely token of what the samplers before it left.

Counting, zero-filling and finiteness tests over the vocabulary go through NumPy views of the CPU
tensors, which run on one thread (see `knobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from decoding.sampling import knobs
from decoding.sampling import llama_samplers as ls
from decoding.sampling.params import DecodingParams

# Each truncation sampler but top-p (which works on a mask): logits, params, the XTC draw -> new logits.
SAMPLERS: dict[str, Callable[[torch.Tensor, DecodingParams, float], torch.Tensor]] = {
    "top_k": lambda logits, p, u: knobs.top_k(logits, p.top_k),
    "min_p": lambda logits, p, u: knobs.min_p(logits, p.min_p),
    "typical_p": lambda logits, p, u: knobs.typical_p(logits, p.typical_p),
    "top_n_sigma": lambda logits, p, u: ls.top_n_sigma(logits, p.top_n_sigma),
    "epsilon_cutoff": lambda logits, p, u: knobs.epsilon_cutoff(logits, p.epsilon_cutoff),
    "eta_cutoff": lambda logits, p, u: knobs.eta_cutoff(logits, p.eta_cutoff),
    "xtc": lambda logits, p, u: ls.xtc(logits, p.xtc_threshold, p.xtc_probability, u),
}


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

    def top_p(self, top_p: float, last: bool) -> None:
        """The nucleus, with its probabilities renormalised over the kept tokens only (as fast as it gets).

        The logits with the cut tokens at -inf are only made when a stage follows (`last` is False).
        """
        kept = knobs.nucleus(self.logits, top_p, probs=self.probs)
        self.probs = _softmax_within(self.logits, kept)
        if not last:
            self.logits = self.logits.masked_fill(~kept, knobs.NEG_INF)
        self._cut("top_p", kept)

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
    params: DecodingParams,
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
    base = logits.float()
    chain = _Chain(base)
    if params.penalties_on:
        chain.moved("penalties", _penalised(base, context_ids, completion_ids, params))
    if params.dry_on:
        chain.moved("dry", _dry(chain.logits, context_ids, params, breakers))
    shown = chain.probs
    if valid is not None:
        masked = knobs.apply_mask(chain.logits, valid)
        if not torch.isfinite(masked).any():
            raise ValueError("the constraint allows no token here: no candidate is valid")
        chain.removed("constraint", masked)
    _run_samplers(chain, params, xtc_draw)
    if params.is_greedy:
        chain.greedy()
    kept = chain.survivors if chain.survivors is not None else _finite(chain.logits)
    return Stages(tuple(chain.stages), valid, params.is_greedy, constraint_type, kept, shown)


def _run_samplers(chain: _Chain, params: DecodingParams, xtc_draw: float) -> None:
    """The samplers of `params.sampler_order` that are on, each on the logits the previous one left."""
    samplers = params.active_samplers
    for name in samplers:
        if name == "top_p":
            chain.top_p(params.top_p, last=name == samplers[-1] and not params.is_greedy)
        elif name == "temperature":
            chain.moved(name, knobs.temperature(chain.logits, params.temperature))
        else:
            chain.removed(name, SAMPLERS[name](chain.logits, params, xtc_draw))


def final_log_probs(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: DecodingParams,
    kept: torch.Tensor,
    breakers: ls.Breakers = ls.NO_BREAKERS,
) -> torch.Tensor:
    """log p_final in float64: penalties, DRY and temperature of `compute` redone in float64, log-softmax over `kept`.

    `kept` comes from `compute` (every removal, the constraint's included), so no stage that only removes
    tokens is needed here; temperature divides the kept logits wherever it stands in the order.
    """
    scores = _penalised(logits.double(), context_ids, completion_ids, params)
    if params.dry_on:
        scores = _dry(scores, context_ids, params, breakers)
    if "temperature" in params.active_samplers:
        scores = knobs.temperature(scores, params.temperature)
    return torch.log_softmax(scores.masked_fill(~kept, knobs.NEG_INF), dim=-1)


def _penalised(logits: torch.Tensor, context_ids, completion_ids, params: DecodingParams) -> torch.Tensor:
    """Repetition penalty over the whole context, then presence and frequency over the completion."""
    penalised = knobs.repetition_penalty(logits, context_ids, params.repetition_penalty)
    return knobs.presence_frequency_penalty(
        penalised, completion_ids, params.presence_penalty, params.frequency_penalty
    )


def _dry(logits: torch.Tensor, context_ids, params: DecodingParams, breakers: ls.Breakers) -> torch.Tensor:
    return ls.dry(
        logits,
        context_ids,
        params.dry_multiplier,
        params.dry_base,
        params.dry_allowed_length,
        params.dry_penalty_last_n,
        breakers,
    )


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
