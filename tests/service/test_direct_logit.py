"""Direct logit attribution through the service: a target at an earlier completion position checked against
the logits of one plain forward over the whole text, the answer's shape as the contract states it, and
one-line refusals (word granularity; a model without weights here, as beside the vLLM engine)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from attribution import clear_cache
from backends.model import STORE
from backends.model.loading import _tokenizer_and_model
from service import operations as service
from service.contract.answers import AttributionAnswer

BASE = {"prompt": "The capital of France is", "use_chat_template": False}
COMPLETION = " Paris, and the capital of Italy is Rome."


@pytest.fixture
def model(embedded):
    STORE.use(embedded)
    clear_cache()
    yield embedded
    clear_cache()


def test_a_target_inside_the_completion_splits_the_logit_the_whole_text_gives_there(model, tokenizer):
    prompt, completion = tokenizer(BASE["prompt"])["input_ids"], tokenizer(COMPLETION)["input_ids"]
    index = 6  # " Italy": its logit after prompt + completion[:6]
    out = service.attribution(BASE | {"completion_ids": completion, "target_index": index, "method": "direct_logit"})
    AttributionAnswer.model_validate(out)
    with torch.no_grad():
        logits = model.model(torch.tensor([prompt + completion])).logits[0, len(prompt) + index - 1].double()
    parts = out["components"]
    assert out["target"]["id"] == completion[index] and out["target_index"] == index
    assert parts["logit"] == pytest.approx(float(logits[completion[index]]), rel=1e-4)
    total = parts["embed"] + sum(map(sum, parts["heads"])) + sum(parts["mlps"]) + parts["bias"]
    assert abs(total - parts["logit"]) < 1e-3 * abs(parts["logit"])
    assert out["target_logprob"] == pytest.approx(float(logits.log_softmax(-1)[completion[index]]), abs=1e-4)
    assert out["scores"] == out["normalized"] == [] and out["faithfulness"] is None and out["words"] is None
    assert len(out["context_tokens"]) == len(prompt) + index


def test_a_foil_splits_the_difference_of_the_two_logits(model, tokenizer):
    paris, london = 7042, 4528
    out = service.attribution(BASE | {"target_token_id": paris, "contrast_token_id": london, "method": "direct_logit"})
    with torch.no_grad():
        logits = model.model(torch.tensor([tokenizer(BASE["prompt"])["input_ids"]])).logits[0, -1].double()
    parts = out["components"]
    assert parts["logit"] == pytest.approx(float(logits[paris] - logits[london]), rel=1e-4)
    assert out["contrast"]["id"] == london and parts["reconstruction_error"] < 1e-3 * abs(parts["logit"])


def test_word_granularity_is_refused_in_one_line(model):
    with pytest.raises(ValueError, match=r"^granularity 'word' does not apply to direct_logit \(it scores no tokens\)"):
        service.attribution(BASE | {"target_token_id": 5, "method": "direct_logit", "granularity": "word"})


def test_a_model_with_no_weights_here_is_refused_as_for_gradients(tiny, tiny_folder, monkeypatch):
    skeleton = _tokenizer_and_model(str(tiny_folder), torch.float32, False, {}, {})[1]
    for name in ("_current", "_status"):  # the store as it was, after the test
        monkeypatch.setattr(STORE, name, getattr(STORE, name))
    STORE.use(replace(tiny, model=skeleton))
    try:
        with pytest.raises(ValueError, match=r"^attribution needs gradients and hidden states, .*--attribution-copy"):
            service.attribution(BASE | {"target_token_id": 5, "method": "direct_logit"})
    finally:
        STORE.use(tiny)
