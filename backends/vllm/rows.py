"""Logits rows from vLLM's sampler to this process through a shared file, instead of full-vocabulary logprobs.

Asked for every log-probability (`logprobs=-1`), vLLM turns each row into Python lists and appends its 49k
entries one by one in the app's process: about 13 ms a prefix, holding the interpreter that also serves
the web requests. Instead a logits processor (`RowTap`, run by vLLM wherever its sampler runs) copies each
tapped request's float32 row into a memory-mapped file (`RowFile`) at the slot its request names, then
stamps the slot with the request's nonce. The app takes a row only when the stamp is the one it sent; a
sampler on another machine (a multi-node pipeline) stamps nothing here, and the engine falls back to logprobs.

The logits a processor sees are the model's own (float32, before penalties, temperature and sampling): vLLM
applies only an allowed-token mask and bad words before it, and the engine sets neither.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from vllm.v1.sample.logits_processor import LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

ARG = "nexttoken_row"  # SamplingParams.extra_args key: (file path, row width, slot, nonce)
HEADER = 2  # int64 per slot before its row: the nonce, and how many logits were written
SLOTS = 64  # rows a file holds at first (~12 MB at a 49k vocabulary); a bigger call gets a bigger file


def _ints(width: int) -> int:
    """int64 per slot: the header, then the row's float32 bytes."""
    return HEADER + (width + 1) // 2


def _open(path: str, width: int, slots: int | None = None) -> np.ndarray:
    """The file as int64 [slots, _ints(width)] (all of it when `slots` is None)."""
    shape = (slots, _ints(width)) if slots is not None else None
    array = np.memmap(path, dtype=np.int64, mode="r+", shape=shape)
    return array if slots is not None else array.reshape(-1, _ints(width))


class RowFile:
    """`slots` rows of `width` float32 logits in a file in shared memory (deleted by `close`)."""

    def __init__(self, slots: int, width: int) -> None:
        folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
        self.path = str(folder / f"nexttoken-rows-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        self.slots, self.width = slots, width
        # readable by this user only, and never a file (or link) that was there before
        handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(handle, slots * _ints(width) * 8)
        os.close(handle)
        self.array = _open(self.path, width, slots)
        self.array[:, 0] = -1  # no slot is stamped yet

    def ticket(self, slot: int, nonce: int) -> dict[str, tuple]:
        """The SamplingParams.extra_args that make `RowTap` write the request's row into `slot`, stamped `nonce`."""
        return {ARG: (self.path, self.width, slot, nonce)}

    def row(self, slot: int, nonce: int) -> torch.Tensor | None:
        """A copy of the slot's row if it was stamped `nonce` (else None), -inf past what was written."""
        nonce_written, count = (int(value) for value in self.array[slot, :HEADER])
        if nonce_written != nonce:
            return None
        row = np.full(self.width, -np.inf, dtype=np.float32)
        row[:count] = self.array[slot, HEADER:].view(np.float32)[:count]
        return torch.from_numpy(row)

    def close(self) -> None:
        """Delete the file; the mappings go with their objects."""
        Path(self.path).unlink(missing_ok=True)


class Tap:
    """Runs one vLLM `generate` call whose requests write their rows to a `RowFile`, and reads them back."""

    def __init__(self, width: int, params_for: Callable[[dict], object]) -> None:
        self.width, self.params_for = width, params_for  # params_for(extra_args) -> SamplingParams
        self.file = RowFile(SLOTS, width)
        self.nonces = itertools.count(1)

    def generate(self, llm: object, prefixes: Sequence[Sequence[int]]) -> list[torch.Tensor | None]:
        """The logits after each prefix; None for a row that did not arrive (its sampler is on another machine)."""
        if len(prefixes) > self.file.slots:
            self.file.close()
            self.file = RowFile(1 << (len(prefixes) - 1).bit_length(), self.width)
        nonces = [next(self.nonces) for _ in prefixes]
        params = [self.params_for(self.file.ticket(slot, nonce)) for slot, nonce in enumerate(nonces)]
        llm.generate([{"prompt_token_ids": list(p)} for p in prefixes], params, use_tqdm=False)
        return [self.file.row(slot, nonce) for slot, nonce in enumerate(nonces)]

    def close(self) -> None:
        self.file.close()


class RowTap(LogitsProcessor):
    """Copies the logits of requests that carry a `RowFile.ticket` into their slots; changes nothing."""

    def __init__(self, vllm_config: object = None, device: object = None, is_pin_memory: bool = False) -> None:
        self.requests: dict[int, tuple[str, int, int, int]] = {}  # batch row -> its ticket
        self.files: dict[str, np.ndarray | None] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # vLLM calls only the others' `apply` for greedy requests

    def update_state(self, batch_update: object) -> None:
        process_dict_updates(self.requests, batch_update, _ticket_of)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        indices = sorted(index for index in self.requests if index < logits.shape[0])
        if indices:  # one copy to the CPU for all of them
            rows = logits[indices].to("cpu", torch.float32).numpy()
            for index, row in zip(indices, rows, strict=True):
                self._write(self.requests[index], row)
        return logits

    def _write(self, ticket: tuple[str, int, int, int], row: np.ndarray) -> None:
        path, width, slot, nonce = ticket
        array = self._file(path, width)
        if array is None or slot >= array.shape[0]:
            return
        count = min(row.shape[0], width)
        array[slot, HEADER:].view(np.float32)[:count] = row[:count]
        array[slot, :HEADER] = (nonce, count)  # stamped last: a stamped slot holds its whole row

    def _file(self, path: str, width: int) -> np.ndarray | None:
        """The mapped file; None where it does not exist (this sampler runs on another machine)."""
        if path not in self.files:
            try:
                array = _open(path, width)
            except (OSError, ValueError):
                array = None
            self.files = {path: array}  # an engine writes to one file at a time: an older one was deleted
        return self.files[path]


def _ticket_of(params: object, prompt_ids: object, output_ids: object) -> tuple[str, int, int, int] | None:
    ticket = (getattr(params, "extra_args", None) or {}).get(ARG)
    return tuple(ticket) if ticket is not None else None
