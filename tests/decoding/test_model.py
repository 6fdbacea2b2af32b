"""The model store: resolving ids, loading local folders, clear failures that keep the previous model."""

from __future__ import annotations

import pytest
import torch

from decoding import model as model_mod
from decoding.model import ModelStore, load_model, pick_device, resolve

HUB_FAILURE = r"could not reach the Hugging Face Hub|not a model on the Hugging Face Hub"


@pytest.fixture(scope="module")
def tiny_folder(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_id", ["", "   ", None])
def test_resolve_empty_id(model_id):
    with pytest.raises(ValueError, match="model id is empty"):
        resolve(model_id)


@pytest.mark.parametrize("model_id", ["/no/such/folder", "./missing-model", "~/no-such-model-here", "a/b/c"])
def test_resolve_missing_path(model_id):
    with pytest.raises(ValueError, match="does not exist"):
        resolve(model_id)


def test_resolve_folder_without_config(tmp_path):
    with pytest.raises(ValueError, match=r"no config\.json"):
        resolve(str(tmp_path))


def test_resolve_invalid_hub_id():
    with pytest.raises(ValueError, match="neither a local folder nor a valid Hugging Face model id"):
        resolve("not a model")


def test_resolve_kinds(tiny_folder):
    assert resolve(str(tiny_folder)) == (str(tiny_folder), "local")
    assert resolve(" HuggingFaceTB/SmolLM2-135M ") == ("HuggingFaceTB/SmolLM2-135M", "hub")
    assert resolve("embedded")[1] == "embedded"


def test_load_model_from_local_folder(tiny, tiny_folder):
    loaded = load_model(str(tiny_folder), device="cpu")
    assert loaded.source == "local" and loaded.key != tiny.key
    assert loaded.vocab_size == tiny.vocab_size and loaded.context_length == 256
    ids = torch.tensor([[1, 2, 3, 400]])
    torch.testing.assert_close(loaded.model(ids).logits, tiny.model(ids).logits)
    assert loaded.status().state == "ready" and loaded.status().as_dict()["model_id"] == str(tiny_folder)


@pytest.mark.timeout(120)
def test_unknown_hub_id_fails_with_clear_message():
    with pytest.raises(ValueError, match=HUB_FAILURE):
        load_model("nobody-here-xyz/no-such-model-123", device="cpu")


@pytest.mark.timeout(120)
def test_unreachable_hub_is_reported_as_such(monkeypatch):
    monkeypatch.setattr(model_mod, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ValueError, match=r"could not reach the Hugging Face Hub.*not in the local"):
        load_model("nobody-here-xyz/no-such-model-123", device="cpu")


def test_failed_load_keeps_previous_model_and_reports_error(tiny):
    store = ModelStore()
    store.use(tiny)
    with pytest.raises(ValueError, match="does not exist"):
        store.load("/no/such/model/folder")
    assert store.get() is tiny
    status = store.status()
    assert status.model_id == tiny.model_id and status.state == "ready"
    assert "does not exist" in status.error


def test_failed_first_load_sets_error_state():
    store = ModelStore()
    with pytest.raises(ValueError):
        store.load("/no/such/model/folder")
    assert store.status().state == "error" and "does not exist" in store.status().error


def test_successful_load_replaces_model_and_clears_error(tiny, tiny_folder):
    store = ModelStore()
    store.use(tiny)
    with pytest.raises(ValueError):
        store.load("/no/such/model/folder")
    status = store.load(str(tiny_folder), device="cpu")
    assert status.state == "ready" and status.error == ""
    assert store.get() is not tiny and store.get().source == "local"


@pytest.mark.parametrize("device", ["bogus", "gpu", "tpu:0"])
def test_pick_device_rejects_unknown_names(device):
    with pytest.raises(ValueError, match="not one of auto, cpu, cuda"):
        pick_device(device)


def test_pick_device_cpu_and_auto(monkeypatch):
    monkeypatch.delenv("NEXTTOKEN_DEVICE", raising=False)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(None).type in {"cpu", "cuda", "mps"}
    monkeypatch.setenv("NEXTTOKEN_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_pick_device_cuda_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")


def test_default_model_id_env_override(monkeypatch):
    monkeypatch.setenv("LLM_DEMO_DEFAULT_MODEL", " org/some-model ")
    assert model_mod.default_model_id() == "org/some-model"
    monkeypatch.delenv("LLM_DEMO_DEFAULT_MODEL")
    monkeypatch.delenv("NEXTTOKEN_MODEL", raising=False)
    assert model_mod.default_model_id() == model_mod.EMBEDDED_ID


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("NEXTTOKEN_CACHE_DIR", str(tmp_path))
    assert model_mod.cache_dir() == tmp_path


def test_embedded_model_status(embedded):
    status = embedded.status()
    assert status.model_id == model_mod.EMBEDDED_ID and status.source == "embedded"
    assert status.has_chat_template and status.vocab_size == 49152 and status.dtype == "float32"
