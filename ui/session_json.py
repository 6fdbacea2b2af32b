"""The session's JSON form, shared by the session file and the session kept in the browser: `to_json` writes
the controls, the layout and (with a session) every branch with how each token was chosen, its edits and the
steering vectors they use; `from_json` reads it back strictly, dropping what no longer fits.
"""

from __future__ import annotations

from .controls import Controls
from .edits import Edit, vectors_from_json
from .reference import RefChoice
from .state import Branch, LookAhead, Prefs, Session

EXPORT_VERSION = 2


def to_json(controls: Controls, prefs: Prefs, session: Session | None = None, model_id: str = "") -> dict:
    """The JSON-ready form shared by the session file and the session kept in the browser (with `session`, and
    the model its token ids belong to) and the browser settings (without)."""
    out = {"version": EXPORT_VERSION, "controls": controls.as_dict(), "prefs": _prefs_json(prefs)}
    if session is not None:
        out["session"] = {
            "key": list(session.key) if session.key is not None else None,
            "current": session.current,
            "branches": {bid: _branch_json(b) for bid, b in session.branches.items()},
            "chat": list(session.chat),
            "chat_reply": list(session.chat_reply),
            "model_id": model_id,
            "vectors": [v.as_dict() for vid, v in session.vectors.items() if vid in _used_vectors(session.branches)],
            "reference": session.reference.as_dict() if session.reference is not None else None,
        }
        if session.lookahead is not None:
            grown = session.lookahead
            out["session"]["lookahead"] = {"request": grown.request, "tree": grown.tree, "model_id": grown.model_id}
    return out


def _prefs_json(prefs: Prefs) -> dict:
    return {"open_panels": sorted(prefs.open_panels), "constraint_texts": dict(prefs.constraint_texts)}


def _used_vectors(branches: dict) -> set[str]:
    return {e.vector for b in branches.values() for e in b.edits if e.kind == "steer"}


def _branch_json(branch: Branch) -> dict:
    out = {"name": branch.name, "ids": list(branch.ids), "meta": list(branch.meta)}
    out |= {"parent": branch.parent, "fork_at": branch.fork_at, "edits": [e.as_dict() for e in branch.edits]}
    out |= {"prompt": list(branch.prompt)} if branch.prompt is not None else {}
    return out | ({"messages": list(branch.messages)} if branch.messages is not None else {})


def from_json(data: object) -> tuple[Controls, Prefs, Session | None]:
    """(controls, prefs, session or None) from `to_json`'s form; ValueError says what is wrong."""
    if not isinstance(data, dict) or data.get("version") != EXPORT_VERSION:
        raise ValueError(f"the session file is not a version {EXPORT_VERSION} export of this app")
    if not isinstance(data.get("controls"), dict):
        raise ValueError("the session file needs a 'controls' object")
    controls = Controls.from_values(data["controls"])
    prefs_data = data.get("prefs") if isinstance(data.get("prefs"), dict) else {}
    texts = prefs_data.get("constraint_texts")
    prefs = Prefs(
        frozenset(str(p) for p in prefs_data.get("open_panels") or ()),
        {str(k): str(v) for k, v in texts.items()} if isinstance(texts, dict) else {},
    )
    return controls, prefs, _session(data["session"]) if "session" in data else None


def _session(data: object) -> Session:
    branches = data.get("branches") if isinstance(data, dict) else None
    if not isinstance(branches, dict) or not branches:
        raise ValueError("the session file needs a non-empty 'branches' object")
    key = tuple(data["key"]) if isinstance(data.get("key"), list) else None
    restored = {str(bid): _branch(str(bid), b, key) for bid, b in branches.items()}
    current = data.get("current") if data.get("current") in restored else next(iter(restored))
    chat = tuple(m for m in data.get("chat") or () if isinstance(m, dict))
    reply = data.get("chat_reply") if isinstance(data.get("chat_reply"), list) else []
    numbered = [int(bid[1:]) for bid in restored if bid[:1] == "b" and bid[1:].isdigit()]
    grown = data.get("lookahead")
    lookahead = None
    if isinstance(grown, dict) and isinstance(grown.get("request"), dict) and isinstance(grown.get("tree"), dict):
        lookahead = LookAhead(grown["request"], grown["tree"], str(grown.get("model_id") or ""))
    return Session(
        key=key, branches=restored, current=current, counter=max([len(restored), *numbered]), chat=chat,
        chat_reply=tuple(r for r in reply if isinstance(r, dict) and isinstance(r.get("token"), dict)),
        lookahead=lookahead, vectors=vectors_from_json(data.get("vectors"), _used_vectors(restored)),
        reference=RefChoice.from_dict(data.get("reference")),  # absent from older files: none
    )  # fmt: skip


def _branch(branch_id: str, data: object, key: tuple | None) -> Branch:
    if not isinstance(data, dict) or not isinstance(data.get("ids"), list):
        raise ValueError(f"branch {branch_id!r} in the session file has no list of token ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in data["ids"]):
        raise ValueError(f"branch {branch_id!r} in the session file has token ids that are not integers")
    meta = data.get("meta") if isinstance(data.get("meta"), list) else []
    messages = data.get("messages")
    prompt = data.get("prompt")  # absent from older files: the session's prompt
    edits = data.get("edits") if isinstance(data.get("edits"), list) else []  # absent from older files: none
    return Branch(
        str(data.get("name") or branch_id),
        tuple(data["ids"]),
        tuple(meta) if len(meta) == len(data["ids"]) else (),
        data.get("parent"),
        data.get("fork_at"),
        tuple(messages) if isinstance(messages, list) else None,
        tuple(prompt) if isinstance(prompt, list) and len(prompt) == 3 else None if isinstance(messages, list) else key,
        tuple(map(Edit.from_dict, edits)),
    )
