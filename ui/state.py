"""Per-user state of the explorer, typed: branches, current branch, inspected token, ghost bars, chat.

`Session` is immutable: every operation returns a new one, so a refused action (a ValueError) leaves
the caller's session exactly as it was. A branch either continues the prompt box (its prompt is the
session's `key`) or a conversation opened from the chat (its own `messages`), which a prompt change
leaves alone. `Prefs` holds how the page is laid out (open panels, each constraint type's text); it
is kept apart because layout events run while a step is in flight and must not overwrite each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .controls import Controls

MAIN = "main"


@dataclass(frozen=True)
class Branch:
    """One line of completion: token ids, how each was chosen (`meta`), where it came from."""

    name: str
    ids: tuple[int, ...] = ()
    meta: tuple[dict, ...] = ()
    parent: str | None = None
    fork_at: int | None = None
    messages: tuple[dict, ...] | None = None  # a conversation prompt instead of the prompt box

    def cut(self, length: int) -> Branch:
        if not 0 <= length <= len(self.ids):
            raise ValueError(f"cannot cut the completion to {length} tokens: it has {len(self.ids)}")
        return replace(self, ids=self.ids[:length], meta=self.meta[:length])


@dataclass(frozen=True)
class Ghost:
    """The last p_final shown (by token id) and its rows, so a knob change can draw the bars before it."""

    branch: str | None = None
    position: int | None = None
    p: dict = field(default_factory=dict)  # token id -> p_final
    rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class LookAhead:
    """A look-ahead tree (the API's `tree` answer), the preview request it was grown from, and the model's id."""

    request: dict
    tree: dict
    model_id: str = ""  # token ids mean nothing under another model: the tree is out of date after a switch


@dataclass(frozen=True)
class Session:
    key: tuple | None = None  # (prompt, system prompt, chat template) of the prompt-box branches
    branches: dict = field(default_factory=lambda: {MAIN: Branch(MAIN)})
    current: str = MAIN
    counter: int = 1
    inspect: int | None = None
    ghost: Ghost = field(default_factory=Ghost)
    chat: tuple[dict, ...] = ()  # the chat tab's conversation, {"role", "content"} turns
    chat_reply: tuple[dict, ...] = ()  # how each token of the chat's last reply was chosen (as a step records it)
    auto_run: tuple[float, int] = (0.0, 0)  # the auto-step run (its start time) and the steps it has taken
    shown: dict = field(default_factory=dict)  # panel -> inputs it shows
    lookahead: LookAhead | None = None  # the last tree grown (current while its request is the one on screen)

    def __hash__(self) -> int:  # Gradio hashes state values; equal sessions agree on these fields
        return hash((self.key, self.current, self.inspect, tuple((k, b.ids) for k, b in self.branches.items())))

    @property
    def branch(self) -> Branch:
        return self.branches[self.current]

    def with_branch(self, branch: Branch, branch_id: str | None = None) -> Session:
        """The session with `branch` stored under `branch_id` (default: the current one)."""
        return replace(self, branches=self.branches | {branch_id or self.current: branch})

    def for_prompt(self, key: tuple) -> Session:
        """Unchanged for the same prompt; else the prompt-box branches start afresh, conversations stay."""
        if self.key == key:
            return self
        kept = {bid: b for bid, b in self.branches.items() if b.messages is not None}
        current = self.current if self.current in kept else MAIN
        branches = {MAIN: Branch(MAIN)} | kept
        return replace(self, key=key, branches=branches, current=current, inspect=None)

    def with_result(self, result: dict) -> Session:
        """Record a step's appended tokens and their choice records on the current branch."""
        branch = self.branch
        ids = tuple(result["completion_ids"])
        keep = len(ids) - len(result["appended"])
        return self.with_branch(replace(branch, ids=ids, meta=branch.meta[:keep] + tuple(result["appended_meta"])))

    def truncated(self, length: int) -> Session:
        return self.with_branch(self.branch.cut(length))

    def forked(self, at: int, name: str = "", messages: tuple[dict, ...] | None = None) -> Session:
        """A new branch sharing the current branch's first `at` tokens (or a conversation), made current."""
        base = self.branch.cut(at)
        counter = self.counter + 1
        label = name.strip() or f"branch {counter}"
        conversation = messages if messages is not None else base.messages
        new = Branch(label, base.ids, base.meta, self.current, at, conversation)
        out = replace(self, counter=counter, inspect=None).with_branch(new, f"b{counter}")
        return replace(out, current=f"b{counter}")

    def switched(self, branch_id: str) -> Session:
        self._check(branch_id)
        return replace(self, current=branch_id, inspect=None)

    def renamed(self, name: str) -> Session:
        if not name.strip():
            raise ValueError("a branch name cannot be empty")
        return self.with_branch(replace(self.branch, name=name.strip()))

    def deleted(self) -> Session:
        if len(self.branches) == 1:
            raise ValueError("the last branch cannot be deleted: clear its completion instead")
        branches = {bid: b for bid, b in self.branches.items() if bid != self.current}
        return replace(self, branches=branches, current=next(iter(branches)), inspect=None)

    def inspecting(self, index: int | None) -> Session:
        return self if self.inspect == index else replace(self, inspect=index)

    def showing(self, panel: str, inputs: str | None) -> Session:
        """Record which inputs a panel's content was computed from (None: it shows nothing current)."""
        return replace(self, shown=self.shown | {panel: inputs})

    def branch_choices(self) -> list[tuple[str, str]]:
        return [(f"{b.name} ({len(b.ids)} tokens)", bid) for bid, b in self.branches.items()]

    def _check(self, branch_id: str) -> None:
        if branch_id not in self.branches:
            raise ValueError(f"branch {branch_id!r} does not exist (it may have been deleted)")


@dataclass(frozen=True)
class Prefs:
    """How the user left the page: which panels are open, and the text typed for each constraint type."""

    open_panels: frozenset[str] = frozenset()
    constraint_texts: dict = field(default_factory=dict)

    def __hash__(self) -> int:  # Gradio hashes state values to tell when they changed
        return hash((self.open_panels, tuple(sorted(self.constraint_texts.items()))))

    def opened(self, panel: str, is_open: bool) -> Prefs:
        panels = self.open_panels | {panel} if is_open else self.open_panels - {panel}
        return replace(self, open_panels=frozenset(panels))

    def with_text(self, kind: str, text: str) -> Prefs:
        return replace(self, constraint_texts=self.constraint_texts | {kind: text})


EXPORT_VERSION = 2


def to_json(controls: Controls, prefs: Prefs, session: Session | None = None) -> dict:
    """The JSON-ready form shared by the session file (with `session`) and the browser settings (without)."""
    out = {"version": EXPORT_VERSION, "controls": controls.as_dict(), "prefs": _prefs_json(prefs)}
    if session is not None:
        out["session"] = {
            "key": list(session.key) if session.key is not None else None,
            "current": session.current,
            "branches": {bid: _branch_json(b) for bid, b in session.branches.items()},
            "chat": list(session.chat),
        }
        if session.lookahead is not None:
            grown = session.lookahead
            out["session"]["lookahead"] = {"request": grown.request, "tree": grown.tree, "model_id": grown.model_id}
    return out


def _prefs_json(prefs: Prefs) -> dict:
    return {"open_panels": sorted(prefs.open_panels), "constraint_texts": dict(prefs.constraint_texts)}


def _branch_json(branch: Branch) -> dict:
    out = {"name": branch.name, "ids": list(branch.ids), "meta": list(branch.meta)}
    out |= {"parent": branch.parent, "fork_at": branch.fork_at}
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
    restored = {str(bid): _branch(str(bid), b) for bid, b in branches.items()}
    current = data.get("current") if data.get("current") in restored else next(iter(restored))
    key = tuple(data["key"]) if isinstance(data.get("key"), list) else None
    chat = tuple(m for m in data.get("chat") or () if isinstance(m, dict))
    grown = data.get("lookahead")
    lookahead = None
    if isinstance(grown, dict) and isinstance(grown.get("request"), dict) and isinstance(grown.get("tree"), dict):
        lookahead = LookAhead(grown["request"], grown["tree"], str(grown.get("model_id") or ""))
    return Session(
        key=key, branches=restored, current=current, counter=len(restored) + 1, chat=chat, lookahead=lookahead
    )


def _branch(branch_id: str, data: object) -> Branch:
    if not isinstance(data, dict) or not isinstance(data.get("ids"), list):
        raise ValueError(f"branch {branch_id!r} in the session file has no list of token ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in data["ids"]):
        raise ValueError(f"branch {branch_id!r} in the session file has token ids that are not integers")
    meta = data.get("meta") if isinstance(data.get("meta"), list) else []
    messages = data.get("messages")
    return Branch(
        str(data.get("name") or branch_id),
        tuple(data["ids"]),
        tuple(meta) if len(meta) == len(data["ids"]) else (),
        data.get("parent"),
        data.get("fork_at"),
        tuple(messages) if isinstance(messages, list) else None,
    )
