"""Borrowing the shared model for one attribution: hold the model lane and put every setting back afterwards.

An attribution changes the model for its own duration (eval mode, the attention implementation, maybe
hooks); `borrowed` records that state first and restores it in a `finally`, so neither a finished nor a
failed attribution leaves anything behind for the next request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from backends.lane import LANE

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
# transformers installs these once, lazily, the first time `output_attentions` / `output_hidden_states` is
# asked for, marks the model as hooked and never installs them again: removing them would silently break
# every later request for attentions or hidden states. They do nothing unless such a request is active.
_TRANSFORMERS_CAPTURE_MODULE = "transformers.utils.output_capturing"


@dataclass(frozen=True)
class ModelState:
    """What an attribution may touch, as it was before."""

    grad_enabled: bool
    training: tuple[bool, ...]
    attn_implementation: str | None
    requires_grad: tuple[bool, ...]
    hooks: tuple[tuple[int, ...], ...]


def attn_implementation(model: torch.nn.Module) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None)


def _hook_ids(model: torch.nn.Module) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(getattr(module, name, {}).keys()) for module in model.modules() for name in _HOOK_DICTS)


def snapshot(model: torch.nn.Module) -> ModelState:
    return ModelState(
        grad_enabled=torch.is_grad_enabled(),
        training=tuple(module.training for module in model.modules()),
        attn_implementation=attn_implementation(model),
        requires_grad=tuple(p.requires_grad for p in model.parameters()),
        hooks=_hook_ids(model),
    )


def _remove_new_hooks(model: torch.nn.Module, before: tuple[tuple[int, ...], ...]) -> None:
    pairs = ((module, name) for module in model.modules() for name in _HOOK_DICTS)
    for (module, name), kept in zip(pairs, before, strict=False):
        hooks = getattr(module, name, None)
        if not hooks:
            continue
        for key in [k for k in hooks if k not in kept]:
            if getattr(hooks[key], "__module__", "") != _TRANSFORMERS_CAPTURE_MODULE:
                del hooks[key]


def restore(model: torch.nn.Module, state: ModelState) -> None:
    torch.set_grad_enabled(state.grad_enabled)
    for module, flag in zip(model.modules(), state.training, strict=False):
        if module.training != flag:
            module.training = flag
    if state.attn_implementation is not None and attn_implementation(model) != state.attn_implementation:
        model.set_attn_implementation(state.attn_implementation)
    for param, flag in zip(model.parameters(), state.requires_grad, strict=False):
        if param.requires_grad != flag:
            param.requires_grad_(flag)
    _remove_new_hooks(model, state.hooks)


@contextmanager
def borrowed(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model in eval mode under the model lane; its previous state comes back on exit, error or not.

    Work inside may pause the lane (`LANE.pause()`): whoever goes meanwhile borrows the model the same way
    and puts it back before we continue.
    """
    with LANE.hold():
        state = snapshot(model)
        try:
            if any(state.training):
                model.eval()
            yield model
        finally:
            restore(model, state)


@contextmanager
def attention_implementation(model: torch.nn.Module, name: str) -> Iterator[None]:
    """Switch the attention implementation for one block only (callers already hold the lane)."""
    previous = attn_implementation(model)
    if previous == name:
        yield
        return
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        if previous is not None:
            model.set_attn_implementation(previous)
