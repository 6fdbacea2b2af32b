"""The engine interface: "next-token logits for these token ids" (and for a batch of prefixes), nothing more.

Everything above it (knobs, constraints, the distribution, forcing, the look-ahead tree, prefetch) runs on
the logits it returns and does not know which engine made them. Two engines implement it:

- `transformers` (default): the model in this process behind the prefix KV cache (`backends.prefix_cache`);
  it also gives gradients and hidden states (attribution, the logit lens);
- `vllm`: a `vllm.LLM` (`backends.vllm.backend`): continuous batching across users, prefix caching,
  tensor and pipeline parallelism, several machines through Ray. It gives logits only.

A model loaded for vLLM carries its engine (`LoadedModel.backend`); `backend_for` picks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from backends.interventions import NO_EDITS, Edits
from backends.prefix_cache import PREFIX_CACHE

if TYPE_CHECKING:
    from backends.model import LoadedModel


class LogitsBackend(Protocol):
    """What the decoding engine asks of a model: float32 next-token logits of token-id prefixes."""

    def logits(self, loaded: LoadedModel, ids: Sequence[int], last_n: int = 1, edits: Edits = NO_EDITS) -> torch.Tensor:
        """[last_n, vocab]: row j predicts the token after ids[: len(ids) - last_n + 1 + j], under the model edits
        `edits` (backends.interventions; an engine that cannot edit the model refuses them)."""
        ...

    def batch_logits(
        self,
        loaded: LoadedModel,
        base: Sequence[int],
        rows: Sequence[Sequence[int]],
        keep: bool = False,
        edits: Edits = NO_EDITS,
    ) -> torch.Tensor:
        """[len(rows), vocab]: row i predicts the token after base + rows[i] (rows of one length), in one
        batch; with `keep` the answers are kept so a later call for them is free (prefetch)."""
        ...

    def with_unedited(self, loaded: LoadedModel, ids: Sequence[int], edits: Edits) -> None:
        """Have the logits after `ids` under `edits` and without them at hand, both at once where it can."""
        ...

    def cached(self, ids: Sequence[int], edits: Edits = NO_EDITS) -> bool:
        """Whether the logits after `ids` under `edits` are at hand (a call for them runs no model)."""
        ...

    def serves(self, loaded: LoadedModel) -> bool:
        """Whether the engine answers for `loaded` still (False once another model came in)."""
        ...


def backend_for(loaded: LoadedModel) -> LogitsBackend:
    """The engine that serves `loaded`: its own (vLLM), else the shared prefix KV cache (transformers)."""
    if loaded.backend is not None:
        return loaded.backend
    return PREFIX_CACHE


def check_gradients(loaded: LoadedModel, what: str) -> None:
    """Refuse `what` (attribution, the logit lens) where the model has no weights in this process: vLLM gives
    logits only, unless a transformers copy was loaded beside it."""
    if not loaded.has_weights:
        raise ValueError(
            f"{what} needs gradients and hidden states, which the {loaded.backend_name} engine does not give: "
            "start the app with --attribution-copy to load a transformers copy of the model for it"
        )
