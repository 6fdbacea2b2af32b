"""The REST API's ablation sweep: answered as its answer model states, on the edited model too, cells equal to the
preview with that ablation, and each bad body a one-line 400 (the budget included)."""

from __future__ import annotations

import math

import pytest

from service.contract.answers import SweepAnswer

FULL = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}  # every row kept: ranked by p_base
BODY = {"prompt": "The capital of France is", "use_chat_template": False, "top_k": 20, "params": FULL}
PARIS = 7042


def log_p(client, edits) -> float:
    rows = client.post("/api/preview", json=BODY | {"interventions": edits}).json()["dist"]["tokens"]
    return math.log(next(row["p_base"] for row in rows if row["id"] == PARIS))


@pytest.mark.parametrize("edits", [[], [{"type": "ablate", "layer": 2, "head": 3}]])
def test_a_sweep_of_the_mlps_matches_the_preview_with_each_ablation(client, edits):
    answer = client.post("/api/sweep", json=BODY | {"target_token_id": PARIS, "components": "mlps", "mode": "mean",
                                                    "interventions": edits})  # fmt: skip
    assert answer.status_code == 200, answer.text
    found = SweepAnswer.model_validate(answer.json())
    assert len(found.grid) == 30 and found.score == f"log p(token {PARIS})"
    assert found.baseline.score == pytest.approx(log_p(client, edits), abs=1e-4)
    shown = [layer for layer, cell in enumerate(found.grid) if cell.rank <= BODY["top_k"]]
    assert len(shown) >= 3  # (the rest push Paris out of the preview's rows, as their ranks say)
    for layer in (shown[0], shown[len(shown) // 2], shown[-1], min(range(30), key=lambda i: -found.grid[i].rank)):
        mlp = {"type": "ablate", "layer": layer, "component": "mlp", "mode": "mean"}
        rows = client.post("/api/preview", json=BODY | {"interventions": [*edits, mlp]}).json()["dist"]["tokens"]
        p_base = {row["id"]: row["p_base"] for row in rows}
        if found.grid[layer].rank > BODY["top_k"]:
            assert PARIS not in p_base
            continue
        assert 1 + sum(p > p_base[PARIS] for p in p_base.values()) == found.grid[layer].rank
        assert found.grid[layer].delta == pytest.approx(log_p(client, [*edits, mlp]) - found.baseline.score, abs=1e-4)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"target_token_id": PARIS}, "the sweep (5 context tokens x 270 heads) is 1,350 token-components; this server"),
        ({"target_token_id": PARIS, "components": "mlps", "x": 1}, "x"),
        ({"components": "mlps"}, "give target_index"),
        ({"target_token_id": PARIS, "components": "mlps", "contrast_token_id": 10**6}, "contrast_token_id"),
    ],
)
def test_a_bad_sweep_is_a_one_line_400(client, extra, words):
    answer = client.post("/api/sweep", json=BODY | extra)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert words in detail and "\n" not in detail, detail
