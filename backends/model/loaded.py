"""LoadedModel, what a load produces, and ModelStatus, what the UI and the API show about it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backends.model.devices import summarise_device_map


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
    engine: str = "transformers"  # which engine computes the logits (backends.base)
    gradients: bool = True  # whether attribution and the logit lens can run (a transformers copy is loaded)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LoadedModel:
    """A ready model with its tokenizer; `key` is different for every load (per-model memos use it).

    `backend`: the engine that computes its logits when it is not this process's transformers model
    (vLLM, see backends.base); `model` is then a weightless skeleton (config, vocabulary, generation
    config) unless a transformers copy was loaded beside it for attribution.
    """

    model: torch.nn.Module
    tokenizer: object
    model_id: str
    source: str
    device: torch.device
    key: int
    backend: object | None = None

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
    def backend_name(self) -> str:
        return getattr(self.backend, "name", "transformers")

    @property
    def has_weights(self) -> bool:
        """Whether `model` holds real weights (False for the skeleton beside a vLLM engine): gradients need them."""
        return next(self.model.parameters()).device.type != "meta"

    @property
    def placement(self) -> str:
        """Where the weights live: one device, or a per-device layer count for a device_map model."""
        if self.backend is not None:
            return getattr(self.backend, "placement", self.backend_name)
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
            engine=self.backend_name,
            gradients=self.has_weights,
        )


def eos_ids(loaded: LoadedModel) -> frozenset[int]:
    """Every id that ends a completion: the tokenizer's eos and the generation config's (one id or a list)."""
    ids = set()
    tok_eos = getattr(loaded.tokenizer, "eos_token_id", None)
    if isinstance(tok_eos, int):
        ids.add(tok_eos)
    gen = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen, int):
        ids.add(gen)
    elif isinstance(gen, list | tuple):
        ids.update(int(i) for i in gen)
    return frozenset(ids)
