"""The service request of the current branch under the current controls, and a fingerprint of it.

A branch opened from the chat carries its conversation as `messages` (rendered with the chat
template); every other branch uses the prompt box. A branch's model edits that are on go with every
request made for it (`interventions`), so every panel shows the edited model. The session's reference model
goes with every request too (`reference`), so every answer carries its probabilities and distances. The
fingerprint is how the view tells whether a panel's content was computed from what the screen shows now.
"""

from __future__ import annotations

import json

from service import operations as service

from .controls import Controls
from .edits import interventions
from .state import Session

PROMPT_FIELDS = (
    "prompt", "system_prompt", "use_chat_template", "messages", "completion_ids", "branch_id", "interventions",
)  # fmt: skip


def request_for(session: Session, controls: Controls) -> dict:
    """The preview/step request (see the README's API section) for the current branch, under its model edits."""
    branch = session.branch
    out = {"branch_id": session.current, "completion_ids": list(branch.ids), "top_k": int(controls.top_k)}
    if branch.messages is not None:
        out |= {"messages": [dict(m) for m in branch.messages], "use_chat_template": True}
    else:
        out |= {
            "prompt": controls.prompt,
            "system_prompt": controls.system_prompt,
            "use_chat_template": controls.use_chat_template,
        }
    out |= {"params": controls.params(), "constraint": controls.constraint()}
    if session.reference is not None:
        out["reference"] = session.reference.request()
    edits = interventions(branch.edits, session.vectors)
    return (out | {"interventions": edits}) if edits else out  # no edits on: the request of an unedited model


def prompt_request(session: Session, controls: Controls) -> dict:
    """Only the fields naming the tokens (no knobs): what attribution and the lens take."""
    full = request_for(session, controls)
    return {k: v for k, v in full.items() if k in PROMPT_FIELDS}


def attribution_request(session: Session, controls: Controls) -> dict:
    """The tokens, and how attribution scores are reduced and grouped: what hovering and Explain share."""
    return prompt_request(session, controls) | {
        "aggregation": controls.aggregation,
        "granularity": controls.granularity,
    }


def model_id() -> str:
    """The id of the model every user shares now: what on-demand panels were computed with is part of their key."""
    return service.model_status().get("model_id") or ""


def fingerprint(*parts: object) -> str:
    """A stable text for comparing what a panel was computed from with what is on screen."""
    return json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
