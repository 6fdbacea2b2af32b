"""A plain REST API beside Gradio's: the earlier FastAPI tool's paths and JSON bodies, answered as JSON.

    GET  /api/model/status
    POST /api/model/load     {"model_id": "..."}
    POST /api/preview        the preview request (see README)
    POST /api/step           the step request
    POST /api/attribution    the attribution request
    POST /api/sweep          an ablation sweep (a target as for attribution, components, mode)
    POST /api/tree           the look-ahead tree request (a preview request plus width and depth)
    POST /api/diff           a preview request with its completion and a reference: both models teacher-forced
    GET  /api/reference/status the reference model's status
    POST /api/reference/remove {}: free the reference model
    POST /api/patching       activation patching: a preview request plus corrupted, target, foil and site
    POST /api/steering/vector  {"layer": L, "positive": [...], "negative": [...]}: a steering vector
    GET  /api/steering/vectors the current model's steering vectors
    GET  /api/openapi.json   the OpenAPI 3.1 document of these paths (server.openapi)
    GET  /api/docs           its documentation page

The answers are the service functions' dicts, serialised once (orjson). A bad request (any ValueError,
a body that is not JSON or not an object) is 400 `{"detail": "<one line>"}`; a full model queue is 429
with Retry-After. Validation and the model lane are the UI's own, so REST callers queue fairly with
everyone else. Attribution, sweeps and patching run slice by slice and stop at the next slice when the client
disconnects.
The routes go on Gradio's FastAPI app at launch (`app_kwargs()`), so one port serves both APIs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server import docs, errors, gradio_api, openapi
from service import diff as diff_mod
from service import operations as service
from service import patching as patching_service
from service import reference, steering
from service import sweep as sweeps
from service.public import Cancelled

RETRY_AFTER_S = "1"


def _json(data: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def _error(exc: BaseException) -> Response:
    status, message = errors.describe(exc)
    headers = {"Retry-After": RETRY_AFTER_S} if status == errors.TOO_MANY else None
    return _json({"detail": message}, status, headers)


async def _body(request: Request) -> dict:
    """The request body as a JSON object; ValueError naming what was sent otherwise."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON ({exc}): send a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError(f"the body must be a JSON object, got {type(data).__name__}: {errors.one_line(raw[:80])}")
    return data


async def _answer(request: Request, fn: Callable[[dict], dict]) -> Response:
    try:
        body = await _body(request)
        return _json(await anyio.to_thread.run_sync(fn, body))
    except Exception as exc:
        return _error(exc)


async def _answer_get(fn: Callable[[], dict]) -> Response:
    try:
        return _json(fn())
    except Exception as exc:
        return _error(exc)


async def model_status(request: Request) -> Response:
    return await _answer_get(service.model_status)


async def steering_vector(request: Request) -> Response:
    return await _answer(request, steering.steering_vector)


async def steering_vectors(request: Request) -> Response:
    return await _answer_get(steering.steering_vectors)


async def load_model(request: Request) -> Response:
    return await _answer(request, service.load_body)


async def preview(request: Request) -> Response:
    return await _answer(request, service.preview)


async def step(request: Request) -> Response:
    return await _answer(request, service.step)


async def tree(request: Request) -> Response:
    """The tree computes level by level in a worker thread, each level one slice of the model lane."""
    return await _answer(request, service.tree)


async def _sliced(request: Request, open_stream: Callable[[dict], Iterator[dict]], what: str) -> Response:
    """Slice by slice in a worker thread; between slices, stop if the client has gone away."""
    try:
        stream = open_stream(await _body(request))
        try:
            while True:
                item = await anyio.to_thread.run_sync(next, stream, None)
                if item is None:
                    raise RuntimeError(f"the {what} ended without a result")
                if "result" in item:
                    return _json(item["result"])
                if await request.is_disconnected():
                    raise Cancelled("the client went away")
        finally:
            stream.close()  # stops the work and frees the lane (the thread has returned: no slice is running)
    except Exception as exc:
        return _error(exc)


async def attribution(request: Request) -> Response:
    return await _sliced(request, service.attribution_stream, "attribution")


async def sweep(request: Request) -> Response:
    return await _sliced(request, sweeps.sweep_stream, "sweep")


async def diff(request: Request) -> Response:
    return await _answer(request, diff_mod.diff)


async def reference_status(request: Request) -> Response:
    return await _answer_get(reference.reference_status)


async def remove_reference(request: Request) -> Response:
    return await _answer(request, reference.remove_reference)


async def patching(request: Request) -> Response:
    return await _sliced(request, patching_service.patching_stream, "patching")


async def openapi_json(request: Request) -> Response:
    return _json(openapi.document())


async def docs_page(request: Request) -> Response:
    return HTMLResponse(docs.page())


ROUTES = (
    Route("/api/model/status", model_status, methods=["GET"]),
    Route("/api/model/load", load_model, methods=["POST"]),
    Route("/api/preview", preview, methods=["POST"]),
    Route("/api/step", step, methods=["POST"]),
    Route("/api/attribution", attribution, methods=["POST"]),
    Route("/api/sweep", sweep, methods=["POST"]),
    Route("/api/tree", tree, methods=["POST"]),
    Route("/api/diff", diff, methods=["POST"]),
    Route("/api/reference/status", reference_status, methods=["GET"]),
    Route("/api/reference/remove", remove_reference, methods=["POST"]),
    Route("/api/patching", patching, methods=["POST"]),
    Route("/api/steering/vector", steering_vector, methods=["POST"]),
    Route("/api/steering/vectors", steering_vectors, methods=["GET"]),
    Route("/api/openapi.json", openapi_json, methods=["GET"]),
    Route("/api/docs", docs_page, methods=["GET"]),
)


def app_kwargs() -> dict:
    """Keyword arguments for Gradio's FastAPI app (`demo.launch(app_kwargs=...)`): these routes, and one-line
    answers to bodies Gradio's own routes cannot parse."""
    return gradio_api.app_kwargs() | {"routes": list(ROUTES)}
