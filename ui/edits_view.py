"""What the explorer shows of the current branch's model edits: the panel's list, and the status line's words.

The list is a switch per edit (ticked: on) and the choices of the remove picker (the latest edit picked), drawn
from the session. The status line names the edits a distribution was computed under with the answer's own words
(`edits`) and says how far they move p_final from the unedited model's (`kl_edit`, in bits, or why it is
infinite).
"""

from __future__ import annotations

import gradio as gr

from .request import fingerprint
from .state import Session


def panel_key(session: Session) -> str:
    return fingerprint(session.current, [e.as_dict() for e in session.branch.edits])


def _labels(session: Session) -> list[tuple[str, int]]:
    return [(edit.label(session.vectors), i) for i, edit in enumerate(session.branch.edits)]


def _switches(session: Session) -> gr.CheckboxGroup:
    on = [i for i, edit in enumerate(session.branch.edits) if edit.on]
    return gr.CheckboxGroup(choices=_labels(session), value=on)


def _picker(session: Session) -> gr.Dropdown:
    labels = _labels(session)  # the latest edit picked: the one a user most likely means to change or remove
    return gr.Dropdown(choices=labels, value=labels[-1][1] if labels else None)


DRAWS = {"edits_list": _switches, "edit_pick": _picker}  # component -> its content


def status_part(dist: dict | None) -> str:
    """ "edited: <the edits> · edit moves p_final by X bits" for a distribution computed under edits, else ""."""
    if not dist or not dist.get("edits"):
        return ""
    reason = (dist.get("kl_edit_reason") or "").removeprefix("infinite: ")
    kl = dist.get("kl_edit")
    moved = f"{kl:.3f} bits" if kl is not None else f"infinitely many bits ({reason})"
    return f"edited: {'; '.join(dist['edits'])} · edit moves p_final by {moved}"
