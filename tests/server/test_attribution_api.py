"""The attribution API's answer: every field, a contrastive call, words, and one-line refusals of bad input.

Through `service.attribution` (what the Gradio endpoint and `POST /api/attribution` call) on the
embedded model with a short prompt.
"""

from __future__ import annotations

import pytest

from attribution import agreement, attribute, clear_cache
from backends.model import STORE
from service import operations as service
from service.targets import AttributionSpec

PROMPT = "The capital of France is"
BASE = {"prompt": PROMPT, "use_chat_template": False}
PARIS, LONDON = 7042, 4528  # " Paris", " London"
FIELDS = {
    "method", "scores", "normalized", "aggregation", "granularity", "words", "signed", "target", "target_index",
    "target_id", "contrast", "contrast_token_id", "target_logprob", "faithfulness", "elapsed_s", "context_tokens",
    "prompt_length", "fell_back_to_cpu", "completeness_error", "steps", "baseline",
}  # fmt: skip


@pytest.fixture(autouse=True)
def model(embedded):
    STORE.use(embedded)
    clear_cache()
    yield embedded
    clear_cache()


def test_a_contrastive_ablation_answers_every_field(model, tokenizer):
    assert tokenizer.decode([LONDON]) == " London"
    out = service.attribution(BASE | {"target_token_id": PARIS, "contrast_token_id": LONDON, "method": "ablation"})
    assert set(out) == FIELDS
    prompt = tokenizer(PROMPT)["input_ids"]
    expected = attribute(model, prompt, PARIS, "ablation", contrast_token_id=LONDON)
    assert out["scores"] == pytest.approx(expected.scores, abs=1e-6)
    assert out["target"]["id"] == PARIS and out["contrast"] == {**out["contrast"], "id": LONDON, "text": " London"}
    assert out["contrast_token_id"] == LONDON and out["target_index"] == 0 and out["signed"] is True
    assert out["granularity"] == "token" and out["words"] is None
    faith = out["faithfulness"]
    assert set(faith) == {"comprehensiveness", "random_baseline", "k"} and faith["k"] == 1
    assert out["elapsed_s"] > 0 and len(out["scores"]) == len(out["context_tokens"]) == len(prompt)


@pytest.mark.parametrize("method", ["saliency", "attention"])
def test_word_granularity_sums_token_scores_into_words(method):
    out = service.attribution(BASE | {"target_token_id": PARIS, "method": method, "granularity": "word"})
    found = out["words"]
    assert out["granularity"] == "word"
    assert [w["start"] for w in found] == [0, *[w["end"] for w in found[:-1]]]
    assert found[-1]["end"] == len(out["scores"])
    assert sum(w["score"] for w in found) == pytest.approx(sum(out["scores"]), abs=1e-5)
    texts = "".join(t["text"] for t in out["context_tokens"])
    assert "".join(w["text"] for w in found) == texts and found[1]["text"] == " capital"


def test_two_methods_of_one_target_can_be_compared():
    one = service.attribution(BASE | {"target_token_id": PARIS, "method": "saliency"})
    other = service.attribution(BASE | {"target_token_id": PARIS, "method": "ablation"})
    found = agreement(one, other)
    assert found["methods"] == ["saliency", "ablation"] and -1 <= found["rho"] <= 1
    assert found["disagree"] is (found["rho"] < 0.5)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"method": "lime"}, "method 'lime' is not accepted: use one of attention, saliency"),
        ({"contrast_token_id": PARIS}, f"contrast_token_id {PARIS} is the target token itself"),
        ({"contrast_token_id": 49152}, "contrast_token_id 49152 is outside the vocabulary: accepted is 0 to 49151$"),
        ({"contrast_token_id": LONDON, "method": "attention"}, "contrast_token_id does not apply to attention"),
        ({"target_index": 1}, "target_index 1 is out of range: accepted is 0 to 0"),
        ({"granularity": "sentence"}, "granularity 'sentence' is not accepted: use one of token, word"),
    ],
)
def test_bad_attribution_requests_are_refused_in_one_line(extra, message):
    with pytest.raises(ValueError, match=message) as caught:
        service.attribution(BASE | {"target_token_id": PARIS} | extra)
    assert "\n" not in str(caught.value)


def test_ablation_counts_a_quarter_pass_per_context_token_in_the_budget():
    spec = AttributionSpec.from_dict({"target_token_id": 1, "method": "ablation"})
    assert (spec.passes(1), spec.passes(256), spec.passes(257)) == (1, 64, 65)
    assert AttributionSpec.from_dict({"target_token_id": 1, "method": "integrated_gradients"}).passes(256) == 16
    assert AttributionSpec.from_dict({"target_token_id": 1}).passes(256) == 1
