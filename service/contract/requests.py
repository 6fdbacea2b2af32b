"""The request body of every operation as a strict model: exact JSON types, unknown keys refused, ranges stated.

The keys a kind adds to the preview request (step's forcing, the tree's shape, attribution's target and
method) are the fields its model adds; `own_keys` names them for the hand parser. Rules that span several
fields (a prompt or messages, a target index or token) and the vocabulary are checked after the schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from attribution import AGGREGATIONS, METHODS, PARAMETERS
from attribution.patching import SITES
from attribution.sweep import KINDS as SWEEP_KINDS
from backends.interventions import COMPONENTS, MODES
from backends.reference import DTYPES, ENGINES, QUANTIZATIONS
from backends.steering import MAX_PAIRS
from decoding.request import MAX_BRANCH_ID_CHARS, ROLES
from decoding.sampling.params import CONSTRAINT_TYPES
from service import tree
from service.contract.params import params_model
from service.contract.values import STRICT, List, NonEmptyText, TokenId, integer, number
from service.targets import GRANULARITIES

Params = params_model()
EMPTY = {"enum": [None, ""]}
# Rules across fields, stated in the schema so that clients (and generated requests) see them; the hand parser
# (decoding.request, service.targets) checks them and words their refusals.
TEXT_RULE = {
    "anyOf": [
        {
            "required": ["prompt"],
            "properties": {"prompt": {"type": "string", "minLength": 1}, "messages": {"type": "null"}},
        },
        {
            "required": ["messages"],
            "properties": {"messages": {"type": "array", "minItems": 1}, "prompt": EMPTY, "system_prompt": EMPTY},
        },
    ]
}
TARGET_RULE = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "integer"}}} for name in ("target_index", "target_token_id")
    ]
}


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = STRICT
    role: Literal[ROLES]
    content: str


class Constraint(BaseModel):
    """A grammar the next tokens must follow: options one per line, a regex, a Lark grammar or a JSON schema."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=False)
    enabled: bool | None = None
    type: Literal[CONSTRAINT_TYPES] | None = Field(None, description="default regex")
    grammar: str | None = Field(None, alias="schema", description="the options, regex, grammar or schema")
    leading_space: bool | None = Field(
        None,
        description="regex only: the output may start with one space (default: true for a ready-made pattern,"
        " false for any other regex)",
    )


class HeadAblation(BaseModel):
    """One attention head's output (its slice before the output projection) set to zero or its context mean."""

    model_config = STRICT
    type: Literal["ablate"]
    layer: integer(ge=0) = Field(description="decoder layer, from 0")
    head: integer(ge=0) = Field(description="attention head, from 0")
    mode: Literal[MODES] | None = Field(None, description="default zero")


class BlockAblation(BaseModel):
    """A whole attention or MLP block's output of one layer set to zero or its mean over the context."""

    model_config = STRICT
    type: Literal["ablate"]
    layer: integer(ge=0) = Field(description="decoder layer, from 0")
    component: Literal[COMPONENTS]
    mode: Literal[MODES] | None = Field(None, description="default zero")


class Steering(BaseModel):
    """alpha times a vector (a steering vector's id, or d_model floats) added to the residual stream after a layer."""

    model_config = STRICT
    type: Literal["steer"]
    layer: integer(ge=0) = Field(description="decoder layer, from 0")
    vector: NonEmptyText | Annotated[List[number()], Field(min_length=1)]
    alpha: number()
    name: str | None = Field(None, description="the vector in words on the status line (no part of the edit)")


Intervention = HeadAblation | BlockAblation | Steering


class Reference(BaseModel):
    """A model beside the main one, under the same knobs: another model or the main one in another form."""

    model_config = STRICT
    model: NonEmptyText | None = Field(
        None, description="a Hugging Face id, a local folder or 'embedded' (default: the main model)"
    )
    dtype: Literal[DTYPES] | None = Field(None, description="default: the model's own")
    quantization: Literal[QUANTIZATIONS] | None = Field(None, description="weight-only int8 (torchao); default none")
    engine: Literal[ENGINES] | None = Field(None, description="default transformers")


class PreviewRequest(BaseModel):
    """A position to look at: a raw prompt (or a conversation as `messages`), the completion so far, the knobs.

    Also the request of render, append_text, compare and the logit lens.
    """

    model_config = STRICT | ConfigDict(json_schema_extra={"allOf": [TEXT_RULE]})
    branch_id: Annotated[str, Field(max_length=MAX_BRANCH_ID_CHARS)] | None = None
    prompt: str | None = Field(None, description="the text to continue; needed unless messages are given")
    system_prompt: str | None = None
    messages: List[Message] | None = Field(None, description="a conversation instead of a prompt")
    use_chat_template: bool | None = None
    completion_ids: List[TokenId] | None = Field(None, description="token ids appended so far")
    top_k: integer(ge=1) | None = Field(None, description="rows of the distribution (default 10)")
    params: Params | None = None
    constraint: Constraint | None = None
    interventions: List[Intervention] | None = Field(
        None, description="model edits applied at every position of the context, in order (default none)"
    )
    reference: Reference | None = Field(
        None, description="a reference model: each row and the distribution carry its probabilities and distances"
    )


class StepRequest(PreviewRequest):
    """A preview request that appends one token: the chosen one, `force_token_id`, or the tokens of `force_text`."""

    reset_rng: bool | None = Field(None, description="accepted; a draw depends only on seed, branch and position")
    force_token_id: TokenId | None = None
    force_text: str | None = None
    send_prompt_tokens: bool | None = Field(
        None, description="false: the answer's prompt_tokens is an empty list (they do not change between steps)"
    )


class TreeRequest(PreviewRequest):
    """A preview request with the look-ahead tree's shape."""

    width: integer(ge=1, le=tree.MAX_WIDTH) | None = Field(None, description="children per node")
    depth: integer(ge=1, le=tree.MAX_DEPTH) | None = Field(None, description="levels")


class TargetRequest(PreviewRequest):
    """A preview request naming a target token (`target_index`, `target_token_id` or both) and maybe a foil."""

    model_config = ConfigDict(json_schema_extra={"allOf": [TEXT_RULE, TARGET_RULE]})
    target_index: integer(ge=0) | None = Field(None, description="a completion position")
    target_token_id: TokenId | None = None
    contrast_token_id: TokenId | None = Field(None, description="a foil: explain log p(target) - log p(foil)")


class AttributionRequest(TargetRequest):
    """A preview request naming a target token (`target_index`, `target_token_id` or both) and the method."""

    method: Literal[tuple(METHODS)] | None = None
    aggregation: Literal[tuple(AGGREGATIONS)] | None = None
    granularity: Literal[GRANULARITIES] | None = None
    ig_steps: integer(ge=PARAMETERS["ig_steps"].low, le=PARAMETERS["ig_steps"].high) | None = Field(
        None, description=PARAMETERS["ig_steps"].description
    )
    last_layer_only: bool | None = Field(None, description=PARAMETERS["last_layer_only"].description)


class PatchingRequest(PreviewRequest):
    """A clean request (prompt or messages, completion, interventions), a corrupted prompt of the same token
    length, a target, a foil and the site patched: each (layer, position) of the clean run copied into the
    corrupted run alone, both runs under the request's interventions."""

    model_config = ConfigDict(json_schema_extra={"allOf": [TEXT_RULE, TARGET_RULE]})
    corrupted: NonEmptyText = Field(
        description="the corrupted prompt: the prompt (with messages: the last user message's text) with a word"
        " changed, of the same token length"
    )
    target_index: integer(ge=0) | None = Field(None, description="a completion position")
    target_token_id: TokenId | None = None
    contrast_token_id: TokenId = Field(description="the foil: the logit difference target - foil is scored")
    site: Literal[SITES] | None = Field(None, description="the activation patched: a layer's residual output (default),"
                                        " its attention block's output or its MLP's output")  # fmt: skip


class SweepRequest(TargetRequest):
    """A preview request naming a target token, the kind of component to ablate one at a time, and how."""

    components: Literal[SWEEP_KINDS] | None = Field(
        None, description="heads (each head of each layer), mlps, or layers (attention and MLP); default heads"
    )
    mode: Literal[MODES] | None = Field(None, description="zero, or the mean over the context's positions")


class DiffRequest(PreviewRequest):
    """A preview request whose completion is compared, teacher-forced, with the required `reference`."""

    reference: Reference = Field(description="the model the main one is compared with")
    completion_ids: Annotated[List[TokenId], Field(min_length=1)] = Field(description="the text compared, as ids")


class SteeringVectorRequest(BaseModel):
    """Example texts for a steering vector: the i-th positive text pairs with the i-th negative one."""

    model_config = STRICT
    layer: integer(ge=0) = Field(description="the decoder layer whose residual stream is read, from 0")
    positive: Annotated[List[NonEmptyText], Field(min_length=1, max_length=MAX_PAIRS)]
    negative: Annotated[List[NonEmptyText], Field(min_length=1, max_length=MAX_PAIRS)]


class EmptyRequest(BaseModel):
    """An empty object: the operation takes no parameters."""

    model_config = STRICT


class LoadRequest(BaseModel):
    """Which model to load: a Hugging Face id, a local folder or 'embedded'."""

    model_config = STRICT
    model_id: str

    @model_validator(mode="before")
    @classmethod
    def _only_model_id(cls, data: object) -> object:
        if not isinstance(data, dict) or set(data) != {"model_id"}:
            keys = sorted(data, key=str) if isinstance(data, dict) else data
            raise ValueError(f'the body must be {{"model_id": "<hub id, folder or embedded>"}}; got keys {keys}')
        return data


def own_keys(model: type[PreviewRequest]) -> tuple[str, ...]:
    """The keys a request kind adds to the preview request."""
    return tuple(name for name in model.model_fields if name not in PreviewRequest.model_fields)
