"""Switching models frees the old one at once; the per-model memo keeps one model's values and drops them."""

from __future__ import annotations

import gc
import weakref
from contextlib import contextmanager

import pytest
import torch

from attribution import attribute
from attribution.attention import cpu_copy
from backends.model import LoadedModel, ModelStore, StoreSettings, memo
from decoding.constraints import tracker_for
from decoding.engine import engine_for


@pytest.fixture(scope="module")
def folders(tiny, tmp_path_factory):
    """Two tiny random Llamas saved as model folders (different weights, the embedded tokenizer)."""
    from transformers import LlamaForCausalLM

    found = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        folder = tmp_path_factory.mktemp(f"tiny-{seed}")
        LlamaForCausalLM(tiny.model.config).save_pretrained(folder)
        tiny.tokenizer.save_pretrained(folder)
        found.append(str(folder))
    return found


@contextmanager
def no_automatic_gc():
    """Only reference counting frees objects here: a reference cycle would keep them alive."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def use_everything(loaded: LoadedModel) -> None:
    """Every per-model cache: engine, prefix cache, constraint tracker, attribution, the CPU copy."""
    engine = engine_for(loaded)
    constraint = {"enabled": True, "type": "regex", "schema": "[a-z ]+"}
    engine.preview(engine.request({"prompt": "Hello there", "use_chat_template": False, "constraint": constraint}))
    ids = engine.prompt_ids(engine.request({"prompt": "Hello there", "use_chat_template": False}))[0]
    attribute(loaded, ids, 42, "attention")
    attribute(loaded, ids, 42, "saliency")
    cpu_copy(loaded)


def test_switching_models_frees_the_previous_one(folders):
    store = ModelStore(StoreSettings(device="cpu"))
    with no_automatic_gc():
        store.load(folders[0])
        use_everything(store.get())
        first = weakref.ref(store.get().model)
        store.load(folders[1])
        use_everything(store.get())
        assert first() is None
        second = weakref.ref(store.get().model)
        store.load(folders[0])
        assert second() is None


def test_memo_keeps_the_values_of_one_model(tiny):
    other = LoadedModel(tiny.model, tiny.tokenizer, "same-weights", "test", tiny.device, key=-7)
    released = []
    built = memo.per_model(tiny, "test value", lambda m: [m.key], release=released.append)
    assert memo.per_model(tiny, "test value", lambda m: ["rebuilt"]) is built
    assert memo.per_model(other, "test value", lambda m: [m.key]) == [-7]
    assert released == [[-1]]
    memo.drop()
    assert memo.per_model(other, "test value", lambda m: ["again"]) == ["again"]


def test_memo_drops_one_value_or_all(tiny):
    memo.drop()
    released = []
    memo.per_model(tiny, "a", lambda m: "a", release=released.append)
    memo.per_model(tiny, "b", lambda m: "b", release=released.append)
    memo.drop("a")
    assert released == ["a"] and memo.per_model(tiny, "b", lambda m: "new b") == "b"
    memo.drop()
    assert released == ["a", "b"] and memo.per_model(tiny, "b", lambda m: "new b") == "new b"


def test_a_value_built_while_the_model_changed_is_not_kept(tiny):
    other = LoadedModel(tiny.model, tiny.tokenizer, "same-weights", "test", tiny.device, key=-8)

    def slow_factory(loaded):
        memo.per_model(other, "unrelated", lambda m: 0)  # another model comes in meanwhile
        return "stale"

    memo.drop()
    assert memo.per_model(tiny, "value", slow_factory) == "stale"
    assert memo.per_model(other, "value", lambda m: "fresh") == "fresh"


def test_store_switch_drops_the_memo(tiny):
    other = LoadedModel(tiny.model, tiny.tokenizer, "same-weights", "test", tiny.device, key=-9)
    store = ModelStore(StoreSettings(device="cpu"))
    store.use(tiny)
    engine, tracker = engine_for(tiny), tracker_for(tiny)
    store.use(tiny)  # the same model again: nothing is dropped
    assert engine_for(tiny) is engine and tracker_for(tiny) is tracker
    store.use(other)
    store.use(tiny)
    assert engine_for(tiny) is not engine and tracker_for(tiny) is not tracker
