"""Model edits as hooks: each edit's p_base equals a forward pass with a hook written here from scratch, through
the prefix cache (extended steps, batches, mean over the whole context); no cross-talk between edits; the model
is left as it was after every request, one that raises included."""

from __future__ import annotations

import pytest
import torch

from backends.giving_way import giving_way
from backends.lane import Cancelled
from backends.prefix_cache import PrefixCache
from decoding.engine import Engine

PROMPT = "Once upon a time there was a"
REL = 1e-4  # the tiny random model's distribution is nearly flat (p ~ 2e-5): compare relatively
FULL = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}  # p_final = p_base
SEEDED = FULL | {"seed": 7}


@pytest.fixture
def engine(tiny) -> Engine:
    return Engine(tiny, PrefixCache())


def request(engine: Engine, edits=(), completion=(), top_k=50, params=None):
    data = {"prompt": PROMPT, "use_chat_template": False, "completion_ids": list(completion), "top_k": top_k}
    return engine.request(data | {"params": params or FULL, "interventions": list(edits)})


def prompt_ids(engine: Engine) -> list[int]:
    return list(engine.loaded.tokenizer(PROMPT)["input_ids"])


def reference(model, ids, hooks) -> torch.Tensor:
    """p_base after `ids` from one plain forward with the test's own hooks [(module, kind, fn)]."""
    handles = [
        module.register_forward_pre_hook(fn) if kind == "pre" else module.register_forward_hook(fn)
        for module, kind, fn in hooks
    ]
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    finally:
        for handle in handles:
            handle.remove()
    return torch.softmax(logits.float(), -1)


def rows_match(dist: dict, p: torch.Tensor) -> None:
    for row in dist["tokens"]:
        assert row["p_base"] == pytest.approx(float(p[row["id"]]), rel=REL)


def zero_head(layer, head):
    dim = layer.self_attn.head_dim

    def hook(module, args):
        x = args[0].clone()
        x[..., head * dim : (head + 1) * dim] = 0.0
        return (x,)

    return (layer.self_attn.o_proj, "pre", hook)


def mean_head(layer, head):
    dim = layer.self_attn.head_dim

    def hook(module, args):
        x = args[0].clone()
        x[..., head * dim : (head + 1) * dim] = x[..., head * dim : (head + 1) * dim].mean(dim=1, keepdim=True)
        return (x,)

    return (layer.self_attn.o_proj, "pre", hook)


def layers(engine: Engine):
    return engine.loaded.model.model.layers


def test_a_zero_head_ablation_equals_a_hooked_forward_also_on_an_extended_cache(engine):
    edit = {"type": "ablate", "layer": 1, "head": 2, "mode": "zero"}
    ids = prompt_ids(engine)
    first = engine.preview(request(engine, [edit])).as_dict()
    rows_match(first["dist"], reference(engine.loaded.model, ids, [zero_head(layers(engine)[1], 2)]))
    stepped = engine.step(request(engine, [edit])).as_dict()  # extends the edited prefix's cached keys and values
    after = reference(engine.loaded.model, [*ids, *stepped["completion_ids"]], [zero_head(layers(engine)[1], 2)])
    rows_match(stepped["dist"], after)
    unedited = reference(engine.loaded.model, ids, [])
    assert any(abs(row["p_base"] / float(unedited[row["id"]]) - 1) > 100 * REL for row in first["dist"]["tokens"])


def test_a_mean_head_ablation_is_over_the_whole_context_at_every_step(engine):
    edit = {"type": "ablate", "layer": 0, "head": 1, "mode": "mean"}
    ids = prompt_ids(engine)
    for completion in ((), (11,), (11, 12)):
        dist = engine.preview(request(engine, [edit], completion)).as_dict()["dist"]
        rows_match(dist, reference(engine.loaded.model, [*ids, *completion], [mean_head(layers(engine)[0], 1)]))


@pytest.mark.parametrize("component", ["attention", "mlp"])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_a_block_ablation_equals_a_hooked_forward(engine, component, mode):
    layer = layers(engine)[1]
    block = layer.self_attn if component == "attention" else layer.mlp

    def hook(module, args, output):
        first = output[0] if isinstance(output, tuple) else output
        new = torch.zeros_like(first) if mode == "zero" else first.mean(dim=1, keepdim=True).expand_as(first)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    edit = {"type": "ablate", "layer": 1, "component": component, "mode": mode}
    ids = prompt_ids(engine)
    for completion in ((), (7,)):
        dist = engine.preview(request(engine, [edit], completion)).as_dict()["dist"]
        rows_match(dist, reference(engine.loaded.model, [*ids, *completion], [(block, "post", hook)]))


def steer_hook(vector, alpha):
    def hook(module, args, output):
        return output + alpha * torch.tensor(vector)

    return hook


def test_steering_equals_a_hooked_forward_and_alpha_zero_changes_nothing(engine, tiny):
    vector = torch.randn(tiny.model.config.hidden_size, generator=torch.Generator().manual_seed(3)).tolist()
    ids = prompt_ids(engine)
    steered = engine.preview(request(engine, [{"type": "steer", "layer": 0, "vector": vector, "alpha": 4.0}]))
    rows_match(
        steered.as_dict()["dist"], reference(tiny.model, ids, [(layers(engine)[0], "post", steer_hook(vector, 4.0))])
    )
    plain = engine.preview(request(engine)).as_dict()["dist"]
    zero = engine.preview(request(engine, [{"type": "steer", "layer": 0, "vector": vector, "alpha": 0.0}]))
    zero = zero.as_dict()["dist"]
    assert zero["kl_edit"] == 0.0
    for mine, theirs in zip(zero["tokens"], plain["tokens"], strict=True):
        assert (mine["id"], mine["p_base"], mine["p_final"]) == (theirs["id"], theirs["p_base"], theirs["p_final"])
        assert mine["p_base_unedited"] == theirs["p_base"]


def test_steered_unedited_steered_again_equal_fresh_computations(engine, tiny):
    vector = torch.randn(tiny.model.config.hidden_size, generator=torch.Generator().manual_seed(5)).tolist()
    steer = [{"type": "steer", "layer": 1, "vector": vector, "alpha": 6.0}]
    sequence = [steer, [], steer, [], steer]
    completion: list[int] = []
    for edits in sequence:  # one shared cache, edits switched on and off at every step
        answer = engine.step(request(engine, edits, completion, params=SEEDED)).as_dict()
        fresh = Engine(tiny, PrefixCache()).step(request(engine, edits, completion, params=SEEDED)).as_dict()
        assert answer["completion_ids"] == fresh["completion_ids"]
        for mine, theirs in zip(answer["dist"]["tokens"], fresh["dist"]["tokens"], strict=True):
            assert mine["id"] == theirs["id"]  # a cached prefix extended vs one pass: equal up to float rounding
            assert mine["p_base"] == pytest.approx(theirs["p_base"], rel=REL)
            if edits:
                assert mine["p_base_unedited"] == pytest.approx(theirs["p_base_unedited"], rel=REL)
            else:
                assert "p_base_unedited" not in mine
        completion = answer["completion_ids"]


def test_edited_answers_carry_the_unedited_model_and_the_kl_of_the_edit(engine, tiny):
    edit = {"type": "ablate", "layer": 0, "component": "attention", "mode": "zero"}
    dist = engine.preview(request(engine, [edit])).as_dict()["dist"]
    plain = engine.preview(request(engine)).as_dict()["dist"]
    assert all(key not in plain for key in ("kl_edit", "kl_edit_reason", "edits"))
    assert all("p_base_unedited" not in row for row in plain["tokens"])
    unedited = reference(tiny.model, prompt_ids(engine), [])
    for row in dist["tokens"] + dist["pushed_down"]:
        assert row["p_base_unedited"] == pytest.approx(float(unedited[row["id"]]), rel=REL)
        assert row["p_final_unedited"] == pytest.approx(float(unedited[row["id"]]), rel=REL)  # FULL: final = base
    block = layers(engine)[0].self_attn

    def zero(module, args, output):
        return (torch.zeros_like(output[0]), *output[1:])

    edited = reference(tiny.model, prompt_ids(engine), [(block, "post", zero)]).double()
    expected = float((edited * (edited.log() - unedited.double().log())).sum()) / torch.log(torch.tensor(2.0)).item()
    assert dist["kl_edit"] == pytest.approx(expected, rel=1e-4)  # KL(edited || unedited), bits
    assert dist["edits"] == ["attention block of layer 0 ablated (zero)"]


def test_a_batch_under_edits_equals_single_rows(engine, tiny):
    """The look-ahead tree's and prefetch's batched forward applies the edits as one pass per row would."""
    ids = tuple(prompt_ids(engine))
    for edits in (
        (request(engine, [{"type": "ablate", "layer": 1, "head": 0}]).interventions),
        (request(engine, [{"type": "ablate", "layer": 1, "head": 0, "mode": "mean"}]).interventions),
    ):
        rows = engine.cache.batch_logits(tiny, ids, [(5,), (9,)], keep=True, edits=edits)
        for row, token in zip(rows, (5, 9), strict=True):
            alone = PrefixCache().logits(tiny, (*ids, token), edits=edits)[0]
            assert torch.allclose(row, alone, atol=1e-4)
            assert engine.cache.cached((*ids, token), edits) and not engine.cache.cached((*ids, token))


def hook_state(model) -> list:
    return [
        (name, tuple(getattr(module, kind)))
        for name, module in model.named_modules()
        for kind in ("_forward_hooks", "_forward_pre_hooks")
    ]


def test_the_model_is_unchanged_after_every_request_even_one_that_raises(engine, tiny):
    model = tiny.model
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    hooks = hook_state(model)
    vector = [0.5] * tiny.model.config.hidden_size
    edits = [
        {"type": "ablate", "layer": 0, "head": 0, "mode": "mean"},
        {"type": "ablate", "layer": 1, "component": "mlp"},
        {"type": "steer", "layer": 1, "vector": vector, "alpha": 2.0},
    ]
    engine.step(request(engine, edits))
    assert hook_state(model) == hooks
    with pytest.raises(Cancelled), giving_way(model, lambda: True):  # every layer raises before it runs
        engine.preview(request(engine, edits, completion=(3, 4, 5)))
    assert hook_state(model) == hooks
    assert all(torch.equal(p, params[name]) for name, p in model.named_parameters())


def test_an_engine_that_cannot_run_hooks_refuses_edits_in_one_line(tiny):
    import dataclasses

    from backends.interventions import check_edits

    elsewhere = dataclasses.replace(tiny, backend=object())
    with pytest.raises(
        ValueError, match="interventions \\(1 given\\) need hooks in the model's forward pass"
    ) as refused:
        check_edits(elsewhere, (object(),))
    assert "\n" not in str(refused.value)
    check_edits(elsewhere, ())  # nothing to refuse


def test_an_edited_step_runs_the_edited_and_unedited_rows_in_one_batched_forward(engine, tiny):
    """Row 0 edited, row 1 not: the step's forward is one pass giving two rows (one row below the edited layer,
    two from it on), and each row equals a pass of its own."""
    edit = {"type": "ablate", "layer": 1, "head": 2}
    engine.preview(request(engine, [edit]))
    batches: list[int] = []
    handle = tiny.model.register_forward_hook(lambda module, args, output: batches.append(output.logits.shape[0]))
    try:
        stepped = engine.step(request(engine, [edit])).as_dict()
    finally:
        handle.remove()
    assert batches == [2]
    ids = [*prompt_ids(engine), *stepped["completion_ids"]]
    rows_match(stepped["dist"], reference(tiny.model, ids, [zero_head(layers(engine)[1], 2)]))
    unedited = reference(tiny.model, ids, [])
    for row in stepped["dist"]["tokens"]:
        assert row["p_base_unedited"] == pytest.approx(float(unedited[row["id"]]), rel=REL)
