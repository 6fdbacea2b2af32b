"""Per-user state of the explorer, typed: branches, current branch, inspected token, ghost bars, chat.

`Session` is immutable: every operation returns a new one, so a refused action (a ValueError) leaves
the caller's session exactly as it was. A branch either continues a prompt of the prompt box (its own
`prompt`, which the box shows while the branch is current) or a conversation opened from the chat (its own
`messages`). Editing the prompt never discards work: a completion of the old prompt stays as it was, on its
branch, and the new prompt starts a new one. `Prefs` holds how the page is laid out (open panels, each
constraint type's text); it is kept apart because layout events run while a step is in flight and must
not overwrite each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from .edits import Edit, Vector
from .reference import RefChoice

MAIN = "main"
PROMPT_SHOWN = 24  # characters of a branch's prompt in its label


@dataclass(frozen=True)
class Branch:
    """One line of completion: token ids, how each was chosen (`meta`), where it came from."""

    name: str
    ids: tuple[int, ...] = ()
    meta: tuple[dict, ...] = ()
    parent: str | None = None
    fork_at: int | None = None
    messages: tuple[dict, ...] | None = None  # a conversation prompt instead of the prompt box
    prompt: tuple | None = None  # the prompt-box key (prompt, system prompt, chat template) this branch continues
    edits: tuple[Edit, ...] = ()  # the model edits its requests carry (those switched on)

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
    key: tuple | None = None  # (prompt, system prompt, chat template) in the prompt box
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
    vectors: dict = field(default_factory=dict)  # steering vector id -> Vector, for the branches' steering edits
    reference: RefChoice | None = None  # the reference model every request carries while it is set

    def __hash__(self) -> int:
        """Gradio hashes state values to tell when they changed (which saves the session in the browser): equal
        sessions agree on these fields, and every change worth keeping moves one of them."""
        branches = tuple((k, b.name, b.prompt, b.ids, b.messages is None, b.edits) for k, b in self.branches.items())
        chat = (len(self.chat), self.chat[-1].get("content") if self.chat else None, self.chat_reply_ids)
        grown = None if self.lookahead is None else json.dumps(self.lookahead.request, sort_keys=True)
        return hash((self.key, self.current, self.inspect, branches, chat, grown, tuple(self.vectors), self.reference))

    @property
    def chat_reply_ids(self) -> tuple[int, ...]:
        """The token ids of the chat's last reply (each record says how its token was chosen)."""
        return tuple(record["token"]["id"] for record in self.chat_reply)

    @property
    def branch(self) -> Branch:
        return self.branches[self.current]

    def with_branch(self, branch: Branch, branch_id: str | None = None) -> Session:
        """The session with `branch` stored under `branch_id` (default: the current one)."""
        return replace(self, branches=self.branches | {branch_id or self.current: branch})

    def for_prompt(self, key: tuple) -> Session:
        """The session once the prompt box shows `key`: its current branch continues that prompt.

        A current branch with tokens of another prompt stays as it was (nothing is lost) and a new empty
        branch on `key` becomes current; an empty one simply takes `key`; a conversation is left alone.
        """
        if self.key == key and (self.branch.messages is not None or self.branch.prompt in (None, key)):
            return self
        pinned = {bid: b if b.prompt or b.messages is not None else replace(b, prompt=self.key)
                  for bid, b in self.branches.items()}  # fmt: skip
        moved = replace(self, key=key, branches=pinned)
        branch = moved.branch
        if branch.messages is not None or branch.prompt == key:
            return moved
        if not branch.ids or branch.prompt is None:
            return replace(moved, inspect=None).with_branch(replace(branch, prompt=key))
        counter = self.counter + 1
        fresh = moved.with_branch(Branch(f"branch {counter}", prompt=key, edits=branch.edits), f"b{counter}")
        return replace(fresh, current=f"b{counter}", counter=counter, inspect=None)

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
        new = Branch(label, base.ids, base.meta, self.current, at, conversation, base.prompt or self.key, base.edits)
        out = replace(self, counter=counter, inspect=None).with_branch(new, f"b{counter}")
        return replace(out, current=f"b{counter}")

    def with_edits(self, edits: tuple[Edit, ...], vector: Vector | None = None) -> Session:
        """The current branch under `edits` (and `vector` kept for them). A branch with tokens keeps its edits:
        the change starts a new branch from the end of its completion, made current."""
        vectors = self.vectors | ({vector.id: vector} if vector is not None else {})
        moved = self.forked(len(self.branch.ids)) if self.branch.ids else self
        return replace(moved, vectors=vectors).with_branch(replace(moved.branch, edits=edits))

    def switched(self, branch_id: str) -> Session:
        """The branch made current; the prompt box then shows the prompt it continues (its `key`)."""
        self._check(branch_id)
        return self._at(branch_id, self.branches)

    def renamed(self, name: str) -> Session:
        if not name.strip():
            raise ValueError("a branch name cannot be empty")
        return self.with_branch(replace(self.branch, name=name.strip()))

    def deleted(self) -> Session:
        if len(self.branches) == 1:
            raise ValueError("the last branch cannot be deleted: clear its completion instead")
        branches = {bid: b for bid, b in self.branches.items() if bid != self.current}
        return self._at(next(iter(branches)), branches)

    def _at(self, branch_id: str, branches: dict) -> Session:
        target = branches[branch_id]
        key = target.prompt if target.messages is None and target.prompt is not None else self.key
        return replace(self, branches=branches, current=branch_id, inspect=None, key=key)

    def inspecting(self, index: int | None) -> Session:
        return self if self.inspect == index else replace(self, inspect=index)

    def showing(self, panel: str, inputs: str | None) -> Session:
        """Record which inputs a panel's content was computed from (None: it shows nothing current)."""
        return replace(self, shown=self.shown | {panel: inputs})

    def branch_choices(self) -> list[tuple[str, str]]:
        """(label, id) per branch; once branches continue different prompts, each label names its prompt."""
        prompts = {b.prompt or self.key for b in self.branches.values() if b.messages is None}
        return [(f"{b.name} ({len(b.ids)} tokens{self._origin(b) if len(prompts) > 1 else ''})", bid)
                for bid, b in self.branches.items()]  # fmt: skip

    def _origin(self, branch: Branch) -> str:
        if branch.messages is not None:
            return ", a conversation"
        text = (branch.prompt or self.key or ("",))[0]
        return f", prompt “{text if len(text) <= PROMPT_SHOWN else text[: PROMPT_SHOWN - 1] + '…'}”"

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
