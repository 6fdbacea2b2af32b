"""The bounded cache: count and byte bounds, least recently used evicted first, expiry, take-once, threads."""

from __future__ import annotations

import threading

import pytest

from backends.bounded import BoundedCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_count_bound_evicts_the_oldest_entry():
    cache = BoundedCache(max_entries=2)
    for key in "abc":
        cache.put(key, key.upper())
    assert len(cache) == 2 and "a" not in cache and list(cache) == ["b", "c"]
    assert cache.get("c") == "C" and cache.get("a") is None


def test_a_byte_bound_counts_the_size_of_each_value():
    cache = BoundedCache(max_bytes=10, sizeof=len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.stats().size == 8
    cache.put("c", b"123")  # 11 bytes: the oldest goes
    assert list(cache) == ["b", "c"] and cache.stats().size == 7
    cache.put("b", b"12345678")  # a replaced value is not counted against its successor: only c goes
    assert list(cache) == ["b"] and cache.stats().size == 8


def test_a_value_larger_than_the_bound_is_not_kept_and_empties_the_cache():
    cache = BoundedCache(max_bytes=10, sizeof=len)
    cache.put("a", b"1234")
    cache.put("b", b"x" * 11)
    assert len(cache) == 0 and cache.stats().size == 0


def test_get_makes_an_entry_the_most_recent_and_peek_does_not():
    cache = BoundedCache(max_entries=3)
    for key in "abc":
        cache.put(key, key)
    assert cache.get("a") == "a"  # now b is the least recently used
    assert cache.peek("b") == "b"  # still the least recently used
    cache.put("d", "d")
    assert "b" not in cache and all(key in cache for key in "acd")
    cache.put("c", "C")  # a put over an existing key makes it the most recent too
    cache.put("e", "e")
    assert "a" not in cache and cache.get("c") == "C"
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 0, 3)
    assert cache.get("zz", "default") == "default" and cache.stats().misses == 1


def test_entries_expire_after_their_time_to_live():
    clock = FakeClock()
    cache = BoundedCache(max_entries=4, ttl_s=60.0, timer=clock)
    cache.put("a", 1)
    clock.now = 30.0
    cache.put("b", 2)
    assert cache.get("a") == 1  # a use does not extend the time to live
    clock.now = 60.0
    assert "a" not in cache and cache.get("a") is None and cache.pop("a") is None
    assert list(cache) == ["b"] and len(cache) == 1
    clock.now = 90.0
    assert cache.pop("b") is None and len(cache) == 0


def test_expiring_entries_are_bounded_too():
    cache = BoundedCache(max_entries=2, ttl_s=60.0, timer=FakeClock())
    for key in "abc":
        cache.put(key, key)
    assert list(cache) == ["b", "c"]


def test_pop_takes_an_entry_exactly_once():
    cache = BoundedCache(max_entries=4)
    cache.put("a", 1)
    assert cache.pop("a") == 1 and cache.pop("a") is None and len(cache) == 0
    for round_ in range(20):
        cache.put("shared", round_)
        taken: list[int] = []
        barrier = threading.Barrier(8)

        def take(barrier: threading.Barrier = barrier, taken: list[int] = taken) -> None:
            barrier.wait()
            if (value := cache.pop("shared")) is not None:
                taken.append(value)

        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert taken == [round_]


def test_concurrent_puts_and_gets_keep_the_bound_and_the_values():
    cache = BoundedCache(max_bytes=1000, sizeof=len)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(500):
                key = (worker, i % 37)
                cache.put(key, b"x" * (i % 50 + 1))
                value = cache.get(key)
                assert value is None or len(value) <= 50
                assert cache.stats().size <= 1000
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.stats().size == sum(len(cache.peek(key)) for key in cache) <= 1000


def test_atomic_holds_the_lock_across_calls():
    cache = BoundedCache(max_entries=4)
    cache.put("a", 1)
    with cache.atomic():
        waiter = threading.Thread(target=cache.put, args=("b", 2))
        waiter.start()
        waiter.join(0.1)
        assert waiter.is_alive() and list(cache) == ["a"]  # the other thread waits for the lock
        assert cache.pop("a") == 1  # the holder still calls the cache
    waiter.join()
    assert list(cache) == ["b"]


def test_clear_empties_the_cache():
    cache = BoundedCache(max_bytes=100, sizeof=len)
    cache.put("a", b"123")
    cache.put("b", b"45")
    cache.clear()
    assert len(cache) == 0 and cache.stats().size == 0 and list(cache) == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "max_entries"),
        ({"max_entries": 2, "max_bytes": 10, "sizeof": len}, "max_entries"),
        ({"max_entries": -1}, "max_entries"),
        ({"max_entries": 2.5}, "max_entries"),
        ({"max_bytes": 10}, "sizeof"),
        ({"max_entries": 2, "sizeof": len}, "sizeof"),
        ({"max_entries": 2, "ttl_s": -1.0}, "ttl_s"),
        ({"max_entries": 2, "ttl_s": "soon"}, "ttl_s"),
    ],
)
def test_a_bound_or_expiry_it_cannot_keep_is_refused_in_one_line(options, field):
    with pytest.raises(ValueError, match=field) as caught:
        BoundedCache(**options)
    assert "\n" not in str(caught.value)
