"""JSON in, JSON out: the operations behind the API endpoints and the UI, on the shared model.

Each function puts its request through the request models first (service.contract: what the published
schema states), then parses it strictly (decoding.request, decoding.fields) and checks it against the
budgets before any model work, so a malformed or too costly request raises a one-line
ValueError and leaves the caller's state as it was. `POLICY` holds what this server allows: in public
mode only allowlisted models, and strict budgets (see service.budgets) for every request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from backends.base import check_gradients
from backends.interventions import Edits, applied
from backends.lane import LANE
from backends.model import STORE
from decoding import fields
from decoding.constraint_start import constraint_start as start
from decoding.engine import Engine, engine_for
from decoding.request import Request
from decoding.sampling.params import check_token_ids
from runtime import gpu, spaces
from service import parsing, progress
from service import tree as tree_mod
from service.compare import compare_branches
from service.policy import POLICY, Policy, PolicySettings  # noqa: F401 (callers reach the policy through this module)
from service.prefetch import PREFETCH
from service.readable import readable_errors
from service.reference import reference_for
from service.targets import AttributionSpec, target_ids


def check_chat(message: str, history: list[dict], max_tokens: int) -> None:
    """Refuse a chat turn over the chat budgets, before any model work (the chat tab calls it before replying).

    `history` is the conversation before `message`: dicts with a `content` (other keys are the UI's own).
    """
    budgets = POLICY.settings.budgets
    if not fields.text("message", message).strip():
        raise ValueError("the message is empty: type something to send")
    budgets.check("max_message_chars", len(message), "message")
    contents = []
    for i, turn in enumerate(fields.items("history", history)):
        if not isinstance(turn, dict) or "content" not in turn:
            raise ValueError(f"history[{i}] must be an object with a content, got {fields.type_name(turn)}")
        content = turn["content"]
        contents.append(fields.text(f"history[{i}].content", content) if isinstance(content, str) else str(content))
    budgets.check_conversation([*contents, message], "conversation")
    tokens = fields.integer("max_tokens", max_tokens, 1, accepted="a whole number of reply tokens >= 1")
    budgets.check("max_reply_tokens", tokens, "max_tokens")


def model_status() -> dict:
    return STORE.status().as_dict()


@LANE.held
def load_model(model_id: str) -> dict:
    """Switch the shared model; on failure the previous model stays and ValueError names the reason."""
    if not fields.string("model id", model_id).strip():
        raise ValueError(f"model id {model_id!r} is empty: give a Hugging Face id, a local folder or 'embedded'")
    return STORE.load(POLICY.check_model(model_id)).as_dict()


def load_body(body: object) -> dict:
    """`load_model` for a request body `{"model_id": ...}` (the REST API's)."""
    return load_model(parsing.model_id(body))


def current_engine(req: Request) -> tuple[Engine, Request]:
    """The current model's engine, once the request's token ids are known to fit its vocabulary, and the request
    with its model edits held to the model (vector ids replaced by their floats); its reference is loaded."""
    engine = engine_for(STORE.get())
    req = req.resolved(engine.loaded)
    reference_for(engine.loaded, req)  # loaded (or replaced) before the model work that reads it
    return engine, req


def _text_tokens(engine: Engine, text: str | None) -> int:
    """How many tokens a forced text appends (only counted when a context budget applies)."""
    if not text or POLICY.settings.budgets.max_context_tokens is None:
        return 0
    return len(engine.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])


@LANE.held
@gpu
@readable_errors
def preview(request: dict) -> dict:
    req = parsing.parsed(request)
    engine, req = current_engine(req)
    POLICY.check_context(engine, req)
    return _look_ahead(engine, req, engine.preview(req).as_dict())


def _look_ahead(engine: Engine, req: Request, result: dict) -> dict:
    """Prefetch from the result's position in the background (not from inside a ZeroGPU call's own process)."""
    if spaces is None and result["dist"] is not None and not result["finished"]:
        PREFETCH.schedule(engine, dataclasses.replace(req, completion_ids=tuple(result["completion_ids"])))
    return result


@LANE.held
@gpu
@readable_errors
def step(request: dict) -> dict:
    """One step: choose a token, or append `force_token_id`, or the tokens of `force_text`.

    `reset_rng` is accepted and has nothing to reset: a draw is a pure function of (seed, branch, position).
    `send_prompt_tokens` false leaves the prompt's pills out (at 695 tokens an answer shrinks from 49 to 7 KiB).
    """
    req, force_id, force_text, send_prompt = parsing.step_request(request)
    engine, req = current_engine(req)
    POLICY.check_context(engine, req, _text_tokens(engine, force_text) or 1)
    result = _look_ahead(engine, req, engine.step(req, force_token_id=force_id, force_text=force_text).as_dict())
    return result if send_prompt else result | {"prompt_tokens": []}


@readable_errors
def tree(request: dict) -> dict:
    """The look-ahead tree of the request's position: `width` (1-8) children per node, `depth` (1-4) levels.

    Refused before any model work when over the tree budget. Each level is one slice of the model lane
    (one batched forward), so requests that arrive meanwhile go between levels.
    """
    if spaces is not None:  # ZeroGPU runs each GPU call in a process of its own: the tree in one call
        return _tree_at_once(request)
    *_, found = LANE.sliced(_tree_levels(request))
    return found.as_dict()


@LANE.held
@gpu
def _tree_at_once(request: dict) -> dict:
    *_, found = _tree_levels(request)
    return found.as_dict()


def _tree_levels(request: dict) -> Iterator[tree_mod.Tree | None]:
    """The checks (refusing before any model work), then the tree level by level."""
    engine, req, width, depth = _tree_setup(request)
    yield from tree_mod.levels(engine, req, width, depth)


def _tree_setup(request: dict) -> tuple[Engine, Request, int, int]:
    req, (width, depth) = parsing.tree_request(request)
    engine, req = current_engine(req)
    POLICY.check_context(engine, req)
    prompt, _ = engine.prompt_ids(req)
    engine.check_context(prompt, req.completion_ids)
    context = len(prompt) + len(req.completion_ids)
    nodes, tokens = tree_mod.tree_nodes(width, depth), tree_mod.tree_tokens(context, width, depth)
    POLICY.settings.budgets.check_tree(context, width, depth, nodes, tokens)
    return engine, req, width, depth


@readable_errors
def render(request: dict) -> dict:
    """The tokens of a request without running the model."""
    req = parsing.parsed(request)
    engine, req = current_engine(req)
    POLICY.check_context(engine, req)
    return engine.render(req).as_dict()


@readable_errors
def append_text(request: dict, text: str) -> dict:
    """Append the tokens of `text` without running the model."""
    req = parsing.parsed(request)
    text = parsing.forced_text("text", text)
    engine, req = current_engine(req)
    POLICY.check_context(engine, req, _text_tokens(engine, text))
    return engine.append_text(req, text).as_dict()


def attribution_stream(request: dict) -> Iterator[dict]:
    """`attribution` with progress: `{"progress": 0..1, "desc": ...}` after each slice, then `{"result": {...}}`.

    Validation happens on the first `next()` (ValueError). Each slice of model work holds the model lane
    and then gives it back, so requests that arrived meanwhile go first; closing the generator stops the
    work at the next slice boundary.
    """
    yield from progress.stream(request, _attribution_items, attribution)


@LANE.held
@gpu
def attribution(request: dict) -> dict:
    """Which context tokens the token `target_token_id` at completion position `target_index` depends on.

    `target_index` alone: the completion's own token there; `target_token_id` alone: a candidate after
    the whole completion. Runs in slices too: other requests use the model between them.
    """
    *_, last = _attribution_items(request)
    return last["result"]


def _attribution_items(request: dict) -> Iterator[dict]:
    from attribution import attribute_slices

    engine, edits, prompt, context, target, spec = _attribution_setup(request)
    slices = attribute_slices(
        engine.loaded, context, target, spec.method, aggregation=spec.aggregation,
        contrast_token_id=spec.contrast_token_id, edits=edits, **spec.parameters,
    )  # fmt: skip
    yield from progress.progress_items(
        slices, "passes", lambda item: _attribution_answer(engine, prompt, context, spec, item)
    )


def _attribution_answer(engine: Engine, prompt, context, spec: AttributionSpec, result) -> dict:
    """The result as JSON, with the target, the foil, the context's pills and (word granularity) its words."""
    from attribution import words

    pills = engine.view.pills(context)
    foil = spec.contrast_token_id
    answer = result.as_dict() | {
        "target": engine.view.pill(result.target_id).as_dict(),
        "contrast": None if foil is None else engine.view.pill(foil).as_dict(),
        "target_index": len(context) - len(prompt),
        "context_tokens": [p.as_dict() for p in pills],
        "prompt_length": len(prompt),
        "granularity": spec.granularity,
        "words": None,
    }
    if spec.granularity == "word":
        texts, special = [p.text for p in pills], [p.special for p in pills]
        found = words(texts, special, result.scores, result.normalized, result.signed)
        answer["words"] = [w.as_dict() for w in found]
    return answer


@readable_errors
def _attribution_setup(request: dict) -> tuple[Engine, Edits, tuple[int, ...], tuple[int, ...], int, AttributionSpec]:
    """(engine, model edits, prompt ids, context ids, target id, spec) of a valid attribution request within the
    budgets."""
    req, spec = parsing.attribution_request(request)
    engine, req = current_engine(req)
    check_gradients(engine.loaded, "attribution")
    prompt, _ = engine.prompt_ids(req)
    context, target = target_ids(spec, prompt, req.completion_ids, engine.loaded.vocab_size)
    POLICY.settings.budgets.check_attribution(len(context), spec.passes(len(context)))
    return engine, req.interventions, prompt, context, target, spec


@LANE.held
@gpu
@readable_errors
def logit_lens(request: dict, top_k: int = 5) -> dict:
    """The top tokens each layer would predict for the position after prompt + completion."""
    from attribution import logit_lens as lens

    req = parsing.parsed(request)
    top_k = fields.integer("top_k", top_k, 1)
    POLICY.settings.budgets.check("max_rows", top_k, "top_k")
    engine, req = current_engine(req)
    check_gradients(engine.loaded, "the logit lens")
    POLICY.check_context(engine, req)
    prompt, _ = engine.prompt_ids(req)
    with applied(engine.loaded.model, req.interventions):  # a whole-context pass: every edit applies as it is
        rows = lens(engine.loaded, (*prompt, *req.completion_ids), top_k=top_k)
    return {"layers": [row.as_dict() for row in rows]}


@LANE.held
@gpu
@readable_errors
def compare(request: dict, other_completion_ids: list[int], other_interventions: list | None = None) -> dict:
    """Two branches of the request's prompt, step by step: tokens, entropies, exact KL(current || other) in bits.

    The request's completion_ids are the current branch; `other_completion_ids` the other, run under
    `other_interventions` (None: the request's own). The work is one forward pass per branch over its own
    tokens, within the context budget of the longer branch.
    """
    req = parsing.parsed(request)
    other = check_token_ids("other_completion_ids", other_completion_ids)
    other_req = None
    if other_interventions is not None:
        _, other_req = current_engine(parsing.parsed(request | {"interventions": other_interventions}))
    engine, req = current_engine(req)
    POLICY.check_context(engine, req, max(0, len(other) - len(req.completion_ids)))
    return compare_branches(engine, req, other, other_req).as_dict()


@LANE.held
@gpu
@readable_errors
def constraint_start(request: dict) -> dict:
    """What the request's constraint allows first: `count` tokens, the likeliest of them as `tokens` (display text).

    The completion in the request is ignored: this is about the constraint's first position after the prompt.
    """
    req = dataclasses.replace(parsing.parsed(request), completion_ids=())
    engine, req = current_engine(req)
    POLICY.check_context(engine, req)
    return start(engine, req).as_dict()
