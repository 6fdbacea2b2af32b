"""A mean ablation reruns the context from its layer up only: the layers below it run each new token once (the
unedited prefix extended), and the edited p_base still equals a forward with a mean hook written here, step after
step, with the unedited rows beside it those of a plain forward; the model is left as it was."""

from __future__ import annotations

import pytest
import torch

from backends.prefix_cache import PrefixCache
from decoding.engine import Engine

PROMPT = "Once upon a time there was a"
FULL = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}  # p_final = p_base
REL = 1e-4


def mean_block(module, args, output):
    return output.mean(dim=1, keepdim=True).expand_as(output)


def forward_p(model, ids, hook=None) -> torch.Tensor:
    """p_base after `ids` from one plain forward, with `hook` on layer 1's MLP (written here) when given."""
    handle = model.model.layers[1].mlp.register_forward_hook(hook) if hook else None
    try:
        with torch.no_grad():
            return torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
    finally:
        if handle is not None:
            handle.remove()


def positions_counted(model):
    """A pre-hook on layer 0's MLP counting the positions it runs, and the list it counts into."""
    seen: list[int] = []
    return model.model.layers[0].mlp.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1])), seen


def hooks_of(model) -> list[tuple]:
    """Each decoder layer's hooks (ids): what was there before must be what is there after."""
    return [(tuple(layer._forward_pre_hooks), tuple(layer._forward_hooks)) for layer in model.model.layers]


def test_a_mean_ablation_runs_the_layers_below_it_on_the_new_tokens_only_and_stays_exact(tiny):
    hooks_before = hooks_of(tiny.model)  # the shared model may carry hooks another module keeps on it
    engine = Engine(tiny, PrefixCache())
    edit = {"type": "ablate", "layer": 1, "component": "mlp", "mode": "mean"}
    data = {"prompt": PROMPT, "use_chat_template": False, "params": FULL, "interventions": [edit], "top_k": 30}
    ids = list(tiny.tokenizer(PROMPT)["input_ids"])
    answer = engine.preview(engine.request(data)).as_dict()
    for completion in ((5,), (5, 9), (5, 9, 14)):
        handle, seen = positions_counted(tiny.model)
        try:
            answer = engine.preview(engine.request(data | {"completion_ids": list(completion)})).as_dict()
        finally:
            handle.remove()
        assert seen == [1]  # the new token, through the unedited model; the edited pass skips layer 0
        context = [*ids, *completion]
        edited, unedited = forward_p(tiny.model, context, mean_block), forward_p(tiny.model, context)
        for row in answer["dist"]["tokens"]:
            assert row["p_base"] == pytest.approx(float(edited[row["id"]]), rel=REL)
            assert row["p_base_unedited"] == pytest.approx(float(unedited[row["id"]]), rel=REL)
    assert all(not layer.__dict__.get("forward") for layer in tiny.model.model.layers)
    assert hooks_of(tiny.model) == hooks_before
