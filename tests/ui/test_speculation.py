"""Speculations: a step computed ahead of its event is taken once, for its own request and model, while fresh."""

from __future__ import annotations

from ui import speculation
from ui.speculation import Speculations


def test_a_speculation_for_another_model_is_not_taken(monkeypatch):
    speculations = Speculations()
    request = {"prompt": "x"}
    entry = speculations.start(request)
    entry.result = {"appended": [1]}
    entry.done.set()
    monkeypatch.setattr(speculation, "model_id", lambda: "another model")
    assert speculations.take(request) is None


def test_old_speculations_expire_and_the_store_is_bounded():
    def started(speculations: Speculations, i: int) -> None:
        entry = speculations.start({"i": i})
        entry.result = {"i": i}
        entry.done.set()

    expired = Speculations(keep=2, ttl_s=0.0)
    started(expired, 2)
    assert expired.take({"i": 2}) is None  # older than its time to live
    bounded = Speculations(keep=2)
    for i in range(3):
        started(bounded, i)
    assert bounded.take({"i": 0}) is None  # the oldest went when the third came
    assert bounded.take({"i": 1}) == {"i": 1} and bounded.take({"i": 2}) == {"i": 2}
    assert bounded.take({"i": 2}) is None  # taken once
