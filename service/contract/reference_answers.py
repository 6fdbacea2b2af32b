"""The answer bodies of the reference model: its status and the teacher-forced diff of a completion."""

from __future__ import annotations

from service.contract.answers import Answer, Pill


class ReferenceStatus(Answer):
    """The reference model: none, loading, ready or failed (with the reason), what it is, its weights' memory."""

    state: str
    model_id: str
    dtype: str
    quantization: str | None
    engine: str
    memory_mb: float
    error: str


class DiffPosition(Answer):
    """One completion token: KL(main || reference) before it, top-token agreement, both models' p of the token."""

    index: int
    token: Pill
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


class Spread(Answer):
    """A KL's mean, 90 / 99 / 99.9 percentiles and maximum over the positions (null: no position)."""

    mean: float | None
    p90: float | None
    p99: float | None
    p99_9: float | None
    max: float | None


class DiffSummary(Answer):
    """llama.cpp's --kl-divergence summary: KL spreads, same top share, RMS of delta p, first divergence."""

    positions: int
    kl_final: Spread
    kl_final_infinite: int
    kl_base: Spread
    same_top: float
    rms_delta_p_final: float
    rms_delta_p_base: float
    first_divergence: int | None


class DiffAnswer(Answer):
    """A completion through the main model and the reference, teacher-forced: each position and the summary."""

    reference: str
    prompt_length: int
    positions: list[DiffPosition]
    summary: DiffSummary
