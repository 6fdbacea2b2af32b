"""The vLLM engine as the reference of the transformers engine on the real embedded model: its p_base equals the
main model's (and a plain forward call's) within 1e-4 in preview, step and the diff, KL ~ 0 and the same top
everywhere; its status and memory; removing it ends vLLM's engine process. Then the other way round: the
transformers engine as the reference of a vLLM main model. Skipped where vllm is not installed (the refusals
there are in tests/backends/test_reference.py). One vLLM reference serves the module's first tests."""

from __future__ import annotations

import psutil
import pytest
import torch

pytest.importorskip("vllm")

from backends import reference_vllm
from backends.model import STORE
from backends.reference import MIB, REFERENCES, ReferenceSpec, estimated_bytes, model_bytes
from backends.vllm.backend import VllmBackend
from service import operations as service
from service.diff import diff
from service.reference import reference_status

TOL = 1e-4
PROMPT = "Once upon a time, in a land far away, there lived"
TEXT = " a king who had three daughters, and the youngest was the most beautiful of all"
VLLM = {"engine": "vllm"}


def body(reference: dict, **extra) -> dict:
    data = {"prompt": PROMPT, "use_chat_template": False, "top_k": 10, "params": {"temperature": 1.0}}
    return data | {"reference": reference} | extra


def engine_processes() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture(scope="module")
def on_embedded(embedded):
    """The embedded model on the transformers engine as the shared model; its vLLM reference freed afterwards."""
    STORE.use(embedded)
    yield embedded
    REFERENCES.remove()


@pytest.fixture(scope="module")
def started(on_embedded):
    """The vLLM reference, started once (about a minute), and the processes vLLM started for it."""
    before = engine_processes()
    service.preview(body(VLLM))
    return engine_processes() - before


def plain_p_base(model, ids) -> torch.Tensor:
    """softmax of the last logits of one plain forward call of the transformers model."""
    with torch.no_grad():
        return torch.softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)


def test_preview_p_base_equals_the_transformers_engine_and_a_plain_forward(on_embedded, started):
    dist = service.preview(body(VLLM))["dist"]
    p = plain_p_base(on_embedded.model, on_embedded.tokenizer(PROMPT)["input_ids"])
    for row in dist["tokens"]:
        assert abs(row["p_base_reference"] - row["p_base"]) < TOL
        assert abs(row["p_base_reference"] - float(p[row["id"]])) < TOL
    assert dist["kl_reference_base"] < 1e-6 and dist["tv_reference"] < 1e-3
    assert dist["top_agrees"] is True and dist["rank_under_reference"] == 1
    assert dist["reference"].endswith("on vllm")


def test_every_step_of_a_greedy_walk_agrees(on_embedded, started):
    completion: list[int] = []
    for _ in range(6):
        out = service.step(body(VLLM, params={"greedy": True}, completion_ids=completion))
        dist = out["appended_meta"][0]["dist"]
        assert dist["kl_reference_base"] < 1e-6 and dist["top_agrees"] is True
        assert all(abs(row["p_base_reference"] - row["p_base"]) < TOL for row in dist["tokens"])
        completion = out["completion_ids"]
    assert len(completion) == 6


def test_the_diff_of_a_text_agrees_at_every_position(on_embedded, started):
    completion = on_embedded.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    found = diff(body(VLLM, completion_ids=completion))
    assert len(found["positions"]) == len(completion) > 10
    for position in found["positions"]:
        assert abs(position["p_base_reference"] - position["p_base_main"]) < TOL
        assert position["kl_base"] < 1e-6 and position["top_agrees"] is True
    summary = found["summary"]
    assert summary["same_top"] == 1.0 and summary["first_divergence"] is None and summary["rms_delta_p_base"] < TOL


def test_the_status_says_vllm_and_counts_weights_and_kv_cache(on_embedded, started):
    status = reference_status()
    assert (status["state"], status["engine"], status["dtype"]) == ("ready", "vllm", "float32")
    weights = estimated_bytes(on_embedded.model, "float32", None)
    kv_cache = reference_vllm.kv_cache_bytes(on_embedded, "float32")
    assert status["memory_mb"] == round((weights + kv_cache) / MIB, 1)
    # one full context of the embedded model: 8193 tokens and 4 blocks of 30 layers' keys and values (3 heads of 64)
    assert kv_cache == (8193 + 4 * 32) * 2 * 30 * 3 * 64 * 4


def rss(pids: set[int]) -> int:
    """Resident bytes of those of `pids` that still run."""
    alive = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
    return sum(p.memory_info().rss for p in alive if p.status() != psutil.STATUS_ZOMBIE)


def test_removing_the_reference_ends_its_engine_process_and_frees_its_memory(on_embedded, started):
    engine = REFERENCES.ready(ReferenceSpec(engine="vllm"), on_embedded).backend
    assert isinstance(engine, VllmBackend) and started
    weights = estimated_bytes(on_embedded.model, "float32", None)
    assert rss(started) > weights  # its weights live in vLLM's engine process
    assert REFERENCES.remove().state == "none" and engine._closed
    psutil.wait_procs([psutil.Process(pid) for pid in started if psutil.pid_exists(pid)], timeout=30)
    assert rss(started) < weights / 10  # what is left is multiprocessing's resource tracker


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ({"engine": "vllm", "model": "someone/model"}, "reference.engine 'vllm' runs the main model itself"),
        ({"engine": "vllm", "quantization": "int8"}, "reference.quantization 'int8' runs on the transformers"),
    ],
)
def test_what_vllm_cannot_be_is_refused_in_one_line_before_anything_starts(on_embedded, reference, words):
    before = engine_processes()
    with pytest.raises(ValueError, match=words) as caught:
        service.preview(body(reference))
    assert "\n" not in str(caught.value) and engine_processes() <= before


def test_over_the_memory_budget_vllm_does_not_start(on_embedded):
    asked = []

    def refuse(nbytes: int) -> None:
        asked.append(nbytes)
        raise ValueError("over budget")

    before = engine_processes()
    with pytest.raises(ValueError, match="over budget"):
        REFERENCES.get(ReferenceSpec(engine="vllm"), on_embedded, refuse)
    assert asked and engine_processes() <= before and REFERENCES.status().state == "failed"


@pytest.fixture(scope="module")
def vllm_main(on_embedded, vllm_embedded):
    """The embedded model on the vLLM engine as the shared model (after the vLLM reference is gone)."""
    REFERENCES.remove()
    STORE.use(vllm_embedded)
    yield vllm_embedded
    REFERENCES.remove()
    STORE.use(on_embedded)


def test_the_transformers_engine_as_the_reference_of_a_vllm_main_model(vllm_main, on_embedded):
    dist = service.preview(body({"engine": "transformers"}))["dist"]
    p = plain_p_base(on_embedded.model, on_embedded.tokenizer(PROMPT)["input_ids"])
    for row in dist["tokens"]:
        assert abs(row["p_base_reference"] - row["p_base"]) < TOL
        assert abs(row["p_base"] - float(p[row["id"]])) < TOL
    assert dist["kl_reference_base"] < 1e-6 and dist["top_agrees"] is True
    status = reference_status()
    assert (status["state"], status["engine"]) == ("ready", "transformers")
    assert status["memory_mb"] == round(model_bytes(on_embedded.model) / MIB, 1)  # its own copy of the weights
