"""Shared fixtures: the embedded tokenizer, a tiny random Llama built from a config (and one with other weights),
the real embedded model."""

from __future__ import annotations

import pytest
import torch

from backends import model as model_mod
from service.prefetch import PREFETCH


@pytest.fixture(autouse=True)
def no_background_prefetch(monkeypatch):
    """Prefetch off unless a test turns it on: background forwards would make lane and timing tests depend on luck."""
    monkeypatch.setattr(PREFETCH, "count", 0)


@pytest.fixture(scope="session")
def embedded() -> model_mod.LoadedModel:
    """The real SmolLM2-135M-Instruct (converted once from the bundled GGUF)."""
    return model_mod.load_model(model_mod.EMBEDDED_ID, device="cpu")


@pytest.fixture(scope="session")
def tokenizer(embedded):
    return embedded.tokenizer


@pytest.fixture(scope="session")
def tiny(tokenizer) -> model_mod.LoadedModel:
    """A 2-layer random Llama with the embedded model's tokenizer: fast, deterministic, real code paths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    model.requires_grad_(False)
    return model_mod.LoadedModel(model, tokenizer, "tiny-random-llama", "test", torch.device("cpu"), key=-1)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny):
    """The tiny random Llama saved as a transformers model folder (read only: what a load reads)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def other_folder(tiny, tmp_path_factory):
    """A tiny random Llama like `tiny` with other weights (the same tokenizer), as a model folder: a reference."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(5)
    folder = tmp_path_factory.mktemp("tiny-other")
    LlamaForCausalLM(tiny.model.config).save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def tiny_reference_store(tiny, embedded):
    """The tiny random Llama as the shared model; afterwards its reference freed and the embedded model back."""
    from backends.model import STORE
    from backends.reference import REFERENCES

    STORE.use(tiny)
    yield tiny
    REFERENCES.remove()
    STORE.use(embedded)
