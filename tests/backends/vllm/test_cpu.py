"""vLLM on CPUs: a model split over two pipeline stages, as over two GPUs or machines (two worker processes).

The second stage samples, so its logits reach the app through the shared file from another process than
the first stage's. Also how the CPU backend's workers get cores and KV cache, and the eager layout it
cannot run. Compiled (not eager): about two minutes the first time. Skipped without vllm."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

pytest.importorskip("vllm")

from backends.model import EMBEDDED_ID, load_model
from backends.prefix_cache import PrefixCache
from backends.settings import BackendSettings, VllmOptions
from backends.vllm import cpu as vllm_cpu
from decoding.engine import Engine

PROMPTS = ["The capital of France is", "def fibonacci(n):", "1, 2, 3, 4,"]


@pytest.fixture(scope="module")
def two_stages():
    engine = BackendSettings("vllm", VllmOptions(pipeline_parallel_size=2))
    loaded = load_model(EMBEDDED_ID, device="cpu", engine=engine)
    yield loaded
    loaded.backend.close()


def p_base(engine: Engine, prompt: str):
    req = engine.request({"prompt": prompt, "use_chat_template": False, "top_k": 20, "params": {"greedy": True}})
    prompt_ids, _ = engine.prompt_ids(req)
    return engine.stages(req, prompt_ids, req.completion_ids).p_base


@pytest.mark.parametrize("prompt", PROMPTS)
def test_two_pipeline_stages_give_the_transformers_p_base(two_stages, embedded, prompt):
    a, b = p_base(Engine(two_stages), prompt), p_base(Engine(embedded, PrefixCache()), prompt)
    assert float((a - b).abs().max()) < 1e-4
    assert two_stages.status().placement == "vLLM: tensor parallel 1, pipeline parallel 2"
    assert two_stages.backend.tap is not None  # the last stage's process wrote the rows


def test_eager_pipeline_stages_are_refused_before_vllm_starts():
    engine = BackendSettings("vllm", VllmOptions(pipeline_parallel_size=2, enforce_eager=True))
    with pytest.raises(ValueError, match=r"^pipeline parallel size 2 does not run eagerly .*--enforce-eager"):
        load_model(EMBEDDED_ID, device="cpu", engine=engine)


@pytest.fixture
def one_numa_node(monkeypatch):
    monkeypatch.setenv(vllm_cpu.BIND, "auto")  # vLLM's default; set, so that the test's change is undone
    monkeypatch.setattr(vllm_cpu.glob, "glob", lambda pattern: ["/sys/devices/system/node/node0"])
    monkeypatch.setattr(vllm_cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4})


def test_local_workers_beyond_the_numa_nodes_share_the_cores(one_numa_node):
    vllm_cpu.bind_workers(2, all_local=True)
    assert os.environ[vllm_cpu.BIND] == "0,1|2,3"


@pytest.mark.parametrize(("workers", "all_local"), [(1, True), (2, False)])
def test_one_worker_or_remote_workers_keep_vllms_binding(one_numa_node, workers, all_local):
    vllm_cpu.bind_workers(workers, all_local)
    assert os.environ[vllm_cpu.BIND] == "auto"


def test_an_explicit_binding_is_kept(one_numa_node, monkeypatch):
    monkeypatch.setenv(vllm_cpu.BIND, "3|4")
    vllm_cpu.bind_workers(2, all_local=True)
    assert os.environ[vllm_cpu.BIND] == "3|4"


def test_more_workers_than_cores_are_refused(one_numa_node):
    with pytest.raises(ValueError, match=r"^6 vLLM workers need at least 6 CPU cores; this app may use 5$"):
        vllm_cpu.bind_workers(6, all_local=True)


@pytest.mark.parametrize(("free_gib", "workers", "expected_mib"), [(16, 1, 4096), (8, 2, 1024), (0.5, 1, 256)])
def test_the_kv_cache_is_a_quarter_of_the_free_memory_within_bounds(monkeypatch, free_gib, workers, expected_mib):
    import psutil

    monkeypatch.delenv(vllm_cpu.KV_SPACE, raising=False)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=int(free_gib * 2**30)))
    assert vllm_cpu.kv_cache_bytes(workers) == expected_mib * 2**20


def test_vllms_own_kv_cache_variable_is_left_to_vllm(monkeypatch):
    monkeypatch.setenv(vllm_cpu.KV_SPACE, "3")
    assert vllm_cpu.kv_cache_bytes(1) is None


def test_a_failure_inside_vllms_engine_process_says_where_its_reason_is(monkeypatch):
    monkeypatch.setenv(vllm_cpu.KV_SPACE, str(1 << 20))  # a KV cache of a million GiB: the worker refuses it
    engine = BackendSettings("vllm", VllmOptions(enforce_eager=True))
    with pytest.raises(ValueError, match=r"^vLLM could not start .*: its engine process failed .*\(stderr\)") as err:
        load_model(EMBEDDED_ID, device="cpu", engine=engine)
    assert "\n" not in str(err.value) and "above" not in str(err.value)
