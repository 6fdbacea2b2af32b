"""The Edit panel's presets on the default model and prompt: each changes the top next token, and the bars it
draws equal a forward pass with the test's own hook (a steering vector from hidden states; a zeroed block)."""

from __future__ import annotations

import pytest
import torch

from backends.model import STORE
from ui.controls import Controls
from ui.panels import edits
from ui.state import Session

DEFAULT = Controls()


@pytest.fixture(autouse=True)
def embedded_model(embedded):
    STORE.use(embedded)


def forward(model, ids: list[int], module, hook) -> torch.Tensor:
    """p_base after `ids` from one forward with `hook` on `module`'s output (None: no hook)."""
    handle = module.register_forward_hook(hook) if hook else None
    try:
        with torch.no_grad():
            return torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
    finally:
        if handle is not None:
            handle.remove()


def last_residual(loaded, layer: int, text: str) -> torch.Tensor:
    ids = loaded.tokenizer(text)["input_ids"]
    with torch.no_grad():
        return loaded.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer + 1][0, -1]


def added(vector: torch.Tensor):
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + vector, *output[1:])
        return output + vector

    return hook


def zeroed(module, args, output):
    return (torch.zeros_like(output[0]), *output[1:]) if isinstance(output, tuple) else torch.zeros_like(output)


def check(outcome, reference: torch.Tensor, unedited: torch.Tensor) -> None:
    rows = outcome.result["dist"]["tokens"]
    for row in rows:
        assert row["p_base"] == pytest.approx(float(reference[row["id"]]), abs=2e-4)
        assert row["p_base_unedited"] == pytest.approx(float(unedited[row["id"]]), abs=2e-4)
    assert rows[0]["id"] == int(reference.argmax()) != int(unedited.argmax())  # the top token moved


def test_the_steering_preset_moves_the_top_token_as_a_hooked_forward_does(embedded):
    positive, negative, layer, alpha = edits.STEER_PRESET
    outcome = edits.add_preset("steer")(Session(), DEFAULT)
    vector = last_residual(embedded, layer, positive[0]) - last_residual(embedded, layer, negative[0])
    ids = embedded.tokenizer(DEFAULT.prompt)["input_ids"]
    decoder = embedded.model.model.layers[layer]
    check(
        outcome, forward(embedded.model, ids, decoder, added(alpha * vector)), forward(embedded.model, ids, None, None)
    )


def test_the_ablation_preset_moves_the_top_token_as_a_hooked_forward_does(embedded):
    outcome = edits.add_preset("ablate")(Session(), DEFAULT)
    ids = embedded.tokenizer(DEFAULT.prompt)["input_ids"]
    attention = embedded.model.model.layers[edits.ABLATE_PRESET.layer].self_attn
    check(outcome, forward(embedded.model, ids, attention, zeroed), forward(embedded.model, ids, None, None))
