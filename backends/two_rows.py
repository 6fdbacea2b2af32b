"""How an edited step's forward runs its edited and its unedited row: one pass, two rows only where they differ.

`two_row_pass(model, layer)`: below the first edited layer both rows compute the same, so the pass runs one row
there and that row twice from the layer on (`forked`); and the output layer runs as W @ x^T (`narrow_head`).

On the CPU the BLAS product of two rows by the output layer's weights (`F.linear`: x @ W^T) costs about twice
one row's on the machine measured (an AMD EPYC with MKL: 18 ms against 8 ms for SmolLM2-135M's 49152 x 576
output layer, one thread), while the same product taken as W @ x^T, the two rows as its narrow side, costs
9.5 ms. The numbers are the same up to float rounding (~1e-6). Only the output layer: the decoder's own linear
layers swapped too made the step slower (bench/edits.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from backends.giving_way import decoder_layers


@contextmanager
def two_row_pass(model: nn.Module, layer: int) -> Iterator[None]:
    """Within the block, this thread's passes of `model` fork at decoder layer `layer` and take the output layer
    as W @ x^T; both undone in `finally`."""
    with forked(model, layer), narrow_head(model):
        yield


@contextmanager
def forked(model: nn.Module, layer: int) -> Iterator[None]:
    """Within the block, this thread's passes of `model` run one batch row below decoder layer `layer` and that row
    twice from it on: an edited row and an unedited one share the layers below the first edit (their keys and
    values there are the same), so only the layers from it on cost two rows."""
    me = threading.get_ident()

    def fork(module: nn.Module, args: tuple) -> tuple | None:
        if threading.get_ident() != me:
            return None
        hidden = args[0]
        return (hidden.repeat(2, *[1] * (hidden.dim() - 1)), *args[1:])

    handle = decoder_layers(model)[layer].register_forward_pre_hook(fork)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def narrow_head(model: nn.Module) -> Iterator[None]:
    """Within the block, this thread's passes of `model` run its output layer as W @ x^T (a plain linear layer on
    the CPU; any other is left as it is); the layer's own forward is back in `finally`."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(head) is not nn.Linear or head.weight.device.type != "cpu":
        yield
        return
    head.forward = _narrow(head, threading.get_ident())
    try:
        yield
    finally:
        del head.forward


def _narrow(layer: nn.Linear, me: int):
    def forward(x: torch.Tensor) -> torch.Tensor:
        if threading.get_ident() != me:  # another thread's pass, let through the model meanwhile
            return nn.Linear.forward(layer, x)
        out = torch.mm(layer.weight, x.reshape(-1, x.shape[-1]).T).T
        if layer.bias is not None:
            out = out + layer.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])

    return forward
