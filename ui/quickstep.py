"""Step's quick path: the bars of the next position drawn before the Step event's full answer arrives.

A Gradio event that reads and writes the session carries every control in and every changed panel out, and
waits in the session queue: about 100 ms before any work starts on a 2-core machine. The bars carry the step
request they were drawn under (`data-step`). A click on Step is held by the page (`BARS_JS`), which first
calls `quick_step`, a server function of the bars' component (one small HTTP call): it runs that step and
answers the next position's bars, which the page draws at once, marked as provisional; once they are painted,
the page gives the click to Gradio. The Step event then runs as always and takes the step already computed
for the same request and model (a speculation, consumed once) instead of running it again: the same draw, so
the full answer agrees with the bars shown. If the event's request differs (a control changed just before the
click), the event computes its own step and redraws the bars; if it is refused or appends nothing, it sends
no bars, and the page puts back the bars it showed before the click (`SETTLE_JS`).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field

from service import operations as service
from service import public

from .assets import asset
from .request import fingerprint, model_id
from .view import step_bars

log = logging.getLogger(__name__)

MARK = "<!--provisional-->"  # ends the quick path's bars; the Step event's bars never carry it
KEEP = 64  # speculations kept (a speculation is taken by the event that follows its click within ~0.1 s)
TTL_S = 60.0  # a speculation no event took by then is dropped
WAIT_S = 120.0  # the most an event waits for the quick step of its own click to finish
EVENT_WITHIN_S = 1.0  # the Step event follows its quick step within this, or background work stops waiting

BARS_JS = asset("quickstep.js", MARK=json.dumps(MARK))
SETTLE_JS = asset("quickstep_settle.js")


@dataclass
class _Speculation:
    done: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None


class Speculations:
    """Step results computed ahead of their event, by request and model; each is taken at most once."""

    def __init__(self, keep: int = KEEP, ttl_s: float = TTL_S) -> None:
        self._entries: public.BoundedCache[str, _Speculation] = public.BoundedCache(max_entries=keep, ttl_s=ttl_s)

    def start(self, request: dict) -> _Speculation:
        entry = _Speculation()
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


def quick_step(args: list) -> dict:
    """Server function behind Step's quick path: the page passes the bars' step request (JSON); answers
    `{"html": the next position's bars}`, or `{}` when there is nothing to draw yet (refused, nothing appended).
    """
    try:
        request = json.loads(args[0] if isinstance(args, list) else args)
        if not isinstance(request, dict):
            return {}
    except (TypeError, ValueError, IndexError):
        return {}
    entry = SPECULATIONS.start(request)
    try:
        entry.result = service.step(request)
        public.expect_event(EVENT_WITHIN_S)  # prefetch waits for the Step event that follows, not to slow it
    except ValueError:
        return {}  # the Step event meets the same refusal and says why
    except Exception:
        log.exception("quick step failed")
        return {}
    finally:
        entry.done.set()
    if not entry.result["appended"]:
        return {}
    after = request | {"completion_ids": list(entry.result["completion_ids"])}
    return {"html": step_bars(entry.result, after) + MARK}
