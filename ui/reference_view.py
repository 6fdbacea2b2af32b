"""What the explorer shows of the reference model: the panel's status line, and the status line's words.

The panel says what the session's reference is and what the service reports of the reference it holds
(loading, ready with the memory its weights take, failed with the reason). The explorer's status line says, from
the answer's own fields, how far the reference's p_final is from the main model's (`kl_reference_final`, bits)
and whether their top tokens agree, with the main model's top token's rank under the reference when not.
"""

from __future__ import annotations

from service import reference as service_reference

from .request import fingerprint
from .state import Session

STATES = {"loading": "loading the reference…", "ready": "ready", "failed": "failed"}
NO_REFERENCE = "*No reference: the bars and the status line show the main model alone.*"


def loading_markdown(label: str) -> str:
    """The panel's line from the moment Apply is pressed until the reference is ready or failed."""
    return f"**Reference:** {label} · {STATES['loading']}"


def status_markdown(session: Session, status: dict) -> str:
    """The panel's line: the session's reference (or none) and the service's state of the one it holds."""
    state = status.get("state", "none")
    if session.reference is None:
        return NO_REFERENCE + (f" The last one failed: {status.get('error', '')}" if state == "failed" else "")
    line = f"**Reference:** {session.reference.label()}"
    if state == "ready":
        return f"{line} · ready · {_memory_words(status['memory_mb'])}"
    if state == "failed":
        return f"{line} · failed: {status.get('error', '')}"
    return f"{line} · {STATES.get(state, 'loaded with the next request')}"


def _memory_words(memory_mb: float) -> str:
    if memory_mb == 0:  # the main model itself in its own form: nothing was copied
        return "it is the main model itself (no extra memory)"
    return f"its weights take {memory_mb:,.1f} MiB"


def panel_key(session: Session) -> str:
    return fingerprint(session.reference, service_reference.reference_status())


def _status(session: Session) -> str:
    return status_markdown(session, service_reference.reference_status())


DRAWS = {"reference_status": _status}  # component -> its content


def status_part(dist: dict | None, main_model: str = "") -> str:
    """ "reference (bfloat16): KL x bits · top token agrees / differs (rank n)", or "" without a reference."""
    if not dist or not dist.get("reference"):
        return ""
    words = dist["reference"]
    words = words.removeprefix(f"{main_model}, ") if main_model and words != main_model else words
    kl = dist.get("kl_reference_final")
    reason = (dist.get("kl_reference_final_reason") or "").removeprefix("infinite: ")
    distance = f"KL {kl:.4f} bits" if kl is not None else f"KL infinite ({reason})"
    rank = dist.get("rank_under_reference")
    top = "top token agrees" if dist.get("top_agrees") else f"top token differs (rank {rank} under the reference)"
    # the reference is never edited: with edits on, say that the distance includes what the edits do
    unedited = " (the reference runs without the edits)" if dist.get("edits") else ""
    return f"reference ({words}{unedited}): {distance} · {top}"
