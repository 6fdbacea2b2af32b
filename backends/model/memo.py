"""The per-model memo: values built from one loaded model (its engine, its constraint tracker, a CPU copy ...).

Everything derived from a model is kept here and nowhere else, so one rule frees it all: the memo holds the
values of one model at a time. Asking for a value of another model drops the values of the previous one, and
the store drops them all when it switches models, so no cache keeps an old model (or its memory) alive.
A value may come with a `release` callback, run when it is dropped (outside the memo's lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from backends.model.loaded import LoadedModel

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    value: object
    release: Callable[[object], None] | None


_lock = threading.Lock()
_model_key: int | None = None  # the model whose values `_entries` holds
_entries: dict[str, _Entry] = {}


def per_model(
    loaded: LoadedModel,
    name: str,
    factory: Callable[[LoadedModel], T],
    release: Callable[[T], None] | None = None,
) -> T:
    """The value `name` of this model, built by `factory(loaded)` on first use and kept until the model changes.

    The factory runs outside the lock (it may be slow); two threads asking at once may both build, and the
    first value stored wins. `release(value)` runs when a stored value is dropped.
    """
    with _lock:
        dropped = _switch_to(loaded.key)
        entry = _entries.get(name)
    _release(dropped)
    if entry is not None:
        return entry.value
    value = factory(loaded)
    with _lock:
        if _model_key != loaded.key:  # another model came in while building: do not keep this one's value
            return value
        return _entries.setdefault(name, _Entry(value, release)).value


def drop(name: str | None = None) -> None:
    """Forget the value `name`, or every value (the store calls this when it switches models)."""
    global _model_key
    with _lock:
        if name is None:
            dropped = list(_entries.values())
            _entries.clear()
            _model_key = None
        else:
            dropped = [entry] if (entry := _entries.pop(name, None)) is not None else []
    _release(dropped)


def _switch_to(key: int) -> list[_Entry]:
    """Make `key` the memo's model (under the lock); returns the entries of the previous model."""
    global _model_key
    if _model_key == key:
        return []
    dropped = list(_entries.values())
    _entries.clear()
    _model_key = key
    return dropped


def _release(entries: list[_Entry]) -> None:
    for entry in entries:
        if entry.release is not None:
            entry.release(entry.value)
