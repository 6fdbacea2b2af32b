"""Step results computed ahead of their Step event (by Step's quick path), by request and model, each taken once.

The quick path (`quickstep`) computes a step as soon as Step is clicked; the Step event that follows reads and
writes the session in Gradio's queue and takes the step already computed for the same request and model instead
of running it again: the same draw, so the full answer agrees with what the quick path drew.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from service import operations as service
from service import public

from .request import fingerprint, model_id

KEEP = 64  # speculations kept (a speculation is taken by the event that follows its click within ~0.1 s)
TTL_S = 60.0  # a speculation no event took by then is dropped
WAIT_S = 120.0  # the most an event waits for the quick step of its own click to finish


@dataclass
class Speculation:
    done: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None


class Speculations:
    """Step results computed ahead of their event, by request and model; each is taken at most once."""

    def __init__(self, keep: int = KEEP, ttl_s: float = TTL_S) -> None:
        self._entries: public.BoundedCache[str, Speculation] = public.BoundedCache(max_entries=keep, ttl_s=ttl_s)

    def start(self, request: dict) -> Speculation:
        entry = Speculation()
        self._entries.put(key(request), entry)  # the key reads the model's status: once
        return entry

    def take(self, request: dict) -> dict | None:
        """The step computed for this request and model (waiting for it when it is still running), or None."""
        entry = self._entries.pop(key(request))  # none once it is older than its time to live
        public.event_arrived()
        if entry is None or not entry.done.wait(WAIT_S):
            return None
        return entry.result


SPECULATIONS = Speculations()


def key(request: dict) -> str:
    return fingerprint(model_id(), request)


def step(request: dict) -> dict:
    """The Step event's step: the one its click already computed for this request, else a fresh one."""
    return SPECULATIONS.take(request) or service.step(request)
