"""Decoding parameters, constraint specification and presets, validated with clear errors.

Every validation error is a ValueError whose message names the field, the bad value and the
accepted range; callers turn it into a user-facing message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from decoding import fields as parse
from decoding.sampling import llama_samplers as ls
from decoding.sampling.knobs import RANGES as KNOB_RANGES

CONSTRAINT_TYPES = ("multiple_choice", "regex", "cfg", "json_schema")
MAX_SEED = 2**63 - 1
SEED_RANGE = "an integer from 0 to 2**63-1, or null"
TOP_P_RANGE = "0 < top_p <= 1"
REPETITION_RANGE = "0.01 to 10 (1 means off)"
# Below this a temperature (or a repetition penalty, which also divides logits) overflows float32 logits to inf.
MIN_DIVISOR = 0.01
TEMPERATURE_RANGE = f"0 (greedy) or {MIN_DIVISOR} to 100"
# name: (low, high, low excluded, accepted) of each numeric knob
NUMBER_RANGES = {
    "temperature": (0.0, 100.0, False, TEMPERATURE_RANGE),
    "top_p": (0.0, 1.0, True, TOP_P_RANGE),
    "repetition_penalty": (MIN_DIVISOR, 10.0, False, REPETITION_RANGE),
    "presence_penalty": (-2.0, 2.0, False, "-2 to 2 (0 means off)"),
    "frequency_penalty": (-2.0, 2.0, False, "-2 to 2 (0 means off)"),
}
# The samplers' ranges (integer knobs among them), from the modules that define the samplers.
SAMPLER_RANGES = {**KNOB_RANGES, **ls.RANGES}
MAX_SEQUENCE_BREAKERS = 16  # each new breaker list scans the vocabulary once (about 70 ms a breaker)
# The stages `sampler_order` arranges; penalties, DRY and the constraint mask always come first, in that order.
SAMPLER_STAGES = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "top_n_sigma",
    "epsilon_cutoff",
    "eta_cutoff",
    "xtc",
)
SAMPLER_ORDERS = {
    # transformers' warper order (as its generate() builds them), then the two samplers it has none of, last:
    # top-n-sigma before XTC, as in llama.cpp.
    "transformers": (
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "epsilon_cutoff",
        "eta_cutoff",
        "top_n_sigma",
        "xtc",
    ),
    # llama.cpp's default chain (top-n-sigma, top-k, typical, top-p, min-p, XTC, temperature); it has no
    # epsilon or eta cutoff: they go beside min-p, the other cutoff on probabilities.
    "llama.cpp": (
        "top_n_sigma",
        "top_k",
        "typical_p",
        "top_p",
        "min_p",
        "epsilon_cutoff",
        "eta_cutoff",
        "xtc",
        "temperature",
    ),
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
    top_k: int = 0
    min_p: float = 0.0
    typical_p: float = 1.0
    top_n_sigma: float = 0.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    xtc_threshold: float = 0.1
    xtc_probability: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = ls.DRY_BASE
    dry_allowed_length: int = ls.DRY_ALLOWED_LENGTH
    dry_penalty_last_n: int = ls.DRY_PENALTY_LAST_N
    dry_sequence_breakers: tuple[str, ...] = ls.DRY_SEQUENCE_BREAKERS
    sampler_order: str | tuple[str, ...] = "transformers"

    def __post_init__(self) -> None:
        parse.boolean("greedy", self.greedy, False)
        for name, (low, high, low_open, accepted) in NUMBER_RANGES.items():
            value = parse.number(name, getattr(self, name), accepted)
            if value < low or value > high or (low_open and value == low):
                raise ValueError(f"{name} {getattr(self, name)!r} is out of range: accepted is {accepted}")
            object.__setattr__(self, name, value)  # 1 and 1.0 are the same knob value (and the same cache key)
        if 0.0 < self.temperature < MIN_DIVISOR:
            raise ValueError(f"temperature {self.temperature!r} is out of range: accepted is {TEMPERATURE_RANGE}")
        if self.seed is not None:
            object.__setattr__(self, "seed", parse.integer("seed", self.seed, 0, MAX_SEED, SEED_RANGE))
        if not isinstance(self.stop_sequences, tuple):
            raise ValueError(f"stop_sequences {self.stop_sequences!r} must be a tuple of non-empty strings")
        parse.texts("stop_sequences", self.stop_sequences)
        for name, accepted in SAMPLER_RANGES.items():
            value = getattr(self, name)  # exact types first (booleans, NaN, huge integers), then the range
            if accepted.integer:
                value = parse.integer(name, value, accepted=accepted.accepted)
            parse.number(name, value, accepted.accepted)
            object.__setattr__(self, name, accepted.check(name, value))
        _check_breakers(self.dry_sequence_breakers)
        object.__setattr__(self, "sampler_order", check_sampler_order(self.sampler_order))

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0

    @property
    def stage_order(self) -> tuple[str, ...]:
        """The nine sampler stages in the order applied (a named order resolved)."""
        return SAMPLER_ORDERS.get(self.sampler_order, self.sampler_order)

    @property
    def active_samplers(self) -> tuple[str, ...]:
        """The sampler stages that are on, in the order applied; temperature is off when greedy (and at 1)."""
        on = {
            "temperature": not self.is_greedy and self.temperature != 1.0,
            "top_k": self.top_k > 0,
            "top_p": self.top_p < 1.0,
            "min_p": self.min_p > 0.0,
            "typical_p": self.typical_p < 1.0,
            "top_n_sigma": self.top_n_sigma > 0.0,
            "epsilon_cutoff": self.epsilon_cutoff > 0.0,
            "eta_cutoff": self.eta_cutoff > 0.0,
            "xtc": self.xtc_probability > 0.0,
        }
        return tuple(name for name in self.stage_order if on[name])

    @property
    def penalties_on(self) -> bool:
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    @property
    def dry_on(self) -> bool:
        return self.dry_multiplier > 0.0 and self.dry_penalty_last_n != 0

    @classmethod
    def from_dict(cls, data: object) -> DecodingParams:
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


def check_sampler_order(value: object) -> str | tuple[str, ...]:
    """A named order ("transformers", "llama.cpp") or a tuple naming each sampler stage exactly once."""
    named = " or ".join(repr(name) for name in SAMPLER_ORDERS)
    accepted = f"{named}, or a list naming each of {', '.join(SAMPLER_STAGES)} once"
    if isinstance(value, str):
        if value not in SAMPLER_ORDERS:
            raise ValueError(f"sampler_order {parse.shown(value)} is not a named order: accepted is {accepted}")
        return value
    if not isinstance(value, tuple):
        raise ValueError(f"sampler_order must be {accepted}; got {parse.type_name(value)} {parse.shown(value)}")
    for i, name in enumerate(value):
        if not isinstance(name, str) or name not in SAMPLER_STAGES:
            raise ValueError(f"sampler_order[{i}] {parse.shown(name)} is not a sampler stage: accepted is {accepted}")
        if name in value[:i]:
            raise ValueError(f"sampler_order names {name!r} twice: accepted is {accepted}")
    missing = [name for name in SAMPLER_STAGES if name not in value]
    if missing:
        raise ValueError(f"sampler_order misses {', '.join(missing)}: accepted is {accepted}")
    return value


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
