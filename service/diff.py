"""A whole text through both models, teacher-forced: where and how much the reference disagrees with the main model.

`diff(request)` takes a preview request with its completion and its `reference`: one forward pass per model
over prompt + completion gives the logits before every completion token, each put through the request's knobs
and constraint (the engine's `stages_from`, as a step would), so each position carries KL(main || reference)
of p_final and of p_base in bits (decoding.reference), whether the top tokens agree, and both models'
probabilities of the token actually there. The summary is what llama.cpp's `--kl-divergence` prints: the mean
KL, its 90 / 99 / 99.9 percentiles (linear between the closest ranks, as NumPy's default) and its maximum, the
share of positions whose top tokens agree, the RMS of the difference in probability of the actual token, and
the first position where greedy decoding would part (the top tokens differ). A position whose KL of p_final is
infinite (the reference's knobs give 0 to a token the main model keeps) is counted apart from the spread.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from backends.lane import LANE
from backends.reference import Reference
from decoding.engine import Engine
from decoding.reference import ReferenceEffect
from decoding.request import Request
from runtime import gpu
from service import parsing
from service.operations import POLICY, current_engine
from service.readable import readable_errors
from service.reference import reference_for

PERCENTILES = (90.0, 99.0, 99.9)


@dataclass(frozen=True)
class Position:
    """One completion token: the KLs before it, whether the top tokens agree, both models' probabilities of it."""

    index: int
    token: dict
    kl_final: float | None
    kl_final_reason: str | None
    kl_base: float
    top_agrees: bool
    top_main: int
    top_reference: int
    p_final_main: float
    p_final_reference: float
    p_base_main: float
    p_base_reference: float


@dataclass(frozen=True)
class Spread:
    """The mean, the 90 / 99 / 99.9 percentiles and the maximum of a KL over the positions (None: no position)."""

    mean: float | None
    p90: float | None
    p99: float | None
    p99_9: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            return cls(None, None, None, None, None)
        found = np.asarray(values, dtype=np.float64)
        p90, p99, p99_9 = (float(np.percentile(found, q)) for q in PERCENTILES)
        return cls(float(found.mean()), p90, p99, p99_9, float(found.max()))


@dataclass(frozen=True)
class Summary:
    """llama.cpp's `--kl-divergence` summary of the text (of p_final, and of p_base)."""

    positions: int
    kl_final: Spread
    kl_final_infinite: int
    kl_base: Spread
    same_top: float
    rms_delta_p_final: float
    rms_delta_p_base: float
    first_divergence: int | None

    @classmethod
    def of(cls, found: list[Position]) -> Summary:
        finite = [p.kl_final for p in found if p.kl_final is not None]
        split = next((p.index for p in found if not p.top_agrees), None)

        def rms(pairs: list[tuple[float, float]]) -> float:
            return math.sqrt(math.fsum((a - b) ** 2 for a, b in pairs) / len(pairs))

        return cls(
            positions=len(found),
            kl_final=Spread.of(finite),
            kl_final_infinite=len(found) - len(finite),
            kl_base=Spread.of([p.kl_base for p in found]),
            same_top=sum(p.top_agrees for p in found) / len(found),
            rms_delta_p_final=rms([(p.p_final_main, p.p_final_reference) for p in found]),
            rms_delta_p_base=rms([(p.p_base_main, p.p_base_reference) for p in found]),
            first_divergence=split,
        )


@dataclass(frozen=True)
class Diff:
    """The reference in words, each completion position, and the summary."""

    reference: str
    prompt_length: int
    positions: tuple[Position, ...]
    summary: Summary

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def diff_text(engine: Engine, req: Request, reference: Reference) -> Diff:
    """Both models over the request's prompt + completion, teacher-forced, one forward pass each."""
    prompt, _ = engine.prompt_ids(req)
    completion, n = req.completion_ids, len(req.completion_ids)
    ids = (*prompt, *completion)
    # row j predicts completion[j]: the logits after prompt + completion[:j]
    main_rows = engine.cache.logits(engine.loaded, ids[:-1], last_n=n, edits=req.interventions)
    ref_rows = reference.logits(ids[:-1], last_n=n)
    plain = dataclasses.replace(req, interventions=(), reference=None)
    described = req.reference.describe(engine.loaded)
    found = []
    for j, token in enumerate(completion):
        main = engine.stages_from(req, main_rows[j], prompt, completion[:j])
        ref = engine.stages_from(plain, ref_rows[j], prompt, completion[:j])
        effect = ReferenceEffect.of(main, main_rows[j], ref, ref_rows[j], described)
        found.append(_position(engine, j, token, main, effect))
    return Diff(described, len(prompt), tuple(found), Summary.of(found))


def _position(engine: Engine, index: int, token: int, main, effect: ReferenceEffect) -> Position:
    return Position(
        index=index,
        token=engine.view.pill(token).as_dict(),
        kl_final=effect.kl_final,
        kl_final_reason=effect.kl_final_reason,
        kl_base=effect.kl_base,
        top_agrees=effect.top_agrees,
        top_main=main.argmax(),
        top_reference=int(effect.p_final.argmax()),
        p_final_main=float(main.p_final[token]),
        p_final_reference=float(effect.p_final[token]),
        p_base_main=float(main.p_base[token]),
        p_base_reference=float(effect.p_base[token]),
    )


@LANE.held
@gpu
@readable_errors
def diff(request: dict) -> dict:
    """The whole completion of `request` through the main model and its `reference` (see the module's docstring)."""
    req = parsing.diff_request(request)
    engine, req = current_engine(req)
    POLICY.check_context(engine, req)
    prompt, _ = engine.prompt_ids(req)
    engine.check_context(prompt, req.completion_ids)
    return diff_text(engine, req, reference_for(engine.loaded, req)).as_dict()
