"""Fixtures of the service tests: a second tiny random Llama, a reference with other weights."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def other_folder(tiny, tmp_path_factory):
    """A tiny random Llama like `tiny` with other weights (the same tokenizer), as a model folder."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(5)
    folder = tmp_path_factory.mktemp("tiny-other")
    LlamaForCausalLM(tiny.model.config).save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return str(folder)
