"""Loading a causal LM and its tokenizer from a resolved id, with one readable line for every failure."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from backends.model.devices import device_map_choice, dtype_for, pick_device
from backends.model.discovery import resolve, shown
from backends.model.embedded import EMBEDDED_ID
from backends.model.loaded import LoadedModel
from backends.settings import BackendSettings

_generation = itertools.count(1)


def new_key() -> int:
    """A key no other loaded model has (a model made from another one, e.g. a reference, needs its own)."""
    return next(_generation)


def load_model(
    model_id: str,
    device: str | None = None,
    device_map: str | None = None,
    cache_dir: Path | None = None,
    engine: BackendSettings | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer; raises ValueError with a readable reason on failure.

    `device`: auto (None), cpu, cuda, cuda:N or mps. With a `device_map` strategy accelerate spreads the layers
    over the GPUs, then CPU memory, then disk, so a model larger than one device still loads; `device` then only
    sets the dtype. `cache_dir` holds the converted embedded model (None: the default cache folder). `engine`
    vllm starts vLLM on the model (weights loaded here only for an attribution copy); None: transformers.
    """
    engine = engine or BackendSettings()
    strategy = device_map_choice(device_map)
    target, source = resolve(model_id, cache_dir)
    dev = pick_device(device)
    offline = source != "hub" or _in_local_hub_cache(target) or not _hub_reachable()
    options = {"trust_remote_code": False, "local_files_only": offline}
    placement = {"device_map": strategy} if strategy else {}
    weights = engine.name == "transformers" or engine.attribution_copy
    try:
        tokenizer, model = _tokenizer_and_model(target, dtype_for(dev), weights, placement, options)
    except Exception as exc:  # every failure becomes a readable reason
        if source == "hub" and offline and not _in_local_hub_cache(target):
            raise ValueError(
                f"could not reach the Hugging Face Hub to download {shown(model_id.strip())}, and it is not in the "
                "local Hugging Face cache (no network?)"
            ) from exc
        raise ValueError(describe_load_error(model_id, exc)) from exc
    backend = _start_vllm(target, engine, LoadedModel(model, tokenizer, model_id, source, dev, 0))
    if weights:
        dev = _place(model, dev, bool(strategy))
    model.requires_grad_(False)
    name = EMBEDDED_ID if source == "embedded" else model_id.strip()
    return LoadedModel(model, tokenizer, name, source, dev, new_key(), backend)


def _place(model, dev, spread: bool):
    """Put the weights in eval mode on `dev` (or where accelerate spread them); the device inputs go to."""
    if spread:  # inputs go where the embedding layer was put; accelerate's hooks move activations onwards
        model.eval()
        return model.get_input_embeddings().weight.device
    model.to(dev).eval()
    return dev


def _start_vllm(target: str, engine: BackendSettings, skeleton: LoadedModel):
    """The vLLM engine of the model when `engine` asks for vLLM, else None (the transformers engine serves)."""
    if engine.name != "vllm":
        return None
    from backends.vllm.backend import start

    dtype = str(skeleton.model.dtype).removeprefix("torch.")
    return start(target, engine.vllm, skeleton.vocab_size, skeleton.context_length, dtype)


def _tokenizer_and_model(target: str, dtype: torch.dtype, weights: bool, placement: dict, options: dict):
    """The tokenizer and the model; without `weights` a skeleton on the meta device (config, vocabulary and
    generation config, no memory) for an engine that runs the model elsewhere."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(target, **options)
    if weights:
        return tokenizer, AutoModelForCausalLM.from_pretrained(target, dtype=dtype, **placement, **options)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(target, **options), dtype=dtype)
    with contextlib.suppress(OSError):  # no generation_config.json: the one derived from the config stays
        model.generation_config = GenerationConfig.from_pretrained(target, **options)
    return tokenizer, model.eval()


def describe_load_error(model_id: str, exc: BaseException) -> str:
    """One line saying why `model_id` did not load, whatever was raised."""
    name = shown(str(model_id or "").strip())
    text = str(exc)
    low = text.lower()
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in low:
        return f"not enough memory to load {name}"
    if "gated" in low or "401" in low or "403" in low:
        return f"{name} is gated or private on the Hugging Face Hub: accept its licence and log in"
    if "unrecognized configuration class" in low or "automodelforcausallm" in low:
        return f"{name} is not a causal language model (AutoModelForCausalLM cannot load it)"
    if "is not a local folder and is not a valid model identifier" in low or "404" in low:
        return f"{name} is not a model on the Hugging Face Hub nor a local folder"
    if "connect" in low or "offline" in low or "resolve" in low or "network" in low:
        return f"could not reach the Hugging Face Hub to download {name} (no network?)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"could not load {name}: {first[:200]}"


def _in_local_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick connection probe, so an offline machine fails in seconds instead of minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True
