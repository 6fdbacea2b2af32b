"""JSON in, JSON out: the operations behind the API endpoints and the UI, on the shared model.

Each function validates its request completely before touching anything, so a bad request raises
ValueError and leaves the caller's state as it was. `POLICY` holds the public-mode limits (which
models may be loaded, how long a prompt may be) that a server open to strangers applies.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime import gpu

from .engine import Engine, Request, engine_for
from .model import EMBEDDED_ALIASES, EMBEDDED_ID, STORE, available_models, default_model_id
from .params import check_token_ids

DEFAULT_MAX_PROMPT_CHARS = 4000
TEXT_FIELDS = ("prompt", "system_prompt", "force_text")  # the free-text fields a stranger could make huge


@dataclass(frozen=True)
class PolicySettings:
    """Public mode on or off, the models it allows (the default model always) and the longest prompt."""

    public: bool = False
    allowlist: tuple[str, ...] = ()
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS


def _canonical(model_id: str) -> str:
    text = model_id.strip().casefold()
    return EMBEDDED_ID.casefold() if text in EMBEDDED_ALIASES else text


def _looks_like_path(text: str) -> bool:
    if text.startswith((".", "/", "~", "\\")) or "\\" in text or text.count("/") > 1 or ":" in text:
        return True
    return Path(os.path.expanduser(text)).exists()


class Policy:
    """What this server lets callers do; off (everything allowed) unless configured public."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # on Hugging Face Spaces be safe even if nobody configures the policy
        self._settings = PolicySettings(public=bool(os.environ.get("SPACE_ID")))

    @property
    def settings(self) -> PolicySettings:
        return self._settings

    def configure(
        self, public: bool, allowlist: Sequence[str] = (), max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    ) -> PolicySettings:
        """Set the policy; the allowlist always contains the current default model, so read it after the env is set."""
        if isinstance(max_prompt_chars, bool) or not isinstance(max_prompt_chars, int) or max_prompt_chars < 1:
            raise ValueError(f"max_prompt_chars {max_prompt_chars!r} must be a whole number of characters >= 1")
        models: dict[str, str] = {}
        for model_id in (default_model_id(), *allowlist):
            if model_id.strip():
                models.setdefault(_canonical(model_id), model_id.strip())
        with self._lock:
            self._settings = PolicySettings(bool(public), tuple(models.values()), max_prompt_chars)
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
        # a path would let strangers probe the server's disk
        accepted = ", ".join(repr(m) for m in allowed)
        if _looks_like_path(model_id.strip()):
            raise ValueError(f"model {model_id.strip()!r} is a local path; this public server only loads {accepted}")
        raise ValueError(f"model {model_id.strip()!r} is not offered on this public server; choose one of {accepted}")

    def check_request(self, request: object) -> None:
        """In public mode: every free-text field at most `max_prompt_chars` characters."""
        settings = self._settings
        if not settings.public or not isinstance(request, dict):
            return  # a malformed request is the engine's to reject
        for name in TEXT_FIELDS:
            value = request.get(name)
            if isinstance(value, str) and len(value) > settings.max_prompt_chars:
                raise ValueError(
                    f"{name} is {len(value)} characters long; this public server accepts at most "
                    f"{settings.max_prompt_chars} characters"
                )


POLICY = Policy()


def model_status() -> dict:
    return STORE.status().as_dict()


def load_model(model_id: str) -> dict:
    """Switch the shared model; on failure the previous model stays and ValueError names the reason."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError(f"model id {model_id!r} is empty: give a Hugging Face id, a local folder or 'embedded'")
    return STORE.load(POLICY.check_model(model_id)).as_dict()


def _checked(request: dict, force_text: str | None = None) -> tuple[Engine, Request]:
    """The current model's engine and the validated request, after the public-mode limits."""
    POLICY.check_request(request if force_text is None else request | {"force_text": force_text})
    engine = engine_for(STORE.get())
    return engine, engine.request(request)


@gpu
def preview(request: dict) -> dict:
    engine, req = _checked(request)
    return engine.preview(req).as_dict()


@gpu
def step(request: dict) -> dict:
    """One step: choose a token, or append `force_token_id`, or the tokens of `force_text`."""
    engine, req = _checked(request)
    force_id = request.get("force_token_id")
    force_text = request.get("force_text")
    if force_id is not None and force_text is not None:
        raise ValueError("give either force_token_id or force_text, not both")
    return engine.step(req, force_token_id=force_id, force_text=force_text).as_dict()


def render(request: dict) -> dict:
    """The tokens of a request without running the model."""
    engine, req = _checked(request)
    return engine.render(req).as_dict()


def append_text(request: dict, text: str) -> dict:
    """Append the tokens of `text` without running the model."""
    engine, req = _checked(request, text)
    return engine.append_text(req, text).as_dict()


ATTRIBUTION_FIELDS = ("target_index", "target_token_id", "method", "aggregation", "ig_steps", "last_layer_only")


@gpu
def attribution(request: dict) -> dict:
    """Which context tokens a completion token (`target_index`) or a candidate (`target_token_id`) depends on."""
    from attribution import attribute

    engine, req = _checked({k: v for k, v in request.items() if k not in ATTRIBUTION_FIELDS})
    loaded = engine.loaded
    prompt, _ = engine.prompt_ids(req)
    context, target = _attribution_target(request, prompt, req.completion_ids, loaded.vocab_size)
    result = attribute(
        loaded, context, target, str(request.get("method") or "saliency"),
        aggregation=str(request.get("aggregation") or "l2"), ig_steps=request.get("ig_steps") or 16,
        last_layer_only=bool(request.get("last_layer_only", False)),
    )  # fmt: skip
    return result.as_dict() | {
        "target": engine.view.pill(target).as_dict(),
        "context_tokens": [p.as_dict() for p in engine.view.pills(context)],
        "prompt_length": len(prompt),
    }


def _attribution_target(request: dict, prompt, completion, vocab_size: int) -> tuple[tuple[int, ...], int]:
    index, token_id = request.get("target_index"), request.get("target_token_id")
    if (index is None) == (token_id is None):
        raise ValueError("give exactly one of target_index (a completion token) or target_token_id (a candidate)")
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(completion):
            raise ValueError(
                f"target_index {index!r} is out of range: accepted is 0 to {len(completion) - 1}"
                f" (the completion has {len(completion)} tokens)"
                if completion
                else f"target_index {index!r} is out of range: the completion is empty"
            )
        return (*prompt, *completion[:index]), completion[index]
    (token,) = check_token_ids("target_token_id", [token_id], vocab_size)
    return (*prompt, *completion), token


@gpu
def logit_lens(request: dict, top_k: int = 5) -> dict:
    """The top tokens each layer would predict for the position after prompt + completion."""
    from attribution import logit_lens as lens

    engine, req = _checked(request)
    prompt, _ = engine.prompt_ids(req)
    rows = lens(engine.loaded, (*prompt, *req.completion_ids), top_k=int(top_k))
    return {"layers": [row.as_dict() for row in rows]}
