"""Step's quick path: everything a step changes on screen, drawn in one frame before the Step event's answer.

A Gradio event that reads and writes the session carries every control in and every changed panel out, and
waits in the session queue: about 100 ms before any work starts on a 2-core machine, ~300 ms in all. The page
(`BARS_JS`) holds a click on Step and first calls `quick_step`, a server function of the bars' component (one
small HTTP call) with the step request the bars carry (their value's `step`). It steps from the session and controls the
page's last event left (`step_context`) and answers, as Gradio would send them, the panels a step changes
(`PANELS`: the token view with its new pill, the bars, the candidate table, the status line), drawn by the one
view. The page then gives the click to Gradio: the Step button's first event (`APPLY_JS`, no server work) sets
all of them in one update, one frame; the Step event then runs as always and takes the step already computed
for the same request and model (`speculation`), so its answer sends the same values and changes nothing on
screen: it only brings the session up to date. If it is refused or appends nothing, it sends no panels, and the
page puts back what it showed before the click (`SETTLE_JS`). Clicks made meanwhile wait in the page's queue,
each run once the step before it has settled: each appends a token, in order, as slow clicks would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import gradio as gr
from gradio.data_classes import GradioModel, GradioRootModel

from service import operations as service
from service import public

from . import actions, step_context
from .assets import asset
from .request import request_for
from .speculation import SPECULATIONS
from .state import Prefs
from .view import Frame, view

log = logging.getLogger(__name__)


PROVISIONAL = "provisional"  # marks the quick path's bars (a key of their value); the Step event's never carry it
PANELS = ("tokens", "plot", "candidates", "summary")  # what a step changes on screen, in the events' order
EVENT_WITHIN_S = 1.0  # the Step event follows its quick step within this, or background work stops waiting
SETTLE_WITHIN_MS = 180_000  # a queued click waits this long at most for the step before it to settle
EDIT_GRACE_MS = 2_000  # a click this soon after a control changed, while the bars are still those before it,
# takes the slow path: that change's own event is ahead of it and would land after a quick answer

PAGE_VALUES = {"PROVISIONAL": json.dumps(PROVISIONAL), "PANELS": json.dumps(PANELS)}
TIMINGS = {"SETTLE_WITHIN_MS": SETTLE_WITHIN_MS, "EDIT_GRACE_MS": EDIT_GRACE_MS}
BARS_JS = asset("bars.js") + asset("quickstep.js", **PAGE_VALUES, **TIMINGS)  # the bars drawn, then Step's queue
APPLY_JS = asset("quickstep_apply.js")
SETTLE_JS = asset("quickstep_settle.js")


def carried_request(args: object) -> dict | None:
    """The step request the page sent (the JSON the bars carry), or None when it is not one."""
    try:
        request = json.loads(args[0] if isinstance(args, list) else args)
    except (TypeError, ValueError, IndexError):
        return None
    return request if isinstance(request, dict) else None


def answer(page: str | None, request: dict | None) -> dict[str, object]:
    """The panels a step changes, by name, as the view draws them, for the page `page` stepping `request`;
    empty when there is nothing to draw yet (an unknown page or request, refused, nothing appended)."""
    context = step_context.recall(page)
    if context is None or request is None:
        return {}
    session = actions.prompt_edited(context.session, context.controls)[0].inspecting(None)  # no toast here
    own = request_for(session, context.controls)
    if not context.controls.llm_on or own != request:
        return {}  # the page's state moved on: the Step event steps from it
    request = own  # as the Step event will build it: the page's JSON has lost the difference of 1.0 and 1
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
    result = entry.result
    if not result["appended"]:
        return {}
    _, panels = view(Frame(session.with_result(result), context.controls, Prefs(), result))
    return {name: panels[name] for name in PANELS if name in panels}


def server_function(components: dict) -> Callable:
    """`quick_step` for the bars' component; `components` (by name) holds the panels by the time it is called."""

    def quick_step(args: object, request: gr.Request) -> dict:
        """The page passes the bars' step request (JSON); answers the changed panels' values by name, as
        Gradio sends them, the bars marked provisional; `{}` when there is nothing to draw yet."""
        panels = answer(page_of(request), carried_request(args))
        if "plot" not in panels:
            return {}
        panels["plot"] = panels["plot"] | {PROVISIONAL: True}
        return {name: _sent(components[name], value) for name, value in panels.items()}

    return quick_step


def page_of(request: object) -> str | None:
    """The calling page's Gradio session. A server function is given the HTTP request, not a `gr.Request`:
    the session is in the JSON body that Gradio read (Starlette keeps it parsed as `_json`)."""
    body = getattr(request, "_json", None)
    page = body.get("session_hash") if isinstance(body, dict) else None
    return page if isinstance(page, str) else None


def _sent(component: gr.components.Component, value: object) -> object:
    """The value as a Gradio event sends it to the page (postprocessed, serialised)."""
    value = component.postprocess(value)
    return value.model_dump() if isinstance(value, GradioModel | GradioRootModel) else value
