"""The unedited model beside the edited one in the look-ahead tree, and Compare with each branch under its own
edits: checked against forward passes written here (a head zeroed by the test's own hook, or no hook at all)."""

from __future__ import annotations

import math

import pytest
import torch

from service import operations as service
from tests.service.test_interventions import FULL, HEAD, PROMPT, body, tiny_store  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("tiny_store")  # the tiny random Llama is the shared model


def p_base(model, ids, zero_head: tuple[int, int] | None = None) -> torch.Tensor:
    """The next-token distribution after `ids` from one plain forward, with head (layer, head) zeroed if given."""
    handle = None
    if zero_head is not None:
        attention = model.model.layers[zero_head[0]].self_attn
        dim, head = attention.head_dim, zero_head[1]

        def hook(module, args):
            x = args[0].clone()
            x[..., head * dim : (head + 1) * dim] = 0.0
            return (x,)

        handle = attention.o_proj.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    finally:
        if handle is not None:
            handle.remove()
    return torch.softmax(logits.double(), -1)


def test_tree_nodes_under_edits_carry_the_unedited_probabilities_of_a_plain_forward(tiny):
    prompt = list(tiny.tokenizer(PROMPT)["input_ids"])
    tree = service.tree(body([HEAD], width=2, depth=2))
    seen = 0
    for node in tree["children"]:
        for child in [node, *node["children"]]:
            context = prompt + child["path_ids"][:-1]
            token = child["path_ids"][-1]
            plain, edited = p_base(tiny.model, context), p_base(tiny.model, context, (1, 2))
            assert child["p_base_unedited"] == pytest.approx(float(plain[token]), rel=1e-4)
            assert child["p_final_unedited"] == pytest.approx(float(plain[token]), rel=1e-4)  # no knob cuts here
            assert child["p_base"] == pytest.approx(float(edited[token]), rel=1e-4)
            assert child["p_base"] != pytest.approx(child["p_base_unedited"], rel=1e-6)
            seen += 1
    assert seen == 6


def test_the_unedited_p_final_of_a_tree_node_follows_the_knobs(tiny):
    knobs = FULL | {"temperature": 0.5, "top_k": 3}
    tree = service.tree(body([HEAD], width=2, depth=1, params=knobs))
    plain = service.preview(body([], params=knobs, top_k=50))["dist"]["tokens"]
    for node in tree["children"]:
        row = next((r for r in plain if r["id"] == node["path_ids"][0]), None)
        assert node["p_final_unedited"] == pytest.approx(row["p_final"] if row else 0.0, abs=1e-6)


def test_a_tree_without_edits_has_no_unedited_fields(tiny):
    tree = service.tree(body([], width=2, depth=2))
    assert all("p_final_unedited" not in node for node in tree["children"])


def kl_bits(p: torch.Tensor, q: torch.Tensor) -> float:
    return float((p * (p.log() - q.log())).sum()) / math.log(2.0)


def entropy(p: torch.Tensor) -> float:
    return float(-(p * p.log()).sum()) / math.log(2.0)


def test_compare_runs_each_branch_under_its_own_edits(tiny):
    prompt = list(tiny.tokenizer(PROMPT)["input_ids"])
    ids = service.step(body([HEAD]))["completion_ids"] + [17]
    other = [*ids[:1], 99]  # shares the first token, then differs
    found = service.compare(body([HEAD], completion_ids=ids), other, [])
    for i, step in enumerate(found["steps"]):
        mine = p_base(tiny.model, prompt + ids[:i], (1, 2))
        theirs = p_base(tiny.model, prompt + other[:i])
        assert step["entropy_bits"] == pytest.approx(entropy(mine), abs=1e-4)
        assert step["other_entropy_bits"] == pytest.approx(entropy(theirs), abs=1e-4)
        assert step["kl_base_bits"] == pytest.approx(kl_bits(mine, theirs), abs=1e-4)
    assert found["steps"][0]["kl_base_bits"] > 1e-4  # the same context, another model: they differ from step 0


def test_compare_without_the_other_edits_keeps_both_sides_under_the_request_edits(tiny):
    ids = service.step(body([HEAD]))["completion_ids"]
    found = service.compare(body([HEAD], completion_ids=ids), ids)
    assert all(step["kl_base_bits"] == pytest.approx(0.0, abs=1e-9) for step in found["steps"])
