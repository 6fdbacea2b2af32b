"""The REST API on the launched app (cli.launch, one port with Gradio): the earlier tool's paths and bodies.

Every bad body is a 400 with a one-line `detail`; a full model queue is 429; a step sent while a long
attribution runs finishes first; a client that goes away stops its attribution at the next slice.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from attribution import clear_cache
from attribution import gradients as gradients_mod
from backends.lane import LANE
from backends.model import STORE
from service import operations as service

PROMPT = "The capital of France is"
# The request body of the earlier tool, every field spelled out
PARAMS = {
    "temperature": 0.7, "top_p": 0.8, "repetition_penalty": 1.05, "presence_penalty": 0.0, "frequency_penalty": 0.0,
    "seed": 7, "stop_sequences": [], "greedy": False,
}  # fmt: skip
BODY = {
    "branch_id": "default", "prompt": PROMPT, "system_prompt": "", "use_chat_template": False, "completion_ids": [],
    "top_k": 10, "params": PARAMS, "constraint": {"enabled": False, "type": "regex", "schema": ""},
}  # fmt: skip
STEP = BODY | {"reset_rng": False, "force_token_id": None, "force_text": None}
ATTRIBUTION = BODY | {
    "completion_ids": [7042], "target_index": 0, "target_token_id": 7042, "contrast_token_id": None,
    "method": "saliency", "aggregation": "l2", "granularity": "token", "ig_steps": 16,
}  # fmt: skip
WAIT_S = 120  # bound for a background request to reach a state; hit only when the code is broken


@pytest.fixture(scope="module")
def url(embedded, launched_url):
    STORE.use(embedded)
    return launched_url


@pytest.fixture
def points(monkeypatch) -> list[int]:
    """Integrated gradients one path point per slice; the list grows by one per point computed."""
    clear_cache()
    monkeypatch.setattr(gradients_mod, "IG_TOKEN_BUDGET", 1)
    seen: list[int] = []
    real = gradients_mod._path_gradients
    monkeypatch.setattr(gradients_mod, "_path_gradients", lambda *a: seen.append(1) or real(*a))
    return seen


def wait_until(predicate) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for a background request"
        time.sleep(0.005)


def post(url: str, path: str, body) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(url + path, content=content, headers={"content-type": "application/json"}, timeout=WAIT_S)


def test_status_and_the_earlier_bodies_answer_json(url):
    status = httpx.get(url + "/api/model/status")
    assert status.status_code == 200 and status.json()["state"] == "ready"
    preview = post(url, "/api/preview", BODY)
    assert preview.status_code == 200 and preview.headers["content-type"] == "application/json"
    assert preview.json()["dist"]["tokens"][0]["display"] == "␣Paris"
    step = post(url, "/api/step", STEP | {"params": PARAMS | {"greedy": True}}).json()
    assert step["completion_ids"] == [7042] and len(step["appended"]) == 1
    out = post(url, "/api/attribution", ATTRIBUTION).json()
    assert len(out["scores"]) == out["prompt_length"] and out["signed"] is False
    assert out["target"]["id"] == 7042 and out["target_index"] == 0


def test_the_gradio_api_still_answers_on_the_same_port(url):
    posted = post(url, "/gradio_api/call/preview", {"data": [BODY]})
    assert posted.status_code == 200 and "event_id" in posted.json()


BAD_BODIES = [
    ("not json", "the body is not JSON"),
    ('{"prompt": ', "the body is not JSON"),
    ("[]", "the body must be a JSON object, got list"),
    ('"x"', "the body must be a JSON object, got str"),
    ("5", "the body must be a JSON object, got int"),
    ("null", "the body must be a JSON object, got NoneType"),
    ("", "the body is not JSON"),
    ("{}", "prompt is empty"),
    ('{"prompt": 5}', "prompt must be a string"),
    ('{"prompt": "a", "temperature": 1}', "unknown key 'temperature'"),
    ('{"prompt": "a", "params": {"top_p": 1.5}}', "top_p"),
    ('{"prompt": "a", "completion_ids": [1.5]}', "completion_ids"),
]


@pytest.mark.parametrize("path", ["/api/preview", "/api/step", "/api/attribution"])
@pytest.mark.parametrize(("body", "words"), BAD_BODIES)
def test_bad_bodies_are_400_with_one_line(url, path, body, words):
    answer = post(url, path, body)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail, detail


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model_id": 5}, "model id"),
        ({"model_id": ""}, "empty"),
        ({}, '{"model_id"'),
        ({"model": "embedded"}, '{"model_id"'),
        ([], "JSON object"),
        ({"model_id": "/no/such/model/folder"}, "/no/such/model/folder"),
    ],
)
def test_bad_load_bodies_are_400_and_the_model_stays(url, body, words):
    answer = post(url, "/api/model/load", body)
    assert answer.status_code == 400 and words in answer.json()["detail"], answer.text
    assert httpx.get(url + "/api/model/status").json()["state"] == "ready"


def test_a_full_queue_is_429(url, monkeypatch):
    monkeypatch.setattr(LANE, "max_waiting", 1)
    release, answers = threading.Event(), []

    def hold():
        with LANE.hold():
            release.wait(WAIT_S)

    threading.Thread(target=hold, daemon=True).start()
    wait_until(lambda: LANE.busy)
    waiter = threading.Thread(target=lambda: answers.append(post(url, "/api/step", STEP)), daemon=True)
    waiter.start()
    wait_until(lambda: LANE.waiting == 1)
    refused = post(url, "/api/preview", BODY)
    release.set()
    waiter.join(WAIT_S)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "queue is full" in refused.json()["detail"]
    assert answers[0].status_code == 200


def test_a_step_sent_after_a_long_attribution_started_finishes_first(url, points):
    order = []
    long_one = ATTRIBUTION | {"method": "integrated_gradients", "ig_steps": 8}
    job = threading.Thread(target=lambda: order.append(("attribution", post(url, "/api/attribution", long_one))))
    job.start()
    wait_until(lambda: points)
    order.append(("step", post(url, "/api/step", STEP)))
    job.join(WAIT_S)
    assert [name for name, _ in order] == ["step", "attribution"]
    assert all(answer.status_code == 200 for _, answer in order)
    assert len(points) == 8


def test_a_client_that_goes_away_stops_the_attribution(url, points, monkeypatch):
    ended = []
    real = service.attribution_stream

    def recorded(request):
        try:
            yield from real(request)
        finally:
            ended.append(len(points))

    monkeypatch.setattr(service, "attribution_stream", recorded)
    body = json.dumps(ATTRIBUTION | {"method": "integrated_gradients", "ig_steps": 64}).encode()
    host, port = url.removeprefix("http://").split(":")
    head = f"POST /api/attribution HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_until(lambda: points)
    wait_until(lambda: ended)
    assert ended[0] < 64 and not LANE.busy
    assert post(url, "/api/step", STEP).status_code == 200  # the lane is free again
