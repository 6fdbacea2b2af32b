"""How explorer events are wired: named controls in, the view's changed panels out, refusals as toasts.

An action is a function `(session, controls, *extra) -> Outcome`. `Explorer.on` wires it to a
trigger: the inputs are a set (Gradio passes them as a dict keyed by component), read back by name
into a `Controls`; the outcome goes through the one view; a ValueError becomes a warning toast and
no output at all, so every panel keeps what it showed and no error badge covers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gradio as gr

from service.public import CONCURRENCY_ID, EVENT_CONCURRENCY

from . import step_context
from .controls import FIELDS, Controls
from .state import Prefs, Session
from .view import Frame, view
from .wording import on_screen

log = logging.getLogger(__name__)
PROGRESS = gr.Progress()

# Long model work that never writes the session (Explain, a chat reply, a model load) shares the API's group in
# front of the model lane, which serialises the model itself: a long attribution never holds other users' steps.
MODEL_EVENT = {
    "concurrency_id": CONCURRENCY_ID, "concurrency_limit": EVENT_CONCURRENCY, "api_visibility": "private",
    "show_progress": "minimal",
}  # fmt: skip
TOGGLE_EVENT = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}  # showing or hiding a button
# Events that read and write the session run one at a time, in order: Gradio reads a state when an event
# starts, so two at once (a prompt's blur and a Step click) would each write a session missing the other's
# change. They are short: the lane lets them in between the slices of long work. The controls arrive as the
# browser sent them (no per-component preprocess: one thread hop each, ~39 of them a step): `Controls` converts
# each value to its field's type, and the decoding layer checks every value it is given.
SESSION_EVENT = MODEL_EVENT | {"concurrency_id": "session", "concurrency_limit": 1, "preprocess": False}
QUICK_EVENT = {"api_visibility": "private", "show_progress": "hidden"}
STATES = ("session", "prefs", "computed")
PANELS = (
    "tokens", "plot", "candidates", "summary", "back", "stages", "timeline", "branch", "compare_with",
    "attribution_hover", "lens", "lens_note", "comparison", "attribution", "attribution_legend",
    "lookahead_plot", "lookahead_paths", "lookahead_note", "explain_token", "contrast_token", "constraint_problem",
    "prompt", "conversation", "edits_list", "edit_pick", "inside_foil", "inside_dla", "inside_dla_note", "sweep",
    "sweep_note", "patching", "patching_note", "reference_status", "diff_note", "diff_plot",
    "diff_tokens", "diff_summary",
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What an action did: the new session, the result to show, a notice, other components' new values."""

    session: Session
    result: dict
    notice: str = ""
    also: dict = field(default_factory=dict)  # component name -> new value (e.g. a cleared text box)
    controls: Controls | None = None  # when the action changed the controls (a preset, a constraint type)


def _visible() -> gr.Button:
    return gr.Button(visible=True)


def _hidden() -> gr.Button:
    return gr.Button(visible=False)


def refuse(exc: Exception) -> None:
    """Tell the user why nothing happened, in a toast (the caller changes no output)."""
    if isinstance(exc, ValueError):
        gr.Warning(on_screen(str(exc)))
    else:
        log.exception("unexpected error")
        gr.Warning(f"Something went wrong ({type(exc).__name__}): {exc}")


@dataclass(frozen=True)
class Inputs:
    """One event's view of the user's state: the session, the controls, the layout, on-demand panels."""

    session: Session
    controls: Controls
    prefs: Prefs
    computed: dict
    page: str | None = None  # the page's Gradio session, for Step's quick path (`step_context`)


class Explorer:
    """The explorer's components by name (the states included), and the wiring of actions to events."""

    def __init__(self, components: dict) -> None:
        self.c = components

    def inputs(self, *extra: str) -> set:
        return {self.c[n] for n in (*STATES, *FIELDS, *extra)}

    def read(self, data: dict, request: gr.Request | None = None) -> Inputs:
        controls = Controls.read(data, {n: self.c[n] for n in FIELDS})
        page = getattr(request, "session_hash", None)
        return Inputs(data[self.c["session"]], controls, data[self.c["prefs"]], data[self.c["computed"]], page)

    def outputs(self, *also: str) -> list:
        return [self.c["session"], *(self.c[n] for n in dict.fromkeys((*PANELS, *also)))]

    def unchanged(self) -> dict:
        """No output changes (Gradio reads an empty dict as one value, so name one output and skip it)."""
        return {self.c["session"]: gr.skip()}

    def answer(self, outcome: Outcome | dict | None, got: Inputs) -> dict:
        """Component -> value: the new session and the changed panels, or only the values an action named."""
        if not isinstance(outcome, Outcome):
            return {self.c[name]: value for name, value in (outcome or {}).items()} or self.unchanged()
        controls = outcome.controls or got.controls
        computed = outcome.also.get("computed", got.computed)
        frame = Frame(outcome.session, controls, got.prefs, outcome.result, outcome.notice, computed)
        session, panels = view(frame)
        step_context.remember(got.page, session, controls)
        return {self.c["session"]: session} | {self.c[n]: v for n, v in (panels | outcome.also).items()}

    def on(self, trigger: Callable, action: Callable, extra: tuple = (), also: tuple = (), **event) -> object:
        """Wire `action(session, controls, *values of extra)` to `trigger`; returns the event (for .then).

        The action returns an Outcome, or only some components' new values by name (a dict), or None.
        """

        def handler(data: dict, request: gr.Request) -> dict:
            got = self.read(data, request)
            try:
                return self.answer(action(got.session, got.controls, *(data[self.c[n]] for n in extra)), got)
            except Exception as exc:  # a refused action changes nothing on screen
                refuse(exc)
                return self.unchanged()

        return trigger(handler, self.inputs(*extra), self.outputs(*also), **(SESSION_EVENT | event))

    def on_select(self, trigger: Callable, action: Callable, **event) -> object:
        """Like `on`, for a select event: the action also receives the selected index."""

        def handler(data: dict, evt: gr.SelectData, request: gr.Request) -> dict:
            got = self.read(data, request)
            try:
                return self.answer(action(got.session, got.controls, evt.index), got)
            except Exception as exc:
                refuse(exc)
                return self.unchanged()

        return trigger(handler, self.inputs(), self.outputs(), **(SESSION_EVENT | event))

    def on_stream(self, start: str, cancel: str, work: Callable, answer: Callable, outputs: tuple[str, ...]) -> None:
        """Long model work with real progress and Cancel: `work(inputs)` gives the service's stream of progress
        items and one result, and `answer(inputs, result)` the new values (component -> value) of `outputs`.

        It never writes the session (steps may run between its slices): what it computed goes to `computed`.
        Each slice yields, which is where the Cancel button (`cancel`) takes effect.
        """
        skip = {self.c["computed"]: gr.skip()}

        def run(data: dict, progress=PROGRESS) -> Iterator[dict]:
            got = self.read(data)
            try:
                for event in work(got):
                    if "result" in event:
                        yield answer(got, event["result"])
                        return
                    progress(event["progress"], desc=event.get("desc"))
                    yield skip
            except Exception as exc:
                refuse(exc)
                yield skip

        shown = [self.c[name] for name in (*outputs, "computed")]
        # Cancel is on screen only while the work runs: a red button beside an idle one reads as an alarm
        button = self.c[cancel]
        running = (
            self.c[start]
            .click(_visible, None, button, **TOGGLE_EVENT)
            .then(run, self.inputs(), shown, **(MODEL_EVENT | {"show_progress": "full"}))
        )
        running.then(_hidden, None, button, **TOGGLE_EVENT)
        button.click(_hidden, None, button, cancels=[running], **TOGGLE_EVENT)
