"""The REST API's model edits: steering vectors made and listed, interventions in preview, step, tree and
attribution, each bad body refused with a one-line 400."""

from __future__ import annotations

import pytest

PROMPT = "I think this movie is"
BODY = {"prompt": PROMPT, "use_chat_template": False, "top_k": 5, "params": {"greedy": True}}
HEAD = {"type": "ablate", "layer": 2, "head": 3, "mode": "zero"}


def test_a_steering_vector_made_listed_and_used(client, embedded):
    made = client.post("/api/steering/vector", json={"layer": 4, "positive": ["great"], "negative": ["awful"]})
    assert made.status_code == 200, made.text
    vector = made.json()
    assert set(vector) == {"id", "layer", "norm", "pairs", "positive", "negative"} and vector["pairs"] == 1
    listed = client.get("/api/steering/vectors").json()["vectors"]
    assert vector["id"] in [v["id"] for v in listed]
    steer = {"type": "steer", "layer": 4, "vector": vector["id"], "alpha": 8.0}
    preview = client.post("/api/preview", json=BODY | {"interventions": [steer]}).json()
    rows = preview["dist"]["tokens"]
    assert preview["dist"]["edits"] == ["layer 4 steered toward “great” / away from “awful” x 8"]
    assert any(row["p_base"] != row["p_base_unedited"] for row in rows)
    width = embedded.model.config.hidden_size
    floats = steer | {"vector": [0.01] * width, "name": "toward joy"}  # a vector of floats, named by the caller
    preview = client.post("/api/preview", json=BODY | {"interventions": [floats]}).json()
    assert preview["dist"]["edits"] == ["layer 4 steered toward joy x 8"]
    refused = client.post("/api/preview", json=BODY | {"interventions": [floats | {"name": "x" * 201}]})
    assert refused.status_code == 400 and "interventions[0].name" in refused.text and "200" in refused.text


@pytest.mark.parametrize("path", ["/api/preview", "/api/step", "/api/tree", "/api/attribution"])
def test_every_request_kind_takes_interventions(client, path):
    extra = {"target_token_id": 13, "method": "saliency"} if path == "/api/attribution" else {}
    extra |= {"width": 2, "depth": 1} if path == "/api/tree" else {}
    answer = client.post(path, json=BODY | extra | {"interventions": [HEAD]})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/api/preview", BODY | {"interventions": [HEAD | {"head": 99}]}, "head 99 is out of range"),
        ("/api/preview", BODY | {"interventions": [{"type": "steer", "layer": 0, "vector": "nope", "alpha": 1}]},
         "'nope' is not a steering vector"),
        ("/api/preview", BODY | {"interventions": [HEAD] * 5}, "interventions is 5 interventions; this server allows 4"),
        ("/api/steering/vector", {"layer": 99, "positive": ["a"], "negative": ["b"]}, "layer 99 is out of range"),
        ("/api/steering/vector", {"layer": 0, "positive": ["a"], "negative": ["b"], "x": 1}, "unknown key 'x'"),
        ("/api/steering/vector", {"layer": 0, "positive": ["a", "c"], "negative": ["b"]}, "give as many of each"),
        ("/api/steering/vector", {"layer": 0, "positive": "a", "negative": ["b"]}, "positive must be a list"),
        ("/api/steering/vector", {"positive": ["a"], "negative": ["b"]}, "layer is missing"),
    ],
)  # fmt: skip
def test_a_bad_body_is_a_one_line_400(client, path, body, words):
    answer = client.post(path, json=body)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert words in detail and "\n" not in detail
