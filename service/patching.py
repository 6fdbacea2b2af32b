"""The activation patching operation: a clean request, a corrupted prompt, a target and a foil, in JSON.

The request is a preview request (the clean run: prompt, completion, chat template) with `corrupted` (the
prompt with a word changed), a target (`target_index` / `target_token_id`, as attribution reads them), the
foil `contrast_token_id` and the `site`. Both contexts must have the same number of tokens; the grid is held
to the patching budget (layers x positions) before any model work, then runs one column per slice of the model
lane (attribution.patching), with progress, and stops at the next column when cancelled.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from attribution.patching import SITES, PatchingGrid, patching_slices
from backends.base import check_gradients
from backends.lane import LANE
from backends.model import STORE
from decoding import fields
from decoding.engine import Engine, engine_for
from decoding.request import Request
from decoding.sampling.params import check_token_ids
from runtime import gpu
from service import parsing, progress
from service.contract import PatchingRequest
from service.policy import POLICY
from service.readable import readable_errors
from service.targets import AttributionSpec, target_ids

# Stand-ins for a changed word, tried in order: common one-token words of several kinds (names, places, things)
STAND_INS = ("John", "Mary", "Paris", "Rome", "cat", "dog", "red", "blue", "house", "tree", "water", "music", "king")
WORD = re.compile(r"[^\W\d_]{3,}")  # a word of three letters or more


@dataclass(frozen=True)
class PatchingJob:
    """A valid patching request within the budgets: the engine, both contexts, target, foil and site."""

    engine: Engine
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
    if req.messages:
        raise ValueError("patching needs a prompt, not messages: send the clean text as prompt")
    if req.interventions:
        raise ValueError("patching runs the unedited model: send no interventions")
    spec = AttributionSpec.from_dict(request)
    if spec.contrast_token_id is None:
        raise ValueError("contrast_token_id is missing: patching scores the logit difference target - foil")
    return req, spec, corrupted, fields.choice("site", request.get("site"), SITES, SITES[0])


@readable_errors
def _setup(request: object) -> PatchingJob:
    req, spec, corrupted_text, site = _read(request)
    engine = engine_for(STORE.get())
    check_gradients(engine.loaded, "activation patching")
    prompt, _ = engine.prompt_ids(req)
    corrupted_prompt, _ = engine.prompt_ids(dataclasses.replace(req, prompt=corrupted_text))
    if len(corrupted_prompt) != len(prompt):
        raise ValueError(
            f"corrupted is {len(corrupted_prompt)} tokens and the prompt {len(prompt)}: patching needs the same"
            " token length (change one word for one of the same length)"
        )
    clean, target = target_ids(spec, prompt, req.completion_ids, engine.loaded.vocab_size)
    (foil,) = check_token_ids("contrast_token_id", [spec.contrast_token_id], engine.loaded.vocab_size)
    POLICY.settings.budgets.check_patching(len(clean), int(engine.loaded.model.config.num_hidden_layers))
    corrupted = (*corrupted_prompt, *clean[len(prompt) :])
    return PatchingJob(engine, len(prompt), clean, corrupted, target, foil, site)


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
    """A corrupted prompt for a preview request: its last word (of three letters or more) that some stand-in
    replaces at the same token length, replaced; `{"corrupted": text, "note": what changed}`."""
    req = parsing.parsed(request)
    engine = engine_for(STORE.get())
    length = len(engine.prompt_ids(req)[0])
    for found in reversed(list(WORD.finditer(req.prompt))):
        word = found.group()
        for stand_in in STAND_INS:
            stand_in = stand_in.capitalize() if word[0].isupper() else stand_in.lower()
            text = req.prompt[: found.start()] + stand_in + req.prompt[found.end() :]
            if stand_in != word and len(engine.prompt_ids(dataclasses.replace(req, prompt=text))[0]) == length:
                return {"corrupted": text, "note": f"the word {word!r} replaced by {stand_in!r} (same token count)"}
    raise ValueError(
        "no word of the prompt can be swapped for another of the same token length: type a corrupted prompt"
    )
