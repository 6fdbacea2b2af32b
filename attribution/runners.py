"""How each attribution method runs: its model work in slices, and its part of the result.

A runner takes a validated `Job` and is a generator: each `next()` is one slice of model work that
leaves the model as it found it (Progress after each slice but the last), and the last item is the
method's parts of the result (a dict of `AttributionResult` fields: scores, normalized, aggregation,
target_logprob and what else the method measured). The registry names one runner per method.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from attribution import ablation, attention, direct_logit, gradients
from attribution.aggregations import AGGREGATIONS, SUM, normalise, reduce_embedding
from backends.lane import Progress
from backends.model import LoadedModel

ABLATION_DESCRIPTION = (
    "drop of the target's log-probability when the token is replaced by the baseline id, positions kept;"
    " display divided by the largest |drop|"
)
DIRECT_LOGIT_DESCRIPTION = (
    "no token scores: the logit (minus the foil's) split over the embedding, each head and each MLP, see components"
)
ATTENTION_SINK_NOTE = "position 0 (attention sink) excluded and the rest renormalised to sum to 1"


@dataclass(frozen=True)
class Job:
    """One attribution to run, validated: the ids, the foil, the aggregation and every method parameter."""

    loaded: LoadedModel
    context_ids: Sequence[int]
    target_id: int
    foil_id: int | None
    aggregation: str
    parameters: Mapping[str, object]


def normalise_attention(weights: torch.Tensor) -> torch.Tensor:
    """Share of attention over positions 1..L-1: the first token soaks up attention whatever it says."""
    if weights.numel() == 1:
        return torch.ones_like(weights)
    shown = weights.clone()
    shown[0] = 0.0
    total = float(shown.sum())
    return shown / total if total > 0 else shown


def run_attention(job: Job) -> Iterator[Progress | dict]:
    """One forward (the prefix's keys and values cached): the last position's attention row."""
    last_layer_only = job.parameters["last_layer_only"]
    row = attention.attention_row(job.loaded, job.context_ids, last_layer_only)
    over = "last layer, mean over heads" if last_layer_only else "mean over heads and layers"
    note = ATTENTION_SINK_NOTE if len(job.context_ids) > 1 else "a single context token gets all attention"
    yield {
        "scores": row.weights,
        "normalized": normalise_attention(row.weights),
        "aggregation": f"attention of the last position, {over}; {note}",
        "target_logprob": float(row.logprobs[job.target_id]),
        "fell_back_to_cpu": row.fell_back_to_cpu,
    }


def _gradient_parts(job: Job, out: gradients.GradientAttribution) -> dict:
    scores = reduce_embedding(out.attributions, job.aggregation)
    return {
        "scores": scores,
        "normalized": normalise(scores, job.aggregation),
        "aggregation": AGGREGATIONS[job.aggregation].description,
        "target_logprob": out.target_logprob,
    }


def run_saliency(job: Job) -> Iterator[Progress | dict]:
    """One forward and backward: the gradient of the attributed value at each embedding."""
    yield _gradient_parts(job, gradients.saliency(job.loaded, job.context_ids, job.target_id, job.foil_id))


def run_input_x_gradient(job: Job) -> Iterator[Progress | dict]:
    """One forward and backward: the gradient times the embedding."""
    yield _gradient_parts(job, gradients.input_x_gradient(job.loaded, job.context_ids, job.target_id, job.foil_id))


def _finishing(slices: Iterator, finish) -> Iterator[Progress | dict]:
    """The slices' Progress as it comes, and their last item turned into the parts of the result."""
    for out in slices:
        yield out if isinstance(out, Progress) else finish(out)


def run_integrated_gradients(job: Job) -> Iterator[Progress | dict]:
    """One slice per batch of path points (see `gradients.IG_TOKEN_BUDGET`), the completeness error last."""
    steps = job.parameters["ig_steps"]
    extra = {"steps": steps, "baseline": gradients.IG_BASELINE}
    yield from _finishing(
        gradients.integrated_gradients_slices(job.loaded, job.context_ids, job.target_id, steps, job.foil_id),
        lambda out: _gradient_parts(job, out) | extra | {"completeness_error": out.completeness_error},
    )


def _ablation_parts(out: ablation.AblationScores) -> dict:
    return {
        "scores": out.scores,
        "normalized": normalise(out.scores, SUM.name),
        "aggregation": ABLATION_DESCRIPTION,
        "target_logprob": out.value,
        "baseline": f"token id {out.baseline_id} (the tokenizer's pad token, else its eos token)",
    }


def run_ablation(job: Job) -> Iterator[Progress | dict]:
    """One slice per batch of neighbouring ablated positions that share a cached prefix."""
    yield from _finishing(
        ablation.ablation_slices(job.loaded, job.context_ids, job.target_id, job.foil_id), _ablation_parts
    )


def run_direct_logit(job: Job) -> Iterator[Progress | dict]:
    """One forward with hooks: the logit's parts; no per-token scores (empty)."""
    out = direct_logit.direct_logit(job.loaded, job.context_ids, job.target_id, job.foil_id)
    none = torch.zeros(0)
    yield {
        "scores": none,
        "normalized": none,
        "aggregation": DIRECT_LOGIT_DESCRIPTION,
        "target_logprob": out.target_logprob,
        "components": out.components,
    }


# --- cost, in forward-and-backward passes over the context (what the budgets count) ---------------

# Ablation runs about L/2 forward passes over an L-token context (each reuses the prefix before the
# ablated token), and a forward costs about half a forward-and-backward: L/4 passes in budget terms.
ABLATION_TOKENS_PER_PASS = 4


def one_pass(context_tokens: int, parameters: Mapping[str, object]) -> int:
    return 1


def ig_passes(context_tokens: int, parameters: Mapping[str, object]) -> int:
    return int(parameters["ig_steps"])


def ablation_passes(context_tokens: int, parameters: Mapping[str, object]) -> int:
    return max(1, -(-context_tokens // ABLATION_TOKENS_PER_PASS))
