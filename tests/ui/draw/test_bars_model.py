"""The next-token bars of the real model: every drawn value against an independent forward pass and sampler."""

from __future__ import annotations

import pytest

from backends.model import STORE
from service import operations as service
from tests.ui import chart
from ui.draw import bars

PROMPT = "The capital of France is"
TEMPERATURE, TOP_P = 0.7, 0.8
CLOSE = {"rel": 1e-4, "abs": 1e-6}  # float32 with a KV cache against one float32 forward pass, in float64 after


@pytest.fixture(autouse=True)
def model(embedded):
    STORE.use(embedded)


def reference(embedded) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
    """p_base, p after temperature and p_final by token id, from a plain forward pass and top-p done by hand."""
    import torch

    ids = embedded.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = embedded.model(torch.tensor([ids])).logits[0, -1].double()
    base, warm = torch.softmax(logits, -1), torch.softmax(logits / TEMPERATURE, -1)
    order = torch.argsort(warm, descending=True)
    before = torch.cumsum(warm[order], 0) - warm[order]  # the mass of the more likely tokens
    kept = order[before < TOP_P]  # the smallest most-likely set reaching top-p
    final = torch.zeros_like(warm)
    final[kept] = warm[kept] / warm[kept].sum()
    as_dict = lambda p: {i: float(v) for i, v in enumerate(p)}  # noqa: E731
    return as_dict(base), as_dict(warm), as_dict(final)


def test_the_bars_of_a_real_step_are_the_independently_computed_distribution(embedded):
    request = {"prompt": PROMPT, "use_chat_template": False, "completion_ids": [], "top_k": 10,
               "params": {"temperature": TEMPERATURE, "top_p": TOP_P, "repetition_penalty": 1.0}}  # fmt: skip
    value = bars.bars_value(service.preview(request)["dist"])
    base, warm, final = reference(embedded)
    seen = chart.seen(value)
    assert len(seen.ids) == 10
    assert seen.base == pytest.approx([base[i] for i in seen.ids], **CLOSE)
    cut = [final[i] == 0 for i in seen.ids]
    assert any(cut) and not all(cut)  # top-p cuts inside the rows shown
    assert seen.blue == [None if c else pytest.approx(final[i], **CLOSE) for i, c in zip(seen.ids, cut, strict=True)]
    assert seen.red == [pytest.approx(warm[i], **CLOSE) if c else None for i, c in zip(seen.ids, cut, strict=True)]
    assert seen.notes == [f"{final[i]:.1%}" if not c else "✂ cut by top-p" for i, c in zip(seen.ids, cut, strict=True)]
    after = chart.seen(value, "temperature")
    assert after.blue == pytest.approx([warm[i] for i in seen.ids], **CLOSE) and after.red == [None] * 10
