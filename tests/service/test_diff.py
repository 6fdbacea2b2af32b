"""The teacher-forced diff: each position and llama.cpp's summary against both models' logits from one plain
forward call each, computed here; the main model against itself; refusals."""

from __future__ import annotations

import math

import pytest
import torch

from service.diff import diff

PROMPT = "Once upon a time there was a"
FULL = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 3}
TEXT = " little cat who lived in a big house near the river and liked to sleep"


def body(tiny, reference) -> dict:
    completion = tiny.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    return {"prompt": PROMPT, "use_chat_template": False, "params": FULL, "completion_ids": completion} | {
        "reference": reference
    }


def all_logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double()


def percentile(values: list[float], q: float) -> float:
    """Linear between the closest ranks (what the code documents), written out."""
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_positions_and_summary_equal_a_computation_from_both_models_logits(tiny_reference_store, other_folder):
    from transformers import AutoModelForCausalLM

    request = body(tiny_reference_store, {"model": other_folder})
    prompt = tiny_reference_store.tokenizer(PROMPT)["input_ids"]
    completion = request["completion_ids"]
    ids = [*prompt, *completion]
    reference = AutoModelForCausalLM.from_pretrained(other_folder, dtype=torch.float32)
    rows = slice(len(prompt) - 1, len(ids) - 1)  # the row before each completion token
    log_p = torch.log_softmax(all_logits(tiny_reference_store.model, ids)[rows], -1)
    log_q = torch.log_softmax(all_logits(reference, ids)[rows], -1)
    kls = ((log_p.exp() * (log_p - log_q)).sum(-1) / math.log(2)).tolist()
    agrees = (log_p.argmax(-1) == log_q.argmax(-1)).tolist()
    actual = torch.tensor(completion)
    p_actual = log_p.exp()[torch.arange(len(completion)), actual]
    q_actual = log_q.exp()[torch.arange(len(completion)), actual]

    found = diff(request)
    assert found["prompt_length"] == len(prompt) and len(found["positions"]) == len(completion)
    for j, position in enumerate(found["positions"]):
        assert position["token"]["id"] == completion[j]
        assert position["kl_base"] == pytest.approx(kls[j], rel=1e-6, abs=1e-12)
        assert position["kl_final"] == pytest.approx(kls[j], rel=1e-4, abs=1e-9)
        assert position["top_agrees"] is agrees[j]
        assert position["p_base_main"] == pytest.approx(float(p_actual[j]), abs=1e-7)
        assert position["p_final_reference"] == pytest.approx(float(q_actual[j]), abs=1e-7)
    summary = found["summary"]
    spread = summary["kl_base"]
    assert spread["mean"] == pytest.approx(sum(kls) / len(kls), rel=1e-6)
    for key, q in (("p90", 90), ("p99", 99), ("p99_9", 99.9)):
        assert spread[key] == pytest.approx(percentile(kls, q), rel=1e-6)
    assert spread["max"] == pytest.approx(max(kls), rel=1e-6)
    assert summary["same_top"] == pytest.approx(sum(agrees) / len(agrees))
    rms = math.sqrt(float(((p_actual - q_actual) ** 2).mean()))
    assert summary["rms_delta_p_base"] == pytest.approx(rms, rel=1e-5)
    assert summary["first_divergence"] == next((j for j, a in enumerate(agrees) if not a), None)
    assert summary["kl_final_infinite"] == 0


def test_the_main_model_against_itself_is_kl_zero_everywhere(tiny_reference_store):
    found = diff(body(tiny_reference_store, {}))
    summary = found["summary"]
    assert summary["kl_final"]["max"] == 0.0 and summary["kl_base"]["max"] == 0.0
    assert summary["same_top"] == 1.0 and summary["first_divergence"] is None
    assert summary["rms_delta_p_final"] == 0.0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"reference": None}, "reference is missing: name the model to compare with"),
        ({"completion_ids": []}, "completion_ids is empty: a diff compares the completion's tokens"),
        ({"reference": {"dtype": "int8"}}, "reference.dtype 'int8' is not accepted: use one of float32"),
        ({"completion_ids": [10**9]}, "completion_ids"),
    ],
)
def test_a_bad_diff_is_refused_in_one_line(tiny_reference_store, change, words):
    with pytest.raises(ValueError) as caught:
        diff(body(tiny_reference_store, {}) | change)
    assert words in str(caught.value) and "\n" not in str(caught.value)
