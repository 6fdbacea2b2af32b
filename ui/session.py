"""Per-session explorer state: the prompt it belongs to, branches of completion ids and their step records.

The state is a plain JSON-ready dict kept in `gr.State`, so it can be exported and imported as is.
Every function returns a new dict and leaves its argument unchanged, so a failed event loses nothing.
"""

from __future__ import annotations

import copy
import json

MAIN = "main"


def new_session() -> dict:
    return {"key": None, "branches": {MAIN: _branch("main")}, "current": MAIN, "counter": 1, "last_final": None}


def _branch(name: str, ids=(), meta=(), parent: str | None = None, fork_at: int | None = None) -> dict:
    return {"name": name, "ids": list(ids), "meta": list(meta), "parent": parent, "fork_at": fork_at}


def current(state: dict) -> dict:
    return state["branches"][state["current"]]


def for_prompt(state: dict, key: list) -> dict:
    """The state for this prompt: unchanged when the prompt is the same, else fresh branches."""
    if state.get("key") == key:
        return state
    fresh = new_session()
    fresh["key"] = key
    return fresh


def with_result(state: dict, result: dict) -> dict:
    """Record a step's appended tokens and their choice records on the current branch."""
    out = copy.deepcopy(state)
    branch = current(out)
    branch["ids"] = list(result["completion_ids"])
    branch["meta"] = branch["meta"][: len(branch["ids"]) - len(result["appended"])] + list(result["appended_meta"])
    return out


def truncated(state: dict, length: int) -> dict:
    """The current branch cut to its first `length` tokens."""
    branch = current(state)
    if length < 0 or length > len(branch["ids"]):
        raise ValueError(f"cannot cut the completion to {length} tokens: it has {len(branch['ids'])}")
    out = copy.deepcopy(state)
    cut = current(out)
    cut["ids"], cut["meta"] = cut["ids"][:length], cut["meta"][:length]
    return out


def forked(state: dict, at: int, name: str | None = None) -> dict:
    """A new branch sharing the current branch's first `at` tokens, made current."""
    branch = current(state)
    if not 0 <= at <= len(branch["ids"]):
        raise ValueError(f"cannot branch at token {at}: the completion has {len(branch['ids'])} tokens")
    out = copy.deepcopy(state)
    out["counter"] += 1
    branch_id = f"b{out['counter']}"
    label = (name or "").strip() or f"branch {out['counter']}"
    out["branches"][branch_id] = _branch(label, branch["ids"][:at], branch["meta"][:at], state["current"], at)
    out["current"] = branch_id
    return out


def switched(state: dict, branch_id: str) -> dict:
    if branch_id not in state["branches"]:
        raise ValueError(f"branch {branch_id!r} does not exist (it may have been deleted)")
    out = copy.deepcopy(state)
    out["current"] = branch_id
    return out


def renamed(state: dict, branch_id: str, name: str) -> dict:
    if branch_id not in state["branches"]:
        raise ValueError(f"branch {branch_id!r} does not exist (it may have been deleted)")
    if not (name or "").strip():
        raise ValueError("a branch name cannot be empty")
    out = copy.deepcopy(state)
    out["branches"][branch_id]["name"] = name.strip()
    return out


def deleted(state: dict, branch_id: str) -> dict:
    if branch_id not in state["branches"]:
        raise ValueError(f"branch {branch_id!r} does not exist (it may have been deleted)")
    if len(state["branches"]) == 1:
        raise ValueError("the last branch cannot be deleted: clear its completion instead")
    out = copy.deepcopy(state)
    del out["branches"][branch_id]
    if out["current"] == branch_id:
        out["current"] = next(iter(out["branches"]))
    return out


def inspecting(state: dict, index: int | None) -> dict:
    """The state with an earlier completion token under inspection (None: back to the end)."""
    if state.get("inspect") == index:
        return state
    out = dict(state)
    out["inspect"] = index
    return out


def branch_choices(state: dict) -> list[tuple[str, str]]:
    return [(f"{b['name']} ({len(b['ids'])} tokens)", bid) for bid, b in state["branches"].items()]


EXPORT_VERSION = 1


def export_json(state: dict, settings: dict) -> str:
    """The session as JSON: prompt, settings, branches with their tokens and how each was chosen."""
    branches = {
        bid: {k: b[k] for k in ("name", "ids", "meta", "parent", "fork_at")} for bid, b in state["branches"].items()
    }
    payload = {"version": EXPORT_VERSION, "settings": settings, "current": state["current"], "branches": branches}
    return json.dumps(payload, ensure_ascii=False, indent=1)


def import_json(text: str) -> tuple[dict, dict]:
    """(state, settings) from an exported session; ValueError says what is wrong with the file."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"the session file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(payload, dict) or payload.get("version") != EXPORT_VERSION:
        raise ValueError(f"the session file is not a version {EXPORT_VERSION} export of this app")
    settings, branches = payload.get("settings"), payload.get("branches")
    if not isinstance(settings, dict) or not isinstance(branches, dict) or not branches:
        raise ValueError("the session file needs a 'settings' object and a non-empty 'branches' object")
    state = new_session()
    state["branches"] = {str(bid): _imported_branch(bid, b) for bid, b in branches.items()}
    state["current"] = payload.get("current") if payload.get("current") in state["branches"] else next(iter(branches))
    state["counter"] = len(branches) + 1
    return state, settings


def _imported_branch(branch_id: str, data: object) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("ids"), list):
        raise ValueError(f"branch {branch_id!r} in the session file has no list of token ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in data["ids"]):
        raise ValueError(f"branch {branch_id!r} in the session file has token ids that are not integers")
    meta = data.get("meta") if isinstance(data.get("meta"), list) else []
    meta = meta if len(meta) == len(data["ids"]) else []
    return _branch(str(data.get("name") or branch_id), data["ids"], meta, data.get("parent"), data.get("fork_at"))
