"""What a sampling stage is: its parameters (type, range, default, off value, error text, slider), when it is
on, the function that applies it, its reference; and `Registry`, the stages with their named orders.

The registry itself, one entry per stage, is in `registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

import torch

from decoding import fields as parse
from decoding.sampling import llama_samplers as ls


@dataclass(frozen=True)
class Slider:
    """A parameter's slider in the UI; its ends lie within the accepted range (narrower where that is wide)."""

    label: str
    step: float
    low: float
    high: float


@dataclass(frozen=True)
class Param:
    """One numeric parameter of a stage: its type, accepted range, default, the value that turns it off
    (None when it alone turns nothing off), the `accepted` text of its error messages and its slider.

    `high` None is no upper bound. `nonzero_low`, when set, also refuses 0 < value < nonzero_low.
    """

    name: str
    type: type[int] | type[float]
    low: float
    high: float | None
    default: float
    off: float | None
    accepted: str
    slider: Slider
    low_open: bool = False
    high_open: bool = False
    nonzero_low: float | None = None

    def accepts(self, value: float) -> bool:
        """Whether a number lies in the accepted range."""
        above = value > self.low or (value == self.low and not self.low_open)
        below = self.high is None or value < self.high or (value == self.high and not self.high_open)
        gap = self.nonzero_low is not None and 0 < value < self.nonzero_low
        return above and below and not gap

    def check(self, value: object) -> int | float:
        """The value as the parameter's type, or a one-line ValueError naming it, the value and the range."""
        if self.type is int:  # exact types first (booleans, NaN, huge integers), then the range
            value = parse.integer(self.name, value, accepted=self.accepted)
        number = parse.number(self.name, value, self.accepted)
        if not self.accepts(value):
            raise ValueError(f"{self.name} {value!r} is out of range: accepted is {self.accepted}")
        return int(value) if self.type is int else number


@dataclass(frozen=True)
class ParamSchema:
    """One parameter as an API schema needs it; `high` None is no upper bound."""

    name: str
    type: type[int] | type[float]
    low: float
    high: float | None
    low_open: bool
    high_open: bool
    default: float
    accepted: str


@dataclass(frozen=True)
class Inputs:
    """What a stage reads besides the logits and the params: the position's context, breakers and XTC draw."""

    context_ids: Sequence[int]
    completion_ids: Sequence[int]
    breakers: ls.Breakers
    xtc_draw: float


# logits, their probabilities, the params, the inputs -> new logits (or, for "keeps", the kept tokens)
Apply = Callable[[torch.Tensor, torch.Tensor, Any, Inputs], torch.Tensor]


@dataclass(frozen=True)
class Stage:
    """One stage of the chain. `effect`: "moves" changes logits and removes nothing (penalties, DRY,
    temperature), "removes" returns logits with the removed tokens at -inf, "keeps" returns the kept tokens as
    a bool mask (the chain renormalises within it). `fixed` stages run first, in registry order, before the
    constraint mask; the others run in the params' `sampler_order`."""

    name: str
    params: tuple[Param, ...]
    is_on: Callable[[Any], bool]
    apply: Apply
    reference: str
    effect: Literal["moves", "removes", "keeps"] = "removes"
    fixed: bool = False


@dataclass(frozen=True)
class Registry:
    """The stages (those `sampler_order` arranges, then the fixed ones) and the named sampler orders."""

    stages: tuple[Stage, ...]
    orders: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names {names} repeat: accepted is each stage once")
        for name, order in self.orders.items():
            if sorted(order) != sorted(self.ordered):  # each named order arranges every stage once
                raise ValueError(f"sampler order {name!r} {order} is not accepted: it must name {self.ordered} once")

    @property
    def ordered(self) -> tuple[str, ...]:
        """The stages `sampler_order` arranges, in registry order."""
        return tuple(stage.name for stage in self.stages if not stage.fixed)

    @property
    def fixed(self) -> tuple[str, ...]:
        """The stages that always run first (before the constraint mask), in registry order."""
        return tuple(stage.name for stage in self.stages if stage.fixed)

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(param for stage in self.stages for param in stage.params)

    @cached_property
    def stage(self) -> Mapping[str, Stage]:
        """Each stage by name."""
        return MappingProxyType({stage.name: stage for stage in self.stages})

    @cached_property
    def param(self) -> Mapping[str, Param]:
        """Each parameter by name."""
        return MappingProxyType({param.name: param for stage in self.stages for param in stage.params})

    def stage_order(self, sampler_order: str | tuple[str, ...]) -> tuple[str, ...]:
        """The arranged stages in the order applied (a named order resolved)."""
        return self.orders[sampler_order] if isinstance(sampler_order, str) else sampler_order

    def active(self, params: Any) -> tuple[Stage, ...]:
        """The stages that are on, in the order applied: the fixed ones, then those of `params.sampler_order`."""
        arranged = [self.stage[name] for name in self.stage_order(params.sampler_order)]
        return tuple(stage for stage in (*(s for s in self.stages if s.fixed), *arranged) if stage.is_on(params))

    def schema(self) -> tuple[ParamSchema, ...]:
        """Each parameter's name, type, range, default and accepted text, for an API schema."""
        return tuple(
            ParamSchema(p.name, p.type, p.low, p.high, p.low_open, p.high_open, p.default, p.accepted)
            for p in self.params
        )
