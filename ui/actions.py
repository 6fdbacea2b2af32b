"""What the explorer's buttons do to a session: preview, step, force, delete, clear, inspect, go back.

Every action is `(session, controls, ...) -> Outcome`: it validates first and raises ValueError
with a readable message before anything changes, so a refused action leaves the session as it was.
"""

from __future__ import annotations

import gradio as gr

from service import operations as service

from . import constraint_state, speculation
from .controls import Controls
from .draw import render
from .events import Outcome
from .request import request_for
from .state import Session


def current(session: Session, controls: Controls) -> Session:
    """The session for the prompt on screen; an edit that keeps the earlier completion on its branch says so."""
    moved, notice = prompt_edited(session, controls)
    if notice:
        announce(notice)
    return moved


def prompt_edited(session: Session, controls: Controls) -> tuple[Session, str]:
    """(the session for the prompt on screen, a notice when the edit kept the earlier completion on its branch)."""
    moved = session.for_prompt(controls.prompt_key)
    if moved.current == session.current:
        return moved, ""
    kept = session.branch
    return moved, (
        f"The prompt changed: your earlier completion ({len(kept.ids)} {render.plural(len(kept.ids), 'token')})"
        f" is kept as {render.branch_named(kept.name)}; the new prompt starts {render.branch_named(moved.branch.name)}."
    )


def shown(session: Session, controls: Controls, notice: str = "") -> Outcome:
    """The current branch as it stands: its next-token distribution (or only its tokens, model off).

    A constraint that cannot be used here never blocks this: the distribution is drawn without it, and
    the result carries the problem for the constraint panel.
    """
    result, problem = constraint_state.despite(_show(controls), request_for(session, controls))
    if problem is None:
        return Outcome(session, result, notice)
    notice = " ".join(filter(None, (notice, problem.note)))
    return Outcome(session, result | {constraint_state.PROBLEM: problem}, notice)


def _show(controls: Controls):
    return service.preview if controls.llm_on else service.render


def announce(notice: str) -> str:
    """A notice for the status line, also shown as a toast."""
    gr.Info(notice.replace("**", ""))
    return notice


def refresh(session: Session, controls: Controls) -> Outcome:
    session, notice = prompt_edited(session, controls)
    return shown(session.inspecting(None), controls, announce(notice) if notice else "")


def advance(session: Session, controls: Controls, **force) -> Outcome:
    """One step on the current branch (or the forced token / text); says why when nothing was appended."""
    session = current(session, controls).inspecting(None)
    if not controls.llm_on and "force_text" not in force:
        raise ValueError("the model is switched off: switch it on to step, or force text")
    request = request_for(session, controls)
    result = constraint_state.needing("Step", lambda: _stepped(request, controls, force), _show(controls), request)
    notice = ""
    if not result["appended"]:  # the engine's notice says why (the finish reason)
        notice = result.get("notice") or f"nothing was appended ({result['finish_reason']})"
        gr.Info(notice)
    return Outcome(session.with_result(result), result, notice)


def _stepped(request: dict, controls: Controls, force: dict) -> dict:
    if controls.llm_on:
        return service.step(request | force) if force else speculation.step(request)
    return service.append_text(request, force["force_text"])


def step(session: Session, controls: Controls) -> Outcome:
    return advance(session, controls)


def force_text(session: Session, controls: Controls, text: str) -> Outcome:
    """Append `text` as is; the Force box is emptied once it is appended."""
    if not text:
        raise ValueError("the text to force is empty: type the text to append")
    outcome = advance(session, controls, force_text=text)
    return Outcome(outcome.session, outcome.result, outcome.notice, {"force_text": ""})


def force_candidate(session: Session, controls: Controls, index: object) -> Outcome:
    """A click on a candidate appends it; while an earlier token is inspected, it branches there instead."""
    rows = session.ghost.rows
    row = index[0] if isinstance(index, list | tuple) else index
    if not isinstance(row, int) or not 0 <= row < len(rows):
        raise ValueError("that row is not a candidate of the distribution on screen: step or preview first")
    return force_tokens(session, controls, (rows[row],))


def force_tokens(session: Session, controls: Controls, ids: tuple[int, ...]) -> Outcome:
    """Append `ids`, one forced step each; while an earlier token is inspected, branch there instead."""
    session = current(session, controls)
    if session.inspect is None:
        return _forced_steps(session, controls, ids)
    at = session.inspect
    forked = session.forked(at)
    outcome = _forced_steps(forked, controls, ids)
    notice = announce(
        f"New {render.branch_named(forked.branch.name)} from token {at + 1}; the original stays as it was."
    )
    return Outcome(outcome.session, outcome.result, notice)


def _forced_steps(session: Session, controls: Controls, ids: tuple[int, ...]) -> Outcome:
    """Each token in turn (each step records its distribution); stops early when one appends nothing."""
    if not ids:
        raise ValueError("there are no tokens to append")
    for token in ids:
        outcome = advance(session, controls, force_token_id=token)
        session = outcome.session
        if not outcome.result["appended"]:
            break
    return outcome


def delete_last(session: Session, controls: Controls) -> Outcome:
    session = current(session, controls).inspecting(None)
    if not session.branch.ids:
        raise ValueError("the completion is empty: there is no token to delete")
    return shown(session.truncated(len(session.branch.ids) - 1), controls)


def clear(session: Session, controls: Controls) -> Outcome:
    return shown(current(session, controls).inspecting(None).truncated(0), controls)


def select_token(session: Session, controls: Controls, index: object) -> Outcome:
    """A click on the last completion token deletes it; on an earlier one, shows how it was chosen."""
    session = current(session, controls)
    n_prompt = len(service.render(constraint_state.without(request_for(session, controls)))["prompt_tokens"])
    position = index - n_prompt if isinstance(index, int) else -1
    n_done = len(session.branch.ids)
    if position < 0:
        raise ValueError("that is a prompt token: click a completion token to inspect or delete it")
    if position == n_done - 1:
        return delete_last(session, controls)
    meta = session.branch.meta
    if position >= len(meta) or not meta[position].get("dist"):
        raise ValueError(
            "there is no record of how that token was chosen (it was forced with the model off): step from"
            " here to record distributions"
        )
    return shown(session.inspecting(position), controls)


def back_to_end(session: Session, controls: Controls) -> Outcome:
    return shown(current(session, controls).inspecting(None), controls)
