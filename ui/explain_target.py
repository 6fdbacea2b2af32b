"""What Explain explains: a position of the current branch, its token, and the candidate and foil picked there.

The position is the inspected token, else the last completion token, else the next token. A picker's
value carries the position it was picked at (`<position key>:<token id>`), so a pick never outlives
its position: when the position, the branch, the prompt or the model changes, the view draws both
pickers afresh (the token there, no foil), and a stored pick of another position (an old session
file, an old setting) reads as no pick. The pickers show token text, never a bare id; methods that
take no foil (the attribution registry says which) get the foil picker disabled, with the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import gradio as gr

from service.public import ATTRIBUTION_METHODS

from .controls import Controls
from .request import fingerprint, model_id, prompt_request
from .state import Session

PICKERS = ("explain_token", "contrast_token")  # the controls that hold a pick; the view draws them
NO_FOIL_REASONS = {m.name: m.no_foil_reason for m in ATTRIBUTION_METHODS if not m.accepts_foil}
FOIL_LABEL = "Why this token rather than … (a foil from the candidates there)"
TARGET_LABEL = "Explain: the token at the position, or another candidate there"


@dataclass(frozen=True)
class Position:
    """The explained position: its completion index, the token there (a pill) and the candidates in force there."""

    index: int
    key: str  # the branch, its tokens, the position and the model, hashed: what a pick belongs to
    token: dict | None  # the token there; at the next token, the most likely candidate; None if nothing names one
    candidates: tuple[dict, ...]  # the distribution's rows there (the token there among them)
    upcoming: bool  # the next token, not yet chosen


def position_key(session: Session, controls: Controls) -> str:
    """The key of the position Explain explains now (no model work)."""
    text = fingerprint(model_id(), prompt_request(session, controls), session.inspect)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def position(session: Session, controls: Controls, next_dist: dict | None) -> Position:
    """The explained position; `next_dist` is the next token's distribution (used when the completion is empty)."""
    meta, at = session.branch.meta, session.inspect
    key = position_key(session, controls)
    if at is None and not session.branch.ids:
        rows = tuple((next_dist or {}).get("tokens", []))
        return Position(0, key, rows[0] if rows else None, rows, upcoming=True)
    at = len(session.branch.ids) - 1 if at is None else at
    record = meta[at] if at < len(meta) else {}
    rows = tuple((record.get("dist") or {}).get("tokens", []))
    return Position(at, key, record.get("token"), rows, upcoming=False)


def picked(value: str, key: str) -> int | None:
    """The token id of a pick made at the position `key`; None for no pick or a pick of another position."""
    where, _, token = (value or "").partition(":")
    return int(token) if where == key and token.isdigit() else None


def target_choices(at: Position) -> list[tuple[str, str]]:
    where = "(the most likely next token)" if at.upcoming else "(the token there)"
    return [(f"{at.token['display']} {where}" if at.token else where, ""), *_candidates(at)]


def foil_choices(at: Position) -> list[tuple[str, str]]:
    name = at.token["display"] if at.token else "this token"
    return [(f"(none: why {name} at all)", ""), *_candidates(at)]


def _candidates(at: Position) -> list[tuple[str, str]]:
    """Every candidate there but its token, by text and probability; the value names the position."""
    chosen = at.token["id"] if at.token else None
    return [(f"{r['display']} ({r['p_base']:.1%})", f"{at.key}:{r['id']}") for r in at.candidates if r["id"] != chosen]


def pickers_key(at: Position, controls: Controls) -> str:
    """What the pickers are drawn from: the position, its candidates, and whether the method takes a foil."""
    rows = [(r["id"], r["p_base"]) for r in at.candidates]
    return fingerprint(at.key, at.token, rows, controls.attribution_method in NO_FOIL_REASONS)


def target_picker(at: Position, controls: Controls) -> gr.Dropdown:
    """The target picker for this position: the pick kept only while it belongs here, else the token there."""
    choices = target_choices(at)
    return gr.Dropdown(choices=choices, value=_kept(controls.explain_token, choices))


def foil_picker(at: Position, controls: Controls) -> gr.Dropdown:
    """The foil picker for this position; disabled (no foil) under a method that takes none, saying why."""
    reason = NO_FOIL_REASONS.get(controls.attribution_method)
    if reason:
        label = f"Why this token rather than … (no foil with this method: {reason}; pick another method for one)"
        return gr.Dropdown(choices=foil_choices(at)[:1], value="", interactive=False, label=label)
    choices = foil_choices(at)
    return gr.Dropdown(
        choices=choices, value=_kept(controls.contrast_token, choices), interactive=True, label=FOIL_LABEL
    )


def inside_foil_picker(at: Position, controls: Controls) -> gr.Dropdown:
    """The "Inside the model" foil picker for this position: none, or a candidate there (a pick kept while it
    belongs here)."""
    choices = [("(none: the most likely other candidate when patching)", ""), *_candidates(at)]
    return gr.Dropdown(choices=choices, value=_kept(controls.inside_foil, choices))


def _kept(value: str, choices: list[tuple[str, str]]) -> str:
    return value if value and value in {v for _, v in choices} else ""
