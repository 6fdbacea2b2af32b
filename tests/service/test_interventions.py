"""Model edits through the service: every wrong shape refused in one line, the budget, and the look-ahead tree, the
attribution methods, compare and steering vectors on the edited model, checked against independent computations."""

from __future__ import annotations

import math

import pytest
import torch

from backends.model import STORE
from service import operations as service
from service.budgets import PUBLIC_BUDGETS

PROMPT = "Once upon a time there was a"
FULL = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 3}
HEAD = {"type": "ablate", "layer": 1, "head": 2}


@pytest.fixture
def tiny_store(tiny, embedded):
    """The tiny random Llama (2 layers, 4 heads, d_model 64) as the shared model, the embedded one afterwards."""
    STORE.use(tiny)
    yield tiny
    STORE.use(embedded)


def body(edits, **extra) -> dict:
    data = {"prompt": PROMPT, "use_chat_template": False, "top_k": 8, "params": FULL, "interventions": edits}
    return data | extra


@pytest.mark.parametrize(
    ("edits", "words"),
    [
        (5, "interventions must be a list"),
        ([5], "interventions[0] must be an object"),
        ([{"type": "x"}], "interventions[0].type 'x' is not accepted: use one of ablate, steer"),
        ([{"type": "ablate", "head": 0}], "interventions[0] has no layer"),
        ([{"type": "ablate", "layer": -1, "head": 0}], "interventions[0].layer -1 is out of range"),
        ([{"type": "ablate", "layer": 0.5, "head": 0}], "interventions[0].layer 0.5 is not an integer"),
        ([{"type": "ablate", "layer": 0}], "interventions[0] has neither of head and component"),
        ([{"type": "ablate", "layer": 0, "head": 0, "component": "mlp"}], "has both of head and component"),
        ([{"type": "ablate", "layer": 0, "head": 0, "mode": "half"}], "mode 'half' is not accepted: use one of zero"),
        ([{"type": "ablate", "layer": 0, "component": "x"}], "component 'x' is not accepted: use one of attention"),
        ([{"type": "ablate", "layer": 0, "head": 0, "extra": 1}], "unknown key 'extra' in interventions[0]"),
        ([{"type": "steer", "layer": 0, "vector": [1.0], "alpha": math.inf}], "alpha inf is not a finite number"),
        ([{"type": "steer", "layer": 0, "vector": [1.0], "alpha": "1"}], "alpha '1' is not a number"),
        ([{"type": "steer", "layer": 0, "vector": [1.0]}], "interventions[0] has no alpha"),
        ([{"type": "steer", "layer": 0, "vector": [], "alpha": 1}], "vector [] is not accepted"),
        ([{"type": "steer", "layer": 0, "vector": [math.nan], "alpha": 1}], "vector[0] nan is not a finite number"),
        # held to the model: 2 layers, 4 heads, d_model 64
        ([{"type": "ablate", "layer": 2, "head": 0}], "layer 2 is out of range: this model has layers 0 to 1"),
        ([{"type": "ablate", "layer": 0, "head": 4}], "head 4 is out of range: this model has heads 0 to 3"),
        ([{"type": "steer", "layer": 0, "vector": [1.0] * 3, "alpha": 1}], "vector has 3 floats: this model's"),
        ([{"type": "steer", "layer": 0, "vector": "sv-none", "alpha": 1}], "'sv-none' is not a steering vector"),
    ],
)
def test_a_bad_intervention_is_refused_in_one_line(tiny_store, edits, words):
    for operation in (service.preview, service.step, service.tree):
        with pytest.raises(ValueError) as refused:
            operation(body(edits))
        assert words in str(refused.value)
        assert "\n" not in str(refused.value)


def test_the_budget_bounds_the_number_of_interventions(tiny_store, monkeypatch):
    monkeypatch.setattr(service.POLICY, "_settings", service.POLICY.settings)
    service.POLICY.configure(public=True, budgets=PUBLIC_BUDGETS.with_limits(max_interventions=2))
    with pytest.raises(ValueError, match=r"interventions is 3 interventions; this server allows 2 \(--max-interv"):
        service.preview(body([HEAD] * 3))
    assert service.preview(body([HEAD] * 2))["dist"]["edits"]


def test_the_tree_grows_on_the_edited_model(tiny_store):
    edits = [{"type": "ablate", "layer": 0, "head": 1, "mode": "mean"}, HEAD]
    tree = service.tree(body(edits, width=2, depth=2))
    for node in tree["children"]:
        for child in node["children"]:
            preview = service.preview(body(edits, completion_ids=node["path_ids"], top_k=50))
            row = next(r for r in preview["dist"]["tokens"] if r["id"] == child["path_ids"][-1])
            assert child["p_final"] == pytest.approx(row["p_final"], rel=1e-4)


def edited_log_p(edits, target: int) -> float:
    preview = service.preview(body(edits, top_k=1000))
    return math.log(next(r["p_base"] for r in preview["dist"]["tokens"] if r["id"] == target))


@pytest.mark.parametrize("method", ["saliency", "attention", "ablation", "integrated_gradients"])
def test_attribution_explains_the_edited_model(tiny_store, method):
    vector = torch.randn(64, generator=torch.Generator().manual_seed(2)).tolist()
    for edits in ([HEAD], [{"type": "steer", "layer": 0, "vector": vector, "alpha": 3.0}]):
        target = service.preview(body(edits))["dist"]["tokens"][0]["id"]
        answer = service.attribution(body(edits, target_token_id=target, method=method))
        assert answer["target_logprob"] == pytest.approx(edited_log_p(edits, target), abs=1e-4)
        unedited = service.attribution(body([], target_token_id=target, method=method))
        assert unedited["target_logprob"] != pytest.approx(answer["target_logprob"], abs=1e-6)


def test_a_mean_ablation_with_a_method_that_splits_the_context_is_refused(tiny_store):
    mean = [{"type": "ablate", "layer": 0, "component": "mlp", "mode": "mean"}]
    with pytest.raises(ValueError, match="cannot take a mean ablation"):
        service.attribution(body(mean, target_token_id=5, method="attention"))
    target = service.preview(body(mean))["dist"]["tokens"][0]["id"]
    answer = service.attribution(body(mean, target_token_id=target, method="saliency"))
    assert answer["target_logprob"] == pytest.approx(edited_log_p(mean, target), abs=1e-4)


def test_compare_runs_both_branches_on_the_edited_model(tiny_store):
    edits = [HEAD]
    stepped = service.step(body(edits))
    found = service.compare(body(edits, completion_ids=stepped["completion_ids"]), [])
    assert found["steps"][0]["entropy_bits"] is not None
    plain = service.compare(body([], completion_ids=stepped["completion_ids"]), [])
    assert found["steps"][0]["entropy_bits"] != pytest.approx(plain["steps"][0]["entropy_bits"], abs=1e-9)
