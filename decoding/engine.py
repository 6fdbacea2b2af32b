"""Preview, step, force a token or text: the engine behind the UI and the API.

Requests are plain data (the branch is its completion ids), so the engine keeps no per-user state:
the server-wide prefix cache makes each call cost about one incremental forward pass. The logits come
through the engine interface (backends.base): the prefix cache, or vLLM when the model runs there.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Collection, Sequence
from functools import lru_cache, partial

import torch

from backends.base import LogitsBackend, backend_for
from backends.bounded import BoundedCache
from backends.model import LoadedModel
from backends.model.loaded import eos_ids
from backends.model.memo import per_model
from backends.reference import REFERENCES
from decoding import distribution as dist_mod
from decoding.edit_effect import EditEffect
from decoding.prompt import PromptEncoder
from decoding.reference import ReferenceEffect
from decoding.request import Request
from decoding.results import Choice, Result
from decoding.sampling import llama_samplers as ls
from decoding.sampling.draws import draw_uniform, sample
from decoding.sampling.params import DecodingParams, check_token_ids
from decoding.tokens import TokenView

FINISH_REASONS = ("eos", "stop_sequence", "constraint_complete", "max_context")
# Positions whose stages and summary are kept: a step reuses the analysis its preview (or the previous
# step) made of the same position instead of recomputing it. About 1 MB each on a 49k vocabulary.
ANALYSIS_MEMO_SIZE = 8


class Engine:
    """Per-model engine; one per loaded model (see `engine_for`)."""

    def __init__(self, loaded: LoadedModel, cache: LogitsBackend | None = None) -> None:
        self.loaded = loaded
        self.cache = backend_for(loaded) if cache is None else cache  # where the logits come from
        self.view = TokenView(loaded.tokenizer)
        self.eos_ids = eos_ids(loaded)
        self.context_length = loaded.context_length  # read from the config once, not several times a step
        self._prompts = PromptEncoder(loaded)
        # Over a weak proxy, not the bound method: self -> cache -> method -> self would be a reference cycle,
        # and a cycle keeps the engine and its model alive after a switch until a full garbage collection.
        self._breakers = lru_cache(maxsize=8)(partial(Engine._scan_breakers, weakref.proxy(self)))
        self._analyses: BoundedCache[tuple, tuple[dist_mod.Stages, dist_mod.Distribution]] = BoundedCache(
            max_entries=ANALYSIS_MEMO_SIZE
        )

    def request(self, data: object, extra_keys: Collection[str] = ()) -> Request:
        """The request parsed strictly (see decoding.request) and held to this model (vocabulary, edits)."""
        return Request.from_dict(data, None, extra_keys).resolved(self.loaded)

    def prompt_ids(self, req: Request) -> tuple[tuple[int, ...], str]:
        """(prompt ids, notice) of the request (decoding.prompt)."""
        return self._prompts.ids(req)

    def check_context(self, prompt: Sequence[int], completion: Sequence[int], extra: int = 0) -> None:
        total = len(prompt) + len(completion) + extra
        limit = self.context_length
        if total > limit:
            raise ValueError(
                f"prompt ({len(prompt)} tokens) plus completion ({len(completion) + extra} tokens) is {total} "
                f"tokens, longer than the model's context of {limit} tokens"
            )

    def stages(self, req: Request, prompt: Sequence[int], completion: Sequence[int]) -> dist_mod.Stages:
        """The full pipeline for the position after prompt + completion."""
        logits = self.cache.logits(self.loaded, (*prompt, *completion), edits=req.interventions)[0]
        return self.stages_from(req, logits, prompt, completion)

    def stages_from(
        self, req: Request, logits: torch.Tensor, prompt: Sequence[int], completion: Sequence[int]
    ) -> dist_mod.Stages:
        """The pipeline over given next-token logits of prompt + completion (e.g. a row of a batched forward)."""
        ids = (*prompt, *completion)
        valid, ctype = None, None
        if req.constraint.active:
            mask = self._tracker().mask(req.constraint, completion)
            valid, ctype = mask.valid, mask.constraint_type
        return dist_mod.compute(
            logits, ids, completion, req.params, valid, ctype,
            breakers=self.breakers(req.params), xtc_draw=self.xtc_draw(req, len(completion)),
        )  # fmt: skip

    def breakers(self, params: DecodingParams) -> ls.Breakers:
        """DRY's sequence breakers in this vocabulary (a scan of it per breaker list, kept for the next steps)."""
        return self._breakers(params.dry_sequence_breakers) if params.dry_on else ls.NO_BREAKERS

    def _scan_breakers(self, texts: tuple[str, ...]) -> ls.Breakers:
        def tokenize(text: str) -> list[int]:
            return self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]

        return ls.sequence_breakers(texts, self.view.token_bytes, self.loaded.vocab_size, tokenize)

    @staticmethod
    def xtc_draw(req: Request, position: int) -> float:
        """XTC's draw: its own stream beside the sampling draw's, so turning XTC on does not move the samples."""
        active = "xtc" in req.params.active_samplers
        return draw_uniform(req.params.seed, f"{req.branch_id}|xtc", position) if active else 0.0

    def analysis(
        self, req: Request, prompt: Sequence[int], completion: Sequence[int]
    ) -> tuple[dist_mod.Stages, dist_mod.Distribution]:
        """Stages and display summary of the position after prompt + completion, memoised per position."""
        xtc_branch = req.branch_id if "xtc" in req.params.active_samplers else None  # XTC's draw is per branch
        key = (tuple(prompt), tuple(completion), req.params, req.constraint, req.top_k, xtc_branch, req.interventions,
               req.reference)  # fmt: skip
        hit = self._analyses.get(key)
        if hit is not None:
            return hit
        if req.interventions:  # both rows in one batched forward where the cache allows it
            self.cache.with_unedited(self.loaded, (*prompt, *completion), req.interventions)
        stages = self.stages(req, prompt, completion)
        summary = dist_mod.summarize(stages, self.view, req.top_k)
        if req.interventions:
            summary = dataclasses.replace(summary, edit=self._edit_effect(req, prompt, completion, stages))
        if req.reference is not None:
            summary = dataclasses.replace(summary, reference=self._reference_effect(req, prompt, completion, stages))
        found = (stages, summary)
        self._analyses.put(key, found)
        return found

    def _reference_effect(self, req: Request, prompt, completion, main: dist_mod.Stages) -> ReferenceEffect:
        """The request's reference (loaded already, see backends.reference) beside the main model's stages."""
        ids = (*prompt, *completion)
        ref_logits = REFERENCES.ready(req.reference, self.loaded).logits(ids)[0]
        # the reference is never edited, and has no reference of its own
        plain = dataclasses.replace(req, interventions=(), reference=None)
        ref_stages = self.stages_from(plain, ref_logits, prompt, completion)
        main_logits = self.cache.logits(self.loaded, ids, edits=req.interventions)[0]  # cached by the main step
        return ReferenceEffect.of(main, main_logits, ref_stages, ref_logits, req.reference.describe(self.loaded))

    def _edit_effect(self, req: Request, prompt, completion, edited: dist_mod.Stages) -> EditEffect:
        """The unedited model at this position (its own memoised analysis) beside the edited one."""
        unedited = self.analysis(dataclasses.replace(req, interventions=(), reference=None), prompt, completion)[0]
        names = tuple(edit.describe() for edit in req.interventions)
        return EditEffect.of(edited.p_final, unedited.p_base, unedited.p_final, names)

    def _tracker(self):
        from decoding.constraints import tracker_for

        return tracker_for(self.loaded)

    def finish_reason(self, req: Request, prompt: Sequence[int], completion: Sequence[int]) -> str | None:
        if completion and completion[-1] in self.eos_ids:
            return "eos"
        if req.params.stop_sequences and completion:
            text = self.view.decode(completion)
            if any(text.endswith(s) for s in req.params.stop_sequences):
                return "stop_sequence"
        if len(prompt) + len(completion) >= self.context_length:
            return "max_context"
        if req.constraint.active and self._tracker().mask(req.constraint, completion).complete:
            return "constraint_complete"
        return None

    def preview(self, req: Request) -> Result:
        prompt, notice = self.prompt_ids(req)
        self.check_context(prompt, req.completion_ids)
        return self._result(req, prompt, req.completion_ids, notice)

    def render(self, req: Request) -> Result:
        """The tokens of a request without running the model (the explorer with the model switched off)."""
        prompt, notice = self.prompt_ids(req)
        self.check_context(prompt, req.completion_ids)
        return self._result(req, prompt, req.completion_ids, notice, with_dist=False)

    def append_text(self, req: Request, text: str) -> Result:
        """Append the tokens of `text` without running the model; their records carry no distribution."""
        prompt, notice = self.prompt_ids(req)
        new = self._text_ids(req, prompt, req.completion_ids, text)
        meta = [Choice(self.view.pill(t).as_dict(), "forced_text", None) for t in new]
        return self._result(req, prompt, (*req.completion_ids, *new), notice, new, meta, with_dist=False)

    def _result(self, req: Request, prompt, completion, notice: str, appended=(), meta=(), with_dist=True) -> Result:
        reason = self.finish_reason(req, prompt, completion)
        dist = None
        if with_dist and reason != "max_context":
            dist = self.analysis(req, prompt, completion)[1].as_dict()
        return Result(
            prompt_tokens=[p.as_dict() for p in self.view.pills(prompt)],
            completion_tokens=[p.as_dict() for p in self.view.merged_pills(completion)],
            completion_ids=list(completion),
            completion_text=self.view.decode(completion),
            dist=dist,
            finished=reason is not None,
            finish_reason=reason,
            context_length=self.context_length,
            notice=notice,
            appended=[self.view.pill(i).as_dict() for i in appended],
            appended_meta=[m.as_dict() for m in meta],
        )

    def step(self, req: Request, force_token_id: object = None, force_text: str | None = None) -> Result:
        """Append one chosen token, a forced token, or the tokens of a forced text; return the new state."""
        prompt, notice = self.prompt_ids(req)
        completion = req.completion_ids
        self.check_context(prompt, completion)
        if force_text is not None:
            new, meta = self._force_text(req, prompt, completion, force_text)
        elif force_token_id is not None:
            new, meta = self._force_token(req, prompt, completion, force_token_id)
        else:
            reason = self.finish_reason(req, prompt, completion)
            if reason is not None:  # the caller must be able to say why nothing was appended
                done = f"the completion has finished ({reason.replace('_', ' ')}): nothing was appended"
                return self._result(req, prompt, completion, "; ".join(filter(None, (notice, done))))
            new, meta = self._choose(req, prompt, completion)
        return self._result(req, prompt, (*completion, *new), notice, new, meta)

    def generate(self, req: Request, prompt: Sequence[int], max_tokens: int):
        """Yield the choice record of each token after `prompt` until a finish reason or `max_tokens` (the chat).

        Each record carries its distribution and draw, as a step's does, so a reply opened in the explorer
        can be rewound like any stepped completion.
        """
        completion: tuple[int, ...] = ()
        for _ in range(max_tokens):
            if self.finish_reason(req, prompt, completion) is not None:
                return
            (token,), (choice,) = self._choose(req, prompt, completion)
            completion = (*completion, token)
            yield choice

    def _meta(self, analysis, token_id: int, how: str, draw=None) -> Choice:
        stages, summary = analysis[0], analysis[1].as_dict()
        if all(row["id"] != token_id for row in summary["tokens"]):
            row = dist_mod.summarize_ids(stages, self.view, [token_id])[0].as_dict()
            summary["tokens"].append(analysis[1].row(row))
        return Choice(self.view.pill(token_id).as_dict(), how, summary, draw)

    def _pick(self, req: Request, stages: dist_mod.Stages, position: int) -> tuple[int, str, float | None]:
        """(token, how, draw): the argmax when greedy, else the inverse-CDF draw for this position."""
        if stages.greedy:
            return stages.argmax(), "greedy", None
        u = draw_uniform(req.params.seed, req.branch_id, position)
        return sample(stages.p_final, u), "sampled", u

    def _choose(self, req: Request, prompt, completion) -> tuple[tuple[int, ...], list[Choice]]:
        found = self.analysis(req, prompt, completion)
        token, how, u = self._pick(req, found[0], len(completion))
        return (token,), [self._meta(found, token, how, u)]

    def _force_token(self, req: Request, prompt, completion, token_id) -> tuple[tuple[int, ...], list[Choice]]:
        (token,) = check_token_ids("force_token_id", [token_id], self.loaded.vocab_size)
        self.check_context(prompt, completion, 1)
        if req.constraint.active:
            self._tracker().check_forced(req.constraint, completion, [token])
        return (token,), [self._meta(self.analysis(req, prompt, completion), token, "forced_token")]

    def _text_ids(self, req: Request, prompt, completion, text: str) -> tuple[int, ...]:
        """The tokens of a forced text, checked against the context length and the constraint."""
        if not isinstance(text, str):
            raise ValueError(f"force_text {text!r} must be text (a string), or null for no forced text")
        if text == "":
            raise ValueError("force_text is empty: type the text to append")
        new = tuple(int(i) for i in self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])
        if not new:
            raise ValueError(f"force_text {text!r} encodes to no tokens")
        self.check_context(prompt, completion, len(new))
        if req.constraint.active:
            self._tracker().check_forced(req.constraint, completion, new)
        return new

    def _force_text(self, req: Request, prompt, completion, text: str) -> tuple[tuple[int, ...], list[Choice]]:
        new = self._text_ids(req, prompt, completion, text)
        # One forward over the new tokens gives the distribution before each of them.
        ids = (*prompt, *completion, *new)
        if len(new) > 1:
            self.cache.logits(self.loaded, ids[:-1], last_n=len(new) - 1, edits=req.interventions)
        meta = []
        for j, token in enumerate(new):
            meta.append(self._meta(self.analysis(req, prompt, (*completion, *new[:j])), token, "forced_text"))
        return new, meta


def engine_for(loaded: LoadedModel) -> Engine:
    """The engine of the current model, kept in the per-model memo (dropped when another model is loaded)."""
    return per_model(loaded, "engine", Engine)
