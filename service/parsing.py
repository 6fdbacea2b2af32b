"""Each operation's request read: through its model (service.contract) first, then the hand parser.

The hand parser turns an accepted request into the engine's dataclasses and the kinds' own values, holds it
to the budgets that need no model (service.policy), and words the refusals the recorded answers keep.
"""

from __future__ import annotations

from collections.abc import Sequence

from attribution.sweep import KINDS as SWEEP_KINDS
from backends.interventions import MODES
from decoding import fields
from decoding.request import Request
from service import contract
from service import tree as tree_mod
from service.contract import (
    AttributionRequest,
    LoadRequest,
    PreviewRequest,
    StepRequest,
    SweepRequest,
    TreeRequest,
)
from service.policy import POLICY
from service.targets import AttributionSpec, Target


def model_id(body: object) -> str:
    """The model id of a load body `{"model_id": ...}`."""
    return contract.parse(LoadRequest, body, _model_id)


def _model_id(body: object) -> object:
    """The id a load body names, its type checked (its keys are the model's to check)."""
    if isinstance(body, dict) and set(body) == {"model_id"}:
        return fields.string("model id", body["model_id"])
    return None


def parsed(request: object, model: type[PreviewRequest] = PreviewRequest) -> Request:
    """The request through its model, then parsed strictly and within the budgets; no model touched yet."""
    return contract.parse(model, request, lambda r: _hand_parsed(r, contract.own_keys(model)))


def _hand_parsed(request: object, extra_keys: Sequence[str]) -> Request:
    POLICY.check_lengths(request)
    req = Request.from_dict(request, None, extra_keys)
    POLICY.check_request(req)
    return req


def forced_text(name: str, value: object) -> str:
    """Text to append: valid Unicode within the prompt budget."""
    text = fields.text(name, value)
    POLICY.settings.budgets.check("max_prompt_chars", len(text), name)
    return text


def step_request(request: object) -> tuple[Request, int | None, str | None, bool]:
    """(request, force_token_id, force_text, send_prompt_tokens) of a step: at most one of the two forced ones."""
    return contract.parse(StepRequest, request, _step_parsed)


def _step_parsed(request: dict) -> tuple[Request, int | None, str | None, bool]:
    req = _hand_parsed(request, contract.own_keys(StepRequest))
    fields.boolean("reset_rng", request.get("reset_rng"), False)
    send_prompt = fields.boolean("send_prompt_tokens", request.get("send_prompt_tokens"), True)
    force_id, force_text = request.get("force_token_id"), request.get("force_text")
    if force_id is not None and force_text is not None:
        raise ValueError("give either force_token_id or force_text, not both")
    if force_id is not None:
        force_id = fields.integer("force_token_id", force_id, 0, accepted="a token id >= 0 of the model's vocabulary")
    if force_text is not None:
        force_text = forced_text("force_text", force_text)
    return req, force_id, force_text, send_prompt


def tree_request(request: object) -> tuple[Request, tuple[int, int]]:
    """(request, (width, depth)) of a look-ahead tree."""
    return contract.parse(
        TreeRequest, request, lambda r: (_hand_parsed(r, contract.own_keys(TreeRequest)), tree_mod.shape(r))
    )


def attribution_request(request: object) -> tuple[Request, AttributionSpec]:
    """(request, what to attribute and how)."""
    return contract.parse(
        AttributionRequest,
        request,
        lambda r: (_hand_parsed(r, contract.own_keys(AttributionRequest)), AttributionSpec.from_dict(r)),
    )


def sweep_request(request: object) -> tuple[Request, Target, str, str]:
    """(request, target, components, mode) of an ablation sweep."""
    return contract.parse(SweepRequest, request, _sweep_parsed)


def _sweep_parsed(request: dict) -> tuple[Request, Target, str, str]:
    req = _hand_parsed(request, contract.own_keys(SweepRequest))
    kind = fields.choice("components", request.get("components"), SWEEP_KINDS, "heads")
    mode = fields.choice("mode", request.get("mode"), MODES, "zero")
    return req, Target.from_dict(request), kind, mode
