"""The OpenAPI document of the REST API: valid OpenAPI 3.1, every route named, and the schema and the server agree
on what they refuse (a body the schema refuses is a 400 naming the field; a body it accepts is answered)."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from server import openapi, rest

DOCUMENT = openapi.document()
SELF = {"/api/openapi.json", "/api/docs"}  # the document and its page describe the others, not themselves
BASE = {"prompt": "The capital of France is", "use_chat_template": False, "top_k": 3, "params": {"greedy": True}}
TARGET = BASE | {"completion_ids": [7042], "target_index": 0}
DIFF = BASE | {"completion_ids": [7042, 28], "reference": {}}  # the main model itself: no memory of its own
# two tokens each, so the grid (30 layers x 2 positions) fits the small budgets
PATCH = {"prompt": " France is", "corrupted": " Italy is", "use_chat_template": False, "target_token_id": 7042,
         "contrast_token_id": 7268}  # fmt: skip


def refused(model: str, body: object) -> bool:
    """Whether the document's schema of `model` refuses `body`."""
    schema = {"$ref": f"#/components/schemas/{model}", "components": DOCUMENT["components"]}
    return not jsonschema.Draft202012Validator(schema).is_valid(body)


def test_the_document_is_valid_openapi_3_1():
    jsonschema.Draft202012Validator(OPENAPI_31).validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def test_the_document_names_every_route_with_its_method():
    routes = {(route.path, method.lower()) for route in rest.ROUTES for method in route.methods if method != "HEAD"}
    named = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert named == {(path, method) for path, method in routes if path not in SELF}


def test_ranges_are_stated_as_json_schema_keywords():
    schemas = DOCUMENT["components"]["schemas"]
    top_p = schemas["Params"]["properties"]["top_p"]["anyOf"][0]
    assert (top_p["exclusiveMinimum"], top_p["maximum"]) == (0, 1)
    width = schemas["TreeRequest"]["properties"]["width"]["anyOf"][0]
    assert (width["type"], width["minimum"], width["maximum"]) == ("integer", 1, 8)
    assert '"ge"' not in json.dumps(schemas) and '"le"' not in json.dumps(schemas)  # pydantic's unstated bounds


def test_every_body_has_its_answer_and_the_one_line_error():
    for item in (item for path_item in DOCUMENT["paths"].values() for item in path_item.values()):
        assert "200" in item["responses"]
        if "requestBody" in item:
            for code in ("400", "429"):
                schema = item["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorAnswer"}


def test_the_documentation_page_links_the_schema(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and 'spec-url="openapi.json"' in page.text
    assert client.get("/api/openapi.json").json() == DOCUMENT


REFUSED = [
    ("/api/preview", "PreviewRequest", BASE | {"params": {"top_p": 1.5}}, "top_p"),
    ("/api/preview", "PreviewRequest", BASE | {"nope": 1}, "nope"),
    ("/api/preview", "PreviewRequest", BASE | {"completion_ids": "abc"}, "completion_ids"),
    ("/api/preview", "PreviewRequest", BASE | {"top_k": "3"}, "top_k"),
    ("/api/preview", "PreviewRequest", BASE | {"params": {"temperature": -1}}, "temperature"),
    ("/api/preview", "PreviewRequest", BASE | {"constraint": {"type": "xml"}}, "type"),
    ("/api/step", "StepRequest", BASE | {"force_token_id": -1}, "force_token_id"),
    ("/api/tree", "TreeRequest", BASE | {"width": 99}, "width"),
    ("/api/attribution", "AttributionRequest", TARGET | {"method": "nope"}, "method"),
    ("/api/attribution", "AttributionRequest", TARGET | {"ig_steps": 0}, "ig_steps"),
    ("/api/sweep", "SweepRequest", TARGET | {"components": "neurons"}, "components"),
    ("/api/sweep", "SweepRequest", TARGET | {"mode": 0}, "mode"),
    ("/api/patching", "PatchingRequest", PATCH | {"site": "head"}, "site"),
    ("/api/patching", "PatchingRequest", {k: v for k, v in PATCH.items() if k != "corrupted"}, "corrupted"),
    ("/api/model/load", "LoadRequest", {"model_id": "embedded", "extra": 1}, "model_id"),
    ("/api/preview", "PreviewRequest", BASE | {"reference": {"dtype": "f8"}}, "reference.dtype"),
    ("/api/step", "StepRequest", BASE | {"reference": {"quantization": "int4"}}, "reference.quantization"),
    ("/api/diff", "DiffRequest", DIFF | {"reference": None}, "reference"),
    ("/api/diff", "DiffRequest", DIFF | {"completion_ids": []}, "completion_ids"),
    ("/api/reference/remove", "EmptyRequest", {"model": "x"}, "model"),
]


@pytest.mark.parametrize(("path", "model", "body", "field"), REFUSED)
def test_a_body_the_schema_refuses_is_a_400_naming_the_field(client, path, model, body, field):
    assert refused(model, body)
    answer = client.post(path, json=body)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert field in detail and "\n" not in detail, detail


ACCEPTED = [
    ("/api/preview", "PreviewRequest", BASE),
    ("/api/step", "StepRequest", BASE | {"force_text": " Paris"}),
    ("/api/tree", "TreeRequest", BASE | {"width": 2, "depth": 1}),
    ("/api/attribution", "AttributionRequest", TARGET),
    ("/api/sweep", "SweepRequest", TARGET | {"components": "mlps"}),
    ("/api/preview", "PreviewRequest", BASE | {"reference": {"dtype": "float32"}}),
    ("/api/diff", "DiffRequest", DIFF),
    ("/api/reference/remove", "EmptyRequest", {}),
    ("/api/patching", "PatchingRequest", PATCH),
]


@pytest.mark.parametrize(("path", "model", "body"), ACCEPTED)
def test_a_body_the_schema_accepts_is_answered(client, path, model, body):
    assert not refused(model, body)
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"prompt": "a", "params": {"temperature": NaN}}', "not JSON"),
        (b'{"prompt": "a", "top_k": 1' + b"0" * 400 + b"}", "not JSON"),
        (b'{"prompt": "a", "params": {"seed": 1' + b"0" * 30 + b"}}", "seed"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_malformed_bodies_are_a_400_with_one_line(client, raw, words):
    answer = client.post("/api/preview", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert words in detail and "\n" not in detail, detail


def test_the_reference_status_follows_a_request_and_its_removal(client):
    assert client.post("/api/preview", json=BASE | {"reference": {}}).status_code == 200
    status = client.get("/api/reference/status").json()
    assert status["state"] == "ready" and status["model_id"] == "SmolLM2-135M-Instruct"
    assert client.post("/api/reference/remove", json={}).json()["state"] == "none"
    assert client.get("/api/reference/status").json()["state"] == "none"


def test_a_reference_over_the_memory_budget_is_a_400_naming_the_limit(client, embedded):
    weights = sum(p.numel() for p in {id(p): p for p in embedded.model.parameters()}.values())  # tied: once
    mib = math.ceil(weights * 2 / 2**20)  # two bytes each in bfloat16
    answer = client.post("/api/preview", json=BASE | {"reference": {"dtype": "bfloat16"}})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith(f"the reference's weights is {mib} MiB; this server allows 1 (--max-reference-mb"), detail
