"""What this server allows: which models may be loaded, and the budgets every request is held to.

Off (everything allowed within generous budgets) unless configured public: then only allowlisted
models load, never a local path, and the strict public budgets apply (see service.budgets).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from backends.model import EMBEDDED_ALIASES, EMBEDDED_ID, available_models, default_model_id
from decoding.engine import Engine
from decoding.request import Request
from service.budgets import Budgets


@dataclass(frozen=True)
class PolicySettings:
    """Public mode on or off, the models it allows (the default model always) and the budgets of a request."""

    public: bool = False
    allowlist: tuple[str, ...] = ()
    budgets: Budgets | None = None  # None: the defaults of the mode

    def __post_init__(self) -> None:
        if self.budgets is None:
            object.__setattr__(self, "budgets", Budgets.defaults(self.public))


def _canonical(model_id: str) -> str:
    text = model_id.strip().casefold()
    return EMBEDDED_ID.casefold() if text in EMBEDDED_ALIASES else text


def _looks_like_path(text: str) -> bool:
    """By its spelling only: looking at the disk would tell strangers which files exist."""
    return text.startswith((".", "/", "~", "\\")) or "\\" in text or text.count("/") > 1 or ":" in text


class Policy:
    """What this server lets callers do: everything within generous budgets, unless configured public."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # on Hugging Face Spaces be safe even if nobody configures the policy
        self._settings = PolicySettings(public=bool(os.environ.get("SPACE_ID")))

    @property
    def settings(self) -> PolicySettings:
        return self._settings

    def configure(self, public: bool, allowlist: Sequence[str] = (), budgets: Budgets | None = None) -> PolicySettings:
        """Set the policy (budgets None: the mode's defaults); the allowlist always has the current default model."""
        if budgets is not None and not isinstance(budgets, Budgets):
            raise ValueError(f"budgets must be a Budgets, got {type(budgets).__name__}")
        models: dict[str, str] = {}
        for model_id in (default_model_id(), *allowlist):
            if model_id.strip():
                models.setdefault(_canonical(model_id), model_id.strip())
        with self._lock:
            self._settings = PolicySettings(bool(public), tuple(models.values()), budgets)
        return self._settings

    def allowed_models(self) -> list[str]:
        """The ids a model picker should offer: the allowlist in public mode, else every offline model."""
        settings = self._settings
        return list(settings.allowlist or (default_model_id(),)) if settings.public else available_models()

    def check_model(self, model_id: str) -> str:
        """The id to load. In public mode: only allowlisted ids (in their listed spelling), never a local path."""
        settings = self._settings
        if not settings.public:
            return model_id
        allowed = settings.allowlist or (default_model_id(),)
        listed = {_canonical(m): m for m in allowed}
        if _canonical(model_id) in listed:
            return listed[_canonical(model_id)]
        accepted = ", ".join(repr(m) for m in allowed)
        if _looks_like_path(model_id.strip()):
            raise ValueError(f"model {model_id.strip()!r} is a local path; this public server only loads {accepted}")
        raise ValueError(f"model {model_id.strip()!r} is not offered on this public server; choose one of {accepted}")

    def check_request(self, req: Request) -> None:
        """The budgets a parsed request can be held to before its prompt is tokenised."""
        budgets = self._settings.budgets
        texts = {"prompt": req.prompt, "system_prompt": req.system_prompt}
        texts |= {f"messages[{i}].content": m.content for i, m in enumerate(req.messages)}
        budgets.check_texts("max_prompt_chars", texts)
        if req.messages:
            budgets.check_conversation([m.content for m in req.messages], "messages")
        budgets.check("max_rows", req.top_k, "top_k")
        budgets.check_stops(req.params.stop_sequences)
        if req.constraint.active:
            budgets.check("max_grammar_chars", len(req.constraint.schema), f"the {req.constraint.type} constraint")
        if req.reference is not None and req.reference.model is not None:
            self.check_model(req.reference.model)  # public mode: an allowlisted model only

    def check_lengths(self, request: object) -> None:
        """Before parsing: the request's long lists, whose length alone can be over a budget (parsing them costs)."""
        if not isinstance(request, dict):
            return  # not a request: parsing says so
        budgets = self._settings.budgets
        for key, name, what in (
            ("completion_ids", "max_context_tokens", "completion"),
            ("messages", "max_history_turns", "messages"),
            ("interventions", "max_interventions", "interventions"),
        ):
            value = request.get(key)
            if isinstance(value, list | tuple):
                budgets.check(name, len(value), what)

    def check_context(self, engine: Engine, req: Request, new_tokens: int = 0) -> None:
        """Prompt + completion + the tokens a call appends, within the context budget."""
        prompt, _ = engine.prompt_ids(req)
        total = len(prompt) + len(req.completion_ids) + new_tokens
        self._settings.budgets.check("max_context_tokens", total, "context")


POLICY = Policy()
