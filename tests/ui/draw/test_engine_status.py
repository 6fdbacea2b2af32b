"""The model line says which engine serves: nothing more for transformers; vLLM's placement, and that
attribution and the logit lens are not available without a transformers copy."""

from __future__ import annotations

from ui.draw import render

READY = {"state": "ready", "model_id": "m", "source": "s", "device": "cpu", "dtype": "float32",
         "has_chat_template": True, "vocab_size": 10, "context_length": 20, "placement": "cpu"}  # fmt: skip


def test_the_transformers_engine_adds_nothing_to_the_model_line():
    assert "served by" not in render.model_markdown(READY | {"engine": "transformers", "gradients": True})


def test_the_vllm_engine_is_named_with_its_placement_and_what_it_cannot_do():
    vllm = READY | {"engine": "vllm", "placement": "vLLM: tensor parallel 2, pipeline parallel 1"}
    line = render.model_markdown(vllm | {"gradients": False})
    assert "served by vLLM: tensor parallel 2" in line and "no attribution or logit lens" in line
    assert "no attribution" not in render.model_markdown(vllm | {"gradients": True})


def test_a_model_loading_on_vllm_says_the_wait_can_be_long():
    assert "a minute or more" in render.model_markdown({"state": "loading", "model_id": "m", "engine": "vllm"})
    assert "minute" not in render.model_markdown({"state": "loading", "model_id": "m", "engine": "transformers"})
