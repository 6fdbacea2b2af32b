"""The decoder layers below an edit, run once per token: their output kept, the layers above rerun from it.

A mean ablation at decoder layer L depends on every position (the mean over the context changes with each new
token), so each step reruns the whole context from layer L up. The layers below L are the unedited model's:
appending a token changes neither their keys and values nor their output at the earlier positions. So a step
extends the unedited model's cached prefix by the new tokens, keeping the input to layer L at those positions
(`captured`), and the edited pass runs the whole context with the layers below L skipped, the kept input taking
their place (`from_layer`). Both act on the calling thread's passes only and are undone in `finally`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from backends.giving_way import decoder_layers


@contextmanager
def captured(model: nn.Module, layer: int, into: list[torch.Tensor]) -> Iterator[None]:
    """Within the block, the input hidden states of decoder layer `layer` in this thread's passes are appended to
    `into` ([batch, positions, d_model] each, in the order the passes ran)."""
    me = threading.get_ident()

    def keep(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if threading.get_ident() == me:
            into.append(args[0] if args else kwargs["hidden_states"])

    handle = decoder_layers(model)[layer].register_forward_pre_hook(keep, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def from_layer(model: nn.Module, layer: int, hidden: torch.Tensor) -> Iterator[None]:
    """Within the block, this thread's passes of `model` skip the decoder layers below `layer` and feed `hidden`
    (the input to `layer` at every position of the pass) to it; the layers' own forwards are back in `finally`."""
    me = threading.get_ident()
    layers = decoder_layers(model)

    def feed(module: nn.Module, args: tuple, kwargs: dict) -> tuple | None:
        if threading.get_ident() != me:
            return None
        if args:
            return (hidden, *args[1:]), kwargs
        return args, kwargs | {"hidden_states": hidden}

    for below in layers[:layer]:
        below.forward = _passing(below, me)
    handle = layers[layer].register_forward_pre_hook(feed, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
        for below in layers[:layer]:
            del below.forward


def _passing(module: nn.Module, me: int):
    """`module`'s forward as the identity on its hidden states for thread `me` (its output is not used there)."""

    def forward(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if threading.get_ident() != me:  # another thread's pass, let through the model meanwhile
            return type(module).forward(module, hidden_states, *args, **kwargs)
        return hidden_states

    return forward
