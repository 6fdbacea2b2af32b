"""The few-row products: the same outputs as the layers' own (up to float rounding), for this thread's passes only,
and the layers' own forwards back afterwards, even after an error."""

from __future__ import annotations

import copy
import threading

import pytest
import torch

from backends.two_rows import narrow_products


@pytest.mark.parametrize("rows", [1, 2, 4, 5])
def test_a_linear_layer_gives_the_same_products_and_is_put_back(tiny, rows):
    head = tiny.model.get_output_embeddings()
    x = torch.randn(rows, 1, head.in_features, generator=torch.Generator().manual_seed(0))
    expected = x @ head.weight.T  # the product written here
    calls: list[int] = []
    handle = head.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        with narrow_products(tiny.model):
            assert "forward" in vars(head)
            got = head(x)
            other: list[torch.Tensor] = []
            worker = threading.Thread(target=lambda: other.append(head(x)))
            worker.start()
            worker.join()
    finally:
        handle.remove()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(other[0], expected, atol=1e-5, rtol=0)  # another thread: the layer as it is
    assert calls == [1, 1]  # the layer's hooks still run around it
    with pytest.raises(RuntimeError), narrow_products(tiny.model):
        raise RuntimeError("a forward failed")
    assert "forward" not in vars(head)


def test_every_linear_layer_takes_the_narrow_form_and_a_pass_keeps_its_logits(tiny, monkeypatch):
    two = torch.tensor([[5], [9]])  # two rows of one token: every product the narrow form
    eight = torch.tensor([[5, 9, 2, 7]]).repeat(2, 1)  # eight rows: the layers' own forwards
    with torch.no_grad():
        expected = [tiny.model(input_ids=ids).logits for ids in (two, eight)]
        products: list[tuple] = []
        mm = torch.mm
        monkeypatch.setattr(torch, "mm", lambda a, b: products.append(a.shape) or mm(a, b))
        with narrow_products(tiny.model):
            narrowed = [m for m in tiny.model.modules() if "forward" in vars(m)]
            got = [tiny.model(input_ids=two).logits]
            taken = len(products)
            got.append(tiny.model(input_ids=eight).logits)
    assert narrowed == [m for m in tiny.model.modules() if type(m) is torch.nn.Linear]  # projections and output
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=0)
    assert taken == len(narrowed) and len(products) == taken  # two rows: every layer W @ x^T; eight: none
    assert not any("forward" in vars(m) for m in tiny.model.modules())


def test_a_quantised_models_layers_keep_their_own_products(tiny):
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    model = copy.deepcopy(tiny.model)
    quantize_(model, Int8WeightOnlyConfig())
    two = torch.tensor([[5], [9]])
    with torch.no_grad():
        expected = model(input_ids=two).logits
        with narrow_products(model):
            quantised = [m for m in model.modules() if type(m) is torch.nn.Linear and "forward" not in vars(m)]
            got = model(input_ids=two).logits  # aten.mm has no int8 weight-only kernel: the narrow form would fail
    assert quantised and all(type(m.weight) is not torch.nn.Parameter for m in quantised)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
