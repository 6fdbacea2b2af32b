"""A reference on the vLLM engine beside the transformers one: the main model itself, run by vLLM.

It answers "does the other engine give the same next-token distribution?". The reference is the main model's
own folder started in one vLLM engine (backends.vllm) of its own: one worker in eager mode (no compilation, so
it starts in seconds rather than minutes), in the main model's dtype or the spec's, with a KV cache sized for
one full context (left to itself vLLM would reserve a quarter of the free memory or more). Its logits are the
vLLM engine's rows (raw, full vocabulary), so the stage chain of decoding.reference gives its p_base and p_final.

Its memory, counted against the budget before vLLM starts, is its weights plus that KV cache. Another model or a
quantisation on vLLM is refused: those are references of the transformers engine.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch

from backends.model import STORE, LoadedModel, resolve
from backends.model.loading import new_key
from backends.settings import VllmOptions

OPTIONS = VllmOptions(enforce_eager=True)  # a reference compares, it does not serve many users: no compilation
BLOCKS_SPARE = 4  # KV blocks beyond one full context (vLLM caches whole blocks)


def kv_bytes_per_token(config: object, dtype: str) -> int:
    """Bytes of keys and values one token takes in every layer (what vLLM's KV cache holds per token)."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    size = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    return 2 * config.num_hidden_layers * kv_heads * head_dim * size


def kv_cache_bytes(main: LoadedModel, dtype: str) -> int:
    """A KV cache that holds one full context and a few blocks: the reference scores one text at a time."""
    from backends.vllm import cpu as vllm_cpu

    tokens = main.context_length + 1 + BLOCKS_SPARE * vllm_cpu.CPU_BLOCK_SIZE
    return tokens * kv_bytes_per_token(main.model.config, dtype)


def check(model: str | None, quantization: str | None, main_model: bool) -> None:
    """Refuse in one line what a vLLM reference cannot be (`model` not the main model: `main_model` False), or
    where vLLM is not installed; nothing is loaded."""
    if not main_model:
        raise ValueError(
            f"reference.engine 'vllm' runs the main model itself, not {model!r}: leave reference.model out, "
            "or use engine transformers for another model"
        )
    if quantization is not None:
        raise ValueError(
            f"reference.quantization {quantization!r} runs on the transformers engine only: leave it out, "
            "or use engine transformers"
        )
    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            "reference.engine 'vllm' needs the vllm package, which is not installed here: use engine "
            "transformers, or install vLLM (`uv sync --extra vllm`)"
        )


def skeleton(main: LoadedModel, dtype: str) -> torch.nn.Module:
    """The main model's architecture in `dtype` on the meta device: its config and vocabulary, no memory."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(main.model.config, dtype=getattr(torch, dtype)).eval()


def start_beside(
    main: LoadedModel, dtype: str, weights: int, check_memory: Callable[[int], None]
) -> tuple[LoadedModel, int]:
    """The main model started on vLLM in `dtype` (its `weights` bytes there), and the bytes it takes with its KV
    cache; `check_memory(bytes)` refuses it over the budget before vLLM starts."""
    from backends.vllm.backend import start

    kv_cache = kv_cache_bytes(main, dtype)
    memory = weights + kv_cache
    check_memory(memory)
    target, _ = resolve(main.model_id, STORE.settings.cache_dir)
    engine = start(target, OPTIONS, main.vocab_size, main.context_length, dtype, kv_cache)
    shape = skeleton(main, dtype)
    return LoadedModel(shape, main.tokenizer, main.model_id, main.source, main.device, new_key(), engine), memory
