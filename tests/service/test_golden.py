"""The recorded answers of a fixed set of requests over every operation stay as recorded (see golden_cases)."""

from __future__ import annotations

import json

import pytest

from attribution import clear_cache
from backends.model import STORE
from backends.prefix_cache import PREFIX_CACHE
from decoding.engine import engine_for
from service import operations as service
from service.prefetch import PREFETCH
from tests.service import golden_cases as cases

RECORDED = json.loads(cases.GOLDEN.read_text())


@pytest.fixture(scope="module")
def answers(embedded):
    """Replayed as recorded: prefetch off and nothing cached from earlier tests, whose KV and logits, computed
    in other batches or chunks, differ in the last float digits."""
    STORE.use(embedded)
    count, PREFETCH.count = PREFETCH.count, 0
    PREFIX_CACHE.clear()
    engine_for(embedded)._analyses.clear()
    clear_cache()
    try:
        return cases.run_all(service)
    finally:
        PREFETCH.count = count


def test_the_record_covers_every_operation():
    operations = {op for _, op, _ in cases._cases()}
    assert operations >= {
        "preview",
        "step",
        "tree",
        "render",
        "append_text",
        "compare",
        "logit_lens",
        "attribution",
        "model_status",
    }
    assert len(RECORDED) >= 50 and sum("refused" in a for a in RECORDED.values()) >= 15


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_answer_as_recorded(answers, name):
    # floats within 1e-4: float32 kernels differ in the last digits from one CPU to another (with AVX-512 or
    # without: up to 5e-5 seen on a log-probability), and the record was made on one of them
    assert cases.differences(RECORDED[name], answers[name], name, tol=1e-4) == []
