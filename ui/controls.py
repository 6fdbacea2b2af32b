"""Every knob and setting of the explorer by name: the typed `Controls` value that handlers receive.

Components are registered under the names of the dataclass fields, and an event reads them back by
those names (Gradio passes a set of inputs as a dict keyed by component), so reordering components
can never hand a value to the wrong knob. The same fields are what the browser settings store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Self

from service.public import EXAMPLES, PRESETS, SAMPLER_ORDERS, SAMPLER_REGISTRY, check_sampler_order

UI_NAMES = {"top_k": "sample_top_k"}  # `top_k` of the controls is the number of rows shown
API_NAMES = {ui: api for api, ui in UI_NAMES.items()}
KNOBS = {UI_NAMES.get(p.name, p.name): p for p in SAMPLER_REGISTRY.params}  # each stage parameter by field name
PARAM_FIELDS = (*KNOBS, "sampler_order")  # the sampling knobs a preset sets
NO_PRESET = "(none)"
CUSTOM = "custom"
ORDER_CHOICES = (*SAMPLER_ORDERS, CUSTOM)  # the named sampler orders, then the user's own (`custom_order`)


@dataclass(frozen=True)
class Settings:
    """Every control of the explorer but the sampling knobs, typed; defaults are what a new page shows.

    `Controls` adds one field per stage parameter of the sampler registry (its default: the API's).
    """

    prompt: str = "Once upon a time, there was a"  # open: several tokens in play at the first step
    system_prompt: str = ""
    use_chat_template: bool = False
    preset: str = "balanced"
    sampler_order: str = "transformers"
    custom_order: str = ", ".join(SAMPLER_ORDERS["llama.cpp"])  # a list of the stages, used when the order is custom
    seed: str = ""
    top_k: int = 10
    stop_sequences: str = ""
    constraint_enabled: bool = False
    constraint_type: str = "regex"
    constraint_preset: str = NO_PRESET
    constraint_schema: str = EXAMPLES["regex"]
    constraint_leading_space: bool = True  # a value after a prompt usually follows a space: allow one by default
    llm_on: bool = True
    speed: float = 2.0
    max_steps: int = 64
    attribution_method: str = "attention"
    aggregation: str = "l2"
    granularity: str = "token"  # attribution per token, or summed per word
    explain_token: str = ""  # a candidate's token id to explain at the position, blank for the token there
    contrast_token: str = ""  # the foil's token id ("why the target rather than this?"), blank for none
    ig_steps: int = 16
    inside_foil: str = ""  # the foil of the "Inside the model" maps (a pick at the position), blank for none
    corrupted: str = ""  # activation patching's corrupted prompt, blank until suggested or typed
    patch_site: str = "residual"  # the activation patching copies: "residual", "attention" or "mlp" output

    @classmethod
    def from_values(cls, values: dict) -> Self:
        """Controls from values by field name; a missing or empty (None) value takes the default."""
        defaults = cls()
        out = {}
        for f in fields(cls):
            default = getattr(defaults, f.name)
            value = values.get(f.name)
            out[f.name] = default if value is None else type(default)(value)
        return cls(**out)

    @classmethod
    def read(cls, data: dict, components: dict) -> Self:
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
        out = {"enabled": self.constraint_enabled, "type": self.constraint_type, "schema": self.constraint_schema}
        # only a regex takes the option; the options of a multiple choice carry their own spaces
        return out | {"leading_space": self.constraint_leading_space} if self.constraint_type == "regex" else out


Controls = make_dataclass(
    "Controls",
    [(name, param.type, field(default=param.type(param.default))) for name, param in KNOBS.items()],
    bases=(Settings,),
    frozen=True,
    namespace={"__module__": __name__, "__doc__": "The value of every control of the explorer, knobs included."},
)
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
