"""Two branches compared step by step: exact KL over the full vocabulary, entropies, the divergence point."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backends.model import STORE
from backends.prefix_cache import PrefixCache
from decoding.engine import Engine
from service import operations as service
from service.compare import compare_branches, entropy_bits, kl_bits

PROMPT = "My favourite animal is the"
BASE = {"prompt": PROMPT, "use_chat_template": False, "top_k": 10, "params": {"temperature": 0.7, "top_p": 0.8}}
CAT = " cat because it is soft"
DOG = " dog because it is loyal"


@pytest.fixture(scope="module")
def engine(embedded) -> Engine:
    return Engine(embedded, PrefixCache())


def ids(engine: Engine, text: str) -> list[int]:
    return engine.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]


def compare(engine: Engine, current: str, other: str, **changes):
    req = engine.request({**BASE, "completion_ids": ids(engine, current), **changes})
    return compare_branches(engine, req, ids(engine, other))


def reference_log_probs(engine: Engine, completion: list[int]) -> torch.Tensor:
    """float64 log p_base from a plain forward pass over the whole context: no prefix cache, no engine."""
    prompt = engine.loaded.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        logits = engine.loaded.model(torch.tensor([prompt + completion])).logits[0, -1]
    return torch.log_softmax(logits.double(), -1)


def topk_estimate(p_rows: list[dict], q_rows: list[dict]) -> float:
    """KL in bits estimated from displayed rows only (the rest as one bucket, clamped at 0), for contrast."""
    p = {r["id"]: r["p_base"] for r in p_rows}
    q = {r["id"]: r["p_base"] for r in q_rows}
    p_rest, q_rest = max(1e-12, 1 - sum(p.values())), max(1e-12, 1 - sum(q.values()))
    total = p_rest * math.log2(p_rest / q_rest)
    total += sum(pi * math.log2(pi / max(q.get(i, q_rest), 1e-12)) for i, pi in p.items() if pi > 0)
    return max(0.0, total)


def test_kl_and_entropies_equal_an_independent_full_vocabulary_computation(engine):
    cat, dog = ids(engine, CAT), ids(engine, DOG)
    result = compare(engine, CAT, DOG)
    assert len(result.steps) == len(cat) == len(dog)
    for step in result.steps:
        i = step.index
        log_p, log_q = reference_log_probs(engine, cat[:i]), reference_log_probs(engine, dog[:i])
        expected = float(F.kl_div(log_q, log_p, reduction="sum", log_target=True)) / math.log(2)
        assert step.kl_base_bits == pytest.approx(expected, rel=1e-3, abs=1e-5)
        p = np.exp(log_q.numpy())
        assert step.other_entropy_bits == pytest.approx(float(-(p * np.log2(p)).sum()), rel=1e-4)
        assert step.token["id"] == cat[i] and step.other_token["id"] == dog[i]
    assert result.divergence_index == 0 and result.shared_prefix == 0


def test_differing_contexts_give_kl_above_zero_where_a_rows_only_estimate_gives_zero(engine):
    cat, dog = ids(engine, CAT), ids(engine, DOG)
    result = compare(engine, CAT, DOG)
    rows = lambda completion: engine.preview(engine.request({**BASE, "completion_ids": completion})).dist["tokens"]  # noqa: E731
    hidden = [
        step.kl_base_bits
        for step in result.steps[1:]  # from step 1 on the contexts differ
        if topk_estimate(rows(cat[: step.index]), rows(dog[: step.index])) == 0.0
    ]
    assert hidden and all(kl > 0.01 for kl in hidden)
    assert all(step.kl_base_bits > 0.0 for step in result.steps[1:])


def test_shared_steps_are_exactly_zero_and_computed_once(embedded):
    engine = Engine(embedded, PrefixCache())
    result = compare(engine, " cat is very soft", " cat is a good pet")
    split = result.divergence_index
    assert split == result.shared_prefix == 2
    assert [s.kl_base_bits for s in result.steps[: split + 1]] == [0.0] * (split + 1)  # same context, same tensor
    assert [s.kl_final_bits for s in result.steps[: split + 1]] == [0.0] * (split + 1)
    assert all(s.kl_base_bits > 0.0 for s in result.steps[split + 1 :])
    assert engine.cache.stats.forward_calls == 2  # one pass per branch, the shared positions not run twice


def test_identical_branches_have_no_divergence(engine):
    result = compare(engine, CAT, CAT)
    assert result.divergence_index is None and result.shared_prefix == len(ids(engine, CAT))
    assert {s.kl_base_bits for s in result.steps} == {0.0} and {s.kl_final_bits for s in result.steps} == {0.0}


def test_a_shorter_branch_reaches_one_step_past_its_end(engine):
    short = ids(engine, " cat because")
    result = compare(engine, CAT, " cat because")
    assert result.divergence_index == len(short)
    at_end = result.steps[len(short)]  # the same context: the short branch has simply not chosen yet
    assert at_end.other_token is None and at_end.kl_base_bits == 0.0 and at_end.other_entropy_bits is not None
    for step in result.steps[len(short) + 1 :]:
        assert step.other_entropy_bits is None and step.kl_base_bits is None and step.kl_final_bits is None
        assert step.kl_final_reason == "the other branch ends before this step"
    reverse = compare(engine, " cat because", CAT)
    assert reverse.steps[-1].token is None and reverse.steps[-1].kl_final_reason.startswith("the current branch")


def test_p_final_kl_is_exact_where_finite_and_null_with_a_reason_where_infinite(engine):
    cat, dog = ids(engine, CAT), ids(engine, DOG)
    req = engine.request({**BASE, "completion_ids": cat})
    prompt, _ = engine.prompt_ids(req)
    result = compare_branches(engine, req, dog)
    reasons = {step.kl_final_reason for step in result.steps}
    assert None in reasons and any(r and r.startswith("infinite: the other branch's p_final is 0 on") for r in reasons)
    for step in result.steps:
        p = engine.stages(req, prompt, cat[: step.index]).p_final.double()
        q = engine.stages(req, prompt, dog[: step.index]).p_final.double()
        if step.kl_final_bits is None:
            missing = (p > 0) & (q == 0)
            likeliest = int(torch.where(missing, p, 0.0).argmax())
            named = f"keeps: {engine.view.pill(likeliest).display} ({float(p[likeliest]):.1%})"
            assert bool(missing.any()) and named in step.kl_final_reason  # the tokens that make it infinite
        else:
            on = p > 0
            expected = float((p[on] * torch.log2(p[on] / q[on])).sum())
            assert step.kl_final_bits == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_greedy_p_final_kl_is_zero_or_infinite(engine):
    result = compare(engine, CAT, DOG, params={"greedy": True})
    assert result.steps[0].kl_final_bits == 0.0
    for step in result.steps:
        assert step.kl_final_bits == 0.0 or step.kl_final_reason.startswith("infinite")


def test_an_infinite_kl_names_its_likeliest_tokens_and_counts_the_rest(engine):
    from service.compare import NAMED_TOKENS, _infinite_reason

    log_p = torch.log(torch.tensor([0.05, 0.3, 0.1, 0.2, 0.15, 0.12, 0.08, 0.0], dtype=torch.float64))
    log_q = torch.log(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    reason = _infinite_reason(engine, log_p, log_q)
    shown = ", ".join(f"{engine.view.pill(i).display} ({p:.1%})" for i, p in ((1, 0.3), (3, 0.2), (4, 0.15)))
    assert reason.startswith(
        f"infinite: the other branch's p_final is 0 on 7 token(s) the current branch keeps: {shown}"
    )
    assert reason.endswith(f", and {7 - NAMED_TOKENS} more")


def test_a_branch_outside_the_constraint_keeps_its_p_base_comparison(engine):
    constraint = {"enabled": True, "type": "regex", "schema": "[a-z ]+"}
    result = compare(engine, " cat is soft", " cat 4 soft", constraint=constraint)  # "4" breaks the regex
    assert all(step.kl_base_bits is not None for step in result.steps)
    broken = result.steps[-1]
    assert broken.kl_final_bits is None and "p_final of the other branch cannot be computed" in broken.kl_final_reason


def test_exact_kl_and_entropy_on_small_known_distributions():
    log_p = torch.log(torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    log_q = torch.log(torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))
    assert kl_bits(log_p, log_q) == pytest.approx(1.0)
    assert kl_bits(log_q, log_p) == math.inf
    assert entropy_bits(log_p) == pytest.approx(1.0) and entropy_bits(log_q) == pytest.approx(1.5)
    one_hot = torch.log(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert entropy_bits(one_hot) == 0.0 and math.copysign(1.0, entropy_bits(one_hot)) == 1.0


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ("1 2", r"^other_completion_ids '1 2' must be a list of integer token ids$"),
        ([1, 2.5], r"^other_completion_ids\[1\] = 2.5 is not an integer token id: accepted is 0 to 49151$"),
        ([1, 49152], r"^other_completion_ids\[1\] = 49152 is outside the vocabulary: accepted is 0 to 49151$"),
        ([-1], r"^other_completion_ids\[0\] = -1 is outside the vocabulary: accepted is 0 to 49151$"),
    ],
)
def test_other_ids_are_validated_strictly(engine, other, message):
    req = engine.request({**BASE, "completion_ids": [1]})
    with pytest.raises(ValueError, match=message):
        compare_branches(engine, req, other)


def test_an_other_branch_longer_than_the_context_is_refused(engine):
    req = engine.request(BASE)
    with pytest.raises(ValueError, match="longer than the model's context of 8192 tokens"):
        compare_branches(engine, req, [11] * 9000)


def test_service_compare_answers_json_with_the_documented_fields(tiny):
    STORE.use(tiny)
    out = service.compare({**BASE, "completion_ids": [11, 12]}, [11, 13, 14])
    assert set(out) == {"divergence_index", "shared_prefix", "steps"} and out["divergence_index"] == 1
    assert [set(step) for step in out["steps"]] == [
        {
            "index", "token", "other_token", "entropy_bits", "other_entropy_bits", "kl_base_bits", "kl_final_bits",
            "kl_final_reason",
        }
    ] * 3  # fmt: skip
    with pytest.raises(ValueError, match=r"other_completion_ids\[0\] = 'x' is not an integer token id"):
        service.compare(BASE, ["x"])


def test_p_final_behind_the_kl_is_the_engine_p_final_with_dry_and_its_breakers(engine):
    """The comparison recomputes log p_final itself; with DRY on it must use the request's sequence breakers."""
    from service.compare import _position

    text = " cat: it is the cat: it is the cat: it is the"
    params = BASE["params"] | {"dry_multiplier": 2.0, "dry_allowed_length": 1, "top_p": 1.0}
    req = engine.request({**BASE, "params": params, "completion_ids": ids(engine, text)})
    prompt, _ = engine.prompt_ids(req)
    completion = tuple(req.completion_ids)
    logits = engine.cache.logits(engine.loaded, (*prompt, *completion))[0]
    found = _position(engine, req, prompt, completion, logits)
    expected = engine.stages(req, prompt, completion).p_final.double()
    torch.testing.assert_close(found.log_final.exp(), expected, atol=1e-6, rtol=1e-5)
