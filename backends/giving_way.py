"""A forward pass that gives way: background work runs the model with a check before each decoder layer.

Prefetch guesses; a request is real. While prefetch's forward runs, a request that queues for the model
would wait for the whole pass (and a batched pass of several rows costs more than the request's own). Under
`giving_way(model, stop)` every decoder layer first asks `stop()`; True abandons the pass with `Cancelled`,
so the request waits for at most one layer. The batched rows run on their own copy of the KV cache, so an
abandoned pass leaves nothing shared half-written; only when the base itself was not cached and had to be
prefilled first does an abandoned pass drop the entry it was extending (a later cache miss, never a wrong
answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from backends.lane import Cancelled


def decoder_layers(model: object) -> nn.ModuleList | None:
    """The model's stack of decoder layers (its longest ModuleList); None when it has none (no weights here)."""
    if not isinstance(model, nn.Module):
        return None
    return max((m for m in model.modules() if isinstance(m, nn.ModuleList)), key=len, default=None)


@contextmanager
def giving_way(model: object, stop: Callable[[], bool]) -> Iterator[None]:
    """Within the block, each decoder layer of `model` first asks `stop()`; True raises `Cancelled`."""

    def check(module: nn.Module, args: tuple) -> None:
        if stop():
            raise Cancelled("a request needs the model: the background forward gave way")

    handles = [layer.register_forward_pre_hook(check) for layer in decoder_layers(model) or ()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
