"""The one bounded cache every cache of the project is built on: least recently used first out, thread-safe.

`BoundedCache` keeps key -> value entries within a bound counted in entries (`max_entries`) or in bytes
(`max_bytes`, each value measured by `sizeof`), optionally dropping an entry `ttl_s` seconds after it was put.
It stands on `cachetools` (`LRUCache`, or `TTLCache` with an expiry) behind one lock of its own, so callers
keep no lock for it; a caller that must read and change several entries as one step holds `atomic()`.
`pop` takes an entry out for one caller only: of several threads popping one key, exactly one gets it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


@dataclass(frozen=True)
class BoundedStats:
    """What a cache holds now (entries, and their size: entries or bytes, as it is bounded) and how `get` fared."""

    entries: int
    size: int
    hits: int
    misses: int


def _check_bound(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} {value!r} must be a whole number >= 0")


def _check_options(
    max_entries: int | None, max_bytes: int | None, sizeof: Callable | None, ttl_s: float | None
) -> None:
    """ValueError with one line for a bound or expiry the cache cannot keep."""
    if (max_entries is None) == (max_bytes is None):
        raise ValueError(
            f"max_entries {max_entries!r} and max_bytes {max_bytes!r}: give exactly one bound, a count of entries"
            " or a number of bytes"
        )
    _check_bound("max_entries", max_entries)
    _check_bound("max_bytes", max_bytes)
    if (max_bytes is None) != (sizeof is None):
        raise ValueError(f"sizeof {sizeof!r} goes with max_bytes (the bytes of one value), and only with it")
    if ttl_s is not None and (isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not ttl_s >= 0):
        raise ValueError(f"ttl_s {ttl_s!r} must be a number of seconds >= 0, or None for entries that never expire")


class BoundedCache(Generic[K, V]):
    """Entries within a count or byte bound, the least recently used evicted first; optional time to live.

    `get` marks an entry as used; `peek`, `in` and iterating over the keys do not. `put` over an existing key
    replaces its value and makes it the most recent. A value larger than the whole bound is not kept, and, as
    the oldest entries go until the newest fits, every other entry goes with it.
    """

    def __init__(
        self,
        max_entries: int | None = None,
        *,
        max_bytes: int | None = None,
        sizeof: Callable[[V], int] | None = None,
        ttl_s: float | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_options(max_entries, max_bytes, sizeof, ttl_s)
        bound = max_entries if max_bytes is None else max_bytes
        if ttl_s is None:
            self._data: cachetools.Cache = cachetools.LRUCache(bound, getsizeof=sizeof)
        else:
            self._data = cachetools.TTLCache(bound, ttl_s, timer=timer, getsizeof=sizeof)
        self._lock = threading.RLock()  # reentrant: a caller holding `atomic()` still calls the methods
        self._hits = self._misses = 0

    def atomic(self) -> AbstractContextManager:
        """Hold the cache's lock across several calls (a search over the keys, then a `pop`), so they act as one."""
        return self._lock

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of `key` (now the most recently used), or `default`."""
        with self._lock:
            value = self._data.get(key, _MISSING)  # one call: a TTL cache reads the clock once for both steps
            if value is _MISSING:
                self._misses += 1
                return default
            self._hits += 1
            return value

    def peek(self, key: K, default: V | None = None) -> V | None:
        """The value of `key` without marking it used (a search looks at entries it may not take), or `default`."""
        with self._lock:
            # cachetools' base class reads the value without touching the recency order
            return cachetools.Cache.__getitem__(self._data, key) if key in self._data else default

    def put(self, key: K, value: V) -> None:
        """Keep `value` under `key` as the most recent entry, evicting the least recently used beyond the bound."""
        with self._lock:
            self._data.pop(key, None)  # a replaced value leaves first, so it is not counted against its successor
            if self._data.getsizeof(value) > self._data.maxsize:
                self._data.clear()
                return
            self._data[key] = value

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Take the entry out and return its value, or `default`: whoever pops a key gets it, exactly once."""
        with self._lock:
            return self._data.pop(key, default)

    def __iter__(self) -> Iterator[K]:
        """The keys held now, in the order they were put (oldest first): a snapshot, so the cache may change."""
        with self._lock:
            return iter(list(self._data))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def stats(self) -> BoundedStats:
        with self._lock:
            return BoundedStats(len(self._data), self._data.currsize, self._hits, self._misses)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        """Whether `key` is held (and not expired), without marking it used."""
        with self._lock:
            return key in self._data
