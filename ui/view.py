"""The one view: session + controls + the engine's result -> the content of every explorer panel.

Each panel has a fingerprint of the inputs it is drawn from; the view sends a panel only when its
fingerprint differs from what the session says is on screen, so a step sends the tokens, the bars
and the status line and nothing else. Panels inside a closed accordion are not drawn (they are
drawn when opened). Panels that need a computation the user asks for (attribution, comparison, the
logit lens) are never recomputed here: when their inputs change they say plainly they are out of date.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import gradio as gr

from . import constraint_state, edits_view, explain_target, lookahead_view, reference_view
from .controls import PARAM_FIELDS, Controls
from .draw import bars, heatmap, render, timeline
from .request import attribution_request, fingerprint, model_id, prompt_request, request_for
from .state import Ghost, Prefs, Session

# panel -> the accordion it lives in (drawn only while that accordion is open)
ACCORDION = {
    "stages": "stages",
    "timeline": "timeline",
    "branch": "branches",
    "compare_with": "branches",
    "attribution_hover": "attribution",
    **{panel: "lookahead" for panel in lookahead_view.DRAWS},
    **{panel: "reference" for panel in reference_view.DRAWS},
}
ON_DEMAND = (
    "lens",
    "comparison",
    "attribution",
    "inside_dla",
    "sweep",
    "patching",
    "diff",
)  # computed by a button; marked out of date instead
STALE = "out of date"
STALE_OUTPUTS = {  # what an on-demand panel shows once its inputs changed: a plain note, no old numbers
    "lens": {
        "lens_note": "*Out of date: the tokens or the model changed. Press the button to read the layers again.*",
        "lens": [],
    },
    "comparison": {
        "comparison": (
            "<p><i>Out of date: a branch, a knob, the constraint or the model changed. Press Compare again.</i></p>"
        )
    },
    "attribution": {
        "attribution_legend": (
            "*Out of date: the tokens, the target, the method or the model changed. Press Explain again.*"
        ),
        "attribution": "",
    },
    "inside_dla": {
        "inside_dla_note": "*Out of date: the tokens, the target, the foil or the model changed. Press Split again.*",
        "inside_dla": None,
    },
    "sweep": {
        "sweep_note": "*Out of date: the tokens, the target, the foil or the model changed. Press Sweep again.*",
        "sweep": None,
    },
    "patching": {
        "patching_note": (
            "*Out of date: the tokens, the target, the foil, the corrupted prompt, the site or the model changed."
            " Press Patch again.*"
        ),
        "patching": None,
    },
    "diff": {
        "diff_note": (
            "*Out of date: the branch, a knob, the constraint, the reference or the model changed."
            " Press “Diff with the reference” again.*"
        ),
        "diff_plot": None,
        "diff_tokens": "",
        "diff_summary": [],
    },
}


@dataclass(frozen=True)
class Frame:
    """What one event leaves behind: the new session, the controls and layout it ran under, the result."""

    session: Session
    controls: Controls
    prefs: Prefs
    result: dict
    notice: str = ""
    computed: dict = field(default_factory=dict)  # on-demand panel -> the inputs its content came from


def view(frame: Frame) -> tuple[Session, dict[str, object]]:
    """(the session with what is now on screen, panel name -> new content) for the panels that changed."""
    session, out = _with_ghost(frame), {"summary": _status(frame)}
    for panel, (sign, draw) in _PANELS.items():
        accordion = ACCORDION.get(panel)
        if accordion and accordion not in frame.prefs.open_panels:
            continue
        key = sign(frame)
        if session.shown.get(panel) == key:
            continue
        session = session.showing(panel, key)
        out[panel] = draw(frame)
    for panel in ON_DEMAND:
        computed = frame.computed.get(panel)
        marked = f"{STALE}: {computed}"
        if computed is None or session.shown.get(panel) == marked:
            continue
        if computed != on_demand_key(panel, frame.session, frame.controls):
            session = session.showing(panel, marked)
            out |= STALE_OUTPUTS[panel]
    return session, out


def on_demand_key(panel: str, session: Session, controls: Controls) -> str:
    """What an on-demand panel's content depends on; its action records this in the `computed` state.

    That state is written only by the on-demand actions (a long attribution must not write the
    session, which steps taken meanwhile have moved on); the view only reads it.
    """
    model = model_id()  # another model reads the same token ids differently
    if panel == "lens":
        return fingerprint(model, prompt_request(session, controls))
    if panel == "attribution":
        extra = (session.inspect, controls.attribution_method, controls.aggregation, controls.ig_steps)
        extra += (controls.granularity, controls.explain_token, controls.contrast_token)
        return fingerprint(model, prompt_request(session, controls), extra)
    if panel == "diff":
        branch = session.branch
        shown = (session.key, branch.ids, branch.messages, branch.prompt, branch.edits, session.reference)
        return fingerprint(model, shown, _p_final_settings(controls))
    if panel in ("inside_dla", "sweep", "patching"):
        extra = (session.inspect, controls.explain_token, controls.inside_foil)
        if panel == "patching":
            extra += (controls.corrupted, controls.patch_site)
        return fingerprint(model, prompt_request(session, controls), extra)
    branches = {bid: (b.ids, b.messages, b.prompt, b.edits) for bid, b in session.branches.items()}
    return fingerprint(model, session.key, branches, _p_final_settings(controls))


def _p_final_settings(controls: Controls) -> dict:
    """What p_final depends on: every sampling knob and the constraint, as set (reading them never refuses)."""
    knobs = {name: getattr(controls, name) for name in (*PARAM_FIELDS, "custom_order", "stop_sequences")}
    return knobs | controls.constraint()


def shown_dist(frame: Frame) -> dict | None:
    """The distribution on screen: the one in force at the inspected token, else the next token's."""
    session = frame.session
    if session.inspect is not None:
        return session.branch.meta[session.inspect]["dist"]
    return frame.result.get("dist")


def _with_ghost(frame: Frame) -> Session:
    """Remember the p_final now shown (by position on this branch) for the ghost bars of the next change."""
    shown = render.shown_rows(shown_dist(frame))
    rows = tuple(r.token["id"] for r in shown)
    if frame.session.inspect is not None:
        return replace(frame.session, ghost=Ghost(rows=rows))
    position = len(frame.result["completion_ids"])
    p = {r.token["id"]: r.token["p_final"] for r in shown}
    return replace(frame.session, ghost=Ghost(frame.session.current, position, p, rows))


def _bars(frame: Frame) -> dict:
    session, previous = frame.session, frame.session.ghost
    dist = shown_dist(frame)
    if session.inspect is not None:
        return bars.bars_value(dist, None, chosen=_chosen(frame))
    position = len(frame.result["completion_ids"])
    same_place = previous.position == position and previous.branch == session.current
    ghost = dict(previous.p) if same_place and previous.p else None
    return step_bars(frame.result, request_for(session, frame.controls) if frame.controls.llm_on else None, ghost)


def step_bars(result: dict, request: dict | None, ghost: dict[int, float] | None = None) -> dict:
    """The bars of the branch's next token; they carry the request a Step would send (see `quickstep`)."""
    step = None if result["finished"] or request is None else request
    return bars.bars_value(result.get("dist"), ghost, empty=_empty_note(result), step=step)


def _chosen(frame: Frame) -> int | None:
    inspect = frame.session.inspect
    return None if inspect is None else frame.session.branch.meta[inspect]["token"]["id"]


def _empty_note(result: dict) -> str:
    if result["finished"]:
        return f"No distribution: the completion is finished ({result['finish_reason'].replace('_', ' ')})."
    return "The model is switched off: no distribution. Forcing text still works."


def _status(frame: Frame) -> str:
    session, notice = frame.session, frame.notice
    if session.inspect is not None and not notice:
        notice = render.choice_note(session.branch.meta[session.inspect], session.inspect)
    line = render.status_line(frame.result, session, notice)
    dist = shown_dist(frame)
    return " · ".join(filter(None, (line, edits_view.status_part(dist), reference_view.status_part(dist, model_id()))))


def _tokens_key(frame: Frame) -> str:
    return fingerprint(prompt_request(frame.session, frame.controls), [m["how"] for m in frame.session.branch.meta])


def _dist_key(frame: Frame) -> str:
    return fingerprint(request_for(frame.session, frame.controls), frame.session.inspect, frame.controls.llm_on)


def _stages(frame: Frame):
    dist = shown_dist(frame)
    return gr.Dataframe(value=render.stage_rows(dist), headers=render.stage_headers(dist))


def _hover(frame: Frame) -> str:
    request = attribution_request(frame.session, frame.controls)
    candidates = (shown_dist(frame) or {}).get("tokens", [])
    return heatmap.panel_html(
        request, frame.result, frame.controls.attribution_method, candidates, frame.session.inspect
    )


def _explained(frame: Frame) -> explain_target.Position:
    return explain_target.position(frame.session, frame.controls, frame.result.get("dist"))


def _pickers_key(frame: Frame) -> str:
    return explain_target.pickers_key(_explained(frame), frame.controls)


def _inside_foil_key(frame: Frame) -> str:
    at = _explained(frame)
    return fingerprint(at.key, at.token, [r["id"] for r in at.candidates])


def _timeline(frame: Frame):
    return timeline.timeline_figure(list(frame.session.branch.meta))


def _lookahead_key(frame: Frame) -> str:
    return lookahead_view.panel_key(frame.session, frame.controls)


def _constraint_line(frame: Frame) -> str:
    return constraint_state.panel_line(frame.result)


def _branch_key(frame: Frame) -> str:
    return fingerprint(frame.session.branch_choices(), frame.session.current)


_PANELS = {
    "tokens": (_tokens_key, lambda f: render.token_spans(f.result, f.session.branch.meta)),
    "constraint_problem": (_constraint_line, _constraint_line),
    "plot": (_dist_key, _bars),
    "candidates": (_dist_key, lambda f: render.candidate_rows(shown_dist(f), _chosen(f))),
    "stages": (_dist_key, _stages),
    "back": (lambda f: f.session.inspect is not None, lambda f: gr.Button(visible=f.session.inspect is not None)),
    "timeline": (lambda f: fingerprint(f.session.current, f.session.branch.ids), _timeline),
    "branch": (_branch_key, lambda f: gr.Dropdown(choices=f.session.branch_choices(), value=f.session.current)),
    # a conversation branch shows its turns where the prompt box was (the box keeps its text for the other branches)
    "prompt": (
        lambda f: f.session.branch.messages is None,
        lambda f: gr.Textbox(visible=f.session.branch.messages is None),
    ),
    "conversation": (
        lambda f: fingerprint(f.session.branch.messages),
        lambda f: gr.Textbox(
            render.conversation(f.session.branch.messages), visible=f.session.branch.messages is not None
        ),
    ),
    "compare_with": (_branch_key, lambda f: gr.Dropdown(choices=f.session.branch_choices())),
    **{n: (_lookahead_key, lambda f, d=d: d(f.session, f.controls)) for n, d in lookahead_view.DRAWS.items()},
    **{
        n: (lambda f: edits_view.panel_key(f.session), lambda f, d=d: d(f.session)) for n, d in edits_view.DRAWS.items()
    },
    **{
        n: (lambda f: reference_view.panel_key(f.session), lambda f, d=d: d(f.session))
        for n, d in reference_view.DRAWS.items()
    },
    # drawn even while the attribution panel is closed: a pick must never outlive its position
    "explain_token": (_pickers_key, lambda f: explain_target.target_picker(_explained(f), f.controls)),
    "contrast_token": (_pickers_key, lambda f: explain_target.foil_picker(_explained(f), f.controls)),
    "inside_foil": (_inside_foil_key, lambda f: explain_target.inside_foil_picker(_explained(f), f.controls)),
    "attribution_hover": (
        lambda f: fingerprint(
            _dist_key(f), f.controls.attribution_method, f.controls.aggregation, f.controls.granularity
        ),
        _hover,
    ),
}
