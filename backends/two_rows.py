"""How an edited step's forward runs its edited and its unedited row: one pass, two rows only where they differ.

`two_row_pass(model, layer)`: below the first edited layer both rows compute the same, so the pass runs one row
there and that row twice from the layer on (`forked`); and its linear layers take a few rows as W @ x^T
(`narrow_products`).

On the CPU the BLAS product of two rows by a layer's weights as `F.linear` takes it (x @ W^T, a GEMM with two
rows on the short side) costs about 1.7 x one row's on the machine measured (an AMD EPYC with MKL, SmolLM2-135M's
30 decoder layers: 51 ms against 31 ms), while the same product taken as W @ x^T (the rows as its narrow side),
copied back to rows, costs 26 ms: less than one row. From 6 rows on neither form wins steadily, so only 2 to
NARROW_MAX rows take it. The numbers are the same up to float rounding (~1e-6).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from backends.giving_way import decoder_layers

NARROW_MAX = 4
_THIS_THREAD = threading.local()
_NARROWED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextmanager
def two_row_pass(model: nn.Module, layer: int) -> Iterator[None]:
    """Within the block, this thread's passes of `model` fork at decoder layer `layer` and take
    their few-row products as W @ x^T; both undone in `finally`."""
    with forked(model, layer), narrow_products(model):
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
def narrow_products(model: nn.Module) -> Iterator[None]:
    """Within the block, this thread's passes of `model` run its plain float32 linear layers on the CPU as W @ x^T
    when they get 2 to NARROW_MAX rows (any other layer, or row count, as it is); the layers' own forwards back in
    `finally`."""
    if model not in _NARROWED:  # built once per model: a walk over its modules costs ~0.7 ms, a step ~60
        _NARROWED[model] = [(m, _narrow(m)) for m in model.modules() if _plain(m)]
    layers = _NARROWED[model]
    _THIS_THREAD.narrow = True
    try:
        for layer, forward in layers:  # the instance dict itself: Module.__setattr__'s checks cost ~0.4 ms a step
            layer.__dict__["forward"] = forward
        yield
    finally:
        _THIS_THREAD.narrow = False
        for layer, _ in layers:
            layer.__dict__.pop("forward", None)


def _plain(module: nn.Module) -> bool:
    """A linear layer of float32 weights on the CPU as plain tensors: the form measured (a quantised reference's
    weights are tensor subclasses with products of their own; bfloat16 takes other kernels)."""
    if type(module) is not nn.Linear:
        return False
    weight = module.weight
    return type(weight) in (torch.Tensor, nn.Parameter) and weight.dtype == torch.float32 and weight.is_cpu


def _narrow(layer: nn.Linear):
    def forward(x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if not getattr(_THIS_THREAD, "narrow", False) or not 2 <= rows <= NARROW_MAX:  # another thread's pass
            return nn.Linear.forward(layer, x)
        # back to rows: the transposed view's strides made the elementwise work after it slower than the copy
        out = torch.mm(layer.weight, x.reshape(rows, x.shape[-1]).T).T.contiguous()
        if layer.bias is not None:
            out = out + layer.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])

    return forward
