"""What the engine answers: a preview or a step's Result, and the Choice record of each appended token."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Choice:
    """How one appended token was chosen, with the distribution in force at that moment."""

    token: dict
    how: str
    dist: dict | None
    draw: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Result:
    """A preview (appended empty) or a step's outcome."""

    prompt_tokens: list[dict]
    completion_tokens: list[dict]
    completion_ids: list[int]
    completion_text: str
    dist: dict | None
    finished: bool
    finish_reason: str | None
    context_length: int
    notice: str = ""
    appended: list[dict] = field(default_factory=list)
    appended_meta: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)
