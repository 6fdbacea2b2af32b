"""The vLLM engine on the real embedded model against the transformers engine: the same p_base, the same
greedy and seeded walks, the same p_final under every knob and constraints, the same tree; a bad start is
one line. Skipped where vllm is not installed (`uv sync --extra vllm` installs it; CI runs these in an
environment of their own). One vLLM instance serves the whole module (it starts in about a minute)."""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("vllm")

from backends.model import EMBEDDED_ID, load_model
from backends.prefix_cache import PrefixCache
from backends.settings import BackendSettings, VllmOptions
from backends.vllm.backend import VllmBackend
from decoding.engine import Engine
from service import tree as tree_mod

TOL = 1e-4
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a land far away, there lived",
    "1, 2, 3, 4,",
    "Translate to German: good morning",
]
KNOBS = [
    {"temperature": 0.7},
    {"temperature": 1.0, "top_k": 8},
    {"temperature": 1.0, "top_p": 0.8},
    {"temperature": 1.0, "min_p": 0.05},
    {"temperature": 1.0, "typical_p": 0.9},
    {"temperature": 1.0, "top_n_sigma": 1.5},
    {"temperature": 1.0, "epsilon_cutoff": 0.001},
    {"temperature": 1.0, "eta_cutoff": 0.001},
    {"temperature": 1.0, "xtc_probability": 1.0, "xtc_threshold": 0.05, "seed": 2},
    {"temperature": 1.0, "repetition_penalty": 1.3},
    {"temperature": 1.0, "presence_penalty": 0.8, "frequency_penalty": 0.5},
    {"temperature": 1.0, "dry_multiplier": 0.8},
    {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "sampler_order": "llama.cpp"},
]
CONSTRAINTS = [
    {"enabled": True, "type": "multiple_choice", "schema": '["Paris", "Lyon", "Marseille"]'},
    {"enabled": True, "type": "regex", "schema": "[0-9]{3}"},
    {"enabled": True, "type": "json_schema", "schema": '{"type": "object", "properties": {"a": {"type": "integer"}}}'},
]


@pytest.fixture(scope="module")
def vllm_model(vllm_embedded):
    return vllm_embedded


@pytest.fixture(scope="module")
def engines(vllm_model, embedded) -> tuple[Engine, Engine]:
    """(the vLLM engine, the transformers engine) on the embedded model."""
    return Engine(vllm_model), Engine(embedded, PrefixCache())


def request(engine: Engine, prompt: str, params: dict, completion=(), constraint=None):
    data = {"prompt": prompt, "use_chat_template": False, "completion_ids": list(completion), "top_k": 20}
    return engine.request(data | {"params": params} | ({"constraint": constraint} if constraint else {}))


def stages(engine: Engine, req):
    prompt, _ = engine.prompt_ids(req)
    return engine.stages(req, prompt, req.completion_ids)


def test_the_model_status_says_vllm_serves_and_gradients_are_not_there(vllm_model):
    status = vllm_model.status()
    assert (status.engine, status.gradients, status.vocab_size) == ("vllm", False, 49152)
    assert isinstance(vllm_model.backend, VllmBackend)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_p_base_equals_the_transformers_engine(engines, prompt):
    a, b = (stages(e, request(e, prompt, {"greedy": True})).p_base for e in engines)
    assert float((a - b).abs().max()) < TOL
    assert int(a.argmax()) == int(b.argmax())


def test_the_capital_of_france_is_paris_at_about_77_percent(engines):
    vllm, _ = engines
    p_base = stages(vllm, request(vllm, PROMPTS[0], {"greedy": True})).p_base
    paris = vllm.loaded.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    assert int(p_base.argmax()) == paris and abs(float(p_base[paris]) - 0.7726) < 0.005


@pytest.mark.parametrize("params", [{"greedy": True}, {"temperature": 0.8, "top_p": 0.95, "seed": 7}])
def test_a_20_step_walk_gives_the_same_tokens_on_both(engines, params):
    completion: dict[str, list[int]] = {"vllm": [], "ref": []}
    for _ in range(20):
        for name, engine in zip(completion, engines, strict=True):
            result = engine.step(request(engine, PROMPTS[2], params, completion[name])).as_dict()
            completion[name] = result["completion_ids"]
    assert completion["vllm"] == completion["ref"] and len(completion["vllm"]) == 20


@pytest.mark.parametrize("params", KNOBS)
def test_every_knob_gives_the_same_p_final(engines, params):
    for prompt in PROMPTS[:3]:
        completion = (28, 253)  # a completion, so the penalties have something to act on
        a, b = (stages(e, request(e, prompt, params, completion)) for e in engines)
        kept = _same_cut(a.p_final, b.p_final)
        assert float((a.p_final * kept / (a.p_final * kept).sum() - b.p_final * kept / (b.p_final * kept).sum())
                     .abs().max()) < TOL  # fmt: skip


def _same_cut(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The tokens both keep. A cut may differ only at its edge: a token one side keeps as its least likely, whose
    probability lies at the cut's threshold, where float32 kernels of two CPUs (or engines) fall either side."""
    split = (a > 0) != (b > 0)
    for side in (a, b):
        edge = side[side > 0].min()
        assert bool(((side[split] == 0) | ((side[split] - edge).abs() <= 1e-3 * edge)).all())
    assert int(split.sum()) <= 2
    return (a > 0) & (b > 0)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_constraints_give_the_same_p_final(engines, constraint):
    a, b = (stages(e, request(e, PROMPTS[0], {"temperature": 0.9}, (), constraint)) for e in engines)
    assert float((a.p_final - b.p_final).abs().max()) < TOL
    assert torch.equal(a.p_final > 0, b.p_final > 0)


def test_the_tree_equals_the_transformers_tree(engines):
    trees = [tree_mod.levels(e, request(e, PROMPTS[0], {"temperature": 1.0}), 3, 2) for e in engines]
    a, b = ([*levels][-1] for levels in trees)

    def flat(tree):
        return [(n.path_ids, round(n.p_final, 3)) for top in tree.children for n in (top, *top.children)]

    assert flat(a) == flat(b)


def test_a_bad_parallel_layout_fails_with_one_line_naming_it(embedded):
    # nine attention heads cannot be split over two tensor-parallel ranks: vLLM refuses before starting workers
    engine = BackendSettings("vllm", VllmOptions(tensor_parallel_size=2, enforce_eager=True))
    with pytest.raises(ValueError, match=r"^vLLM could not start .*tensor parallel 2") as err:
        load_model(EMBEDDED_ID, device="cpu", engine=engine)
    assert "\n" not in str(err.value)


def _answered_rows(engine: VllmBackend, prefixes: list[list[int]]) -> list[torch.Tensor]:
    """The logits after each prefix as vLLM's answers carry them (logprobs=-1), the other way in."""
    outputs = engine.llm.generate([{"prompt_token_ids": p} for p in prefixes], engine.sampling_params, use_tqdm=False)
    return [engine._row(out.outputs[0].logprobs) for out in outputs]


def test_rows_come_through_the_shared_file_and_equal_the_answers_logits(vllm_model, engines):
    engine = vllm_model.backend
    assert engine.tap is not None  # nothing in this module made the engine fall back
    ids = vllm_model.tokenizer(PROMPTS[2])["input_ids"]
    prefixes = [ids[:n] for n in range(3, len(ids) + 1)]
    tapped = engine.tap.generate(engine.llm, prefixes)
    for a, b in zip(tapped, _answered_rows(engine, prefixes), strict=True):
        assert a is not None and a.shape == (engine.vocab_size,) and float((a - b).abs().max()) < 1e-5


def test_a_call_larger_than_the_file_gets_a_larger_file(vllm_model):
    tap = vllm_model.backend.tap
    ids = vllm_model.tokenizer(PROMPTS[1])["input_ids"]
    prefixes = [[*ids, 10 + n] for n in range(tap.file.slots + 6)]
    rows = tap.generate(vllm_model.backend.llm, prefixes)
    assert tap.file.slots == 128 and all(row is not None for row in rows)


def test_a_sampler_that_cannot_reach_the_file_makes_the_engine_take_the_answers_logits(vllm_model):
    from backends.vllm.rows import Tap

    serving = vllm_model.backend
    unreachable = Tap(serving.vocab_size, serving.tap.params_for)
    os.unlink(unreachable.file.path)  # as on a machine that does not have it
    engine = VllmBackend(serving.llm, serving.sampling_params, serving.vocab_size, tap=unreachable)
    ids = vllm_model.tokenizer(PROMPTS[3])["input_ids"]
    rows = engine.batch_logits(vllm_model, ids, [[11], [12]])
    assert engine.tap is None  # and it stays on the answers from now on
    expected = _answered_rows(serving, [[*ids, 11], [*ids, 12]])
    assert all(float((a - b).abs().max()) < 1e-5 for a, b in zip(rows, expected, strict=True))


def test_vllm_has_room_for_a_full_context_and_its_token(vllm_model):
    # vLLM refuses a prompt that leaves no room for the token it generates (checked by hand: at max_model_len 64
    # a 63-token prompt runs, 64 is refused); the transformers engine answers a full context
    engine = vllm_model.backend
    assert engine.llm.llm_engine.model_config.max_model_len == engine.max_len == vllm_model.context_length + 1
