"""The reference model store: built from its spec, vocabulary checked token by token, one at a time, freed."""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import weakref

import psutil
import pytest
import torch

from backends.model import LoadedModel
from backends.reference import (
    MIB,
    ReferenceSpec,
    ReferenceStore,
    check_vocabulary,
    estimated_bytes,
    model_bytes,
)


def no_budget(nbytes: int) -> None:
    """A memory check that allows everything."""


class Tokens:
    """A tokenizer stand-in: only what the vocabulary check reads."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


def with_tokens(loaded: LoadedModel, tokens: list[str]) -> LoadedModel:
    return LoadedModel(loaded.model, Tokens(tokens), "stand-in", "test", loaded.device, key=-50)


def test_the_main_model_unchanged_is_the_main_model_itself(tiny):
    store = ReferenceStore()
    found = store.get(ReferenceSpec(dtype="float32"), tiny, no_budget)
    assert found.loaded is tiny and found.memory_bytes == 0
    assert store.status().as_dict() | {"memory_mb": 0.0} == store.status().as_dict()
    assert store.status().state == "ready"


def test_another_dtype_is_a_converted_copy_of_the_weights(tiny):
    store = ReferenceStore()
    found = store.get(ReferenceSpec(dtype="bfloat16"), tiny, no_budget)
    assert found.loaded.model is not tiny.model and found.loaded.model.dtype == torch.bfloat16
    assert tiny.model.dtype == torch.float32  # the main model untouched
    weights = sum(p.numel() for p in {id(p): p for p in tiny.model.parameters()}.values()) * 2  # tied: once
    buffers = sum(b.numel() * b.element_size() for b in found.loaded.model.buffers())  # rotary frequencies
    expected = weights + buffers
    assert found.memory_bytes == model_bytes(found.loaded.model) == expected
    assert estimated_bytes(tiny.model, "bfloat16", None) == weights
    assert store.status().dtype == "bfloat16" and store.status().memory_mb == round(expected / MIB, 1)
    logits = found.logits(tiny.tokenizer("Hello there")["input_ids"])
    assert logits.shape == (1, tiny.vocab_size) and logits.dtype == torch.float32


def test_int8_quantizes_the_linear_weights(tiny):
    store = ReferenceStore()
    found = store.get(ReferenceSpec(quantization="int8"), tiny, no_budget)
    weight = found.loaded.model.model.layers[0].mlp.up_proj.weight
    assert "Int8" in type(weight).__name__
    # the decoder layers: one byte a weight plus one scale a row, against four bytes a weight
    layers = [model_bytes(m.model.layers) for m in (found.loaded.model, tiny.model)]
    assert layers[0] < 0.3 * layers[1]
    ids = tiny.tokenizer("Hello there")["input_ids"]
    with torch.no_grad():
        exact = tiny.model(torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(found.logits(ids)[0], exact, atol=0.05)


def test_another_model_loads_through_the_store_loader(tiny, tiny_folder):
    store = ReferenceStore()
    found = store.get(ReferenceSpec(model=str(tiny_folder)), tiny, no_budget)
    assert found.loaded.model is not tiny.model and found.memory_bytes > 0
    for a, b in zip(found.loaded.model.parameters(), tiny.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_vocabulary_that_differs_is_refused_naming_the_first_differing_id(tiny):
    tokens = tiny.tokenizer.convert_ids_to_tokens(list(range(len(tiny.tokenizer))))
    check_vocabulary(tiny, with_tokens(tiny, tokens))
    changed = [*tokens[:7], "Ġzebra", *tokens[8:]]
    with pytest.raises(ValueError, match="differs from the main model's at token id 7: 'Ġzebra' in the reference, "):
        check_vocabulary(tiny, with_tokens(tiny, changed))
    with pytest.raises(ValueError, match=f"at token id {len(tokens) - 1}: None in the reference"):
        check_vocabulary(tiny, with_tokens(tiny, tokens[:-1]))


def test_a_model_with_another_vocabulary_size_is_refused(tiny):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**(tiny.model.config.to_dict() | {"vocab_size": 1000}))
    other = LoadedModel(LlamaForCausalLM(config), tiny.tokenizer, "small", "test", tiny.device, key=-51)
    with pytest.raises(ValueError, match=f"the reference scores 1000 token ids and the main model {tiny.vocab_size}"):
        check_vocabulary(tiny, other)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (ReferenceSpec(engine="vllm"), r"^reference.engine 'vllm' needs the vllm package, which is not installed here"),
        (ReferenceSpec("someone/model", engine="vllm"), r"^reference.engine 'vllm' runs the main model itself, not "),
        (ReferenceSpec(quantization="int8", engine="vllm"), r"^reference.quantization 'int8' runs on the transformers"),
    ],
)
def test_a_vllm_reference_is_refused_in_one_line_where_it_cannot_run(tiny, spec, words):
    if spec == ReferenceSpec(engine="vllm") and importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here (tests/backends/vllm/test_reference.py starts it)")
    store = ReferenceStore()
    with pytest.raises(ValueError, match=words) as caught:
        store.get(spec, tiny, no_budget)
    assert "\n" not in str(caught.value) and "use engine transformers" in str(caught.value)
    assert store.status().state == "failed" and store.status().engine == "vllm"


def test_over_the_memory_budget_nothing_is_copied_or_kept(tiny):
    store = ReferenceStore()
    asked = []

    def refuse(nbytes: int) -> None:
        asked.append(nbytes)
        raise ValueError("over budget")

    with pytest.raises(ValueError, match="over budget"):
        store.get(ReferenceSpec(dtype="float16"), tiny, refuse)
    assert asked == [estimated_bytes(tiny.model, "float16", None)]  # checked before the copy is made
    assert store.status().state == "failed" and store.status().error == "over budget"


def test_replacing_or_removing_the_reference_frees_it(tiny):
    store = ReferenceStore()
    first = weakref.ref(store.get(ReferenceSpec(dtype="bfloat16"), tiny, no_budget).loaded.model)
    assert store.get(ReferenceSpec(dtype="bfloat16"), tiny, no_budget).loaded.model is first()  # cached by spec
    second = weakref.ref(store.get(ReferenceSpec(dtype="float16"), tiny, no_budget).loaded.model)
    assert first() is None
    assert store.remove().state == "none"
    assert second() is None


def rss() -> int:
    """Resident memory once freed heap pages are handed back (earlier tests leave free memory the copy would reuse)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss


def test_removing_a_copy_of_the_embedded_model_gives_its_memory_back(embedded):
    """Measured on the second of two rounds: the first also pages in the main model's weights, which its file
    maps lazily, and the copy reads every one of them."""
    store = ReferenceStore()
    ids = embedded.tokenizer("Hello there")["input_ids"]
    for _ in range(2):
        before = rss()
        found = store.get(ReferenceSpec(dtype="bfloat16"), embedded, no_budget)
        size = found.memory_bytes
        found.logits(ids)
        copy = weakref.ref(found.loaded.model)
        del found
        loaded = rss()
        store.remove()
        after = rss()
    assert loaded - before > 0.8 * size  # the copy was there
    assert copy() is None and after - before < 0.2 * size  # and it is gone
