"""The chat's default settings on the embedded model: sensible answers, whatever the draw."""

from __future__ import annotations

import pytest

from backends.model import STORE
from decoding.sampling.presets import PRESETS
from service import chat


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_default_chat_settings_answer_a_plain_question(embedded, seed):
    STORE.use(embedded)
    preset = PRESETS[chat.CHAT_PRESET]
    params = chat.chat_params(preset.name, preset.params.temperature, seed)
    text, records = list(
        chat.stream_reply([{"role": "user", "content": "What is the capital of France?"}], 12, params)
    )[-1]
    assert "Paris" in text and text.startswith("The capital of France")
    assert {r["how"] for r in records} == {"sampled"}  # drawn, not greedy: the preset still samples
