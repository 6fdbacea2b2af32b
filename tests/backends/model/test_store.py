"""The model store: resolving ids, loading local folders, clear failures that keep the previous model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backends import model as model_mod
from backends.model import ModelStore, StoreSettings, load_model, pick_device, resolve
from backends.model import loading as loading_mod
from backends.model.settings import default_cache_dir
from backends.settings import BackendSettings

HUB_FAILURE = r"could not reach the Hugging Face Hub|not a model on the Hugging Face Hub"


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
    monkeypatch.setattr(loading_mod, "_hub_reachable", lambda timeout=3.0: False)
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


def test_pick_device_cpu_and_auto():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(None).type in {"cpu", "cuda", "mps"}
    assert pick_device(" CPU ") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_pick_device_cuda_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")


def test_settings_from_env():
    env = {
        "NEXTTOKEN_MODEL": "org/second",
        "LLM_DEMO_DEFAULT_MODEL": " org/some-model ",
        "NEXTTOKEN_DEVICE": "CPU",
        "NEXTTOKEN_DEVICE_MAP": "none",
        "NEXTTOKEN_CACHE_DIR": "/tmp/models-here",
    }
    assert StoreSettings.from_env(env) == StoreSettings("org/some-model", "cpu", None, Path("/tmp/models-here"))
    assert (
        StoreSettings.from_env({"NEXTTOKEN_MODEL": "org/second", "NEXTTOKEN_DEVICE_MAP": "Auto"}).device_map == "auto"
    )
    bare = StoreSettings.from_env({"XDG_CACHE_HOME": "/somewhere"})
    assert (bare.model, bare.device, bare.device_map) == (None, "auto", None)
    assert bare.cache_dir == default_cache_dir({"XDG_CACHE_HOME": "/somewhere"}) == Path("/somewhere/nexttoken")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("device", "tpu", "device 'tpu' is not one of auto, cpu"),
        ("device_map", "everywhere", "device_map 'everywhere'"),
    ],
)
def test_settings_refuse_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        StoreSettings(**{field: value})


def test_default_model_comes_from_the_store_settings():
    assert ModelStore(StoreSettings(model=" org/some-model ")).default_model_id() == "org/some-model"
    assert ModelStore(StoreSettings()).default_model_id() == model_mod.EMBEDDED_ID
    store = ModelStore(StoreSettings())
    store.configure(StoreSettings(model="org/other"))
    assert store.status().model_id == "org/other" and store.status().state == "loading"


def test_a_model_loading_for_vllm_says_so_before_it_is_ready():
    store = ModelStore(StoreSettings(model="org/other", engine=BackendSettings("vllm")))
    assert (store.status().state, store.status().engine) == ("loading", "vllm")


def test_store_reads_the_environment_once(monkeypatch):
    monkeypatch.setenv("LLM_DEMO_DEFAULT_MODEL", "org/from-env")
    store = ModelStore()
    assert store.default_model_id() == "org/from-env"
    monkeypatch.setenv("LLM_DEMO_DEFAULT_MODEL", "org/changed-later")
    assert store.default_model_id() == "org/from-env"


def test_store_loads_with_its_settings(tiny_folder, monkeypatch):
    seen = []
    real = loading_mod.load_model

    def spy(model_id, device, device_map, cache_dir, engine):
        seen.append((device, device_map, cache_dir, engine))
        return real(model_id, device, device_map, cache_dir, engine)

    monkeypatch.setattr(model_mod.store, "load_model", spy)
    engine = BackendSettings(attribution_copy=False)
    store = ModelStore(StoreSettings(device="cpu", device_map="auto", cache_dir=tiny_folder, engine=engine))
    store.load(str(tiny_folder))
    store.load(str(tiny_folder), device="cpu", device_map="none")
    assert seen == [("cpu", "auto", tiny_folder, engine), ("cpu", "none", tiny_folder, engine)]


def test_embedded_model_status(embedded):
    status = embedded.status()
    assert status.model_id == model_mod.EMBEDDED_ID and status.source == "embedded"
    assert status.has_chat_template and status.vocab_size == 49152 and status.dtype == "float32"


def test_overlong_id_fails_with_one_line_and_keeps_the_model(tiny):
    store = ModelStore(StoreSettings(device="cpu"))
    store.use(tiny)
    with pytest.raises(ValueError, match="is not a usable folder name"):
        store.load("a" * 300)
    status = store.status()
    assert store.get() is tiny and (status.state, status.model_id) == ("ready", tiny.model_id)
    assert "not a usable folder name" in status.error and "\n" not in status.error and len(status.error) <= 200


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("CUDA error: an illegal memory access\nstack trace line"),
        OSError(28, "No space left"),
        KeyError("x"),
    ],
)
def test_any_exception_during_load_restores_the_previous_status(tiny, monkeypatch, error):
    def broken(*args):
        raise error

    monkeypatch.setattr(model_mod.store, "load_model", broken)
    store = ModelStore(StoreSettings(device="cpu"))
    with pytest.raises(ValueError, match="could not load 'org/model'"):
        store.load("org/model")
    assert (store.status().state, store.status().model_id) == ("error", "org/model")
    store.use(tiny)
    with pytest.raises(ValueError, match="could not load 'org/model'") as raised:
        store.load("org/model")
    assert raised.value.__cause__ is error
    status = store.status()
    assert store.get() is tiny and (status.state, status.model_id) == ("ready", tiny.model_id)
    assert status.error == str(raised.value) and "\n" not in status.error


def test_interrupted_load_does_not_stay_loading(tiny, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_mod.store, "load_model", interrupted)
    store = ModelStore(StoreSettings(device="cpu"))
    store.use(tiny)
    with pytest.raises(KeyboardInterrupt):
        store.load("org/model")
    assert store.status().state == "ready" and store.status().error == "could not load 'org/model': KeyboardInterrupt"
