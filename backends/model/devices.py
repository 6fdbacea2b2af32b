"""Devices: which one to load on, in which dtype, and how a model spread by accelerate is described."""

from __future__ import annotations

import re

import torch

DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # the strategies accelerate accepts by name


def device_name(requested: str | None) -> str:
    """A device name checked for spelling only (auto, cpu, cuda, cuda:N, mps); None means auto."""
    choice = (requested or "auto").strip().lower()
    if choice not in {"auto", "cpu", "cuda", "mps"} and not re.fullmatch(r"cuda:\d+", choice):
        raise ValueError(f"device {choice!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return choice


def pick_device(requested: str | None = None) -> torch.device:
    """The device to load on: `auto` (or None) prefers CUDA, then MPS, then CPU; a named one must be present."""
    choice = device_name(requested)
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was asked for but CUDA is not available here")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but MPS is not available here")
    return torch.device(choice)


def device_map_choice(requested: str | None) -> str | None:
    """The device_map strategy named by `requested`; None, "" or "none" load on one device."""
    choice = (requested or "").strip().lower()
    if choice in {"", "none"}:
        return None
    if choice not in DEVICE_MAPS:
        raise ValueError(f"device_map {choice!r} is not one of none, {', '.join(DEVICE_MAPS)}")
    return choice


def dtype_for(device: torch.device) -> torch.dtype:
    """Half precision on accelerators (bfloat16 where supported), float32 on the CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.float32


def _device_label(value: object) -> str:
    # accelerate names GPUs by bare index
    return f"cuda:{value}" if isinstance(value, int) else str(value)


def summarise_device_map(device_map: dict) -> str:
    """`{"model.layers.0": 0, ..., "lm_head": "cpu"}` -> "cuda:0 (12 layers), cpu (18 layers)"."""
    layers: dict[str, int] = {}
    for module, value in device_map.items():
        name = _device_label(value)
        # a numbered module (model.layers.7, transformer.h.7) is one decoder layer
        layers[name] = layers.get(name, 0) + bool(re.search(r"\.\d+$", module))
    if len(layers) == 1:
        return next(iter(layers))
    return ", ".join(f"{name} ({n} layer{'s' * (n != 1)})" if n else name for name, n in layers.items())
