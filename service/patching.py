"""The activation patching operation: a clean request, a corrupted prompt, a target and a foil, in JSON.

The request is a preview request (the clean run: prompt or messages, completion, chat template, interventions)
with `corrupted` (the prompt with a word changed; in a conversation, the last user message's text with a word
changed), a target (`target_index` / `target_token_id`, as attribution reads them), the foil
`contrast_token_id` and the `site`. Both contexts, as the chat template renders them, must have the same number
of tokens; the grid is held to the patching budget (layers x positions) before any model work, then runs one
column per slice of the model lane (attribution.patching) under the request's model edits (the clean run, the
corrupted run and every patched run alike), with progress, and stops at the next column when cancelled.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from attribution.patching import SITES, PatchingGrid, patching_slices
from backends.base import check_gradients
from backends.interventions import Edits, edited_slices
from backends.lane import LANE
from backends.model import STORE
from decoding import fields
from decoding.engine import Engine, engine_for
from decoding.request import Message, Request
from decoding.sampling.params import check_token_ids
from runtime import gpu
from service import parsing, progress
from service.contract import PatchingRequest
from service.policy import POLICY
from service.readable import readable_errors
from service.targets import AttributionSpec, target_ids

# Stand-ins for a changed word, tried in order: a capitalised word (a name, a place, a sentence's first word) gets
# names first, then common words capitalised; a lowercase one common words only ("sky" -> "john" read as a typo,
# not a changed fact).
NAMES = ("John", "Mary", "Paris", "Rome", "London", "Alice")
COMMON = ("cat", "dog", "red", "blue", "house", "tree", "water", "music", "king", "river", "city", "green")
WORD = re.compile(r"[^\W\d_]{3,}")  # a word of three letters or more


@dataclass(frozen=True)
class PatchingJob:
    """A valid patching request within the budgets: the engine, the model edits, both contexts, target, foil and
    site."""

    engine: Engine
    edits: Edits
    prompt_length: int
    clean: tuple[int, ...]
    corrupted: tuple[int, ...]
    target_id: int
    foil_id: int
    site: str


def _read(request: object) -> tuple[Request, AttributionSpec, str, str]:
    """(clean request, target spec, corrupted prompt, site), no model needed."""
    req = parsing.parsed(request, PatchingRequest)
    corrupted = fields.text("corrupted", request.get("corrupted"))
    if not corrupted.strip():
        raise ValueError("corrupted is empty: send the prompt with a word changed, of the same token length")
    POLICY.settings.budgets.check("max_prompt_chars", len(corrupted), "corrupted")
    spec = AttributionSpec.from_dict(request)
    if spec.contrast_token_id is None:
        raise ValueError("contrast_token_id is missing: patching scores the logit difference target - foil")
    return req, spec, corrupted, fields.choice("site", request.get("site"), SITES, SITES[0])


def _last_user(req: Request) -> int:
    """The index of the conversation's last user message: the text a corrupted prompt replaces in a chat."""
    users = [i for i, message in enumerate(req.messages) if message.role == "user"]
    if not users:
        raise ValueError("messages has no user message: patching changes a word of the last user message")
    return users[-1]


def corruptible_text(req: Request) -> str:
    """The text `corrupted` stands for: the prompt, or in a conversation the last user message's content."""
    return req.messages[_last_user(req)].content if req.messages else req.prompt


def with_text(req: Request, text: str) -> Request:
    """The request with the corruptible text (see `corruptible_text`) replaced by `text`."""
    if not req.messages:
        return dataclasses.replace(req, prompt=text)
    messages = list(req.messages)
    at = _last_user(req)
    messages[at] = Message("user", text)
    return dataclasses.replace(req, messages=tuple(messages))


@readable_errors
def _setup(request: object) -> PatchingJob:
    req, spec, corrupted_text, site = _read(request)
    engine = engine_for(STORE.get())
    check_gradients(engine.loaded, "activation patching")
    req = req.resolved(engine.loaded)
    prompt, _ = engine.prompt_ids(req)
    corrupted_prompt, _ = engine.prompt_ids(with_text(req, corrupted_text))
    if len(corrupted_prompt) != len(prompt):
        rendered = " (both as the chat template renders the conversation)" if req.messages else ""
        raise ValueError(
            f"corrupted is {len(corrupted_prompt)} tokens and the prompt {len(prompt)}{rendered}: patching needs"
            " the same token length (change one word for one of the same length)"
        )
    clean, target = target_ids(spec, prompt, req.completion_ids, engine.loaded.vocab_size)
    (foil,) = check_token_ids("contrast_token_id", [spec.contrast_token_id], engine.loaded.vocab_size)
    POLICY.settings.budgets.check_patching(len(clean), int(engine.loaded.model.config.num_hidden_layers))
    corrupted = (*corrupted_prompt, *clean[len(prompt) :])
    return PatchingJob(engine, req.interventions, len(prompt), clean, corrupted, target, foil, site)


def _answer(job: PatchingJob, grid: PatchingGrid, elapsed: float) -> dict:
    view = job.engine.view
    return grid.as_dict() | {
        "target": view.pill(job.target_id).as_dict(),
        "contrast": view.pill(job.foil_id).as_dict(),
        "target_index": len(job.clean) - job.prompt_length,
        "prompt_length": job.prompt_length,
        "clean_tokens": [p.as_dict() for p in view.pills(job.clean)],
        "corrupted_tokens": [p.as_dict() for p in view.pills(job.corrupted)],
        "elapsed_s": elapsed,
    }


def _items(request: object) -> Iterator[dict]:
    job, started = _setup(request), time.perf_counter()
    slices = patching_slices(job.engine.loaded, job.clean, job.corrupted, job.target_id, job.foil_id, job.site)
    slices = edited_slices(job.engine.loaded.model, job.edits, slices)
    yield from progress.progress_items(
        slices, "positions", lambda grid: _answer(job, grid, time.perf_counter() - started)
    )


def patching_stream(request: object) -> Iterator[dict]:
    """`patching` with progress: `{"progress": 0..1, "desc": ...}` after each column, then `{"result": {...}}`.

    Validation happens on the first `next()` (ValueError); closing the generator stops at the next column.
    """
    yield from progress.stream(request, _items, patching)


@LANE.held
@gpu
def patching(request: object) -> dict:
    """The patching grid of a request (see the module); other requests use the model between its columns."""
    *_, last = _items(request)
    return last["result"]


@readable_errors
def suggest_corrupted(request: object) -> dict:
    """A corrupted prompt for a preview request (in a conversation: a corrupted last user message): its last word
    (of three letters or more) that some stand-in replaces at the same token length, replaced;
    `{"corrupted": text, "note": what changed}`."""
    req = parsing.parsed(request)
    engine = engine_for(STORE.get())
    length, original = len(engine.prompt_ids(req)[0]), corruptible_text(req)
    for found in reversed(list(WORD.finditer(original))):
        word = found.group()
        for stand_in in (*NAMES, *(w.capitalize() for w in COMMON)) if word[0].isupper() else COMMON:
            text = original[: found.start()] + stand_in + original[found.end() :]
            if stand_in != word and len(engine.prompt_ids(with_text(req, text))[0]) == length:
                return {"corrupted": text, "note": f"the word {word!r} replaced by {stand_in!r} (same token count)"}
    raise ValueError(
        "no word of the prompt can be swapped for another of the same token length: type a corrupted prompt"
    )
