"""The gate every operation puts its request through first: the request model, then the hand parser.

The model decides what is accepted (it is what the published schema states); the hand parser (decoding.request
and the kinds' own readers) turns the request into the engine's dataclasses, checks what spans fields or needs
the budgets, and words each refusal precisely. So a body the model refuses is answered with the hand parser's
message where it has one for it, else with the model's one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from service.contract.messages import one_line

T = TypeVar("T")


def parse(model: type[BaseModel], request: object, hand: Callable[[object], T]) -> T:
    """`hand(request)` once `model` accepts the request; a one-line ValueError otherwise."""
    try:
        model.model_validate(request)
    except ValidationError as exc:
        hand(request)  # raises the precise message where the hand parser refuses it too
        raise ValueError(one_line(exc)) from None
    return hand(request)
