"""Decoding parameters, constraint specification and presets, validated with clear errors.

Every validation error is a ValueError whose message names the field, the bad value and the
accepted range; callers turn it into a user-facing message.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

CONSTRAINT_TYPES = ("multiple_choice", "regex", "cfg", "json_schema")
MAX_SEED = 2**63 - 1
SEED_RANGE = "an integer from 0 to 2**63-1, or null"
TOP_P_RANGE = "0 < top_p <= 1"
REPETITION_RANGE = "0 < value <= 10 (1 means off)"


@dataclass(frozen=True)
class DecodingParams:
    """The sampling knobs of one step, in the order the pipeline applies them."""

    greedy: bool = False
    temperature: float = 0.7
    top_p: float = 0.8
    repetition_penalty: float = 1.05
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop_sequences: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_range("temperature", self.temperature, 0.0, 100.0, "0 to 100 (0 means greedy)")
        if not (0.0 < _number("top_p", self.top_p, TOP_P_RANGE) <= 1.0):
            raise ValueError(f"top_p {self.top_p!r} is out of range: accepted is {TOP_P_RANGE}")
        if not (0.0 < _number("repetition_penalty", self.repetition_penalty, REPETITION_RANGE) <= 10.0):
            raise ValueError(
                f"repetition_penalty {self.repetition_penalty!r} is out of range: accepted is {REPETITION_RANGE}"
            )
        _check_range("presence_penalty", self.presence_penalty, -2.0, 2.0, "-2 to 2 (0 means off)")
        _check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0, "-2 to 2 (0 means off)")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED
        ):
            raise ValueError(f"seed {self.seed!r} is not accepted: use {SEED_RANGE}")
        if not all(isinstance(s, str) and s for s in self.stop_sequences):
            raise ValueError(f"stop_sequences {list(self.stop_sequences)!r} must be non-empty strings")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0

    @classmethod
    def from_dict(cls, data: dict | None) -> DecodingParams:
        """Build from a JSON-like dict; unknown keys are refused, missing ones take defaults."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown params {unknown}: accepted are {sorted(known)}")
        if "seed" in data and data["seed"] is not None:
            data["seed"] = _integer("seed", data["seed"], SEED_RANGE)
        stops = data.get("stop_sequences") or ()
        if isinstance(stops, str):
            stops = [stops]
        if not isinstance(stops, list | tuple):
            raise ValueError(f"stop_sequences {stops!r} must be a list of non-empty strings")
        data["stop_sequences"] = tuple(stops)
        if "greedy" in data:
            data["greedy"] = bool(data["greedy"])
        return cls(**data)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["stop_sequences"] = list(self.stop_sequences)
        return out


@dataclass(frozen=True)
class ConstraintSpec:
    """A grammar constraint: multiple choice (one option per line), regex, Lark CFG or JSON schema."""

    enabled: bool = False
    type: str = "regex"
    schema: str = ""

    def __post_init__(self) -> None:
        if self.type not in CONSTRAINT_TYPES:
            raise ValueError(f"constraint type {self.type!r} is unknown: accepted are {list(CONSTRAINT_TYPES)}")
        if not isinstance(self.schema, str):
            raise ValueError(f"constraint schema must be text, got {type(self.schema).__name__}")

    @property
    def active(self) -> bool:
        return self.enabled

    @classmethod
    def from_dict(cls, data: dict | None) -> ConstraintSpec:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown constraint fields {unknown}: accepted are {sorted(known)}")
        data["enabled"] = bool(data.get("enabled", False))
        data["schema"] = data.get("schema") or ""
        data.setdefault("type", "regex")
        return cls(**data)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    params: DecodingParams = field(default_factory=DecodingParams)


def _number(name: str, value: object, accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} {value!r} is not a finite number: accepted is {accepted}")
    return float(value)


def _integer(name: str, value: object, accepted: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} {value!r} is not an integer: accepted is {accepted}")
    return value


def _check_range(name: str, value: object, low: float, high: float, accepted: str) -> None:
    if not low <= _number(name, value, accepted) <= high:
        raise ValueError(f"{name} {value!r} is out of range: accepted is {accepted}")


def check_top_k(top_k: object, vocab_size: int) -> int:
    """top_k rows to display: an integer from 1 to the vocabulary size."""
    accepted = f"1 to {vocab_size} (the vocabulary size)"
    value = _integer("top_k", top_k, accepted)
    if not 1 <= value <= vocab_size:
        raise ValueError(f"top_k {top_k!r} is out of range: accepted is {accepted}")
    return value


def check_token_ids(name: str, ids: object, vocab_size: int) -> tuple[int, ...]:
    """A list of integer token ids, each in [0, vocab_size)."""
    if not isinstance(ids, list | tuple):
        raise ValueError(f"{name} {ids!r} must be a list of integer token ids")
    accepted = f"0 to {vocab_size - 1}"
    out = []
    for i, raw in enumerate(ids):
        try:
            value = _integer(f"{name}[{i}]", raw, accepted)
        except ValueError:
            raise ValueError(f"{name}[{i}] = {raw!r} is not an integer token id: accepted is {accepted}") from None
        if not 0 <= value < vocab_size:
            raise ValueError(f"{name}[{i}] = {raw!r} is outside the vocabulary: accepted is {accepted}")
        out.append(value)
    return tuple(out)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "greedy",
            "Always the most likely token: deterministic.",
            DecodingParams(greedy=True, temperature=0.0, top_p=1.0, repetition_penalty=1.0),
        ),
        Preset(
            "balanced", "A good default for chat.", DecodingParams(temperature=0.7, top_p=0.8, repetition_penalty=1.05)
        ),
        Preset(
            "reliable",
            "Focused and factual: low temperature, narrow nucleus.",
            DecodingParams(temperature=0.3, top_p=0.5, repetition_penalty=1.1),
        ),
        Preset(
            "creative",
            "Varied and surprising: hot, wide nucleus, discourages repeats.",
            DecodingParams(
                temperature=1.1, top_p=0.95, repetition_penalty=1.0, presence_penalty=0.4, frequency_penalty=0.2
            ),
        ),
    )
}
