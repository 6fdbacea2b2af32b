"""The vLLM logits engine: next-token logits from a `vllm.LLM`, for many users and models too big for one GPU.

It answers the same calls as the prefix KV cache (`backends.base.LogitsBackend`), so everything above it
(knobs, constraints, forcing, the tree, prefetch) is unchanged. Each prefix is one token-id prompt that
generates one token (no detokenisation); its raw float32 logits come back through a shared file written
by a logits processor in vLLM's sampler (`backends.vllm.rows`), or, where that file cannot be reached, as
full-vocabulary raw logits in the answer (`logprobs_mode="raw_logits"`, `logprobs=-1`, about 13 ms more a
prefix). Either way they are the numbers the transformers model gives, so every knob (the repetition
penalty too, which is not shift-invariant) sees what it sees there. vLLM's own prefix caching
keeps the keys and values. Requests that wait at the same time go to vLLM in one `generate` call (see
`backends.vllm.batcher`), and a request stands aside from the model lane while it waits, so concurrent users'
steps meet there. Recent answers are kept (a prefetched candidate needs no call).
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

from backends.bounded import BoundedCache
from backends.interventions import check_edits
from backends.lane import LANE
from backends.settings import VllmOptions
from backends.vllm import cpu as vllm_cpu
from backends.vllm.batcher import Batcher

LOG = logging.getLogger(__name__)
LOGITS_ENTRIES = 256  # answers kept: ~50 MB at a 49k vocabulary, enough for every user's last steps and prefetch
INSTALL_HINT = (
    "run `uv sync --extra vllm` (x86-64 Linux CPUs) or `uv pip install vllm` (CUDA GPUs), or use --engine transformers"
)


class VllmBackend:
    """Logits of token-id prefixes from a running `vllm.LLM` (`start` makes one); `close` stops it."""

    name = "vllm"

    def __init__(
        self, llm: object, sampling_params: object, vocab_size: int, placement: str = "vLLM", tap: object = None,
        max_len: int | None = None,
    ) -> None:  # fmt: skip
        self.llm = llm
        self.max_len = max_len  # vLLM's max_model_len: a prompt must leave room for the one token it generates
        self.sampling_params = sampling_params  # full-vocabulary raw logits in the answer
        self.tap = tap  # a `vllm_rows.Tap`: rows through a shared file (None: from the answers)
        self.vocab_size = vocab_size
        self.placement = placement
        self.batcher: Batcher[tuple[int, ...], torch.Tensor] = Batcher(self._generate)
        self._answers: BoundedCache[tuple[int, ...], torch.Tensor] = BoundedCache(max_entries=LOGITS_ENTRIES)
        self._closed = False

    def logits(self, loaded: object, ids: Sequence[int], last_n: int = 1, edits: tuple = ()) -> torch.Tensor:
        """Float32 logits [last_n, vocab]: row j predicts the token after ids[: len(ids) - last_n + 1 + j]."""
        check_edits(loaded, edits)
        ids = tuple(int(i) for i in ids)
        if not 1 <= last_n <= len(ids):
            raise ValueError(f"last_n {last_n} must be between 1 and the number of ids ({len(ids)})")
        prefixes = [ids[: len(ids) - last_n + 1 + j] for j in range(last_n)]
        return torch.stack(self._answer(prefixes, keep=True))

    def batch_logits(
        self, loaded: object, base: Sequence[int], rows: Sequence[Sequence[int]], keep: bool = False, edits: tuple = ()
    ) -> torch.Tensor:
        """Float32 logits [len(rows), vocab]: row i predicts the token after base + rows[i], in one vLLM call."""
        check_edits(loaded, edits)
        base, rows = tuple(int(i) for i in base), [tuple(int(i) for i in row) for row in rows]
        if not rows or not rows[0] or len({len(row) for row in rows}) != 1:
            raise ValueError(f"rows {rows!r} must be one or more token-id lists of the same length >= 1")
        return torch.stack(self._answer([(*base, *row) for row in rows], keep))

    def with_unedited(self, loaded: object, ids: Sequence[int], edits: tuple) -> None:
        """Refuses: vLLM's forward pass cannot be edited here."""
        check_edits(loaded, edits)

    def cached(self, ids: Sequence[int], edits: tuple = ()) -> bool:
        """Whether the logits after `ids` are kept (a call for them needs no vLLM request); never under edits."""
        return not edits and tuple(int(i) for i in ids) in self._answers

    def serves(self, loaded: object) -> bool:
        """Whether this engine serves `loaded` (False once another model was loaded): background work checks."""
        return not self._closed and getattr(loaded, "backend", None) is self

    def close(self) -> None:
        """Stop vLLM's engine processes (the model is switched, or the app exits): its memory is freed at once."""
        if self._closed:
            return
        self._closed = True
        self._answers.clear()
        if self.tap is not None:
            self.tap.close()
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def _answer(self, prefixes: list[tuple[int, ...]], keep: bool) -> list[torch.Tensor]:
        """The logits after each prefix: kept answers, then one batched call for the rest (the lane given up)."""
        found = {p: answer for p in dict.fromkeys(prefixes) if (answer := self._answers.get(p)) is not None}
        missing = list(dict.fromkeys(p for p in prefixes if p not in found))
        self._check_lengths(missing)
        if missing:
            with LANE.stand_aside():  # others run their own work meanwhile; their forwards join the next call
                computed = self.batcher.run(missing)
            found.update(zip(missing, computed, strict=True))
            if keep and not self._closed:
                for p, answer in zip(missing, computed, strict=True):
                    self._answers.put(p, answer)
        return [found[p] for p in prefixes]

    def _check_lengths(self, prefixes: list[tuple[int, ...]]) -> None:
        """ValueError for a prefix vLLM would refuse, before it joins a batch (vLLM fails a whole call for one)."""
        longest = max(map(len, prefixes), default=0)
        if self.max_len is not None and longest >= self.max_len:
            raise ValueError(
                f"a context of {longest} tokens has no room for the next token on vLLM, which serves at most "
                f"{self.max_len - 1} (max_model_len {self.max_len})"
            )

    def _generate(self, prefixes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """ONE `generate` call over the prefixes (the batcher's batch function)."""
        if self._closed:
            raise ValueError("the vLLM engine was stopped (another model was loaded): try again")
        rows = self.tap.generate(self.llm, prefixes) if self.tap is not None else [None] * len(prefixes)
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing and self.tap is not None:  # the sampler cannot reach the file: from now on, in the answers
            LOG.warning("vLLM's sampler does not reach this machine's shared memory: logits come in its answers")
            self.tap.close()
            self.tap = None
        if missing:
            prompts = [{"prompt_token_ids": list(prefixes[i])} for i in missing]
            outputs = self.llm.generate(prompts, self.sampling_params, use_tqdm=False)
            for i, out in zip(missing, outputs, strict=True):
                rows[i] = self._row(out.outputs[0].logprobs)
        return rows

    def _row(self, flat: object) -> torch.Tensor:
        """The vocabulary's logits from the first position of a FlatLogprobs (ids outside the vocabulary dropped).

        In numpy: about 2 ms for 49k entries, where torch's list conversion and masked indexing take 10-50 ms.
        """
        start, end = flat.start_indices[0], flat.end_indices[0]
        ids = np.array(flat.token_ids, dtype=np.int64)[start:end]
        values = np.array(flat.logprobs, dtype=np.float32)[start:end]
        inside = ids < self.vocab_size
        row = np.full(self.vocab_size, -np.inf, dtype=np.float32)
        row[ids[inside]] = values[inside]
        return torch.from_numpy(row)


def _why(exc: Exception) -> str:
    """The first line of vLLM's error; where it only points at its engine processes' log, where that log is."""
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    if "root cause above" in first:  # the reason is in a worker's traceback, printed to the app's stderr
        return "its engine process failed while starting; the app's log (stderr) shows vLLM's reason"
    return first


def start(
    target: str, options: VllmOptions, vocab_size: int, context_length: int, dtype: str, kv_cache: int | None = None
) -> VllmBackend:
    """Start vLLM on a model folder or hub id; ValueError with one line (and how to install vLLM) on failure.

    `kv_cache`: bytes of KV cache (None: `backends.vllm.cpu.kv_cache_bytes` decides on CPUs, vLLM on GPUs).
    """
    try:
        import vllm

        from backends.vllm.rows import RowTap, Tap
    except ImportError as exc:
        raise ValueError(
            f"the vLLM engine needs the vllm package, which is not importable ({exc}): {INSTALL_HINT}"
        ) from None
    arguments = _arguments(target, options, context_length, dtype, kv_cache)
    try:
        llm = vllm.LLM(**arguments, logits_processors=[RowTap])
    except Exception as exc:  # vLLM raises many kinds; the user needs one line
        raise ValueError(f"vLLM could not start {target!r} ({options.placement}): {_why(exc)}") from exc
    one_token = {"max_tokens": 1, "detokenize": False, "temperature": 0.0}
    params = vllm.SamplingParams(**one_token, logprobs=-1, flat_logprobs=True)
    tap = Tap(vocab_size, lambda extra_args: vllm.SamplingParams(**one_token, extra_args=extra_args))
    engine = VllmBackend(llm, params, vocab_size, options.placement, tap, arguments["max_model_len"])
    atexit.register(engine.close)  # vLLM's engine processes outlive an app that exits without stopping them
    return engine


def _arguments(target: str, options: VllmOptions, context_length: int, dtype: str, kv_cache: int | None) -> dict:
    """`vllm.LLM`'s arguments, once what must hold before vLLM starts holds (see `backends.vllm.cpu`)."""
    workers = options.tensor_parallel_size * options.pipeline_parallel_size
    vllm_cpu.check_eager(options.pipeline_parallel_size, options.enforce_eager)
    vllm_cpu.bind_workers(workers, options.distributed_executor_backend in (None, "mp", "uni"))
    # vLLM wants room after a prompt for the token it generates, which the explorer never feeds back: one more
    # position than the model's context lets it answer a full context, as the transformers engine does
    os.environ.setdefault("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    return dict(
        model=target, dtype=dtype, max_model_len=context_length + 1, max_logprobs=-1, logprobs_mode="raw_logits",
        enable_prefix_caching=True, tensor_parallel_size=options.tensor_parallel_size,
        pipeline_parallel_size=options.pipeline_parallel_size,
        distributed_executor_backend=options.distributed_executor_backend, enforce_eager=options.enforce_eager,
        block_size=vllm_cpu.block_size(), kv_cache_memory_bytes=kv_cache or vllm_cpu.kv_cache_bytes(workers),
    )  # fmt: skip
