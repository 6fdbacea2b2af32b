"""The engine: preview, step, forced tokens and text, finish reasons, reproducible stateless sampling."""

from __future__ import annotations

import copy

import pytest
import torch

from backends.model import LoadedModel
from backends.prefix_cache import PrefixCache
from decoding import engine as engine_mod
from decoding.engine import Engine, engine_for
from decoding.sampling.draws import draw_uniform, sample

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}


@pytest.fixture
def engine(tiny) -> Engine:
    return Engine(tiny, PrefixCache())


def req(engine: Engine, completion=(), prompt="Once upon a time", chat=False, **extra):
    params = extra.pop("params", {"greedy": True})
    data = {"prompt": prompt, "use_chat_template": chat, "completion_ids": list(completion), "params": params}
    return engine.request({**data, **extra})


def words(n: int) -> str:
    """A raw prompt of exactly n tokens with the SmolLM2 tokenizer (" a" is one token, no BOS is added)."""
    return " a" * n


# --- sampling -------------------------------------------------------------------------------------


def test_sample_picks_only_tokens_with_positive_probability():
    p = torch.tensor([0.0, 0.2, 0.0, 0.0, 0.5, 0.3, 0.0])
    picked = {sample(p, j / 1000) for j in range(1000)} | {sample(p, 1 - 2**-53)}
    assert picked == {1, 4, 5}


def test_sample_refuses_a_distribution_without_mass():
    for p in (torch.zeros(5), torch.full((5,), float("nan"))):
        with pytest.raises(ValueError, match="no token has a positive final probability"):
            sample(p, 0.5)


def test_sample_is_the_inverse_cdf():
    p = torch.softmax(torch.randn(50, generator=torch.Generator().manual_seed(0)), -1)
    p[::3] = 0
    p /= p.sum()
    probs = p.double().tolist()
    for j in range(500):
        u = (j + 0.37) / 500
        expected, cumulative = None, 0.0
        for i, q in enumerate(probs):
            cumulative += q
            if u < cumulative:
                expected = i
                break
        assert sample(p, u) == expected


def test_sample_frequencies_match_p_final():
    p = torch.softmax(torch.randn(40, generator=torch.Generator().manual_seed(1)) * 2, -1)
    n = 20000
    counts = torch.bincount(torch.tensor([sample(p, (j + 0.5) / n) for j in range(n)]), minlength=40)
    assert torch.allclose(counts / n, p, atol=2 / n)


def test_draw_uniform_is_a_pure_function_of_seed_branch_and_position():
    assert draw_uniform(7, "a", 3) == draw_uniform(7, "a", 3)
    draws = {draw_uniform(7, "a", 3), draw_uniform(8, "a", 3), draw_uniform(7, "b", 3), draw_uniform(7, "a", 4)}
    assert len(draws) == 4
    assert all(0.0 <= draw_uniform(s, "x", 0) < 1.0 for s in range(100))
    assert draw_uniform(None, "a", 3) != draw_uniform(None, "a", 3)


def test_seeded_step_is_reproducible_and_stateless(engine):
    request = req(engine, [11, 12], params={**SAMPLING, "seed": 42})
    first = engine.step(request)
    torch.manual_seed(123)  # global RNG state must not matter
    engine.step(req(engine, [13], params={**SAMPLING, "seed": 42}))
    again = engine.step(request)
    assert again.appended == first.appended and again.appended_meta[0]["how"] == "sampled"
    assert again.appended_meta[0]["draw"] == first.appended_meta[0]["draw"] == draw_uniform(42, "default", 2)


def test_different_branches_draw_different_tokens(engine):
    picks = {
        engine.step(req(engine, params={**SAMPLING, "seed": 5}, branch_id=f"b{i}")).completion_ids[-1] for i in range(4)
    }
    assert len(picks) > 1


def test_sampled_token_is_the_inverse_cdf_draw_from_p_final(engine):
    request = req(engine, [40, 41], params={"temperature": 0.9, "top_p": 0.5, "seed": 9}, branch_id="x")
    result = engine.step(request)
    prompt, _ = engine.prompt_ids(request)
    stages = engine.stages(request, prompt, request.completion_ids)
    token = result.appended[0]["id"]
    assert token == sample(stages.p_final, draw_uniform(9, "x", 2))
    assert float(stages.p_final[token]) > 0
    row = next(r for r in result.appended_meta[0]["dist"]["tokens"] if r["id"] == token)
    assert row["kept"] and row["p_final"] > 0


# --- preview and step ----------------------------------------------------------------------------------------


def test_preview_describes_the_next_position(engine, tiny):
    result = engine.preview(req(engine, [11, 12], top_k=7))
    assert result.completion_ids == [11, 12] and result.appended == [] and not result.finished
    assert len(result.dist["tokens"]) == 7
    assert result.context_length == 256
    assert [t["id"] for t in result.prompt_tokens] == tiny.tokenizer("Once upon a time")["input_ids"]


def test_greedy_step_appends_the_argmax(engine):
    request = req(engine, [11])
    result = engine.step(request)
    prompt, _ = engine.prompt_ids(request)
    assert result.completion_ids == [11, engine.stages(request, prompt, (11,)).argmax()]
    assert result.appended_meta[0]["how"] == "greedy" and result.appended_meta[0]["draw"] is None
    assert result.completion_tokens[-1]["id"] == result.completion_ids[-1]


def test_generate_yields_what_repeated_steps_choose(engine):
    request = req(engine, params={**SAMPLING, "seed": 3})
    prompt, _ = engine.prompt_ids(request)
    generated = [choice.as_dict() for choice in engine.generate(request, prompt, 4)]
    completion: list[int] = []
    meta: list[dict] = []
    for _ in range(4):
        result = engine.step(req(engine, completion, params={**SAMPLING, "seed": 3}))
        completion, meta = result.completion_ids, [*meta, *result.appended_meta]
    assert [choice["token"]["id"] for choice in generated] == completion
    assert generated == meta  # each token's distribution and draw, as a step records them


def test_generate_stops_at_the_context_limit(engine):
    request = req(engine, prompt=words(254))
    prompt, _ = engine.prompt_ids(request)
    assert len(list(engine.generate(request, prompt, 10))) == 2


def test_step_reuses_the_analysis_of_its_preview(engine, monkeypatch):
    preview = engine.preview(req(engine, [11, 12]))
    calls = []
    real = engine_mod.dist_mod.summarize
    monkeypatch.setattr(engine_mod.dist_mod, "summarize", lambda *a: calls.append(1) or real(*a))
    result = engine.step(req(engine, [11, 12]))
    assert len(calls) == 1  # only the new position is summarised
    assert result.appended_meta[0]["dist"] == preview.dist


def test_results_share_no_mutable_state(engine):
    first = engine.preview(req(engine, [11]))
    expected = copy.deepcopy(first.dist)
    first.dist["tokens"][0]["stages"]["base"] = -1.0
    first.dist["tokens"].clear()
    assert engine.preview(req(engine, [11])).dist == expected


def test_step_does_not_change_the_request(engine):
    request = req(engine, [11, 12])
    snapshot = copy.deepcopy(request)
    engine.step(request, force_text=" and")
    assert request == snapshot


def test_forced_token_is_appended_with_its_meta(engine):
    result = engine.step(req(engine, [11]), force_token_id=777)
    assert result.completion_ids == [11, 777]
    assert [a["id"] for a in result.appended] == [777]
    (meta,) = result.appended_meta
    assert meta["how"] == "forced_token" and meta["token"]["id"] == 777
    assert any(row["id"] == 777 for row in meta["dist"]["tokens"])


def test_forced_text_appends_its_tokens_with_one_meta_each(engine, tiny):
    text = " the quick brown fox ✓"
    expected = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    result = engine.step(req(engine, [11]), force_text=text)
    assert result.completion_ids == [11, *expected]
    assert [a["id"] for a in result.appended] == expected
    assert [m["how"] for m in result.appended_meta] == ["forced_text"] * len(expected)
    assert [m["token"]["id"] for m in result.appended_meta] == expected
    assert result.completion_text.endswith(text)


def test_forced_text_metas_match_previews_of_each_position(engine, tiny):
    text = " red green blue"
    ids = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    result = engine.step(req(engine, [11]), force_text=text)
    fresh = Engine(tiny, PrefixCache())  # its own cache: each position computed on its own
    for j, meta in enumerate(result.appended_meta):
        rows = fresh.preview(req(fresh, [11, *ids[:j]])).dist["tokens"]
        assert [r["id"] for r in meta["dist"]["tokens"][: len(rows)]] == [r["id"] for r in rows]
        assert meta["dist"]["tokens"][0]["p_base"] == pytest.approx(rows[0]["p_base"], abs=1e-5)


@pytest.mark.parametrize("bad", [-1, 49152, "x", 1.5])
def test_bad_force_token_id_raises(engine, bad):
    with pytest.raises(ValueError, match="force_token_id"):
        engine.step(req(engine), force_token_id=bad)


def test_empty_force_text_raises(engine):
    with pytest.raises(ValueError, match="force_text is empty"):
        engine.step(req(engine), force_text="")
    with pytest.raises(ValueError, match="force_text 5 must be text"):
        engine.step(req(engine), force_text=5)


@pytest.mark.parametrize("prompt", ["", None])
def test_empty_prompt_raises(engine, prompt):
    with pytest.raises(ValueError, match="prompt"):
        req(engine, prompt=prompt)


def test_bad_request_fields_raise(engine):
    with pytest.raises(ValueError, match="completion_ids"):
        req(engine, ["a"])
    with pytest.raises(ValueError, match="top_k"):
        req(engine, top_k=0)
    with pytest.raises(ValueError, match="request must be a JSON object"):
        engine.request(["prompt"])


# --- prompts and finish reasons ------------------------------------------------------------------------


def test_chat_template_changes_prompt_tokens_and_includes_system_prompt(engine):
    raw = engine.preview(req(engine, prompt="Hi there")).prompt_tokens
    chat = engine.preview(req(engine, prompt="Hi there", chat=True, system_prompt="Be terse")).prompt_tokens
    assert raw != chat
    assert not any(t["special"] for t in raw)
    text = "".join(t["text"] for t in chat)
    assert text.startswith("<|im_start|>system\nBe terse<|im_end|>") and "Hi there" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_model_without_chat_template_uses_raw_prompt_with_notice(tiny):
    tokenizer = copy.deepcopy(tiny.tokenizer)
    tokenizer.chat_template = None
    plain = LoadedModel(tiny.model, tokenizer, "no-template", "test", tiny.device, key=-5)
    engine = Engine(plain, PrefixCache())
    result = engine.preview(req(engine, prompt="Hi there", chat=True))
    assert "no chat template" in result.notice
    assert [t["id"] for t in result.prompt_tokens] == tokenizer("Hi there")["input_ids"]


def test_forcing_eos_finishes_with_eos(engine, tiny):
    eos = tiny.tokenizer.eos_token_id
    result = engine.step(req(engine, [11]), force_token_id=eos)
    assert result.finished and result.finish_reason == "eos"
    again = engine.step(req(engine, result.completion_ids))
    assert again.appended == [] and again.completion_ids == result.completion_ids and again.finish_reason == "eos"


def test_stop_sequence_finishes(engine):
    params = {"greedy": True, "stop_sequences": [" brown fox"]}
    result = engine.step(req(engine, params=params), force_text=" the brown fox")
    assert result.finished and result.finish_reason == "stop_sequence"
    assert not engine.step(req(engine, params=params), force_text=" the fox").finished


def test_reaching_the_context_finishes_with_max_context(engine):
    result = engine.step(req(engine, prompt=words(255)))
    assert len(result.appended) == 1
    assert result.finished and result.finish_reason == "max_context" and result.dist is None
    with pytest.raises(ValueError, match="longer than the model's context of 256"):
        engine.step(req(engine, result.completion_ids, prompt=words(255)), force_token_id=11)


def test_prompt_plus_completion_longer_than_context_raises(engine):
    with pytest.raises(ValueError, match=r"prompt \(250 tokens\) plus completion \(7 tokens\).*256"):
        engine.preview(req(engine, [11] * 7, prompt=words(250)))
    with pytest.raises(ValueError, match="longer than the model's context"):
        engine.step(req(engine, [11] * 3, prompt=words(250)), force_text=" a b c d")


def test_engine_for_reuses_the_engine_of_the_current_model(tiny):
    first = engine_for(tiny)
    assert engine_for(tiny) is first
    other = LoadedModel(tiny.model, tiny.tokenizer, "same-weights", "test", tiny.device, key=-9)
    assert engine_for(other) is not first
    assert engine_mod.FINISH_REASONS == ("eos", "stop_sequence", "constraint_complete", "max_context")


# --- the real embedded model ---------------------------------------------------------------------------------


def test_embedded_greedy_capital_of_france_is_paris(embedded):
    engine = Engine(embedded, PrefixCache())
    result = engine.step(req(engine, prompt="The capital of France is"))
    assert result.appended[0]["text"] == " Paris"


def test_embedded_chat_step_distribution_is_consistent(embedded):
    engine = Engine(embedded, PrefixCache())
    result = engine.step(req(engine, prompt="Say hello.", chat=True, params={"temperature": 0.7, "seed": 1}))
    dist = result.appended_meta[0]["dist"]
    assert dist["kept_token_count"] >= 1
    assert sum(r["p_final"] for r in dist["tokens"]) + dist["other_p_final"] == pytest.approx(1.0, abs=1e-5)
    assert result.prompt_tokens[0]["special"] and result.prompt_tokens[0]["text"] == "<|im_start|>"
