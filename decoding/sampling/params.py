"""Decoding parameters, constraint specification and checks, validated with clear errors.

`DecodingParams` has the settings that are no stage's knob (`Settings`) and one field per parameter of the
registry's stages (see `registry`), which also gives each one's type, default, range and accepted text.
Every validation error is a ValueError whose message names the field, the bad value and the accepted
range; callers turn it into a user-facing message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import ClassVar

from decoding import fields as parse
from decoding.sampling import llama_samplers as ls
from decoding.sampling.registry import REGISTRY
from decoding.sampling.stage import Registry

CONSTRAINT_TYPES = ("multiple_choice", "regex", "cfg", "json_schema")
MAX_SEED = 2**63 - 1
SEED_RANGE = "an integer from 0 to 2**63-1, or null"
MAX_SEQUENCE_BREAKERS = 16  # each new breaker list scans the vocabulary once (about 70 ms a breaker)
# The stages `sampler_order` arranges; penalties, DRY and the constraint mask always come first, in that order.
SAMPLER_STAGES = REGISTRY.ordered
SAMPLER_ORDERS = REGISTRY.orders


@dataclass(frozen=True)
class Settings:
    """The settings of one step that are no stage's knob; `DecodingParams` adds a field per knob of `registry`."""

    registry: ClassVar[Registry] = REGISTRY
    greedy: bool = False
    seed: int | None = None
    stop_sequences: tuple[str, ...] = ()
    dry_sequence_breakers: tuple[str, ...] = ls.DRY_SEQUENCE_BREAKERS
    sampler_order: str | tuple[str, ...] = "transformers"

    def __post_init__(self) -> None:
        parse.boolean("greedy", self.greedy, False)
        for param in self.registry.params:  # 1 and 1.0 are the same knob value (and the same cache key)
            object.__setattr__(self, param.name, param.check(getattr(self, param.name)))
        if self.seed is not None:
            object.__setattr__(self, "seed", parse.integer("seed", self.seed, 0, MAX_SEED, SEED_RANGE))
        if not isinstance(self.stop_sequences, tuple):
            raise ValueError(f"stop_sequences {self.stop_sequences!r} must be a tuple of non-empty strings")
        parse.texts("stop_sequences", self.stop_sequences)
        _check_breakers(self.dry_sequence_breakers)
        object.__setattr__(self, "sampler_order", check_sampler_order(self.sampler_order, self.registry))

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0

    @property
    def stage_order(self) -> tuple[str, ...]:
        """The stages `sampler_order` arranges, in the order applied (a named order resolved)."""
        return self.registry.stage_order(self.sampler_order)

    @property
    def active_samplers(self) -> tuple[str, ...]:
        """The arranged stages that are on, in the order applied; temperature is off when greedy (and at 1)."""
        return tuple(stage.name for stage in self.registry.active(self) if not stage.fixed)

    @property
    def penalties_on(self) -> bool:
        return self.registry.stage["penalties"].is_on(self)

    @property
    def dry_on(self) -> bool:
        return self.registry.stage["dry"].is_on(self)

    @classmethod
    def from_dict(cls, data: object) -> Settings:
        """Build from a JSON object (null: all defaults); unknown keys are refused, missing ones take defaults."""
        data = parse.obj("params", data, [f.name for f in fields(cls)])
        values = {name: value for name, value in data.items() if value is not None}
        for name in ("stop_sequences", "dry_sequence_breakers"):
            if name in values:
                values[name] = parse.texts(name, values[name])
        if isinstance(values.get("sampler_order"), list):
            values["sampler_order"] = tuple(values["sampler_order"])
        return cls(**values)

    def as_dict(self) -> dict:
        out = asdict(self)
        for name in ("stop_sequences", "dry_sequence_breakers"):
            out[name] = list(out[name])
        if isinstance(self.sampler_order, tuple):
            out["sampler_order"] = list(self.sampler_order)
        return out


def params_class(registry: Registry) -> type[Settings]:
    """The frozen dataclass of a step's parameters: `Settings` and one field per parameter of the registry."""
    knobs = [(param.name, param.type, field(default=param.default)) for param in registry.params]
    doc = "The sampling knobs of one step: the settings, then each stage's parameters in registry order."
    namespace = {"registry": registry, "__module__": __name__, "__doc__": doc}
    return make_dataclass("DecodingParams", knobs, bases=(Settings,), frozen=True, namespace=namespace)


DecodingParams = params_class(REGISTRY)


def _check_breakers(breakers: object) -> None:
    """DRY's sequence breakers: a tuple of at most MAX_SEQUENCE_BREAKERS valid, non-empty, short strings."""
    if not isinstance(breakers, tuple):
        raise ValueError(f"dry_sequence_breakers {parse.shown(breakers)} must be a tuple of non-empty strings")
    parse.texts("dry_sequence_breakers", breakers)
    if len(breakers) > MAX_SEQUENCE_BREAKERS:
        raise ValueError(
            f"dry_sequence_breakers has {len(breakers)} entries: accepted is at most {MAX_SEQUENCE_BREAKERS}"
        )
    ls.check_sequence_breakers(breakers)


def check_sampler_order(value: object, registry: Registry = REGISTRY) -> str | tuple[str, ...]:
    """A named order ("transformers", "llama.cpp") or a tuple naming each arranged stage exactly once."""
    stages = registry.ordered
    named = " or ".join(repr(name) for name in registry.orders)
    accepted = f"{named}, or a list naming each of {', '.join(stages)} once"
    if isinstance(value, str):
        if value not in registry.orders:
            raise ValueError(f"sampler_order {parse.shown(value)} is not a named order: accepted is {accepted}")
        return value
    if not isinstance(value, tuple):
        raise ValueError(f"sampler_order must be {accepted}; got {parse.type_name(value)} {parse.shown(value)}")
    for i, name in enumerate(value):
        if not isinstance(name, str) or name not in stages:
            raise ValueError(f"sampler_order[{i}] {parse.shown(name)} is not a sampler stage: accepted is {accepted}")
        if name in value[:i]:
            raise ValueError(f"sampler_order names {name!r} twice: accepted is {accepted}")
    missing = [name for name in stages if name not in value]
    if missing:
        raise ValueError(f"sampler_order misses {', '.join(missing)}: accepted is {accepted}")
    return value


@dataclass(frozen=True)
class ConstraintSpec:
    """A grammar constraint: multiple choice (one option per line), regex, Lark CFG or JSON schema.

    `leading_space` (regex only) lets the output start with one optional space, the one a tokenizer puts before
    a word after a prompt; None decides by the regex: on for a ready-made pattern, off for any other.
    """

    enabled: bool = False
    type: str = "regex"
    schema: str = ""
    leading_space: bool | None = None

    def __post_init__(self) -> None:
        parse.boolean("constraint enabled", self.enabled, False)
        if self.type not in CONSTRAINT_TYPES:
            raise ValueError(f"constraint type {self.type!r} is unknown: accepted are {list(CONSTRAINT_TYPES)}")
        parse.text("constraint schema", self.schema)
        parse.boolean("constraint leading_space", self.leading_space, False)
        if self.leading_space and self.type != "regex":
            raise ValueError(
                f"constraint leading_space true applies to regex constraints only, not {self.type}: send false or"
                " leave it out (multiple-choice options carry their own leading spaces)"
            )

    @property
    def active(self) -> bool:
        return self.enabled

    @classmethod
    def from_dict(cls, data: object) -> ConstraintSpec:
        """Build from a JSON object (null: no constraint); null fields take their defaults."""
        data = parse.obj("constraint", data, [f.name for f in fields(cls)])
        return cls(
            enabled=parse.boolean("constraint enabled", data.get("enabled"), False),
            type=parse.choice("constraint type", data.get("type"), CONSTRAINT_TYPES, "regex"),
            schema=parse.string("constraint schema", data.get("schema")),
            leading_space=data.get("leading_space"),
        )

    def as_dict(self) -> dict:
        return asdict(self)


def check_top_k(top_k: object, vocab_size: int | None = None) -> int:
    """top_k rows to display: an integer from 1 to the vocabulary size (any size >= 1 when not known yet)."""
    accepted = f"1 to {vocab_size} (the vocabulary size)" if vocab_size else "an integer >= 1"
    return parse.integer("top_k", top_k, 1, vocab_size, accepted)


def check_token_ids(name: str, ids: object, vocab_size: int | None = None) -> tuple[int, ...]:
    """A list of integer token ids, each in [0, vocab_size) (any id >= 0 when the vocabulary is not known yet)."""
    if not isinstance(ids, list | tuple):
        raise ValueError(f"{name} {parse.shown(ids)} must be a list of integer token ids")
    high = vocab_size - 1 if vocab_size else None
    accepted = f"0 to {high}" if vocab_size else "an integer >= 0"
    out = []
    for i, raw in enumerate(ids):
        try:
            value = parse.integer(f"{name}[{i}]", raw)
        except ValueError:
            raise ValueError(
                f"{name}[{i}] = {parse.shown(raw)} is not an integer token id: accepted is {accepted}"
            ) from None
        if value < 0 or (high is not None and value > high):
            raise ValueError(f"{name}[{i}] = {parse.shown(raw)} is outside the vocabulary: accepted is {accepted}")
        out.append(value)
    return tuple(out)
