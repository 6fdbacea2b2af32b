"""The registry of the sampling stages: one entry per stage, with its parameters, when it is on, the function
that applies it and its reference (see `stage` for what an entry holds).

Every other place reads it: `params` builds and validates `DecodingParams` from it, `chain` applies its
stages in the chosen order, the UI builds its sliders from it (through `service.public`), and
`REGISTRY.schema()` describes each parameter for an API schema. Adding a sampler is its entry here (and its
place in the named orders), its function and its test. The constraint mask and greedy have no knob of their
own: they are not stages here (see `chain`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from decoding.sampling import knobs
from decoding.sampling import llama_samplers as ls
from decoding.sampling.stage import Apply, Inputs, Param, Registry, Slider, Stage

# Below this a temperature (or a repetition penalty, which also divides logits) overflows float32 logits to inf.
MIN_DIVISOR = 0.01


def _knob(function: Callable[..., torch.Tensor], *names: str) -> Apply:
    """A stage's function from a pure knob function of the logits and the named params."""
    return lambda logits, probs, params, inputs: function(logits, *(getattr(params, name) for name in names))


def _penalised(logits: torch.Tensor, probs: Any, p: Any, inputs: Inputs) -> torch.Tensor:
    """Repetition penalty over the whole context, then presence and frequency over the completion."""
    penalised = knobs.repetition_penalty(logits, inputs.context_ids, p.repetition_penalty)
    return knobs.presence_frequency_penalty(penalised, inputs.completion_ids, p.presence_penalty, p.frequency_penalty)


def _dry(logits: torch.Tensor, probs: Any, p: Any, inputs: Inputs) -> torch.Tensor:
    multiplier, base, allowed, last_n = p.dry_multiplier, p.dry_base, p.dry_allowed_length, p.dry_penalty_last_n
    return ls.dry(logits, inputs.context_ids, multiplier, base, allowed, last_n, inputs.breakers)


def _nucleus(logits: torch.Tensor, probs: torch.Tensor, p: Any, inputs: Inputs) -> torch.Tensor:
    return knobs.nucleus(logits, p.top_p, probs=probs)


def _xtc(logits: torch.Tensor, probs: Any, p: Any, inputs: Inputs) -> torch.Tensor:
    return ls.xtc(logits, p.xtc_threshold, p.xtc_probability, inputs.xtc_draw)


def _unit(name: str, off: float, label: str, step: float, slider: tuple[float, float] = (0, 1), **kw: Any) -> Param:
    """A parameter from 0 to 1 that is off at `off` (min-p, typical-p, the cutoffs)."""
    accepted = kw.pop("accepted", f"0 to 1 ({off:g} means off)")
    return Param(name, float, 0.0, 1.0, off, off, accepted, Slider(label, step, *slider), **kw)


def _cutoff(name: str, label: str) -> Param:
    """Epsilon or eta: from 0 to below 1, off at 0."""
    accepted = f"0 <= {name} < 1 (0 means off)"
    return _unit(name, 0.0, label, 0.0005, (0, 0.05), accepted=accepted, high_open=True)


TEMPERATURE = Param(
    "temperature", float, 0.0, 100.0, 0.7, 1.0, f"0 (greedy) or {MIN_DIVISOR} to 100",
    Slider("Temperature (0 = greedy)", 0.05, 0, 2), nonzero_low=MIN_DIVISOR,
)  # fmt: skip
TOP_K = Param(
    "top_k", int, 0, None, 0, 0, "an integer >= 0 (0 means off)", Slider("Top-k sampling (0 = off)", 1, 0, 200)
)
TOP_P = Param("top_p", float, 0.0, 1.0, 0.8, 1.0, "0 < top_p <= 1", Slider("Top-p", 0.01, 0.01, 1), low_open=True)
TYPICAL_P = _unit(
    "typical_p", 1.0, "Typical-p (1 = off)", 0.01, (0.01, 1), accepted="0 < typical_p <= 1 (1 means off)", low_open=True
)
TOP_N_SIGMA = Param(
    "top_n_sigma", float, 0.0, 10.0, 0.0, 0.0, "0 to 10 (0 means off)", Slider("Top-n-sigma (0 = off)", 0.1, 0, 5)
)
XTC = (
    Param(
        "xtc_threshold", float, 0.0, 1.0, 0.1, None, "0 to 1 (above 0.5 it never acts)",
        Slider("XTC threshold", 0.01, 0, 0.5),
    ),
    Param(
        "xtc_probability", float, 0.0, 1.0, 0.0, 0.0, "0 to 1 (0 means off)",
        Slider("XTC probability (0 = off)", 0.05, 0, 1),
    ),
)  # fmt: skip
PENALTIES = (
    Param(
        "repetition_penalty", float, MIN_DIVISOR, 10.0, 1.05, 1.0, f"{MIN_DIVISOR} to 10 (1 means off)",
        Slider("Repetition penalty", 0.01, 0.5, 2),
    ),
    Param(
        "presence_penalty", float, -2.0, 2.0, 0.0, 0.0, "-2 to 2 (0 means off)",
        Slider("Presence penalty", 0.05, -2, 2),
    ),
    Param(
        "frequency_penalty", float, -2.0, 2.0, 0.0, 0.0, "-2 to 2 (0 means off)",
        Slider("Frequency penalty", 0.05, -2, 2),
    ),
)  # fmt: skip
DRY = (  # the defaults are llama.cpp's
    Param(
        "dry_multiplier", float, 0.0, 5.0, 0.0, 0.0, "0 to 5 (0 means off)",
        Slider("DRY multiplier (0 = off)", 0.05, 0, 2),
    ),
    Param("dry_base", float, 1.0, 4.0, ls.DRY_BASE, None, "1 to 4", Slider("DRY base", 0.05, 1, 4)),
    Param(
        "dry_allowed_length", int, 1, 20, ls.DRY_ALLOWED_LENGTH, None, "an integer from 1 to 20",
        Slider("DRY allowed length", 1, 1, 10),
    ),
    Param(
        "dry_penalty_last_n", int, -1, None, ls.DRY_PENALTY_LAST_N, 0,
        "an integer >= -1 (-1 means the whole context, 0 means off)",
        Slider("DRY window (-1 = whole context)", 1, -1, 2048),
    ),
)  # fmt: skip

# The stages `sampler_order` arranges (in the order its error message lists them), then the fixed ones.
STAGES = (
    Stage(
        "temperature", (TEMPERATURE,), lambda p: not p.is_greedy and p.temperature != 1.0,
        _knob(knobs.temperature, "temperature"), "transformers TemperatureLogitsWarper", "moves",
    ),
    Stage("top_k", (TOP_K,), lambda p: p.top_k > 0, _knob(knobs.top_k, "top_k"), "transformers TopKLogitsWarper"),
    Stage(
        "top_p", (TOP_P,), lambda p: p.top_p < 1.0, _nucleus, "transformers TopPLogitsWarper (Holtzman et al. 2020)",
        "keeps",
    ),
    Stage(
        "min_p", (_unit("min_p", 0.0, "Min-p (0 = off)", 0.01),), lambda p: p.min_p > 0.0,
        _knob(knobs.min_p, "min_p"), "transformers MinPLogitsWarper (Nguyen et al. 2024)",
    ),
    Stage(
        "typical_p", (TYPICAL_P,), lambda p: p.typical_p < 1.0, _knob(knobs.typical_p, "typical_p"),
        "transformers TypicalLogitsWarper (Meister et al. 2022)",
    ),
    Stage(
        "top_n_sigma", (TOP_N_SIGMA,), lambda p: p.top_n_sigma > 0.0, _knob(ls.top_n_sigma, "top_n_sigma"),
        "llama.cpp top-n-sigma sampler (Tang et al. 2024)",
    ),
    Stage(
        "epsilon_cutoff", (_cutoff("epsilon_cutoff", "Epsilon cutoff (0 = off)"),), lambda p: p.epsilon_cutoff > 0.0,
        _knob(knobs.epsilon_cutoff, "epsilon_cutoff"), "transformers EpsilonLogitsWarper (Hewitt et al. 2022)",
    ),
    Stage(
        "eta_cutoff", (_cutoff("eta_cutoff", "Eta cutoff (0 = off)"),), lambda p: p.eta_cutoff > 0.0,
        _knob(knobs.eta_cutoff, "eta_cutoff"), "transformers EtaLogitsWarper (Hewitt et al. 2022)",
    ),
    Stage("xtc", XTC, lambda p: p.xtc_probability > 0.0, _xtc, "llama.cpp XTC sampler"),
    Stage(
        "penalties", PENALTIES,
        lambda p: p.repetition_penalty != 1.0 or p.presence_penalty != 0.0 or p.frequency_penalty != 0.0, _penalised,
        "transformers RepetitionPenaltyLogitsProcessor (CTRL, Keskar et al. 2019); OpenAI API presence and "
        "frequency penalties", "moves", fixed=True,
    ),
    Stage(
        "dry", DRY, lambda p: p.dry_multiplier > 0.0 and p.dry_penalty_last_n != 0, _dry,
        "llama.cpp DRY sampler (from koboldcpp)", "moves", fixed=True,
    ),
)  # fmt: skip
NAMED_ORDERS = {
    # transformers' warper order (as its generate() builds them), then the two samplers it has none of, last:
    # top-n-sigma before XTC, as in llama.cpp.
    "transformers": (
        "temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "top_n_sigma", "xtc",
    ),
    # llama.cpp's default chain (top-n-sigma, top-k, typical, top-p, min-p, XTC, temperature); it has no
    # epsilon or eta cutoff: they go beside min-p, the other cutoff on probabilities.
    "llama.cpp": (
        "top_n_sigma", "top_k", "typical_p", "top_p", "min_p", "epsilon_cutoff", "eta_cutoff", "xtc", "temperature",
    ),
}  # fmt: skip
REGISTRY = Registry(STAGES, NAMED_ORDERS)
