"""A request's prompt as token ids: the raw text, the chat template over a prompt (and system prompt), or a
conversation's messages; the last encodings kept, since every step of a branch encodes the same prompt."""

from __future__ import annotations

import weakref
from functools import lru_cache, partial

from jinja2 import TemplateError

from backends.model import LoadedModel
from decoding.request import Message, Request


class PromptEncoder:
    """The prompt ids of one model's requests (see `Engine.prompt_ids`)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        # Over a weak proxy, not the bound method: self -> cache -> method -> self would be a reference cycle,
        # and a cycle keeps the encoder and its model alive after a switch until a full garbage collection.
        self._ids = lru_cache(maxsize=64)(partial(PromptEncoder._encode, weakref.proxy(self)))

    def ids(self, req: Request) -> tuple[tuple[int, ...], str]:
        """(prompt ids, notice): the notice says when a chat template was asked for and the model has none."""
        return self._ids(req.prompt, req.system_prompt, req.use_chat_template, req.messages)

    def _encode(
        self, prompt: str, system_prompt: str, use_chat_template: bool, messages: tuple[Message, ...] = ()
    ) -> tuple[tuple[int, ...], str]:
        if messages:
            return self._encode_messages(messages), ""
        if use_chat_template and self.loaded.has_chat_template:
            system = (Message("system", system_prompt),) if system_prompt else ()
            return self._encode_messages((*system, Message("user", prompt))), ""
        notice = "this model has no chat template: the raw prompt is used" if use_chat_template else ""
        return tuple(int(i) for i in self.loaded.tokenizer(prompt)["input_ids"]), notice

    def _encode_messages(self, messages: tuple[Message, ...]) -> tuple[int, ...]:
        """The chat template over a conversation: answer a last user message, continue a last assistant one."""
        if not self.loaded.has_chat_template:
            raise ValueError(
                f"model {self.loaded.model_id!r} has no chat template, so it cannot read a conversation: "
                "send a raw prompt instead"
            )
        cont = messages[-1].role == "assistant"
        try:
            out = self.loaded.tokenizer.apply_chat_template(
                [m.as_dict() for m in messages], add_generation_prompt=not cont, continue_final_message=cont,
                tokenize=True, return_dict=True,
            )  # fmt: skip
        except (TemplateError, ValueError) as exc:  # the template's own checks, e.g. roles out of order
            raise ValueError(f"the chat template refused these messages: {' '.join(str(exc).split())}") from None
        return tuple(int(i) for i in out["input_ids"])
