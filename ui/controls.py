"""Every knob and setting of the explorer by name: the typed `Controls` value that handlers receive.

Components are registered under the names of the dataclass fields, and an event reads them back by
those names (Gradio passes a set of inputs as a dict keyed by component), so reordering components
can never hand a value to the wrong knob. The same fields are what the browser settings store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from service.public import EXAMPLES, PRESETS, SAMPLER_ORDERS, DecodingParams, check_sampler_order

FLOAT_KNOBS = (
    "temperature", "top_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "min_p", "typical_p",
    "top_n_sigma", "epsilon_cutoff", "eta_cutoff", "xtc_threshold", "xtc_probability", "dry_multiplier", "dry_base",
)  # fmt: skip
INT_KNOBS = ("sample_top_k", "dry_allowed_length", "dry_penalty_last_n")
PARAM_FIELDS = (*FLOAT_KNOBS, *INT_KNOBS, "sampler_order")  # the sampling knobs a preset sets
API_NAMES = {"sample_top_k": "top_k"}  # `top_k` of the controls is the number of rows shown
NO_PRESET = "(none)"
CUSTOM = "custom"
_PARAMS = DecodingParams()  # the knobs start where the API's defaults are
ORDER_CHOICES = (*SAMPLER_ORDERS, CUSTOM)  # the named sampler orders, then the user's own (`custom_order`)


@dataclass(frozen=True)
class Controls:
    """The value of every control of the explorer, typed; defaults are what a new page shows."""

    prompt: str = "The capital of France is"
    system_prompt: str = ""
    use_chat_template: bool = False
    preset: str = "balanced"
    temperature: float = _PARAMS.temperature
    top_p: float = _PARAMS.top_p
    repetition_penalty: float = _PARAMS.repetition_penalty
    presence_penalty: float = _PARAMS.presence_penalty
    frequency_penalty: float = _PARAMS.frequency_penalty
    sample_top_k: int = _PARAMS.top_k
    min_p: float = _PARAMS.min_p
    typical_p: float = _PARAMS.typical_p
    top_n_sigma: float = _PARAMS.top_n_sigma
    epsilon_cutoff: float = _PARAMS.epsilon_cutoff
    eta_cutoff: float = _PARAMS.eta_cutoff
    xtc_threshold: float = _PARAMS.xtc_threshold
    xtc_probability: float = _PARAMS.xtc_probability
    dry_multiplier: float = _PARAMS.dry_multiplier
    dry_base: float = _PARAMS.dry_base
    dry_allowed_length: int = _PARAMS.dry_allowed_length
    dry_penalty_last_n: int = _PARAMS.dry_penalty_last_n
    sampler_order: str = "transformers"
    custom_order: str = ", ".join(SAMPLER_ORDERS["llama.cpp"])  # a list of the stages, used when the order is custom
    seed: str = ""
    top_k: int = 10
    stop_sequences: str = ""
    constraint_enabled: bool = False
    constraint_type: str = "regex"
    constraint_preset: str = NO_PRESET
    constraint_schema: str = EXAMPLES["regex"]
    llm_on: bool = True
    speed: float = 2.0
    max_steps: int = 64
    attribution_method: str = "attention"
    aggregation: str = "l2"
    granularity: str = "token"  # attribution per token, or summed per word
    explain_token: str = ""  # a candidate's token id to explain at the position, blank for the token there
    contrast_token: str = ""  # the foil's token id ("why the target rather than this?"), blank for none
    ig_steps: int = 16

    @classmethod
    def from_values(cls, values: dict) -> Controls:
        """Controls from values by field name; a missing or empty (None) value takes the default."""
        defaults = cls()
        out = {}
        for f in fields(cls):
            default = getattr(defaults, f.name)
            value = values.get(f.name)
            out[f.name] = default if value is None else type(default)(value)
        return cls(**out)

    @classmethod
    def read(cls, data: dict, components: dict) -> Controls:
        """Controls from an event's input dict (component -> value) and the components by field name."""
        return cls.from_values({name: data[comp] for name, comp in components.items() if name in FIELDS})

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def prompt_key(self) -> tuple[str, str, bool]:
        """What the text-prompt branches belong to: a change here starts their completions afresh."""
        return (self.prompt, self.system_prompt, self.use_chat_template)

    def params(self) -> dict:
        """The request's `params`; ValueError names a seed that is not a whole number."""
        seed = self.seed.strip()
        if seed and not seed.isdigit():
            raise ValueError(f"seed {seed!r} is not accepted: use a whole number from 0 to 2**63-1, or leave it blank")
        stops = [s for s in self.stop_sequences.split("\n") if s]
        knobs = {API_NAMES.get(name, name): getattr(self, name) for name in PARAM_FIELDS}
        knobs["sampler_order"] = self.order()
        return knobs | {"seed": int(seed) if seed else None, "stop_sequences": stops}

    def order(self) -> str | list[str]:
        """The request's `sampler_order`: a named order, or the custom list; ValueError names a bad list."""
        if self.sampler_order != CUSTOM:
            return self.sampler_order
        names = tuple(name.strip() for name in self.custom_order.replace(",", " ").split())
        return list(check_sampler_order(names))

    def constraint(self) -> dict:
        return {"enabled": self.constraint_enabled, "type": self.constraint_type, "schema": self.constraint_schema}


FIELDS = tuple(f.name for f in fields(Controls))


def preset_values(name: str) -> dict[str, object] | None:
    """Knob values of a preset by field name (the greedy preset sets temperature 0); None for custom."""
    if name not in PRESETS:
        return None
    params = PRESETS[name].params.as_dict()
    defaults = Controls()
    values = {field: type(getattr(defaults, field))(params[API_NAMES.get(field, field)]) for field in PARAM_FIELDS}
    return values | {"temperature": 0.0 if PRESETS[name].params.is_greedy else values["temperature"]}


def matching_preset(controls: Controls) -> str:
    """The preset whose knobs equal the controls', else custom."""
    current = {field: getattr(controls, field) for field in PARAM_FIELDS}
    return next((name for name in PRESETS if preset_values(name) == current), CUSTOM)
