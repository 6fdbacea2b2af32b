"""A step asked after the completion has finished appends nothing and says why."""

from __future__ import annotations

import pytest

from backends.prefix_cache import PrefixCache
from decoding.engine import Engine


@pytest.fixture
def engine(tiny) -> Engine:
    return Engine(tiny, PrefixCache())


def request(engine: Engine, completion: list[int], **params):
    data = {"prompt": "Once upon a time", "use_chat_template": False, "completion_ids": completion}
    return engine.request({**data, "params": {"greedy": True, **params}})


def test_step_after_eos_names_the_finish_reason_in_its_notice(engine, tiny):
    done = [11, tiny.tokenizer.eos_token_id]
    result = engine.step(request(engine, done))
    assert result.appended == [] and result.completion_ids == done and result.finish_reason == "eos"
    assert "finished (eos): nothing was appended" in result.notice


def test_step_after_a_stop_sequence_says_so(engine, tiny):
    ids = tiny.tokenizer(" the end", add_special_tokens=False)["input_ids"]
    result = engine.step(request(engine, ids, stop_sequences=["end"]))
    assert result.appended == [] and "finished (stop sequence): nothing was appended" in result.notice


def test_an_appending_step_has_no_finish_notice(engine):
    result = engine.step(request(engine, [11]))
    assert len(result.appended) == 1 and "nothing was appended" not in result.notice
