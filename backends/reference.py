"""The reference model beside the main one: loaded from its spec, checked to share the vocabulary, one at a time.

A reference is named by a `ReferenceSpec`: a model (None: the main model itself), a dtype, a weight-only int8
quantisation (torchao's `Int8WeightOnlyConfig`, which runs on CPUs) and an engine. The main model in another
form is a copy of its weights converted; another model goes through the store's own loader (a Hugging Face
id, a local folder, the embedded model). The main model unchanged is the main model itself, its logits the
shared prefix cache's. Every other reference has a prefix KV cache of its own, so its forwards reuse its
prefixes as the main model's do. The other engine is the main model itself there: on vLLM beside the
transformers engine (backends.reference_vllm, an engine process of its own), or loaded again on transformers
beside a vLLM main model.

`REFERENCES` holds one reference at a time: asking for another spec frees the previous one first (its
weights and its cache, no reference to them left), and so does `remove`. Its status (none, loading, ready,
failed, and the memory its weights take) is the reference's own, beside the model store's.
"""

from __future__ import annotations

import copy
import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from backends import reference_vllm
from backends.base import LogitsBackend, backend_for
from backends.model import EMBEDDED_ALIASES, STORE, LoadedModel, load_model
from backends.model.loading import new_key
from backends.prefix_cache import PrefixCache

DTYPES = ("float32", "bfloat16", "float16")
QUANTIZATIONS = ("int8",)
ENGINES = ("transformers", "vllm")
MIB = 2**20


@dataclass(frozen=True)
class ReferenceSpec:
    """Which reference: `model` None is the main model; `dtype` None keeps the model's own."""

    model: str | None = None
    dtype: str | None = None
    quantization: str | None = None
    engine: str = "transformers"

    def describe(self, main: LoadedModel) -> str:
        """The reference in words, e.g. "SmolLM2-135M-Instruct, bfloat16, int8"."""
        parts = [self.model or main.model_id, self.dtype, self.quantization]
        return ", ".join(p for p in parts if p) + ("" if self.engine == "transformers" else f" on {self.engine}")


@dataclass(frozen=True)
class Reference:
    """A ready reference: its model, where its logits come from, the memory its weights take (0: shared)."""

    spec: ReferenceSpec
    loaded: LoadedModel
    backend: LogitsBackend
    memory_bytes: int
    main_key: int  # the main model it was made from or checked against

    def logits(self, ids, last_n: int = 1) -> torch.Tensor:
        """[last_n, vocab] float32 next-token logits of the reference (see `LogitsBackend.logits`)."""
        return self.backend.logits(self.loaded, ids, last_n)


@dataclass(frozen=True)
class ReferenceStatus:
    """What the API shows about the reference: none, loading, ready or failed (with the reason)."""

    state: str = "none"
    model_id: str = ""
    dtype: str = ""
    quantization: str | None = None
    engine: str = "transformers"
    memory_mb: float = 0.0
    error: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def dtype_name(model: torch.nn.Module) -> str:
    return str(model.dtype).removeprefix("torch.")


def is_main_model(model_id: str | None, main: LoadedModel) -> bool:
    """Whether `model_id` names the main model (None does; the embedded model by any of its names)."""
    if model_id is None:
        return True
    text = model_id.strip()
    return text == main.model_id or (main.source == "embedded" and text.lower() in EMBEDDED_ALIASES)


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds; a tensor subclass (torchao's int8 weights) by the tensors it is made of."""
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's parameters and buffers, each shared (tied) tensor counted once."""
    seen: dict[int, int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        seen[id(tensor)] = tensor_bytes(tensor)
    return sum(seen.values())


def estimated_bytes(model: torch.nn.Module, dtype: str, quantization: str | None) -> int:
    """What a copy of `model` in `dtype` (int8: linear weights one byte each) will take, before making it."""
    size = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    linear = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    total = 0
    for tensor in {id(t): t for t in model.parameters()}.values():
        total += tensor.numel() * (1 if quantization and id(tensor) in linear else size)
    return total


def check_vocabulary(main: LoadedModel, reference: LoadedModel) -> None:
    """Refuse a reference whose vocabulary is not the main model's, token by token, naming the first difference."""
    if reference.vocab_size != main.vocab_size:
        raise ValueError(
            f"the reference scores {reference.vocab_size} token ids and the main model {main.vocab_size}: "
            "a reference must share the main model's vocabulary"
        )
    ours, theirs = (m.tokenizer.convert_ids_to_tokens(list(range(len(m.tokenizer)))) for m in (main, reference))
    for token_id in range(max(len(ours), len(theirs))):
        a = ours[token_id] if token_id < len(ours) else None
        b = theirs[token_id] if token_id < len(theirs) else None
        if a != b:
            raise ValueError(
                f"the reference's vocabulary differs from the main model's at token id {token_id}: "
                f"{b!r} in the reference, {a!r} in the main model"
            )


def convert(model: torch.nn.Module, dtype: str | None, quantization: str | None) -> None:
    """`model` in `dtype`, then its linear weights int8 (torchao's weight-only int8: per-row scales)."""
    if dtype is not None:
        model.to(getattr(torch, dtype))
    if quantization == "int8":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(model, Int8WeightOnlyConfig())


def build(spec: ReferenceSpec, main: LoadedModel, check_memory: Callable[[int], None]) -> Reference:
    """Load the reference `spec` beside `main`; `check_memory(bytes)` refuses one over the memory budget."""
    if spec.engine == "vllm" and main.backend_name != "vllm":
        reference_vllm.check(spec.model, spec.quantization, is_main_model(spec.model, main))
        dtype = spec.dtype or dtype_name(main.model)
        weights = estimated_bytes(main.model, dtype, None)
        loaded, memory = reference_vllm.start_beside(main, dtype, weights, check_memory)
        return Reference(spec, loaded, loaded.backend, memory, main.key)
    if is_main_model(spec.model, main) and spec.engine == main.backend_name:
        if not main.has_weights:
            raise ValueError(f"the main model runs on the {main.backend_name} engine: it has no weights here to copy")
        if spec.dtype in (None, dtype_name(main.model)) and spec.quantization is None:
            return Reference(spec, main, backend_for(main), 0, main.key)  # the main model itself
        check_memory(estimated_bytes(main.model, spec.dtype or dtype_name(main.model), spec.quantization))
        copied = copy.deepcopy(main.model)
        loaded = LoadedModel(copied, main.tokenizer, main.model_id, main.source, main.device, new_key())
    else:
        # another model, or the main model loaded again for the transformers engine (it runs on vLLM)
        loaded = load_model(spec.model or main.model_id, str(main.device), None, STORE.settings.cache_dir)
        check_vocabulary(main, loaded)
    convert(loaded.model, spec.dtype, spec.quantization)
    memory = model_bytes(loaded.model)
    check_memory(memory)
    return Reference(spec, loaded, PrefixCache(shared=False), memory, main.key)


class ReferenceStore:
    """The one reference of the process: loaded on demand by spec, replaced or removed with its memory freed."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._current: Reference | None = None
        self._status = ReferenceStatus()

    def status(self) -> ReferenceStatus:
        return self._status

    def get(self, spec: ReferenceSpec, main: LoadedModel, check_memory: Callable[[int], None]) -> Reference:
        """The reference `spec` of the main model `main`, loading it (and freeing the previous one) when needed.

        A failure raises ValueError with one line, also shown as the status's `error`; no reference is kept then.
        """
        with self._lock:
            current = self._current
            if current is not None and current.spec == spec and current.main_key == main.key:
                return current
            self._free()
            shown = dict(model_id=spec.model or main.model_id, quantization=spec.quantization, engine=spec.engine)
            self._status = ReferenceStatus("loading", dtype=spec.dtype or "", **shown)
            try:
                found = build(spec, main, check_memory)
            except BaseException as exc:  # even an interrupt must not leave the status at "loading"
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self._status = ReferenceStatus("failed", dtype=spec.dtype or "", error=text, **shown)
                gc.collect()  # a half-made copy
                if isinstance(exc, ValueError) or not isinstance(exc, Exception):
                    raise
                raise ValueError(f"the reference {spec.describe(main)!r} did not load: {text}") from exc
            self._current = found
            memory = round(found.memory_bytes / MIB, 1)
            self._status = ReferenceStatus("ready", dtype=dtype_name(found.loaded.model), memory_mb=memory, **shown)
            return found

    def ready(self, spec: ReferenceSpec, main: LoadedModel) -> Reference:
        """The reference `spec` of `main` when it is loaded (`get` loads it); ValueError otherwise."""
        current = self._current
        if current is None or current.spec != spec or current.main_key != main.key:
            raise ValueError(f"the reference {spec.describe(main)!r} is not loaded (it was removed or replaced)")
        return current

    def remove(self) -> ReferenceStatus:
        """Free the reference (its weights and cache); the status says none."""
        with self._lock:
            self._free()
            self._status = ReferenceStatus()
            return self._status

    def _free(self) -> None:
        found, self._current = self._current, None
        if found is not None and found.loaded.key != found.main_key:  # not the main model's own engine
            if isinstance(found.backend, PrefixCache):
                found.backend.clear()  # its keys and values go now, not when the last reference to it does
            else:
                found.backend.close()  # a vLLM engine: its processes end and their memory with them
        del found
        gc.collect()  # a model's modules refer to each other in cycles: collect them now


REFERENCES = ReferenceStore()
