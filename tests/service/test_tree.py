"""The look-ahead tree: each node equals preview of its path; one batched forward per level; the cache's batch."""

from __future__ import annotations

import pytest
import torch

from backends.prefix_cache import PrefixCache
from decoding.engine import Engine
from service import tree as tree_mod

PROMPT = "Once upon a time"
PENALTIES = {"temperature": 0.8, "repetition_penalty": 1.3, "frequency_penalty": 0.5, "dry_multiplier": 0.8}
CONSTRAINT = {"enabled": True, "type": "regex", "schema": "(yes|no|maybe)( indeed)?"}
TOL = 1e-5


@pytest.fixture
def engine(tiny) -> Engine:
    return Engine(tiny, PrefixCache())


def request(engine: Engine, completion=(), **extra):
    data = {"prompt": PROMPT, "use_chat_template": False, "completion_ids": list(completion), "top_k": 1000}
    return engine.request(data | extra)


def grow(engine: Engine, req, width: int, depth: int) -> tree_mod.Tree:
    *_, found = tree_mod.levels(engine, req, width, depth)
    return found


def walk(nodes, parent=1.0):
    for node in nodes:
        yield node, parent
        yield from walk(node.children, node.path_probability)


def assert_nodes_equal_preview(tiny, found: tree_mod.Tree, extra: dict) -> None:
    """Every node's p_base and p_final as preview (a cold engine, one token at a time) shows them at its parent."""
    cold = Engine(tiny, PrefixCache())
    for node, parent_probability in walk(found.children):
        dist = cold.preview(request(cold, node.path_ids[:-1], **extra)).dist
        row = next(r for r in dist["tokens"] if r["id"] == node.token["id"])
        assert abs(row["p_final"] - node.p_final) < TOL and abs(row["p_base"] - node.p_base) < TOL
        assert node.p_final > 0
        assert node.path_probability == pytest.approx(parent_probability * node.p_final, abs=1e-12)


@pytest.mark.parametrize(
    "extra",
    [{"params": {"greedy": False}}, {"params": PENALTIES}, {"params": PENALTIES, "constraint": CONSTRAINT}],
    ids=["plain", "penalties", "constraint"],
)
def test_every_node_equals_preview_on_its_path(tiny, engine, extra):
    found = grow(engine, request(engine, **extra), width=3, depth=3)
    assert found.node_count == sum(1 for _ in walk(found.children)) > 3
    assert_nodes_equal_preview(tiny, found, extra)


def test_children_are_the_most_likely_by_p_final_first(engine):
    found = grow(engine, request(engine, params={"greedy": False}), width=4, depth=2)
    root = engine.analysis(request(engine, params={"greedy": False}), *_prompt_and_completion(engine))[0]
    assert [c.token["id"] for c in found.children] == torch.topk(root.p_final, 4).indices.tolist()
    for node, _ in walk(found.children):
        finals = [c.p_final for c in node.children]
        assert finals == sorted(finals, reverse=True) and len(finals) in (0, 4)
    assert all(not n.children for n in found.children[0].children)  # depth 2: grandchildren are leaves


def _prompt_and_completion(engine):
    return engine.prompt_ids(request(engine))[0], ()


def test_a_constraint_keeps_only_tokens_with_positive_probability(engine):
    found = grow(engine, request(engine, constraint=CONSTRAINT), width=8, depth=2)
    eos = engine.loaded.tokenizer.eos_token_id
    texts = {engine.view.decode([t for t in node.path_ids if t != eos]) for node, _ in walk(found.children)}
    allowed = ("yes indeed", "no indeed", "maybe indeed")
    assert texts and all(any(a.startswith(t) for a in allowed) for t in texts), texts
    assert len(found.children) < 8  # only the tokens the regex allows, not padded to the width


def test_each_level_is_one_batched_forward(engine):
    req = request(engine, params={"greedy": False})
    engine.preview(req)
    before = engine.cache.stats.forward_calls
    found = grow(engine, req, width=4, depth=3)
    assert engine.cache.stats.forward_calls - before == 2  # the root came from the cache; levels 2 and 3
    assert found.node_count == 4 + 16 + 64


def test_finished_paths_are_not_expanded(engine, tiny):
    eos = tiny.tokenizer.eos_token_id
    req = request(engine, params={"greedy": False})
    *_, found = tree_mod.levels(engine, req, 2, 2)
    assert all(n.finish_reason is None for n in found.children)
    stages = engine.analysis(req, *_prompt_and_completion(engine))[0]
    p = torch.zeros_like(stages.p_final)
    p[eos], p[1000] = 0.6, 0.4
    nodes = tree_mod._expand(engine, req, [tree_mod._Open(-1, (), 1.0, 1.0, 1.0)], [_Fake(p)], 2, more=True, beside={})
    assert [n.token for n in nodes] == [1000]  # the eos child ends the path: it is no frontier node


class _Fake:
    def __init__(self, p):
        self.p_final = self.p_base = p


def test_tree_size_counts_every_node_with_its_context():
    assert tree_mod.tree_nodes(4, 3) == 85
    assert tree_mod.tree_tokens(10, 2, 2) == 10 + 2 * 11 + 4 * 12


def test_batch_logits_rows_match_single_steps_and_keep_stores_them(tiny):
    cache = PrefixCache()
    base = [11, 22, 33, 44]
    rows = [(5, 6), (7, 8), (9, 10)]
    batch = cache.batch_logits(tiny, base, rows, keep=True)
    for i, row in enumerate(rows):
        single = PrefixCache().logits(tiny, [*base, *row])[0]
        torch.testing.assert_close(batch[i], single, atol=1e-4, rtol=0)
        assert cache.cached([*base, *row])
    with pytest.raises(ValueError, match="same length"):
        cache.batch_logits(tiny, base, [(1,), (2, 3)])
