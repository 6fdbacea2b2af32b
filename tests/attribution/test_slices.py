"""Attribution in slices: integrated gradients batch by batch equals Captum's, progress, closing, `signed`."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from captum.attr import IntegratedGradients

from attribution import attribute, attribute_slices
from attribution import gradients as gradients_mod
from backends.lane import LANE, Progress
from tests.attribution.test_attribution import TARGET


def captum_ig(loaded, ids, steps: int) -> tuple[torch.Tensor, float]:
    """Captum's IntegratedGradients in one call over the same function, baseline and quadrature."""
    model = loaded.model
    inputs = gradients_mod._embed(model, ids)
    f = gradients_mod.TargetLogProb(model, TARGET, inputs)
    attributions, delta = IntegratedGradients(f).attribute(
        inputs,
        baselines=gradients_mod.ig_baseline(inputs),
        n_steps=steps,
        method="gausslegendre",
        return_convergence_delta=True,
    )
    return attributions[0].detach(), abs(float(delta.reshape(-1)[0]))


@pytest.mark.parametrize(("budget", "steps"), [(1, 5), (3 * 13, 7), (1024, 16)])
def test_integrated_gradients_in_slices_equal_captum(tiny, ids, monkeypatch, budget, steps):
    monkeypatch.setattr(gradients_mod, "IG_TOKEN_BUDGET", budget)
    items = list(gradients_mod.integrated_gradients_slices(tiny, ids, TARGET, steps))
    expected, delta = captum_ig(tiny, ids, steps)
    result = items[-1]
    torch.testing.assert_close(result.attributions, expected, atol=1e-5, rtol=1e-5)
    assert result.completeness_error == pytest.approx(delta, abs=1e-5)
    batch = gradients_mod.ig_batch_size(len(ids), steps)
    progress = items[:-1]
    assert len(progress) == -(-steps // batch)
    assert all(isinstance(p, Progress) for p in progress)
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0


def test_attribute_slices_yield_progress_then_the_result(tiny, ids, monkeypatch):
    monkeypatch.setattr(gradients_mod, "IG_TOKEN_BUDGET", 1)
    items = list(attribute_slices(tiny, ids, TARGET, "integrated_gradients", ig_steps=4))
    assert [type(i).__name__ for i in items] == ["Progress"] * 4 + ["AttributionResult"]
    assert items[-1] == attribute(tiny, ids, TARGET, "integrated_gradients", ig_steps=4)  # now from the cache


def test_closing_the_slices_stops_the_work(tiny, ids, monkeypatch):
    monkeypatch.setattr(gradients_mod, "IG_TOKEN_BUDGET", 1)
    calls = []
    real = gradients_mod._path_gradients
    monkeypatch.setattr(gradients_mod, "_path_gradients", lambda *a: calls.append(1) or real(*a))
    stream = attribute_slices(tiny, ids, TARGET, "integrated_gradients", ig_steps=8)
    next(stream), next(stream)
    stream.close()
    assert len(calls) == 2
    assert not torch.is_grad_enabled() or not any(p.requires_grad for p in tiny.model.parameters())


def test_validation_happens_on_the_first_next(tiny, ids):
    stream = attribute_slices(tiny, ids, TARGET, "lime")
    with pytest.raises(ValueError, match="method 'lime' is not accepted"):
        next(stream)


@pytest.mark.parametrize(
    ("method", "aggregation", "signed"),
    [
        ("saliency", "sum", True),
        ("input_x_gradient", "sum", True),
        ("integrated_gradients", "sum", True),
        ("saliency", "l2", False),
        ("integrated_gradients", "l2", False),
        ("ablation", "l2", True),
        ("attention", "sum", False),
        ("attention", "l2", False),
    ],
)
def test_signed_says_whether_scores_can_be_negative(tiny, ids, method, aggregation, signed):
    result = attribute(tiny, ids, TARGET, method, aggregation=aggregation, ig_steps=4)
    assert result.signed is signed and result.as_dict()["signed"] is signed
    if not signed:
        assert min(result.scores) >= 0.0


def test_one_pass_pauses_at_every_layer_forward_and_backward(tiny, ids, monkeypatch):
    in_backward = []  # per pause: whether autograd's backward pass was running
    monkeypatch.setattr(LANE, "pause", lambda cancel=None: in_backward.append(torch._C._current_graph_task_id() >= 0))
    gradients_mod.saliency(tiny, ids, TARGET)  # one forward and one backward pass (and maybe a forward for f(x))
    layers = tiny.model.config.num_hidden_layers
    assert in_backward.count(True) == layers  # after each layer's gradient
    assert in_backward[:layers] == [False] * layers  # before each layer's forward
    assert all(layer._forward_pre_hooks == {} for layer in gradients_mod._decoder_layers(tiny.model))


def test_a_request_waiting_during_one_long_pass_runs_between_its_layers(tiny, ids):
    log, first = [], gradients_mod._decoder_layers(tiny.model)[0]

    def waiter():
        with LANE.hold():
            log.append("waiter")

    def queue_a_waiter(module, args):
        if not log:
            log.append("first layer")
            threading.Thread(target=waiter, daemon=True).start()
            while LANE.waiting == 0:
                time.sleep(0.001)

    handle = first.register_forward_pre_hook(queue_a_waiter)
    try:
        with LANE.hold():  # as the service holds it: without breaks the waiter would wait for the whole pass
            attribute(tiny, ids, TARGET, "saliency", use_cache=False)
            log.append("pass done")
    finally:
        handle.remove()
    assert log == ["first layer", "waiter", "pass done"]


def test_a_step_between_the_layers_of_a_pass_and_the_pass_both_give_their_own_results(tiny, ids):
    """The model is shared mid-pass: the step's logits equal a cold forward, the scores an uninterrupted run."""
    from backends.prefix_cache import PrefixCache

    other = [int(i) for i in ids[::-1]]  # another text, so nothing is shared with the attributed one
    with torch.no_grad():
        expected_logits = tiny.model(torch.tensor([other])).logits[0, -1].float()
    expected = attribute(tiny, ids, TARGET, "saliency", use_cache=False)
    got, first = {}, gradients_mod._decoder_layers(tiny.model)[0]

    def step():
        got["logits"] = PrefixCache().logits(tiny, other)[0]

    def queue_a_step(module, args):
        if "thread" not in got:
            got["thread"] = threading.Thread(target=step, daemon=True)
            got["thread"].start()
            while LANE.waiting == 0:
                time.sleep(0.001)

    handle = first.register_forward_pre_hook(queue_a_step)
    try:
        with LANE.hold():
            result = attribute(tiny, ids, TARGET, "saliency", use_cache=False)
        assert "logits" in got  # the step ran inside the pass, not after it
    finally:
        handle.remove()
    got["thread"].join()
    torch.testing.assert_close(got["logits"], expected_logits, atol=1e-5, rtol=1e-5)
    assert result.scores == pytest.approx(expected.scores, abs=1e-6)
