"""The look-ahead tree: where the likely continuations of a request lead, a few tokens deep.

From the request's position, each node's `width` most likely next tokens by p_final (under the request's
knobs and constraint) become its children, down to `depth` tokens. Each level is one batched forward pass
over the whole frontier (`PrefixCache.batch_logits`: the request's cached prefix expanded to the batch),
and each node's distribution is the engine's own pipeline on that path (penalties, DRY and the constraint
see the path as part of the completion), so a node equals `preview` of its path. Beside the model's own
numbers each node may carry other models' p_base and p_final of its token at its parent, one more batched
forward a level each (the same knobs): the unedited model under model edits (`p_base_unedited`, ...) and the
reference model when the request names one (`p_base_reference`, ...). `levels` yields once per level: the
caller runs each level as one slice of the model lane.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from backends.reference import REFERENCES
from decoding import fields
from decoding.engine import Engine
from decoding.request import Request
from decoding.tokens import TokenView

MAX_WIDTH = 8
MAX_DEPTH = 4
DEFAULT_WIDTH = 4
DEFAULT_DEPTH = 3


@dataclass(frozen=True)
class TreeNode:
    """One continuation token: its pill, probabilities at its parent, the path's probability and its children.

    `path_ids`: the tokens from the request's position to this one (what a click appends); `finish_reason`:
    set when this path ends the completion (no children then, as a step there would append nothing).
    """

    token: dict
    path_ids: tuple[int, ...]
    p_base: float
    p_final: float
    path_probability: float
    finish_reason: str | None
    children: tuple[TreeNode, ...]
    beside: tuple[tuple[str, float, float], ...] = ()  # (name, p_base, p_final) of the token under other models

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "beside"}
        for name, p_base, p_final in self.beside:
            out[f"p_base_{name}"], out[f"p_final_{name}"] = p_base, p_final
        out["path_ids"] = list(self.path_ids)
        out["children"] = [child.as_dict() for child in self.children]
        return out


@dataclass(frozen=True)
class Tree:
    """The continuations of one position: `width` x `depth` requested, `node_count` nodes found."""

    width: int
    depth: int
    node_count: int
    children: tuple[TreeNode, ...]

    def as_dict(self) -> dict:
        return {**self.__dict__, "children": [child.as_dict() for child in self.children]}


def shape(request: dict) -> tuple[int, int]:
    """(width, depth) of a tree request, strictly: whole numbers 1-8 and 1-4; null or missing is the default."""
    width, depth = request.get("width"), request.get("depth")
    return (
        DEFAULT_WIDTH if width is None else fields.integer("width", width, 1, MAX_WIDTH),
        DEFAULT_DEPTH if depth is None else fields.integer("depth", depth, 1, MAX_DEPTH),
    )


def tree_nodes(width: int, depth: int) -> int:
    """The most nodes a tree can have, its root (the request's position) included."""
    return sum(width**level for level in range(depth + 1))


def tree_tokens(context: int, width: int, depth: int) -> int:
    """The budgeted size of a tree: every node's context length (prompt + completion + its path), summed."""
    return sum(width**level * (context + level) for level in range(depth + 1))


@dataclass
class _Open:
    """A node while the tree grows (frozen into a TreeNode at the end)."""

    token: int
    path: tuple[int, ...]
    p_base: float
    p_final: float
    path_probability: float
    finish_reason: str | None = None
    children: list[_Open] = field(default_factory=list)
    beside: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (p_base, p_final) elsewhere


def top_tokens(p_final: torch.Tensor, count: int) -> list[int]:
    """The `count` most likely tokens by p_final, most likely first; only tokens with p_final > 0."""
    count = min(count, int((p_final > 0).sum()))
    return torch.topk(p_final, count).indices.tolist() if count else []


def levels(engine: Engine, req: Request, width: int, depth: int) -> Iterator[Tree | None]:
    """Grow the tree level by level: yields None after each level's forward pass, then the Tree."""
    prompt, _ = engine.prompt_ids(req)
    root = _Open(-1, (), 1.0, 1.0, 1.0)
    frontier = [root]
    sides = _sides(engine, req)
    for level in range(depth):
        stages = _level(engine, req, prompt, frontier, level)
        beside = {name: side(frontier, level) for name, side in sides.items()}
        frontier = _expand(engine, req, frontier, stages, width, level + 1 < depth, beside)
        yield None
        if not frontier:
            break
    children = tuple(_frozen(child, engine.view) for child in root.children)
    yield Tree(width, depth, _count(children), children)


def _sides(engine: Engine, req: Request) -> dict[str, Callable[[list[_Open], int], list]]:
    """The other models each node is shown under, by name: the unedited one under edits, the reference when named.

    Each gives its stages at every frontier node of a level: one batched forward, the request's knobs."""
    plain = dataclasses.replace(req, interventions=(), reference=None)
    prompt, _ = engine.prompt_ids(req)
    sides = {}
    if req.interventions:
        sides["unedited"] = functools.partial(_level, engine, plain, prompt)
    if req.reference is not None:
        sides["reference"] = functools.partial(_reference, engine, req, plain, prompt)
    return sides


def _level(engine: Engine, req: Request, prompt: tuple[int, ...], frontier: list[_Open], level: int) -> list:
    """The stages at each frontier node's position (one batched forward over the frontier)."""
    completion = req.completion_ids
    if level == 0:  # the request's own position: preview's memoised analysis
        return [engine.analysis(req, prompt, completion)[0]]
    paths = [n.path for n in frontier]
    rows = engine.cache.batch_logits(engine.loaded, (*prompt, *completion), paths, edits=req.interventions)
    paths = [(*completion, *n.path) for n in frontier]
    return [engine.stages_from(req, row, prompt, path) for path, row in zip(paths, rows, strict=True)]


def _reference(engine: Engine, req: Request, plain: Request, prompt, frontier: list[_Open], level: int) -> list:
    """The reference's stages at each frontier node: its own logits through the plain request's knobs."""
    reference = REFERENCES.ready(req.reference, engine.loaded)
    base = (*prompt, *req.completion_ids)
    if level == 0:
        rows = reference.logits(base)
    else:
        rows = reference.backend.batch_logits(reference.loaded, base, [n.path for n in frontier])
    paths = [(*req.completion_ids, *n.path) for n in frontier]
    return [engine.stages_from(plain, row, prompt, path) for path, row in zip(paths, rows, strict=True)]


def _expand(
    engine: Engine, req: Request, nodes: list[_Open], stages: list, width: int, more: bool, beside: dict
) -> list[_Open]:
    """Give each node its `width` children; the next frontier is the children whose paths go on (if `more`).

    `beside`: name -> the other model's stages at each node (its children carry their probabilities)."""
    prompt, _ = engine.prompt_ids(req)
    frontier = []
    for i, (node, found) in enumerate(zip(nodes, stages, strict=True)):
        for token in top_tokens(found.p_final, width):
            p_final = float(found.p_final[token])
            path = (*node.path, token)
            child = _Open(token, path, float(found.p_base[token]), p_final, node.path_probability * p_final)
            for name, side in beside.items():
                child.beside[name] = (float(side[i].p_base[token]), float(side[i].p_final[token]))
            child.finish_reason = engine.finish_reason(req, prompt, (*req.completion_ids, *path))
            node.children.append(child)
            if more and child.finish_reason is None:
                frontier.append(child)
    return frontier


def _frozen(node: _Open, view: TokenView) -> TreeNode:
    return TreeNode(
        token=view.pill(node.token).as_dict(),
        path_ids=node.path,
        p_base=node.p_base,
        p_final=node.p_final,
        path_probability=node.path_probability,
        finish_reason=node.finish_reason,
        children=tuple(_frozen(child, view) for child in node.children),
        beside=tuple((name, *probs) for name, probs in node.beside.items()),
    )


def _count(nodes: tuple[TreeNode, ...]) -> int:
    return sum(1 + _count(node.children) for node in nodes)
