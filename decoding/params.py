"""Decoding parameters, constraint specification and presets, validated with clear errors.

Every validation error is a ValueError whose message names the field, the bad value and the
accepted range; callers turn it into a user-facing message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from . import fields as parse

CONSTRAINT_TYPES = ("multiple_choice", "regex", "cfg", "json_schema")
MAX_SEED = 2**63 - 1
SEED_RANGE = "an integer from 0 to 2**63-1, or null"
TOP_P_RANGE = "0 < top_p <= 1"
REPETITION_RANGE = "0 < value <= 10 (1 means off)"
# name: (low, high, low excluded, accepted) of each numeric knob
NUMBER_RANGES = {
    "temperature": (0.0, 100.0, False, "0 to 100 (0 means greedy)"),
    "top_p": (0.0, 1.0, True, TOP_P_RANGE),
    "repetition_penalty": (0.0, 10.0, True, REPETITION_RANGE),
    "presence_penalty": (-2.0, 2.0, False, "-2 to 2 (0 means off)"),
    "frequency_penalty": (-2.0, 2.0, False, "-2 to 2 (0 means off)"),
}


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
        parse.boolean("greedy", self.greedy, False)
        for name, (low, high, low_open, accepted) in NUMBER_RANGES.items():
            value = parse.number(name, getattr(self, name), accepted)
            if value < low or value > high or (low_open and value == low):
                raise ValueError(f"{name} {getattr(self, name)!r} is out of range: accepted is {accepted}")
            object.__setattr__(self, name, value)  # 1 and 1.0 are the same knob value (and the same cache key)
        if self.seed is not None:
            object.__setattr__(self, "seed", parse.integer("seed", self.seed, 0, MAX_SEED, SEED_RANGE))
        if not isinstance(self.stop_sequences, tuple):
            raise ValueError(f"stop_sequences {self.stop_sequences!r} must be a tuple of non-empty strings")
        parse.texts("stop_sequences", self.stop_sequences)

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0

    @classmethod
    def from_dict(cls, data: object) -> DecodingParams:
        """Build from a JSON object (null: all defaults); unknown keys are refused, missing ones take defaults."""
        data = parse.obj("params", data, [f.name for f in fields(cls)])
        values = {name: value for name, value in data.items() if value is not None}
        if "stop_sequences" in values:
            values["stop_sequences"] = parse.texts("stop_sequences", values["stop_sequences"])
        return cls(**values)

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
        parse.boolean("constraint enabled", self.enabled, False)
        if self.type not in CONSTRAINT_TYPES:
            raise ValueError(f"constraint type {self.type!r} is unknown: accepted are {list(CONSTRAINT_TYPES)}")
        parse.text("constraint schema", self.schema)

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
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    params: DecodingParams = field(default_factory=DecodingParams)


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
