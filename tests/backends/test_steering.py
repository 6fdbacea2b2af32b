"""Steering vectors from examples: the mean difference of residual streams, checked against hidden states read
with output_hidden_states; kept per model under a stable id; bad examples refused in one line."""

from __future__ import annotations

import pytest
import torch

from backends import steering

POSITIVE = ("I love this, it is wonderful", "What a great day")
NEGATIVE = ("I hate this, it is awful", "What a terrible day")


def hidden_after(model, tokenizer, layer: int, text: str) -> torch.Tensor:
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    return out.hidden_states[layer + 1][0, -1].float()  # hidden_states[0] is the embeddings


def test_a_steering_vector_is_the_mean_difference_of_residual_streams(tiny):
    found = steering.make(tiny, 0, POSITIVE, NEGATIVE)
    pairs = [
        hidden_after(tiny.model, tiny.tokenizer, 0, p) - hidden_after(tiny.model, tiny.tokenizer, 0, n)
        for p, n in zip(POSITIVE, NEGATIVE, strict=True)
    ]
    expected = torch.stack(pairs).mean(dim=0)
    assert torch.allclose(torch.tensor(found.vector), expected, atol=1e-5)
    assert found.norm == pytest.approx(float(expected.norm()), rel=1e-5)
    assert found.pairs == 2 and found.layer == 0 and found.id.startswith("sv-")
    assert steering.make(tiny, 0, POSITIVE, NEGATIVE) is found  # the same examples: the kept vector
    assert steering.vector_of(tiny, found.id) is found
    assert found.id in [v.id for v in steering.listed(tiny)]
    assert steering.make(tiny, 1, POSITIVE, NEGATIVE).id != found.id


@pytest.mark.parametrize(
    ("layer", "positive", "negative", "words"),
    [
        (2, POSITIVE, NEGATIVE, "layer 2 is out of range: this model has layers 0 to 1"),
        (0, POSITIVE, NEGATIVE[:1], "positive has 2 texts and negative 1: give as many of each"),
        (0, (), (), "positive has 0 texts and negative 0"),
        (0, ("  ",), ("x",), "positive[0] is empty"),
    ],
)
def test_bad_examples_are_refused_in_one_line(tiny, layer, positive, negative, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        steering.make(tiny, layer, positive, negative)
