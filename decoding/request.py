"""The explorer's request (preview, step, attribution, ...) parsed strictly from JSON into frozen dataclasses.

The context is either a raw `prompt` (with an optional `system_prompt`, wrapped in the chat template
unless `use_chat_template` is false) or a whole conversation as `messages`. Parsing needs no model;
`Request.check_vocab` then checks token ids and `top_k` against the loaded model's vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from decoding import fields as parse
from decoding import interventions as edits_mod
from decoding import reference_spec
from decoding.sampling.params import ConstraintSpec, DecodingParams, check_token_ids, check_top_k

if TYPE_CHECKING:
    from backends.model import LoadedModel
    from backends.reference import ReferenceSpec

# The keys every request kind accepts; each kind adds its own (see service.operations).
BASE_KEYS = frozenset(
    {
        "branch_id",
        "prompt",
        "system_prompt",
        "messages",
        "use_chat_template",
        "completion_ids",
        "top_k",
        "params",
        "constraint",
        "interventions",
        "reference",
    }
)
ROLES = ("system", "user", "assistant")
MAX_BRANCH_ID_CHARS = 200  # it only names a branch (and seeds its draws): no reason to be long
DEFAULT_TOP_K = 10


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: str
    content: str

    @classmethod
    def from_dict(cls, name: str, data: object) -> Message:
        if not isinstance(data, dict):
            raise ValueError(f"{name} must be a JSON object with role and content, got {parse.type_name(data)}")
        data = parse.obj(name, data, ("role", "content"))
        if data.get("role") is None or data.get("content") is None:
            missing = "role" if data.get("role") is None else "content"
            raise ValueError(f"{name} has no {missing}: each message needs a role ({', '.join(ROLES)}) and content")
        role = parse.choice(f"{name}.role", data["role"], ROLES, "")
        return cls(role, parse.text(f"{name}.content", data["content"]))

    def as_dict(self) -> dict:
        return {"role": self.role, "content": self.content}


def parse_messages(value: object) -> tuple[Message, ...]:
    """A non-empty conversation whose last message is the user's (answer it) or the assistant's (continue it)."""
    items = parse.items("messages", value)
    messages = tuple(Message.from_dict(f"messages[{i}]", item) for i, item in enumerate(items))
    if messages and messages[-1].role == "system":
        raise ValueError("messages ends with a system message: the last message must be from the user or the assistant")
    if messages and not messages[-1].content:
        raise ValueError(f"messages[{len(messages) - 1}].content is empty: the last message needs some text")
    return messages


@dataclass(frozen=True)
class Request:
    """One preview or step request; see the README's API section for the JSON shape."""

    prompt: str
    system_prompt: str = ""
    use_chat_template: bool = True
    completion_ids: tuple[int, ...] = ()
    top_k: int = DEFAULT_TOP_K
    params: DecodingParams = field(default_factory=DecodingParams)
    constraint: ConstraintSpec = field(default_factory=ConstraintSpec)
    branch_id: str = "default"
    messages: tuple[Message, ...] = ()
    interventions: edits_mod.Edits = ()  # model edits (decoding.interventions), resolved against the model later
    reference: ReferenceSpec | None = None  # a model beside this one (decoding.reference_spec)

    @classmethod
    def from_dict(cls, data: object, vocab_size: int | None = None, extra_keys: Collection[str] = ()) -> Request:
        """Parse a request object; `extra_keys` are the kind's own keys (accepted here, parsed by the caller)."""
        if not isinstance(data, dict):
            raise ValueError(f"request must be a JSON object, got {parse.type_name(data)}")
        data = parse.obj("the request", data, BASE_KEYS | set(extra_keys))
        prompt, system, use_template, messages = _context(data)
        request = cls(
            prompt=prompt,
            system_prompt=system,
            use_chat_template=use_template,
            completion_ids=check_token_ids("completion_ids", parse.items("completion_ids", data.get("completion_ids"))),
            top_k=check_top_k(DEFAULT_TOP_K if data.get("top_k") is None else data["top_k"]),
            params=DecodingParams.from_dict(data.get("params")),
            constraint=ConstraintSpec.from_dict(data.get("constraint")),
            branch_id=_branch_id(data.get("branch_id")),
            messages=messages,
            interventions=edits_mod.parse(data.get("interventions")),
            reference=reference_spec.parse(data.get("reference")),
        )
        if vocab_size is not None:
            request.check_vocab(vocab_size)
        return request

    def resolved(self, loaded: LoadedModel) -> Request:
        """The request held to the loaded model: token ids in its vocabulary, model edits checked against it and
        steering vector ids replaced by their floats (decoding.interventions.resolve)."""
        self.check_vocab(loaded.vocab_size)
        if not self.interventions:
            return self
        return dataclasses.replace(self, interventions=edits_mod.resolve(self.interventions, loaded))

    def check_vocab(self, vocab_size: int) -> None:
        """Token ids inside the vocabulary and at most one row per vocabulary entry."""
        check_token_ids("completion_ids", self.completion_ids, vocab_size)
        check_top_k(self.top_k, vocab_size)


def _context(data: dict) -> tuple[str, str, bool, tuple[Message, ...]]:
    """(prompt, system prompt, use the chat template, messages): a raw prompt or a conversation, not both."""
    prompt = parse.string("prompt", data.get("prompt"))
    system = parse.string("system_prompt", data.get("system_prompt"))
    use_template = parse.boolean("use_chat_template", data.get("use_chat_template"), True)
    messages = parse_messages(data.get("messages"))
    if data.get("messages") is None:
        if not prompt:
            raise ValueError("prompt is empty: type the text the model should continue (or send messages)")
        return prompt, system, use_template, ()
    if not messages:
        raise ValueError("messages is empty: send at least one message, or a prompt instead")
    if prompt or system:
        name = "prompt" if prompt else "system_prompt"
        raise ValueError(f"give either messages or {name}, not both (a system message goes first in messages)")
    if not use_template:
        raise ValueError("messages need the chat template: send use_chat_template true, or a raw prompt instead")
    return "", "", True, messages


def _branch_id(value: object) -> str:
    branch = parse.string("branch_id", value) or "default"
    if len(branch) > MAX_BRANCH_ID_CHARS:
        raise ValueError(f"branch_id is {len(branch)} characters long: accepted are at most {MAX_BRANCH_ID_CHARS}")
    return branch
