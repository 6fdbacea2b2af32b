"""A reference in preview and step requests: every number against both models' logits from plain forward calls;
the same model as its own reference; bad specs, public mode and the memory budget refused in one line."""

from __future__ import annotations

import math

import pytest
import torch

from backends.model import STORE
from backends.reference import REFERENCES
from service import operations as service
from service.budgets import LOCAL_BUDGETS
from service.contract.answers import StepAnswer, TreeAnswer
from service.reference import reference_status

PROMPT = "Once upon a time there was a"
FULL = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 3}


@pytest.fixture
def tiny_store(tiny, embedded):
    STORE.use(tiny)
    yield tiny
    REFERENCES.remove()
    service.POLICY.configure(public=False)
    STORE.use(embedded)


def body(reference, params=FULL, **extra) -> dict:
    data = {"prompt": PROMPT, "use_chat_template": False, "top_k": 6, "params": params, "reference": reference}
    return data | extra


def last_logits(folder_or_model, ids) -> torch.Tensor:
    """The next-token logits after `ids` from one plain forward call of a model (or of a model folder's)."""
    from transformers import AutoModelForCausalLM

    model = folder_or_model
    if isinstance(model, str):
        model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].double()


def expected(p: torch.Tensor, q: torch.Tensor) -> dict:
    """KL(p || q) in bits (None where infinite), total variation, top agreement, rank of p's top by q."""
    support = p > 0
    if (q[support] == 0).any():
        kl = None
    else:
        kl = float((p[support] * (p[support].log() - q[support].log())).sum()) / math.log(2)
    top = int(p.argmax())
    rank = 1 + int((q > q[top]).sum())
    return {"kl": kl, "tv": 0.5 * float((p - q).abs().sum()), "agrees": top == int(q.argmax()), "rank": rank}


def top_k_renormalised(p: torch.Tensor, k: int) -> torch.Tensor:
    out = torch.zeros_like(p)
    index = p.topk(k).indices
    out[index] = p[index] / p[index].sum()
    return out


def test_every_number_equals_a_computation_from_both_models_logits(tiny_store, other_folder):
    ids = tiny_store.tokenizer(PROMPT)["input_ids"]
    p = torch.softmax(last_logits(tiny_store.model, ids), -1)
    q_base = torch.softmax(last_logits(other_folder, ids), -1)
    dist = service.preview(body({"model": other_folder}))["dist"]
    base = expected(p, q_base)
    assert dist["kl_reference_base"] == pytest.approx(base["kl"], rel=1e-6)
    assert dist["kl_reference_final"] == pytest.approx(base["kl"], rel=1e-4)  # no knob: p_final is p_base in float32
    assert dist["tv_reference"] == pytest.approx(base["tv"], abs=1e-6)
    assert dist["top_agrees"] is base["agrees"]
    assert dist["rank_under_reference"] == base["rank"]
    for row in dist["tokens"]:
        assert row["p_base_reference"] == pytest.approx(float(q_base[row["id"]]), abs=1e-7)
        assert row["p_final_reference"] == pytest.approx(float(q_base[row["id"]]), abs=1e-7)
    assert dist["reference"] == other_folder


def test_the_knobs_apply_to_the_reference_and_an_infinite_kl_has_its_reason(tiny_store, other_folder):
    ids = tiny_store.tokenizer(PROMPT)["input_ids"]
    p = top_k_renormalised(torch.softmax(last_logits(tiny_store.model, ids), -1), 3)
    q = top_k_renormalised(torch.softmax(last_logits(other_folder, ids), -1), 3)
    dist = service.preview(body({"model": other_folder}, FULL | {"top_k": 3}))["dist"]
    found = expected(p, q)
    for row in dist["tokens"]:
        assert row["p_final_reference"] == pytest.approx(float(q[row["id"]]), abs=1e-6)
    assert dist["tv_reference"] == pytest.approx(found["tv"], abs=1e-6)
    if found["kl"] is None:
        assert dist["kl_reference_final"] is None
        assert dist["kl_reference_final_reason"].startswith("infinite: the reference's p_final is 0 on ")
    else:
        assert dist["kl_reference_final"] == pytest.approx(found["kl"], rel=1e-4)


@pytest.mark.parametrize("reference", [{}, {"dtype": "float32"}, {"model": "tiny-random-llama"}])
def test_the_main_model_as_its_own_reference_is_kl_zero_and_agrees(tiny_store, reference):
    dist = service.preview(body(reference))["dist"]
    assert dist["kl_reference_final"] == 0.0 and dist["kl_reference_base"] == 0.0 and dist["tv_reference"] == 0.0
    assert dist["top_agrees"] is True and dist["rank_under_reference"] == 1
    assert all(row["p_final_reference"] == row["p_final"] for row in dist["tokens"])


def test_the_same_weights_loaded_again_are_kl_zero(tiny_store, tiny_folder):
    dist = service.preview(body({"model": str(tiny_folder)}))["dist"]
    assert dist["kl_reference_base"] == pytest.approx(0.0, abs=1e-9)
    assert dist["top_agrees"] is True and dist["rank_under_reference"] == 1
    assert reference_status()["state"] == "ready" and reference_status()["memory_mb"] > 0


def test_a_step_carries_the_reference_in_its_choice_and_at_the_new_position(tiny_store, other_folder):
    ids = tiny_store.tokenizer(PROMPT)["input_ids"]
    p = torch.softmax(last_logits(tiny_store.model, ids), -1)
    q = torch.softmax(last_logits(other_folder, ids), -1)
    out = service.step(body({"model": other_folder}, FULL | {"greedy": True}))
    StepAnswer.model_validate(out)  # the published answer model names every reference key
    chosen = out["appended_meta"][0]["dist"]
    assert chosen["kl_reference_base"] == pytest.approx(expected(p, q)["kl"], rel=1e-6)
    token = out["appended"][0]["id"]
    (row,) = [r for r in chosen["tokens"] if r["id"] == token]
    assert row["p_base_reference"] == pytest.approx(float(q[token]), abs=1e-7)
    after = (*ids, token)
    p2 = torch.softmax(last_logits(tiny_store.model, after), -1)
    q2 = torch.softmax(last_logits(other_folder, after), -1)
    assert out["dist"]["kl_reference_base"] == pytest.approx(expected(p2, q2)["kl"], rel=1e-6)


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        (5, "reference must be a JSON object, got number"),
        ({"dtype": "f8"}, "reference.dtype 'f8' is not accepted: use one of float32, bfloat16, float16"),
        ({"quantization": "int4"}, "reference.quantization 'int4' is not accepted: use one of int8"),
        ({"engine": "tgi"}, "reference.engine 'tgi' is not accepted: use one of transformers, vllm"),
        ({"size": 1}, "unknown key 'size' in reference: accepted are"),
        ({"model": ""}, "reference.model is empty"),
        ({"model": 5}, "reference.model must be a string, got number 5"),
        ({"engine": "vllm", "model": "someone/model"}, "reference.engine 'vllm' runs the main model itself"),
        ({"engine": "vllm", "quantization": "int8"}, "reference.quantization 'int8' runs on the transformers engine"),
        ({"model": "/no/such/folder"}, "model path '/no/such/folder' does not exist"),
    ],
)
def test_a_bad_reference_is_refused_in_one_line(tiny_store, reference, words):
    for operation in (service.preview, service.step, service.tree):
        with pytest.raises(ValueError) as caught:
            operation(body(reference))
        assert words in str(caught.value) and "\n" not in str(caught.value)


def test_public_mode_allows_only_allowlisted_references(tiny_store, other_folder):
    service.POLICY.configure(public=True)
    with pytest.raises(ValueError, match="is a local path; this public server only loads"):
        service.preview(body({"model": other_folder}))
    with pytest.raises(ValueError, match="'someone/model' is not offered on this public server"):
        service.preview(body({"model": "someone/model"}))


def test_the_reference_counts_against_the_memory_budget(tiny_store):
    service.POLICY.configure(public=False, budgets=LOCAL_BUDGETS.with_limits(max_reference_mb=1))
    with pytest.raises(
        ValueError, match=r"^the reference's weights is 7 MiB; this server allows 1 \(--max-reference-mb"
    ):
        service.preview(body({"dtype": "bfloat16"}))
    assert reference_status()["state"] == "failed"
    service.preview(body({}))  # the main model itself takes no memory of its own


def test_each_tree_node_carries_the_references_probabilities_of_its_token(tiny_store, other_folder):
    ids = tiny_store.tokenizer(PROMPT)["input_ids"]
    tree = service.tree(body({"model": other_folder}, width=2, depth=2))
    TreeAnswer.model_validate(tree)
    nodes = [(node, ()) for node in tree["children"]]
    nodes += [(child, tuple(node["path_ids"])) for node in tree["children"] for child in node["children"]]
    assert len(nodes) == 6
    for node, parent in nodes:
        q = torch.softmax(last_logits(other_folder, [*ids, *parent]), -1)
        assert node["p_base_reference"] == pytest.approx(float(q[node["token"]["id"]]), abs=1e-6)
        assert node["p_final_reference"] == pytest.approx(float(q[node["token"]["id"]]), abs=1e-6)
    assert "p_base_reference" not in service.tree(body(None, width=2, depth=1))["children"][0]


def test_compare_shows_each_branch_against_the_reference_as_both_models_logits_give(tiny_store, other_folder):
    ids = tiny_store.tokenizer(PROMPT)["input_ids"]
    current, other = [11], [11, 13, 14]
    out = service.compare(body({"model": other_folder}, completion_ids=current), other)
    assert out["reference"] == other_folder
    for step in out["steps"]:
        for key, branch in (("reference", current), ("other_reference", other)):
            i, found = step["index"], step[key]
            if i > len(branch):
                assert found == {"kl_base_bits": None, "top_agrees": None, "reason": found["reason"]}
                assert (
                    found["reason"]
                    == f"the {'current' if key == 'reference' else 'other'} branch ends before this step"
                )
                continue
            p = torch.softmax(last_logits(tiny_store.model, [*ids, *branch[:i]]), -1)
            q = torch.softmax(last_logits(other_folder, [*ids, *branch[:i]]), -1)
            want = expected(p, q)
            assert found["kl_base_bits"] == pytest.approx(want["kl"], rel=1e-6)
            assert found["top_agrees"] is want["agrees"] and found["reason"] is None
    plain = service.compare(body(None, completion_ids=current), other)
    assert "reference" not in plain and "reference" not in plain["steps"][0]
