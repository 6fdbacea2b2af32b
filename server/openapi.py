"""The REST API's OpenAPI 3.1 document, generated from the request and answer models of service.contract.

Each path names its request body (the operation's strict request model), its answer, and the error body
`{"detail": "<one line>"}` of a refusal (400) or a full model queue (429). `document()` is built once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.contract import (
    AttributionRequest,
    DiffRequest,
    LoadRequest,
    PatchingRequest,
    PreviewRequest,
    StepRequest,
    SweepRequest,
    TreeRequest,
)
from service.contract.answers import (
    AttributionAnswer,
    ErrorAnswer,
    ModelStatus,
    PatchingAnswer,
    SteeringVector,
    SteeringVectors,
    StepAnswer,
    SweepAnswer,
    TreeAnswer,
)
from service.contract.reference_answers import DiffAnswer, ReferenceStatus
from service.contract.requests import EmptyRequest, SteeringVectorRequest

REF = "#/components/schemas/{model}"
ERRORS = {"400": "a bad request: the field, the value and what is accepted", "429": "the model queue is full"}


@dataclass(frozen=True)
class Operation:
    """One REST path: its method, name, what it does, its request body (None: none) and its answer."""

    path: str
    method: str
    name: str
    summary: str
    request: type[BaseModel] | None
    answer: type[BaseModel]


OPERATIONS = (
    Operation("/api/model/status", "get", "model_status", "The shared model's status", None, ModelStatus),
    Operation("/api/model/load", "post", "load_model", "Load a model (the old one stays on failure)", LoadRequest,
              ModelStatus),
    Operation("/api/preview", "post", "preview", "The next-token distribution at a position", PreviewRequest,
              StepAnswer),
    Operation("/api/step", "post", "step", "Append one token (chosen or forced)", StepRequest, StepAnswer),
    Operation("/api/attribution", "post", "attribution", "Which context tokens a target token depends on",
              AttributionRequest, AttributionAnswer),
    Operation("/api/sweep", "post", "sweep", "Each head, MLP or layer ablated alone: the target's score and rank",
              SweepRequest, SweepAnswer),
    Operation("/api/tree", "post", "tree", "The look-ahead tree of likely continuations", TreeRequest, TreeAnswer),
    Operation("/api/diff", "post", "diff", "A completion through the main model and a reference, teacher-forced",
              DiffRequest, DiffAnswer),
    Operation("/api/reference/status", "get", "reference_status", "The reference model's status", None,
              ReferenceStatus),
    Operation("/api/reference/remove", "post", "remove_reference", "Free the reference model", EmptyRequest,
              ReferenceStatus),
    Operation("/api/patching", "post", "patching", "Activation patching: where a changed word matters",
              PatchingRequest, PatchingAnswer),
    Operation("/api/steering/vector", "post", "steering_vector", "A steering vector from example texts",
              SteeringVectorRequest, SteeringVector),
    Operation("/api/steering/vectors", "get", "steering_vectors", "The current model's steering vectors", None,
              SteeringVectors),
)  # fmt: skip


def _json_content(ref: dict) -> dict:
    return {"application/json": {"schema": ref}}


def _path_item(op: Operation, refs: dict) -> dict:
    answers = {"200": {"description": op.answer.__doc__.strip(), "content": _json_content(refs[op.answer])}}
    item = {"operationId": op.name, "summary": op.summary, "responses": answers}
    if op.request is not None:
        item["requestBody"] = {"required": True, "content": _json_content(refs[op.request])}
        error = _json_content(refs[ErrorAnswer])
        answers |= {code: {"description": text, "content": error} for code, text in ERRORS.items()}
    return {op.method: item}


@functools.cache
def document() -> dict:
    """The OpenAPI 3.1 document of the REST API (its schemas are JSON Schema 2020-12, as pydantic writes them)."""
    requests = {op.request for op in OPERATIONS if op.request is not None}
    answers = {op.answer for op in OPERATIONS} | {ErrorAnswer}
    pairs = [(m, "validation") for m in sorted(requests, key=lambda m: m.__name__)]
    pairs += [(m, "serialization") for m in sorted(answers, key=lambda m: m.__name__)]
    found, defs = models_json_schema(pairs, ref_template=REF)
    refs = {model: ref for (model, _), ref in found.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nexttoken REST API",
            "version": "1",
            "description": "How a language model picks its next token: the same operations as the UI and Gradio's API.",
        },
        "paths": {op.path: _path_item(op, refs) for op in OPERATIONS},
        "components": {"schemas": defs.get("$defs", {})},
    }
