"""Two branches of one prompt compared step by step: the tokens chosen, entropies and exact KL divergences.

At step i each branch's context is the prompt plus its first i tokens. The model's next-token
distributions there (p_base) are recomputed through the engine's prefix cache, one forward pass per
branch over its tokens (contexts the branches share are computed once), and KL(current || other) is
summed over the full vocabulary in float64 from log-softmax: two different contexts never show 0 the
way an estimate from a few displayed rows can. p_final, after every knob of the request, is compared
too; where its KL is infinite (the other branch excludes a token the current one keeps) the value is
null and a reason says why. Each branch runs under its own model edits, so an edited branch compared with
the original shows, step by step, what the edit changed.

With a `reference` in the request, each step also carries, for each branch, how far the reference model is from
the main one there (decoding.reference, as a step shows it): KL(main || reference) of p_base in bits and whether
both p_final have the same top token, or a reason where there is no value (the branch ends before the step,
its p_final cannot be computed). The reference reads each branch in one forward pass too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from backends.prefix_search import common_prefix
from backends.reference import REFERENCES
from decoding import distribution as dist_mod
from decoding.divergence import kl_bits
from decoding.engine import Engine, Request
from decoding.reference import ReferenceEffect
from decoding.sampling.params import check_token_ids

NAMED_TOKENS = 5  # an infinite KL's reason names this many of the tokens that make it infinite, likeliest first


@dataclass(frozen=True)
class Position:
    """One branch's next-token distribution after the prompt and its first tokens, as float64 log-probabilities."""

    log_base: torch.Tensor
    log_final: torch.Tensor | None  # None when the request's knobs cannot be applied here (see final_error)
    final_error: str = ""
    reference: ReferenceEffect | None = None  # the request's reference beside the main model here


@dataclass(frozen=True)
class VsReference:
    """One branch at one step against the reference: KL(main || reference) of p_base, top tokens agree; or why not."""

    kl_base_bits: float | None
    top_agrees: bool | None
    reason: str | None

    @classmethod
    def of(cls, position: Position | None, branch: str) -> VsReference:
        if position is None:
            return cls(None, None, f"the {branch} branch ends before this step")
        if position.reference is None:
            return cls(None, None, f"p_final of the {branch} branch cannot be computed: {position.final_error}")
        return cls(position.reference.kl_base, position.reference.top_agrees, None)


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
    reference: VsReference | None = None  # with a reference: the current branch against it
    other_reference: VsReference | None = None  # and the other branch

    def as_dict(self) -> dict:
        """Its fields; the two against the reference only when the request names one."""
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if v is not None or k not in ("reference", "other_reference")}


@dataclass(frozen=True)
class Comparison:
    """Every step of the longer branch; `divergence_index` is the first step whose tokens differ (None if equal)."""

    divergence_index: int | None
    shared_prefix: int
    steps: tuple[StepComparison, ...]
    reference: str | None = None  # the request's reference in words; None: no reference

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "reference" or v is not None}
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
    steps = tuple(_step(engine, i, (current, ids), (mine, theirs), req.reference is not None) for i in range(n_steps))
    described = req.reference.describe(engine.loaded) if req.reference is not None else None
    return Comparison(None if current == ids else shared, shared, steps, described)


def _positions(engine: Engine, req: Request, prompt, branch: Sequence[int], n_steps: int, start: int):
    """Positions start.. of a branch up to its end (or the last step): one forward pass gives all their logits."""
    last = min(len(branch), n_steps - 1)
    if last < start:
        return []
    ids = (*prompt, *branch[:last])
    rows = engine.cache.logits(engine.loaded, ids, last_n=last - start + 1, edits=req.interventions)
    ref_rows = [None] * len(rows)
    if req.reference is not None:
        ref_rows = REFERENCES.ready(req.reference, engine.loaded).logits(ids, last_n=last - start + 1)
    return [
        _position(engine, req, prompt, tuple(branch[:i]), rows[i - start], ref_rows[i - start])
        for i in range(start, last + 1)
    ]


def _position(
    engine: Engine, req: Request, prompt, completion: tuple[int, ...], logits: torch.Tensor, ref_logits=None
) -> Position:
    """A branch's position; `ref_logits` (None: no reference) the reference's logits there."""
    log_base = torch.log_softmax(logits.double(), dim=-1)
    try:
        stages = engine.stages(req, prompt, completion)
    except ValueError as exc:  # e.g. the other branch breaks this request's constraint
        return Position(log_base, None, str(exc))
    log_final = dist_mod.final_log_probs(
        logits, (*prompt, *completion), completion, req.params, stages.kept, engine.breakers(req.params)
    )
    if ref_logits is None:
        return Position(log_base, log_final)
    plain = dataclasses.replace(req, interventions=(), reference=None)  # the reference is never edited
    ref_stages = engine.stages_from(plain, ref_logits, prompt, completion)
    described = req.reference.describe(engine.loaded)
    return Position(
        log_base, log_final, reference=ReferenceEffect.of(stages, logits, ref_stages, ref_logits, described)
    )


def _step(engine: Engine, i: int, branches: tuple[Sequence[int], ...], positions: tuple[list[Position], ...], vs: bool):
    """Step i of both branches; `vs`: each against the reference too."""
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
        reference=VsReference.of(a, "current") if vs else None,
        other_reference=VsReference.of(b, "other") if vs else None,
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
