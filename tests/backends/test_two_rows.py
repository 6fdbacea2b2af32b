"""The two-row output layer: the same logits as the layer's own product (up to float rounding), for this thread's
passes only, and the layer's own forward back afterwards, even after an error."""

from __future__ import annotations

import threading

import pytest
import torch

from backends.two_rows import narrow_head


def test_the_output_layer_gives_the_same_logits_and_is_put_back(tiny):
    head = tiny.model.get_output_embeddings()
    x = torch.randn(2, 1, head.in_features, generator=torch.Generator().manual_seed(0))
    expected = x @ head.weight.T  # the product written here
    calls: list[int] = []
    handle = head.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        with narrow_head(tiny.model):
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
    with pytest.raises(RuntimeError), narrow_head(tiny.model):
        raise RuntimeError("a forward failed")
    assert "forward" not in vars(head)
