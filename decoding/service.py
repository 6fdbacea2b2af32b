"""JSON in, JSON out: the operations behind the API endpoints and the UI, on the shared model.

Each function validates its request completely before touching anything, so a bad request raises
ValueError and leaves the caller's state as it was.
"""

from __future__ import annotations

from .engine import engine_for
from .model import STORE


def model_status() -> dict:
    return STORE.status().as_dict()


def load_model(model_id: str) -> dict:
    """Switch the shared model; on failure the previous model stays and ValueError names the reason."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError(f"model id {model_id!r} is empty: give a Hugging Face id, a local folder or 'embedded'")
    return STORE.load(model_id).as_dict()


def preview(request: dict) -> dict:
    engine = engine_for(STORE.get())
    return engine.preview(engine.request(request)).as_dict()


def step(request: dict) -> dict:
    """One step: choose a token, or append `force_token_id`, or the tokens of `force_text`."""
    engine = engine_for(STORE.get())
    req = engine.request(request)
    force_id = request.get("force_token_id")
    force_text = request.get("force_text")
    if force_id is not None and force_text is not None:
        raise ValueError("give either force_token_id or force_text, not both")
    return engine.step(req, force_token_id=force_id, force_text=force_text).as_dict()
