"""Two branches of one prompt compared step by step: the tokens chosen, entropies and exact KL divergences.

At step i each branch's context is the prompt plus its first i tokens. The model's next-token
distributions there (p_base) are recomputed through the engine's prefix cache, one forward pass per
branch over its tokens (contexts the branches share are computed once), and KL(current || other) is
summed over the full vocabulary in float64 from log-softmax: two different contexts never show 0 the
way an estimate from a few displayed rows can. p_final, after every knob of the request, is compared
too; where its KL is infinite (the other branch excludes a token the current one keeps) the value is
null and a reason says why. Each branch runs under its own model edits, so an edited branch compared with
the original shows, step by step, what the edit changed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from backends.prefix_search import common_prefix
from decoding import distribution as dist_mod
from decoding.divergence import kl_bits
from decoding.engine import Engine, Request
from decoding.sampling.params import check_token_ids

NAMED_TOKENS = 5  # an infinite KL's reason names this many of the tokens that make it infinite, likeliest first


@dataclass(frozen=True)
class Position:
    """One branch's next-token distribution after the prompt and its first tokens, as float64 log-probabilities."""

    log_base: torch.Tensor
    log_final: torch.Tensor | None  # None when the request's knobs cannot be applied here (see final_error)
    final_error: str = ""


@dataclass(frozen=True)
class StepComparison:
    """Step `index` of both branches; a field is None where a branch does not reach that step."""

    index: int
    token: dict | None
    other_token: dict | None
    entropy_bits: float | None
    other_entropy_bits: float | None
    kl_base_bits: float | None
    kl_final_bits: float | None
    kl_final_reason: str | None  # why kl_final_bits is None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Comparison:
    """Every step of the longer branch; `divergence_index` is the first step whose tokens differ (None if equal)."""

    divergence_index: int | None
    shared_prefix: int
    steps: tuple[StepComparison, ...]

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["steps"] = [step.as_dict() for step in self.steps]
        return out


def entropy_bits(log_p: torch.Tensor) -> float:
    """Shannon entropy in bits of a distribution given as log-probabilities; 0.0, not -0.0, when one-hot."""
    lp = log_p[torch.isfinite(log_p)].double()
    return float(-(lp.exp() * lp).sum()) / math.log(2.0) + 0.0


def compare_branches(engine: Engine, req: Request, other_completion_ids: object, other: Request | None = None):
    """Compare the request's branch (current) with `other_completion_ids` (other), both after the request's prompt;
    the other branch runs under `other`'s model edits (default: the request's own)."""
    other_req = req if other is None else dataclasses.replace(req, interventions=other.interventions)
    prompt, _ = engine.prompt_ids(req)
    current = req.completion_ids
    ids = check_token_ids("other_completion_ids", other_completion_ids, engine.loaded.vocab_size)
    engine.check_context(prompt, current)
    engine.check_context(prompt, ids)
    n_steps = max(len(current), len(ids))
    shared = common_prefix(current, ids)
    mine = _positions(engine, req, prompt, current, n_steps, start=0)
    reused = shared + 1 if other_req.interventions == req.interventions else 0  # shared steps, under the same edits
    theirs = mine[:reused] + _positions(engine, other_req, prompt, ids, n_steps, start=reused)
    steps = tuple(_step(engine, i, (current, ids), (mine, theirs)) for i in range(n_steps))
    return Comparison(None if current == ids else shared, shared, steps)


def _positions(engine: Engine, req: Request, prompt, branch: Sequence[int], n_steps: int, start: int):
    """Positions start.. of a branch up to its end (or the last step): one forward pass gives all their logits."""
    last = min(len(branch), n_steps - 1)
    if last < start:
        return []
    ids = (*prompt, *branch[:last])
    rows = engine.cache.logits(engine.loaded, ids, last_n=last - start + 1, edits=req.interventions)
    return [_position(engine, req, prompt, tuple(branch[:i]), rows[i - start]) for i in range(start, last + 1)]


def _position(engine: Engine, req: Request, prompt, completion: tuple[int, ...], logits: torch.Tensor) -> Position:
    log_base = torch.log_softmax(logits.double(), dim=-1)
    try:
        stages = engine.stages(req, prompt, completion)
    except ValueError as exc:  # e.g. the other branch breaks this request's constraint
        return Position(log_base, None, str(exc))
    log_final = dist_mod.final_log_probs(
        logits, (*prompt, *completion), completion, req.params, stages.kept, engine.breakers(req.params)
    )
    return Position(log_base, log_final)


def _step(engine: Engine, i: int, branches: tuple[Sequence[int], ...], positions: tuple[list[Position], ...]):
    a, b = (found[i] if i < len(found) else None for found in positions)
    tokens = [engine.view.pill(ids[i]).as_dict() if i < len(ids) else None for ids in branches]
    kl_final, reason = _final_kl(engine, a, b)
    return StepComparison(
        index=i,
        token=tokens[0],
        other_token=tokens[1],
        entropy_bits=entropy_bits(a.log_base) if a else None,
        other_entropy_bits=entropy_bits(b.log_base) if b else None,
        kl_base_bits=kl_bits(a.log_base, b.log_base) if a and b else None,
        kl_final_bits=kl_final,
        kl_final_reason=reason,
    )


def _final_kl(engine: Engine, a: Position | None, b: Position | None) -> tuple[float | None, str | None]:
    """KL of p_final in bits, or None and the reason it has no finite value."""
    if a is None or b is None:
        return None, f"the {'current' if a is None else 'other'} branch ends before this step"
    for position, name in ((a, "current"), (b, "other")):
        if position.log_final is None:
            return None, f"p_final of the {name} branch cannot be computed: {position.final_error}"
    kl = kl_bits(a.log_final, b.log_final)
    if math.isinf(kl):
        return None, _infinite_reason(engine, a.log_final, b.log_final)
    return kl, None


def _infinite_reason(engine: Engine, log_p: torch.Tensor, log_q: torch.Tensor) -> str:
    """Why KL(p || q) is infinite, naming the likeliest tokens that p keeps and q gives p_final 0."""
    missing = torch.isfinite(log_p) & ~torch.isfinite(log_q)
    ids = torch.nonzero(missing).flatten()
    p = log_p[ids].exp()
    order = torch.argsort(p, descending=True)[:NAMED_TOKENS]
    named = ", ".join(f"{engine.view.pill(int(ids[i])).display} ({float(p[i]):.1%})" for i in order)
    more = f", and {len(ids) - len(order)} more" if len(ids) > len(order) else ""
    return f"infinite: the other branch's p_final is 0 on {len(ids)} token(s) the current branch keeps: {named}{more}"
