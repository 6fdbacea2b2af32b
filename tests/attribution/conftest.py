"""Shared by the attribution tests: the ids of one short text, and cold attribution caches around every test."""

from __future__ import annotations

import pytest

from attribution import clear_cache

TEXT = "The quick brown fox jumps over the lazy dog because it"


@pytest.fixture(autouse=True)
def _cold_caches():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def ids(tokenizer) -> list[int]:
    return tokenizer(TEXT)["input_ids"]
