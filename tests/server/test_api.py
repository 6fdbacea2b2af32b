"""The public API through gradio_client against a launched app on the embedded model."""

from __future__ import annotations

import pytest
from gradio_client import Client

import app
from backends.model import STORE

PROMPT = "The capital of France is"


def request(**extra) -> dict:
    base = {"prompt": PROMPT, "use_chat_template": False, "top_k": 5, "params": {"greedy": True}}
    return base | extra


@pytest.fixture(scope="module")
def client(embedded):
    STORE.use(embedded)
    demo = app.build()
    demo.queue(max_size=16).launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_model_status_reports_the_embedded_model(client):
    status = client.predict(api_name="/model_status")
    assert status["state"] == "ready"
    assert status["model_id"] == "SmolLM2-135M-Instruct"
    assert status["vocab_size"] == 49152 and status["has_chat_template"] is True
    assert status["context_length"] > 0 and status["dtype"] == "float32"


def test_preview_returns_the_documented_shape(client):
    out = client.predict(request(), api_name="/preview")
    assert [t["display"] for t in out["prompt_tokens"]][:2] == ["The", "␣capital"]
    dist = out["dist"]
    assert dist["tokens"][0]["display"] == "␣Paris"
    row = dist["tokens"][0]
    assert set(row) >= {"id", "text", "display", "special", "p_base", "p_final", "kept", "valid"}
    assert set(dist) >= {"other_p_base", "other_p_final", "kept_token_count", "constraint_active", "constraint_type"}
    assert out["completion_ids"] == [] and out["finished"] is False


def test_step_appends_and_steps_through_the_sentence(client):
    ids = []
    for _ in range(3):
        out = client.predict(request(completion_ids=ids), api_name="/step")
        assert len(out["appended"]) == 1 and out["appended_meta"][0]["how"] == "greedy"
        ids = out["completion_ids"]
    assert out["completion_text"].startswith(" Paris")


def test_forced_token_and_text(client):
    forced = client.predict(request(force_token_id=7042), api_name="/step")
    assert forced["completion_ids"] == [7042] and forced["appended_meta"][0]["how"] == "forced_token"
    text = client.predict(request(force_text=" a city"), api_name="/step")
    assert text["completion_text"] == " a city" and len(text["appended_meta"]) == len(text["appended"])


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"prompt": ""}, "prompt"),
        ({"params": {"temperature": -0.5}}, "temperature"),
        ({"params": {"top_p": 1.5}}, "top_p"),
        ({"params": {"top_p": 0}}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 49153}, "top_k"),
        ({"params": {"repetition_penalty": 0}}, "repetition_penalty"),
        ({"params": {"presence_penalty": 3}}, "presence_penalty"),
        ({"params": {"frequency_penalty": -3}}, "frequency_penalty"),
        ({"completion_ids": [1.5]}, "completion_ids"),
        ({"completion_ids": [49152]}, "completion_ids"),
        ({"force_token_id": -1}, "force_token_id"),
        ({"force_token_id": "x"}, "force_token_id"),
        ({"completion_ids": [504] * 8200}, "context"),
    ],
)
def test_bad_input_gives_a_clear_message(client, bad, words):
    with pytest.raises(Exception) as info:
        client.predict(request() | bad, api_name="/step")
    assert words in str(info.value)
    assert "Traceback" not in str(info.value)


def test_unknown_model_keeps_the_current_one(client):
    with pytest.raises(Exception) as info:
        client.predict("no-such-org/no-such-model", api_name="/load_model")
    assert "no-such-org/no-such-model" in str(info.value)
    status = client.predict(api_name="/model_status")
    assert status["state"] == "ready" and status["model_id"] == "SmolLM2-135M-Instruct"
    assert client.predict(request(), api_name="/preview")["dist"]["tokens"][0]["display"] == "␣Paris"


def test_attribution_scores_every_context_token(client):
    ids = client.predict(request(), api_name="/step")["completion_ids"]
    out = client.predict(request(completion_ids=ids, target_index=0, method="saliency"), api_name="/attribution")
    assert len(out["scores"]) == len(out["context_tokens"]) == out["prompt_length"]
    assert out["target"]["display"] == "␣Paris" and "L2" in out["aggregation"]
    candidate = client.predict(request(target_token_id=7042, method="attention"), api_name="/attribution")
    assert len(candidate["normalized"]) == len(candidate["context_tokens"])


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"target_index": 3}, "target_index"),
        ({"target_token_id": 49152}, "target_token_id"),
        ({"target_token_id": 5, "method": "magic"}, "method"),
        ({"target_token_id": 5, "method": "integrated_gradients", "ig_steps": 1000}, "ig_steps"),
        ({}, "give target_index"),
    ],
)
def test_attribution_bad_input_is_named(client, bad, words):
    with pytest.raises(Exception) as info:
        client.predict(request() | bad, api_name="/attribution")
    assert words in str(info.value)
