"""Requests generated from the OpenAPI document (schemathesis), in process on the embedded model: the server never
fails (no 5xx), every answer is the documented one, a body the schema refuses is refused, and afterwards a
normal preview is answered as before."""

from __future__ import annotations

import json

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import APP

# Per operation and generation mode. SMALL_BUDGETS caps each accepted request at a few forward passes (tens of
# milliseconds); most generated bodies are refused before any model work (about a millisecond). 60 examples x
# 2 modes, plus the boundary cases of the coverage phase, make a couple of hundred requests per operation: enough
# to reach every field and refusal, cheap enough for every CI run with every operation the API now has.
EXAMPLES = 60
SEED = 20261207

schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)
schema.config.seed = SEED
schema.config.generation.update(
    modes=["positive", "negative"], max_examples=EXAMPLES, deterministic=True, database="none"
)
NORMAL = {"prompt": "The capital of France is", "use_chat_template": False, "top_k": 5, "params": {"greedy": True}}


def one_line_detail(ctx, response, case) -> None:
    """A refusal is `{"detail": "<one line>"}`."""
    if response.status_code == 400:
        detail = json.loads(response.content)["detail"]
        assert detail and "\n" not in detail, detail


@pytest.fixture(scope="module")
def normal_answer(client) -> dict:
    response = client.post("/api/preview", json=NORMAL)
    assert response.status_code == 200
    return response.json()


@schema.parametrize()
def test_generated_requests(case, client, normal_answer):
    case.call_and_validate(
        session=client,
        checks=[
            not_a_server_error, response_schema_conformance, content_type_conformance, status_code_conformance,
            negative_data_rejection,
        ],
        additional_checks=[globals()["one_line_detail"]],
    )  # fmt: skip


def test_a_normal_preview_still_answers_as_before(client, normal_answer):
    response = client.post("/api/preview", json=NORMAL)
    assert response.status_code == 200
    assert response.json() == normal_answer
