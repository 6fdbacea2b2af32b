"""Gradio's HTTP API (POST /gradio_api/call/<name>) answers every malformed call with one line naming what it accepts.

Raw HTTP, as a client in another language would call it: an empty or too long `data` list, a request
that is not an object, a body that is not `{"data": [...]}` or not JSON at all.
"""

from __future__ import annotations

import json

import gradio as gr
import httpx
import pytest

from backends.model import STORE
from server import gradio_api

PROMPT = "The capital of France is"
REQUEST = {"prompt": PROMPT, "use_chat_template": False, "top_k": 3, "params": {"greedy": True}}


@pytest.fixture(scope="module")
def url(embedded, launched_url):
    STORE.use(embedded)
    return launched_url


def call(url: str, name: str, body) -> tuple[str, object]:
    """('complete' | 'error' | 'http <status>', payload) of one call through Gradio's two-request HTTP API."""
    content = body if isinstance(body, str) else json.dumps(body)
    posted = httpx.post(f"{url}/gradio_api/call/{name}", content=content, headers={"content-type": "application/json"})
    if posted.status_code != 200:
        return f"http {posted.status_code}", posted.json()
    stream = httpx.get(f"{url}/gradio_api/call/{name}/{posted.json()['event_id']}", timeout=120).text
    events = [line[len("event: ") :] for line in stream.splitlines() if line.startswith("event: ")]
    data = [line[len("data: ") :] for line in stream.splitlines() if line.startswith("data: ")]
    return events[-1], json.loads(data[-1])


def assert_one_line(message: object, *words: str) -> None:
    assert isinstance(message, str) and message and "\n" not in message, message
    assert "Something went wrong" not in message and "TypeError" not in message
    for word in words:
        assert word in message, message


def test_a_good_call_completes(url):
    event, data = call(url, "preview", {"data": [REQUEST]})
    assert event == "complete"
    assert data[0]["dist"]["tokens"][0]["display"] == "␣Paris"
    event, data = call(url, "model_status", {"data": []})
    assert event == "complete" and data[0]["state"] == "ready"


def test_model_status_takes_no_values(url):
    event, data = call(url, "model_status", {"data": [1]})
    assert event == "error"
    assert_one_line(data["error"], "got 1 value;", "model_status takes no values")


@pytest.mark.parametrize("name", ["preview", "step", "attribution", "load_model"])
@pytest.mark.parametrize("values", [[], [REQUEST, REQUEST]])
def test_wrong_number_of_values_names_what_is_accepted(url, name, values):
    event, data = call(url, name, {"data": values})
    assert event == "error"
    assert_one_line(data["error"], f"got {len(values)} values", name, "exactly one value")


@pytest.mark.parametrize("name", ["preview", "step", "attribution", "sweep"])
@pytest.mark.parametrize("request_value", ["x", 5, None, [REQUEST], True])
def test_a_request_that_is_not_an_object_is_refused_in_one_line(url, name, request_value):
    event, data = call(url, name, {"data": [request_value]})
    assert event == "error"
    assert_one_line(data["error"], "object")


def test_a_load_model_id_that_is_not_text_is_refused_in_one_line(url):
    event, data = call(url, "load_model", {"data": [5]})
    assert event == "error"
    assert_one_line(data["error"], "5")


@pytest.mark.parametrize("body", [[], {}, {"data": None}, {"data": "x"}, "not json", '{"data": [', "5"])
def test_a_body_that_is_not_a_data_object_names_the_accepted_shape(url, body):
    event, data = call(url, "step", body)
    assert event == "http 422"
    assert_one_line(data["detail"], '{"data": [...]}', "exactly one value, the request object")


def test_a_bad_request_value_keeps_the_service_message(url):
    event, data = call(url, "step", {"data": [REQUEST | {"params": {"top_p": 1.5}}]})
    assert event == "error"
    assert_one_line(data["error"], "top_p")


def test_the_queue_does_not_rebuild_its_analytics_after_every_event():
    """Gradio's queue reads these when it is made: its pandas summary of past events is rebuilt rarely."""
    with gr.Blocks() as demo:
        gradio_api.register(demo)
    demo.queue()
    assert demo._queue.ANAYLTICS_CACHE_FREQUENCY >= 1_000_000
    assert demo._queue.ANALYTICS_MAX_EVENTS <= 1000


def test_steering_vectors_and_interventions_over_gradio(url):
    event, made = call(url, "steering_vector", {"data": [{"layer": 3, "positive": ["good"], "negative": ["bad"]}]})
    assert event == "complete" and made[0]["pairs"] == 1 and made[0]["id"].startswith("sv-")
    event, listed = call(url, "steering_vectors", {"data": []})
    assert event == "complete" and made[0]["id"] in [v["id"] for v in listed[0]["vectors"]]
    steer = {"type": "steer", "layer": 3, "vector": made[0]["id"], "alpha": 4.0}
    event, data = call(url, "preview", {"data": [REQUEST | {"interventions": [steer]}]})
    assert event == "complete"
    assert data[0]["dist"]["edits"] == ["layer 3 steered toward “good” / away from “bad” x 4"]
    event, data = call(url, "steering_vector", {"data": [{"layer": 3, "positive": ["good"], "negative": []}]})
    assert event == "error"
    assert_one_line(data["error"], "negative")
