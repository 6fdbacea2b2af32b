"""Where the app runs: Hugging Face Spaces detection and the ZeroGPU decorator.

Import this module before anything touches CUDA: on ZeroGPU hardware `spaces` must be imported first.
Everywhere else (no `spaces` package, or Spaces without ZeroGPU) the helpers change nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

try:  # preinstalled on Hugging Face Spaces; absent locally
    import spaces
except ImportError:
    spaces = None

F = TypeVar("F", bound=Callable)
DEFAULT_GPU_SECONDS = 60  # ZeroGPU queues long requests behind short ones, so ask only for what a step needs


def on_spaces(env: Mapping[str, str] | None = None) -> bool:
    """True on Hugging Face Spaces, which sets SPACE_ID in every Space's environment."""
    return bool((os.environ if env is None else env).get("SPACE_ID", "").strip())


def gpu(fn: F | None = None, *, duration: int = DEFAULT_GPU_SECONDS) -> F | Callable[[F], F]:
    """`@gpu` or `@gpu(duration=120)`: `spaces.GPU(duration=...)` when `spaces` is importable, else `fn` itself.

    On ZeroGPU the call runs in a forked process: arguments and results must be picklable CPU data, and
    changes it makes to module state (the model store, the prefix cache) do not survive the call.
    """
    if fn is None:
        return lambda f: gpu(f, duration=duration)
    if spaces is None:
        return fn
    return spaces.GPU(duration=duration)(fn)
