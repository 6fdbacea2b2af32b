"""The constraint's state on screen: fine, not valid, or not matched by the completion so far.

A constraint the engine refuses (a regex it cannot compile, or a completion it does not allow) must not
block the actions that do not need it: editing the prompt, clearing, deleting, rewinding and switching
branches draw the distribution without the constraint and say so, and the constraint panel keeps a line
saying what is wrong until it is fixed or turned off; Compare compares the branches without it and says so
too. Step and the look-ahead tree, which show what the constraint lets through, are refused with the same
explanation (`needing`). The problem travels with the result the view draws (`PROBLEM`), so every redraw
updates it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from service import operations as service

from .wording import on_screen

PROBLEM = "constraint_problem"  # the key of a shown result that carries its constraint's problem
TYPE_WORDS = {"regex": "regex", "cfg": "grammar", "json_schema": "JSON schema", "multiple_choice": "list of options"}
INVALID = " is invalid: "  # how the engine's message on a constraint it cannot compile goes on to the reason
MISMATCH = "The completion so far does not match this constraint: clear the completion, or keep it and turn the"
MISMATCH += " constraint off"
# the engine's words on the first completion token the constraint refuses (its index counts from 0)
_REFUSED_TOKEN = re.compile(r"completion token (\d+) \((.*), id \d+\) is not allowed by the .+? constraint after (.*)")


@dataclass(frozen=True)
class Problem:
    """Why the constraint cannot be used here: `invalid` (the constraint itself) or not (the completion so far)."""

    invalid: bool
    kind: str  # the constraint's type, as the request names it
    reason: str  # the engine's one line

    def _what(self) -> str:
        return TYPE_WORDS.get(self.kind, "constraint")

    def _detail(self) -> str:
        """The engine's reason without its own "<type> '<text>' is invalid: " preamble (the panel shows the text);
        a refused token is counted from 1, as the token view does."""
        token = _REFUSED_TOKEN.fullmatch(self.reason)
        if token is None:
            return on_screen(self.reason.split(INVALID, 1)[-1])
        where = "at its start" if token[3] in ("''", '""') else f"after {token[3]}"
        return f"its token {int(token[1]) + 1}, {token[2]}, is not allowed {where}"

    @property
    def panel_line(self) -> str:
        """The constraint panel's line, next to the field."""
        if self.invalid:
            return f"This {self._what()} is not valid: {self._detail()}. Fix it or turn the constraint off."
        return f"{MISMATCH} ({self._detail()})."

    def refusal(self, action: str) -> str:
        """Why an action that needs the constraint (Step, auto-step, force, Look ahead) is refused."""
        if not self.invalid:
            return self.panel_line
        what = f"the {self._what()} is not valid ({self._detail()})"
        return f"{action} needs a valid constraint: {what}. Fix it in the Constraint panel or turn the constraint off."

    @property
    def note(self) -> str:
        """The status line's note on the distribution drawn without the constraint."""
        why = "constraint invalid" if self.invalid else "the completion does not match the constraint"
        return f"{why} (see the Constraint panel): showing the model without it"


def without(request: dict) -> dict:
    """The request with its constraint turned off (as set otherwise: turning it on again restores it)."""
    return request | {"constraint": request["constraint"] | {"enabled": False}}


def despite(show: Callable[[dict], dict], request: dict) -> tuple[dict, Problem | None]:
    """`show(request)`; when only the constraint refuses it, `show` without the constraint and the problem.

    A refusal that has nothing to do with the constraint is raised as before (by the call without it).
    """
    try:
        return show(request), None
    except ValueError as exc:
        if not request["constraint"].get("enabled"):
            raise
        result = show(without(request))
        return result, _classified(request, str(exc))


def needing(action: str, run: Callable[[], dict], show: Callable[[dict], dict], request: dict) -> dict:
    """`run()`, an action that needs the constraint of `request`; when the constraint is what refuses it (as `show`
    finds at the request's position), it is refused in the words of the screen, naming the Constraint panel."""
    try:
        return run()
    except ValueError as exc:
        problem = diagnose(show, request)
        if problem is None:
            raise
        raise ValueError(problem.refusal(action)) from exc


def diagnose(show: Callable[[dict], dict], request: dict) -> Problem | None:
    """The constraint's problem at the request's position, or None when it is off or `show` accepts the request."""
    if not request["constraint"].get("enabled"):
        return None
    _, problem = despite(show, request)
    return problem


def _classified(request: dict, reason: str) -> Problem:
    """Whether the constraint itself is at fault: it allows no first token, or cannot be compiled at all."""
    kind = request["constraint"].get("type", "")
    try:
        service.constraint_start(request)
    except ValueError as own:
        return Problem(True, kind, str(own))
    return Problem(False, kind, reason)


def note_html(problem: Problem | None) -> str:
    """A panel's note that it shows the model without the constraint (HTML); empty when the constraint is fine."""
    return f'<p class="nt-constraint-note">⚠ {escape(problem.note)}.</p>' if problem else ""


def panel_line(result: dict) -> str:
    """The constraint panel's line (HTML) for a shown result: empty when its constraint is fine or off."""
    problem = result.get(PROBLEM)
    return f'<p class="nt-constraint-problem" role="alert">⚠ {escape(problem.panel_line)}</p>' if problem else ""
