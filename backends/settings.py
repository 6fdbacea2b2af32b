"""The backends' settings, below the backends that use them: which backend computes the logits and how vLLM starts."""

from __future__ import annotations

from dataclasses import dataclass, field

BACKENDS = ("transformers", "vllm")
EXECUTOR_BACKENDS = ("mp", "ray", "uni", "external_launcher")  # vLLM's distributed_executor_backend values


def backend_name(value: object, source: str = "engine") -> str:
    """An engine's name checked: transformers or vllm (None: transformers)."""
    name = "transformers" if value is None else str(value).strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"{source} {value!r} is not an engine: use one of {', '.join(BACKENDS)}")
    return name


@dataclass(frozen=True)
class VllmOptions:
    """How vLLM starts: parallelism as vLLM documents it (the executor None: vLLM's choice), eager mode."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    enforce_eager: bool = False

    def __post_init__(self) -> None:
        for name in ("tensor_parallel_size", "pipeline_parallel_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} {value!r} must be a whole number >= 1")
        backend = self.distributed_executor_backend
        if backend is not None and backend not in EXECUTOR_BACKENDS:
            raise ValueError(f"distributed_executor_backend {backend!r} is not one of {', '.join(EXECUTOR_BACKENDS)}")

    @property
    def placement(self) -> str:
        """How the weights are spread, for the model status."""
        parts = [f"tensor parallel {self.tensor_parallel_size}", f"pipeline parallel {self.pipeline_parallel_size}"]
        if self.distributed_executor_backend:
            parts.append(f"{self.distributed_executor_backend} executor")
        return "vLLM: " + ", ".join(parts)


@dataclass(frozen=True)
class BackendSettings:
    """Which engine computes the logits (transformers or vllm, see backends.base), how vLLM starts, and whether
    a transformers copy is loaded beside vLLM (`attribution_copy`) so attribution and the logit lens still work."""

    name: str = "transformers"
    vllm: VllmOptions = field(default_factory=VllmOptions)
    attribution_copy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", backend_name(self.name))
