"""The vLLM engine's code without vLLM: a stand-in `LLM` answers like vLLM (flat raw logits of the whole
vocabulary, ranked, the sampled token first) from the tiny model, so the decoding engine on top of it must
give what the transformers engine gives; concurrent requests share calls; the attribution refusal and the
install hint; the store stops the engine of a model it switches away from."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import pytest
import torch

from backends.lane import LANE
from backends.model import STORE, load_model
from backends.prefix_cache import PrefixCache
from backends.settings import BackendSettings, VllmOptions
from backends.vllm import backend as vllm_mod
from backends.vllm.backend import VllmBackend
from decoding.engine import Engine
from service import operations as service
from service import tree as tree_mod

PROMPT = "Once upon a time"
TOL = 1e-5
KNOBS = [
    {"greedy": True},
    {"temperature": 0.7, "top_p": 0.8, "repetition_penalty": 1.3, "seed": 3},
    {"temperature": 1.0, "top_k": 5, "min_p": 0.05, "presence_penalty": 0.5, "frequency_penalty": 0.4, "seed": 4},
    {"temperature": 1.2, "typical_p": 0.9, "dry_multiplier": 0.8, "xtc_probability": 0.5, "seed": 5},
]


@dataclass
class FakeLLM:
    """Answers `generate` as vLLM does with logprobs=-1, flat_logprobs and raw_logits, from a transformers model."""

    model: torch.nn.Module
    calls: list[int] = field(default_factory=list)
    gate: threading.Event | None = None

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(len(prompts))
        if self.gate is not None:
            assert self.gate.wait(60)
        return [self._answer(p["prompt_token_ids"]) for p in prompts]

    def _answer(self, ids: list[int]):
        with torch.no_grad():
            logits = self.model(torch.tensor([ids])).logits[0, -1].float()
        ranked = torch.argsort(logits, descending=True)
        token_ids = [int(ranked[0]), *ranked.tolist()]  # the sampled token, then every token by rank
        padding = len(logits) + 3  # vLLM may pad the vocabulary: such rows are not the model's tokens
        flat = SimpleNamespace(start_indices=[0], end_indices=[len(token_ids) + 1], token_ids=[*token_ids, padding],
                               logprobs=[*logits[token_ids].tolist(), 99.0])  # fmt: skip
        return SimpleNamespace(outputs=[SimpleNamespace(logprobs=flat)])


@pytest.fixture
def served(tiny):
    """The tiny model as the vLLM engine serves it (its stand-in LLM in `.backend.llm`)."""
    engine = VllmBackend(FakeLLM(tiny.model), None, tiny.vocab_size, VllmOptions().placement)
    return replace(tiny, backend=engine, key=-2)


def request(engine: Engine, params: dict, completion=(), constraint=None):
    data = {"prompt": PROMPT, "use_chat_template": False, "completion_ids": list(completion), "top_k": 20}
    return engine.request(data | {"params": params} | ({"constraint": constraint} if constraint else {}))


def assert_same_dist(a: dict, b: dict) -> None:
    assert [r["id"] for r in a["tokens"]] == [r["id"] for r in b["tokens"]]
    for x, y in zip(a["tokens"], b["tokens"], strict=True):
        assert abs(x["p_base"] - y["p_base"]) < TOL and abs(x["p_final"] - y["p_final"]) < TOL
        assert (x["kept"], x["valid"], x["removed_by"]) == (y["kept"], y["valid"], y["removed_by"])


def test_the_engine_serving_a_model_is_its_vllm_engine(tiny, served):
    assert Engine(served).cache is served.backend
    assert isinstance(Engine(tiny).cache, PrefixCache)


@pytest.mark.parametrize("params", KNOBS)
def test_a_walk_on_the_vllm_engine_equals_the_transformers_engine(tiny, served, params):
    vllm, ref = Engine(served), Engine(tiny, PrefixCache())
    completion: list[int] = []
    for _ in range(6):
        a, b = (e.step(request(e, params, completion)).as_dict() for e in (vllm, ref))
        assert a["completion_ids"] == b["completion_ids"]
        assert_same_dist(a["dist"], b["dist"])
        completion = a["completion_ids"]


def test_a_constraint_and_forced_text_give_the_same_distributions(tiny, served):
    constraint = {"enabled": True, "type": "regex", "schema": "[0-9]{2} (cats|dogs)"}
    vllm, ref = Engine(served), Engine(tiny, PrefixCache())
    params = {"temperature": 0.8, "seed": 1}
    a = vllm.step(request(vllm, params, constraint=constraint), force_text="42 ca").as_dict()
    b = ref.step(request(ref, params, constraint=constraint), force_text="42 ca").as_dict()
    for x, y in zip(a["appended_meta"], b["appended_meta"], strict=True):
        assert_same_dist(x["dist"], y["dist"])
    assert_same_dist(a["dist"], b["dist"])


def test_the_tree_on_the_vllm_engine_equals_the_transformers_tree(tiny, served):
    vllm, ref = Engine(served), Engine(tiny, PrefixCache())
    params = {"temperature": 0.9, "top_k": 4}
    *_, a = tree_mod.levels(vllm, request(vllm, params), 3, 2)
    *_, b = tree_mod.levels(ref, request(ref, params), 3, 2)
    flat = lambda tree: [(n.path_ids, round(n.p_final, 5)) for top in tree.children for n in (top, *top.children)]  # noqa: E731
    assert flat(a) == flat(b)
    assert served.backend.llm.calls[-1] == 3  # a level is one call with a prompt per frontier node


def test_a_prefix_vllm_would_refuse_fails_alone_before_it_joins_a_batch(tiny):
    # vLLM refuses a prompt that leaves no room for its one token, and then fails the whole call with it
    engine = VllmBackend(FakeLLM(tiny.model), None, tiny.vocab_size, max_len=4)
    with pytest.raises(ValueError, match=r"^a context of 4 tokens has no room .* at most 3 \(max_model_len 4\)$"):
        engine.batch_logits(tiny, (1, 2), [(3, 4), (5, 6)])
    assert engine.llm.calls == []
    assert engine.logits(tiny, (1, 2, 3)).shape == (1, tiny.vocab_size)
    assert engine.llm.calls == [1]


def test_kept_answers_need_no_call_and_a_batch_is_one_call(served):
    engine = served.backend
    llm = engine.llm
    rows = engine.batch_logits(served, (1, 2), [(3,), (4,)], keep=True)
    assert llm.calls == [2] and engine.cached((1, 2, 3)) and not engine.cached((1, 2))
    assert torch.equal(engine.logits(served, (1, 2, 4))[0], rows[1]) and llm.calls == [2]
    assert engine.logits(served, (1, 2, 3, 5), last_n=2).shape == (2, served.vocab_size)
    assert llm.calls == [2, 1]  # (1, 2, 3) was kept: only (1, 2, 3, 5) was asked for


def test_concurrent_requests_holding_the_lane_reach_vllm_together(served):
    engine = served.backend
    llm = engine.llm
    llm.gate = threading.Event()
    results = {}

    def user(n: int) -> None:
        with LANE.hold():  # as every service call does: the engine stands aside while vLLM works
            results[n] = engine.logits(served, (5, 6, n))

    threads = [threading.Thread(target=user, args=(n,)) for n in range(5)]
    threads[0].start()
    deadline = threading.Event()
    while not llm.calls and not deadline.wait(0.01):
        pass
    for thread in threads[1:]:
        thread.start()
    while len(engine.batcher._waiting) < 4 and not deadline.wait(0.01):
        pass
    llm.gate.set()
    for thread in threads:
        thread.join(60)
    assert llm.calls == [1, 4] and sorted(results) == [0, 1, 2, 3, 4]


def test_attribution_and_the_lens_say_plainly_that_the_vllm_engine_cannot_serve_them(
    tiny, tiny_folder, served, monkeypatch
):
    from backends.model.loading import _tokenizer_and_model

    skeleton = _tokenizer_and_model(str(tiny_folder), torch.float32, False, {}, {})[1]
    assert all(p.device.type == "meta" for p in skeleton.parameters())
    loaded = replace(served, model=skeleton)
    for name in ("_current", "_status"):  # the store as it was, after the test
        monkeypatch.setattr(STORE, name, getattr(STORE, name))
    STORE.use(loaded)
    try:
        status = service.model_status()
        assert (status["engine"], status["gradients"], status["placement"]) == ("vllm", False, VllmOptions().placement)
        data = {"prompt": PROMPT, "use_chat_template": False, "completion_ids": [], "target_token_id": 5}
        with pytest.raises(ValueError, match=r"^attribution needs gradients .*--attribution-copy"):
            service.attribution(data | {"method": "saliency"})
        with pytest.raises(ValueError, match=r"^the logit lens needs gradients .*--attribution-copy"):
            service.logit_lens({k: v for k, v in data.items() if k != "target_token_id"})
        assert service.preview({k: v for k, v in data.items() if k != "target_token_id"})["dist"] is not None
    finally:
        STORE.use(tiny)
    assert not loaded.backend.serves(loaded)  # switching away stopped it


def test_a_missing_vllm_fails_with_one_line_that_says_how_to_install_it(tiny_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    engine = BackendSettings("vllm", VllmOptions(enforce_eager=True))
    with pytest.raises(ValueError, match=r"^the vLLM engine needs the vllm package.*uv sync --extra vllm") as err:
        load_model(str(tiny_folder), device="cpu", engine=engine)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="uv sync --extra vllm"):
        vllm_mod.start("folder", VllmOptions(), 10, 10, "float32")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"tensor_parallel_size": 0}, "tensor_parallel_size 0 must be a whole number >= 1"),
        ({"pipeline_parallel_size": "2"}, "pipeline_parallel_size '2' must be a whole number >= 1"),
        ({"distributed_executor_backend": "slurm"}, "distributed_executor_backend 'slurm' is not one of mp, ray"),
    ],
)
def test_bad_vllm_options_are_named(options, words):
    with pytest.raises(ValueError, match=words):
        VllmOptions(**options)


@pytest.mark.parametrize("copy", [False, True])
def test_a_load_for_vllm_starts_it_and_loads_weights_only_for_an_attribution_copy(tiny, tiny_folder, monkeypatch, copy):
    started = []

    def fake_start(target, options, vocab_size, context_length, dtype):
        started.append((target, options, vocab_size, context_length, dtype))
        return VllmBackend(FakeLLM(tiny.model), None, vocab_size, options.placement)

    monkeypatch.setattr(vllm_mod, "start", fake_start)
    options = VllmOptions(pipeline_parallel_size=2)
    loaded = load_model(str(tiny_folder), device="cpu", engine=BackendSettings("vllm", options, attribution_copy=copy))
    assert started == [(str(tiny_folder), options, tiny.vocab_size, tiny.context_length, "float32")]
    status = loaded.status()
    assert (status.engine, status.gradients, status.placement) == ("vllm", copy, options.placement)
    assert (status.vocab_size, status.context_length) == (tiny.vocab_size, tiny.context_length)
    assert loaded.has_weights == copy and Engine(loaded).cache is loaded.backend
