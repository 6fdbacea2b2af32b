"""The Branches accordion: switch, fork, rename and delete branches, and compare two of them.

Switching to a branch (or deleting the current one) puts the prompt that branch continues back in the
prompt box. The comparison is computed only when asked (Compare); once either branch changes, the view
marks it out of date instead of showing old numbers.
"""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from service import operations as service

from .. import actions, constraint_state
from ..controls import Controls
from ..draw import compare, render
from ..edits import interventions
from ..events import Explorer, Outcome
from ..request import request_for
from ..state import MAIN, Session
from ..view import on_demand_key


def create_branches() -> dict:
    c = {}
    with gr.Accordion("Branches", open=False, elem_id="branches") as c["branches_panel"]:
        with gr.Row():
            c["branch"] = gr.Dropdown(label="Branch", choices=[(f"{MAIN} (0 tokens)", MAIN)], value=MAIN, scale=2)
            c["branch_name"] = gr.Textbox(label="Name", placeholder="name for a new or renamed branch", scale=2)
        with gr.Row():
            c["fork"] = gr.Button("Fork here", size="sm")
            c["rename"] = gr.Button("Rename", size="sm")
            c["delete_branch"] = gr.Button("Delete branch", size="sm", variant="stop")
        with gr.Row():
            c["compare_with"] = gr.Dropdown(label="Compare the current branch with", choices=[], scale=3)
            c["compare"] = gr.Button("Compare", size="sm", scale=1)
        c["comparison"] = gr.HTML(elem_id="compare")
    return c


PROMPT_BOX = ("prompt", "system_prompt", "use_chat_template")  # what a branch's prompt key fills in


def switch(session: Session, controls: Controls, branch_id: str) -> Outcome:
    return on_branch(actions.current(session, controls).switched(branch_id), controls)


def on_branch(session: Session, controls: Controls) -> Outcome:
    """The current branch on screen, its prompt in the prompt box (a conversation leaves the box alone)."""
    key = session.branch.prompt if session.branch.messages is None else None
    if key is None or key == controls.prompt_key:
        return actions.shown(session, controls)
    filled = dict(zip(PROMPT_BOX, key, strict=True))
    controls = replace(controls, **filled)
    # the prompt box may be hidden (a conversation branch was on screen): its new text comes with it shown
    also = filled | {"prompt": gr.Textbox(filled["prompt"], visible=True)}
    return replace(actions.shown(session, controls), controls=controls, also=also)


def fork(session: Session, controls: Controls, name: str) -> Outcome:
    session = actions.current(session, controls)
    forked = session.forked(len(session.branch.ids), name or "")
    notice = actions.announce(f"New {render.branch_named(forked.branch.name)} from the end of the completion.")
    return actions.shown(forked, controls, notice)


def rename(session: Session, controls: Controls, name: str) -> Outcome:
    return actions.shown(actions.current(session, controls).renamed(name or ""), controls)


def delete(session: Session, controls: Controls) -> Outcome:
    return on_branch(actions.current(session, controls).deleted(), controls)


def compare_branches(session: Session, controls: Controls, other: str | None, computed: dict) -> Outcome:
    """The two branches side by side, with the divergence of their next-token distributions; without the
    constraint, saying so, when the constraint cannot be used (as the other panels are drawn)."""
    if not other:
        raise ValueError("choose a branch to compare with")
    session = actions.current(session, controls)
    other_branch = session.switched(other).branch  # refuses a branch that no longer exists
    if (other_branch.messages, other_branch.prompt) != (session.branch.messages, session.branch.prompt):
        named = [render.branch_named(b.name).replace("**", "") for b in (other_branch, session.branch)]
        raise ValueError(
            f"{named[0]} continues another prompt than {named[1]}: Compare shows two completions of one prompt"
            " side by side, so pick a branch of the prompt on screen"
        )
    request = request_for(session, controls)
    problem = constraint_state.diagnose(service.preview, request)  # Compare gives each step's refusal as its cells
    request = constraint_state.without(request) if problem else request
    other_edits = interventions(other_branch.edits, session.vectors)  # each side under its own model edits
    comparison = service.compare(request, list(other_branch.ids), other_edits)
    table = compare.comparison_html(comparison, session.branch.name, other_branch.name)
    table = constraint_state.note_html(problem) + table
    outcome = actions.shown(session, controls)
    computed = computed | {"comparison": on_demand_key("comparison", session, controls)}
    return replace(outcome, also={"comparison": table, "computed": computed})


def wire_branches(ex: Explorer) -> None:
    c = ex.c
    ex.on(c["branch"].input, switch, extra=("branch",), also=PROMPT_BOX)
    ex.on(c["fork"].click, fork, extra=("branch_name",))
    ex.on(c["rename"].click, rename, extra=("branch_name",))
    ex.on(c["delete_branch"].click, delete, also=PROMPT_BOX)
    ex.on(c["compare"].click, compare_branches, extra=("compare_with", "computed"), also=("computed",))
