"""Model edits as forward hooks: installed for one forward pass (or one slice of work), removed in `finally`.

`applied(model, edits)` registers one hook per edit (decoding.interventions) and removes them on exit, error
or cancel, so the shared model is never left edited and a lane pause between prefill chunks never lends an
edited model to another request (each caller wraps its own forwards). On a Llama-style decoder layer:

- a head ablation is a forward pre-hook on `self_attn.o_proj`: the head's slice of the attention output,
  before the output projection, set to zero or to its mean over the pass's positions;
- a block ablation is a forward hook on `self_attn` or `mlp`: the block's output set to zero or its mean;
- steering is a forward hook on the decoder layer: alpha * v added to the residual stream it outputs
  (registered first, so hidden states that transformers records see the steered stream).

A mean is over the positions of the pass, so it is the mean over the context only when the pass runs the
whole context (the prefix cache does that for mean edits). Plain torch hooks, not nnsight: nnsight traces a
whole `generate`/forward of its own wrapper, while the prefix KV cache runs chunked and batched forwards of
the model itself under the model lane; hooks fit those calls as they are and cost microseconds to add.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

import torch
from torch import nn

from backends.giving_way import decoder_layers

T = TypeVar("T")
MODES = ("zero", "mean")
COMPONENTS = ("attention", "mlp")


@dataclass(frozen=True)
class Ablate:
    """Head `head`'s slice of layer `layer`'s attention output (before o_proj), or a whole block, set to zero or
    to its mean over the context's positions."""

    layer: int
    head: int | None = None
    component: str | None = None
    mode: str = "zero"

    def as_dict(self) -> dict:
        out = {"type": "ablate", "layer": self.layer, "mode": self.mode}
        return out | ({"head": self.head} if self.head is not None else {"component": self.component})

    def describe(self) -> str:
        what = f"head {self.head}" if self.head is not None else f"{self.component} block"
        return f"{what} of layer {self.layer} ablated ({self.mode})"


@dataclass(frozen=True)
class Steer:
    """`alpha` times `vector` added to the residual stream after decoder layer `layer` (at every position).

    `vector` is a steering vector's id until `resolve`, then its d_model floats. `name` is how the status line
    names the vector (its examples, backends.steering.direction), for words only: no part of the edit's
    identity."""

    layer: int
    vector: str | tuple[float, ...]
    alpha: float
    name: str = field(default="", compare=False)

    def as_dict(self) -> dict:
        vector = self.vector if isinstance(self.vector, str) else list(self.vector)
        return {"type": "steer", "layer": self.layer, "vector": vector, "alpha": self.alpha}

    def describe(self) -> str:
        vector = self.vector if isinstance(self.vector, str) else f"a vector of {len(self.vector)} floats"
        return f"layer {self.layer} steered {self.name or f'by {vector}'} x {self.alpha:g}"


Intervention = Ablate | Steer
Edits = tuple[Intervention, ...]  # in the order applied
NO_EDITS: Edits = ()

# (id(model), thread) -> the edits that thread applies now: caches of activations key their entries by it
_active: dict[tuple[int, int], Edits] = {}
_lock = threading.Lock()


def edits_on(model: object) -> Edits:
    """The edits this thread applies to `model` right now (empty outside `applied`)."""
    return _active.get((id(model), threading.get_ident()), ())


@contextmanager
def applied(model: nn.Module, edits: Edits, row: int | None = None) -> Iterator[None]:
    """Within the block, this thread's forward passes of `model` run with `edits` (on batch row `row` only, when
    given); every hook is removed on exit, whatever happened. The hooks act on this thread's passes only: work
    that pauses the lane mid-pass lets other requests through the model meanwhile, and their passes go through
    the hooks untouched."""
    if not edits:
        yield
        return
    layers = decoder_layers(model)
    handles = []
    key = (id(model), threading.get_ident())
    with _lock:
        before = _active.get(key)
        _active[key] = edits
    try:
        for edit in edits:
            handles.append(_register(layers[edit.layer], edit, row))
        yield
    finally:
        for handle in handles:
            handle.remove()
        with _lock:
            if before is None:
                _active.pop(key, None)
            else:
                _active[key] = before


def first_layer(edits: Edits) -> int:
    """The first decoder layer the edits change: below it the edited and the unedited model compute the same."""
    return min(edit.layer for edit in edits)


def _scoped(hook, row: int | None):
    """`hook` for the registering thread's passes only (None, no change, for any other thread's), and with `row`
    for that batch row only (the other rows keep what they had)."""
    me = threading.get_ident()

    def scoped(module: nn.Module, args: tuple, *output):
        if threading.get_ident() != me:
            return None
        new = hook(module, args, *output)
        if row is None:
            return new
        old = output[0] if output else args  # a forward hook's output, or a pre-hook's arguments
        old_first, new_first = (x[0] if isinstance(x, tuple) else x for x in (old, new))
        mask = torch.zeros(old_first.shape[0], dtype=torch.bool, device=old_first.device)
        mask[row] = True
        mixed = torch.where(mask.view(-1, *[1] * (old_first.dim() - 1)), new_first, old_first)
        return (mixed, *new[1:]) if isinstance(new, tuple) else mixed

    return scoped


def check_edits(loaded: object, edits: Edits) -> None:
    """Refuse edits where the model runs outside this process (vLLM): its forward passes cannot be hooked here."""
    if edits and getattr(loaded, "backend", None) is not None:
        name = getattr(loaded, "backend_name", "vllm")
        raise ValueError(
            f"interventions ({len(edits)} given) need hooks in the model's forward pass, which the {name} engine "
            "does not run here: send no interventions, or load the model with the transformers engine"
        )


def _register(layer: nn.Module, edit: Intervention, row: int | None) -> torch.utils.hooks.RemovableHandle:
    if isinstance(edit, Steer):
        return layer.register_forward_hook(_scoped(_steer_hook(edit), row), prepend=True)
    if edit.head is not None:
        return layer.self_attn.o_proj.register_forward_pre_hook(_scoped(_head_hook(layer.self_attn, edit), row))
    block = layer.self_attn if edit.component == "attention" else layer.mlp
    return block.register_forward_hook(_scoped(_block_hook(edit.mode), row))


def replaced(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Zeros, or the mean over positions (dim 1) at every position."""
    return torch.zeros_like(x) if mode == "zero" else x.mean(dim=1, keepdim=True).expand_as(x)


def _head_hook(attention: nn.Module, edit: Ablate):
    head_dim = attention.head_dim
    start, stop = edit.head * head_dim, (edit.head + 1) * head_dim

    def hook(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        inside = torch.zeros(x.shape[-1], dtype=torch.bool, device=x.device)
        inside[start:stop] = True
        return (torch.where(inside, replaced(x, edit.mode), x), *args[1:])  # not in place: gradients pass

    return hook


def _block_hook(mode: str):
    def hook(module: nn.Module, args: tuple, output):
        if isinstance(output, tuple):  # attention: (output, weights)
            return (replaced(output[0], mode), *output[1:])
        return replaced(output, mode)

    return hook


@lru_cache(maxsize=16)
def _scaled(vector: tuple[float, ...], alpha: float) -> torch.Tensor:
    """alpha * vector as a tensor, made once per edit, not at every step (d_model floats from a tuple: ~1 ms)."""
    return torch.tensor(vector, dtype=torch.float32) * alpha


def _steer_hook(edit: Steer):
    vector = _scaled(edit.vector, edit.alpha)

    def hook(module: nn.Module, args: tuple, output):
        hidden = output[0] if isinstance(output, tuple) else output
        steered = hidden + vector.to(device=hidden.device, dtype=hidden.dtype)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    return hook


def residual_after(model: nn.Module, layer: int, ids: list[int], device: torch.device) -> torch.Tensor:
    """The residual stream after decoder layer `layer` at the last token of `ids` (float32, CPU)."""
    found: list[torch.Tensor] = []

    def capture(module: nn.Module, args: tuple, output) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        found.append(hidden[0, -1].detach().float().cpu())

    handle = decoder_layers(model)[layer].register_forward_hook(capture)
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids], dtype=torch.long, device=device), logits_to_keep=1)
    finally:
        handle.remove()
    return found[0]


def whole_context(edits: Edits) -> bool:
    """Whether the edits need the whole context in one pass: a mean over positions changes with every token,
    so no cached prefix can be extended under it."""
    return any(isinstance(edit, Ablate) and edit.mode == "mean" for edit in edits)


def edited_slices(model: nn.Module, edits: Edits, slices: Iterator[T]) -> Iterator[T]:
    """Each `next()` of `slices` (work run in slices of the model lane) under `edits`, removed between slices."""
    try:
        while True:
            with applied(model, edits):
                try:
                    item = next(slices)
                except StopIteration:
                    return
            yield item
    finally:
        close = getattr(slices, "close", None)
        if close is not None:  # closed early (cancelled): the work stops at once, not when collected
            close()
