"""Gradio's API endpoints for the model: model_status, load_model, preview, step, attribution, tree, sweep,
patching, and steering_vector / steering_vectors.

`register(demo)` declares them inside `with gr.Blocks() as demo:` (call it first, so they own their
names). Every failure is a one-line message: the service's own ValueError text, the full-queue notice,
and also the malformed calls Gradio would otherwise answer itself (an empty `data` list, too many values:
see `_check_arity`; a body that is not `{"data": [...]}`: see `validation_error`, installed through the
FastAPI app's keyword arguments at launch). The lane, not Gradio, serialises the model work, so these
events may run `EVENT_CONCURRENCY` at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from server import errors
from service import operations as service
from service import patching, steering
from service import sweep as sweeps
from service.public import CONCURRENCY_ID, EVENT_CONCURRENCY

CALL_PREFIX = "/gradio_api/call/"
# Gradio's queue rebuilds a pandas summary of its last events after every event, for a monitoring dashboard this
# app does not enable: ~5 ms of CPU a call, ~15 ms once 10,000 events are kept. Rebuilt once a million events
# instead, over the last thousand. Read when the queue is made (`demo.queue()`, `launch()`), so set at import.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")


def _answer(fn: Callable, *args):
    try:
        return fn(*args)
    except Exception as exc:
        raise gr.Error(errors.describe(exc)[1], print_exception=False) from None


def api_model_status() -> dict:
    """Status of the shared model: id, source, device, dtype, state, error, chat template, vocab, context."""
    return _answer(service.model_status)


def api_load_model(model_id: str) -> dict:
    """Load a model by Hugging Face id or local folder ('embedded': the bundled one); on failure the old one stays."""
    return _answer(service.load_model, model_id)


def api_preview(request: dict) -> dict:
    """The next-token distribution for prompt + completion_ids under the given params (see README)."""
    return _answer(service.preview, request)


def api_step(request: dict) -> dict:
    """Append one token (chosen, force_token_id or force_text) and return the new state."""
    return _answer(service.step, request)


def api_tree(request: dict) -> dict:
    """The look-ahead tree: a preview request plus width (1-8) and depth (1-4); see README."""
    return _answer(service.tree, request)


def api_attribution(request: dict) -> dict:
    """Scores of every context token for the token target_token_id at completion position target_index."""
    return _answer(service.attribution, request)


def api_patching(request: dict) -> dict:
    """Activation patching: a preview request plus corrupted, target, contrast_token_id and site; see docs/API.md."""
    return _answer(patching.patching, request)


def api_sweep(request: dict) -> dict:
    """Each head, MLP or layer ablated alone: the change of the target's score and rank (see docs/API.md)."""
    return _answer(sweeps.sweep, request)


def api_steering_vector(request: dict) -> dict:
    """A steering vector from {"layer": L, "positive": [texts], "negative": [texts]}: its id, layer, norm, pairs."""
    return _answer(steering.steering_vector, request)


def api_steering_vectors() -> dict:
    """The current model's steering vectors: {"vectors": [{id, layer, norm, pairs, positive, negative}]}."""
    return _answer(steering.steering_vectors)


@dataclass(frozen=True)
class Endpoint:
    name: str
    fn: Callable
    accepts: str  # what `data` must hold, for messages
    arity: int = 1


ENDPOINTS = (
    Endpoint("model_status", api_model_status, "no values", 0),
    Endpoint("load_model", api_load_model, "exactly one value, the model id string"),
    Endpoint("preview", api_preview, "exactly one value, the request object"),
    Endpoint("step", api_step, "exactly one value, the request object"),
    Endpoint("attribution", api_attribution, "exactly one value, the request object"),
    Endpoint("tree", api_tree, "exactly one value, the request object"),
    Endpoint("patching", api_patching, "exactly one value, the request object"),
    Endpoint("sweep", api_sweep, "exactly one value, the request object"),
    Endpoint("steering_vector", api_steering_vector, "exactly one value, the request object"),
    Endpoint("steering_vectors", api_steering_vectors, "no values", 0),
)
_BY_NAME = {e.name: e for e in ENDPOINTS}


def register(demo: gr.Blocks) -> None:
    """Declare the endpoints in `demo` (inside its `with` block) and make wrong-arity calls one-line errors."""
    for endpoint in ENDPOINTS:
        if endpoint.arity == 0:  # a read of shared state: no model work to queue
            gr.api(endpoint.fn, api_name=endpoint.name)
        else:
            gr.api(
                endpoint.fn, api_name=endpoint.name, concurrency_id=CONCURRENCY_ID, concurrency_limit=EVENT_CONCURRENCY
            )
    _check_arity(demo)


def _usage(endpoint: Endpoint) -> str:
    return f'{endpoint.name} takes {endpoint.accepts}: POST {CALL_PREFIX}{endpoint.name} with {{"data": [...]}}'


def _check_arity(demo: gr.Blocks) -> None:
    """Refuse a call with the wrong number of values before Gradio's own (message-less) check does."""
    gradio_check = demo.validate_inputs

    def validate_inputs(block_fn, inputs: list) -> None:
        endpoint = _BY_NAME.get(str(getattr(block_fn, "api_name", "")).lstrip("/"))
        if endpoint is not None and block_fn.fn is endpoint.fn and len(inputs) != endpoint.arity:
            count = f"{len(inputs)} value" + ("" if len(inputs) == 1 else "s")
            raise gr.Error(f"got {count}; {_usage(endpoint)}", print_exception=False)
        gradio_check(block_fn, inputs)

    demo.validate_inputs = validate_inputs


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body FastAPI could not parse, as one line naming what the route accepts (status 422 as before)."""
    path = request.url.path
    name = path[path.find(CALL_PREFIX) + len(CALL_PREFIX) :].strip("/") if CALL_PREFIX in path else ""
    if name in _BY_NAME:
        usage = _usage(_BY_NAME[name])
        return JSONResponse({"detail": f"the body is not a JSON object with a data list; {usage}"}, 422)
    problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors())
    return JSONResponse({"detail": errors.one_line(f"malformed request to {path}: {problems}")}, 422)


def app_kwargs() -> dict:
    """Keyword arguments for Gradio's FastAPI app (`demo.launch(app_kwargs=...)`)."""
    return {"exception_handlers": {RequestValidationError: validation_error}}
