"""The attribution methods, one entry each: every fact about a method that the rest of the project reads.

An entry says what the method is called (in requests and in the UI), what it needs and gives (gradients,
signed scores, a foil), which aggregations and parameters apply, how it runs (its runner and how that
work is split into slices, for progress and cancel) and what it costs the budgets. Validation, the
dispatch in `attribution.methods`, the service's request parsing and the UI's labels all read it, and
`schema` gives it as plain JSON values for an API schema. Adding a method: an entry here, its runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from attribution import runners
from attribution.aggregations import AGGREGATIONS, L2
from attribution.runners import Job
from backends.lane import Progress
from decoding import fields

DEFAULT_METHOD = "saliency"  # of a request that names none
DEFAULT_AGGREGATION = L2.name


@dataclass(frozen=True)
class Parameter:
    """A method's own setting: its request key and keyword, UI label, default and (integers) accepted range."""

    name: str
    label: str
    description: str
    default: int | bool
    low: int | None = None
    high: int | None = None

    def read(self, value: object) -> int | bool:
        """The value checked (null: the default); ValueError naming the value and what is accepted."""
        if isinstance(self.default, bool):
            return fields.boolean(self.name, value, self.default)
        return fields.integer(self.name, self.default if value is None else value, self.low, self.high)

    def as_schema(self) -> dict:
        """The parameter as a JSON-schema property."""
        kind = "boolean" if isinstance(self.default, bool) else "integer"
        bounds = {"minimum": self.low, "maximum": self.high} if kind == "integer" else {}
        return {"type": kind, "title": self.label, "description": self.description, "default": self.default} | bounds


@dataclass(frozen=True)
class Method:
    """One attribution method: names, needs, what its scores mean, its parameters and how it runs."""

    name: str  # in requests and results
    label: str  # in the UI's method menu
    description: str
    needs_gradients: bool  # a backward pass through the model, not forwards only
    run: Callable[[Job], Iterator[Progress | dict]]  # see attribution.runners
    slices: str  # how the work is split into slices: each is a Progress and a place to cancel
    passes: Callable[[int, Mapping[str, object]], int]  # (context tokens, parameters) -> budget passes
    aggregations: tuple[str, ...] = ()  # () : the method reduces no embedding; the aggregation is ignored
    signed: bool = False  # with no aggregations; otherwise the aggregation says (see `signed_for`)
    no_foil_reason: str = ""  # why a foil (contrast_token_id) does not apply; "" where it does
    parameters: tuple[Parameter, ...] = ()
    hover: bool = False  # one pass whatever the context: quick enough to run while the pointer moves
    token_scores: bool = True  # a score per context token (what the UI's heatmap shows); False: API only

    @property
    def accepts_foil(self) -> bool:
        return not self.no_foil_reason

    def signed_for(self, aggregation: str) -> bool:
        """Whether this method's scores can be negative under `aggregation`."""
        return AGGREGATIONS[aggregation].signed if self.aggregations else self.signed

    def as_schema(self) -> dict:
        return {
            "label": self.label,
            "description": self.description,
            "needs_gradients": self.needs_gradients,
            "signed": {name: self.signed_for(name) for name in AGGREGATIONS},
            "accepts_foil": self.accepts_foil,
            "aggregations": list(self.aggregations),
            "parameters": [p.name for p in self.parameters],
            "slices": self.slices,
            "token_scores": self.token_scores,
        }


IG_STEPS = Parameter(
    "ig_steps", "Integrated-gradients steps", "points on the path from the baseline (Gauss-Legendre quadrature)",
    16, 2, 256,
)  # fmt: skip
LAST_LAYER_ONLY = Parameter(
    "last_layer_only", "Last layer only", "attention of the last layer only, instead of the mean over layers", False
)
GRADIENT_AGGREGATIONS = tuple(AGGREGATIONS)
ONE_BACKWARD = "one slice: a forward and a backward pass"

REGISTRY = (
    Method(
        "attention", "Attention (fast)", "where the last position attends, averaged over heads (and layers)",
        needs_gradients=False, run=runners.run_attention, passes=runners.one_pass, hover=True,
        slices="one slice: a forward pass, the prefix's keys and values cached",
        no_foil_reason="attention does not depend on the target", parameters=(LAST_LAYER_ONLY,),
    ),
    Method(
        "saliency", "Saliency (gradient)", "the gradient of the target's log-probability at each token's embedding",
        needs_gradients=True, run=runners.run_saliency, passes=runners.one_pass, hover=True,
        slices=ONE_BACKWARD, aggregations=GRADIENT_AGGREGATIONS,
    ),
    Method(
        "input_x_gradient", "Input x gradient", "the gradient times the embedding: a first-order share of the value",
        needs_gradients=True, run=runners.run_input_x_gradient, passes=runners.one_pass, hover=True,
        slices=ONE_BACKWARD, aggregations=GRADIENT_AGGREGATIONS,
    ),
    Method(
        "integrated_gradients", "Integrated gradients (slow)",
        "gradients integrated from a scaled-down baseline, with the completeness error",
        needs_gradients=True, run=runners.run_integrated_gradients, passes=runners.ig_passes,
        slices="one slice per batch of path points, a forward and backward pass per step",
        aggregations=GRADIENT_AGGREGATIONS, parameters=(IG_STEPS,),
    ),
    Method(
        "ablation", "Ablation: remove each token (slow)",
        "the drop of the target's log-probability when each token is replaced by a baseline id",
        needs_gradients=False, run=runners.run_ablation, passes=runners.ablation_passes, signed=True,
        slices="one slice per batch of neighbouring positions that share a cached prefix, a forward each",
    ),
    Method(
        "direct_logit", "Direct logit attribution (by head and MLP)",
        "the logit (minus the foil's) split over the embedding, each attention head and each MLP, the final"
        " norm's scale frozen from the forward pass; no per-token scores (API only)",
        needs_gradients=False, run=runners.run_direct_logit, passes=runners.one_pass, signed=True,
        slices="one slice: a forward pass with hooks", token_scores=False,
    ),
)  # fmt: skip
METHODS = {m.name: m for m in REGISTRY}  # iterating gives the names, in the UI's order
PARAMETERS = {p.name: p for m in REGISTRY for p in m.parameters}  # every method's, all read from any request


def method(name: object) -> Method:
    """The entry called `name`; ValueError naming the value and the accepted names otherwise."""
    return METHODS[fields.one_of("method", name, tuple(METHODS))]


def read_parameters(given: Mapping[str, object]) -> dict[str, int | bool]:
    """Every method parameter from `given`, checked; a missing or null one takes its default."""
    return {name: parameter.read(given.get(name)) for name, parameter in PARAMETERS.items()}


def check_foil(entry: Method) -> None:
    """ValueError where `entry` takes no foil, saying why and which methods do."""
    if entry.accepts_foil:
        return
    *others, last = [m.name for m in REGISTRY if m.accepts_foil]
    choose = f"{', '.join(others)} or {last}" if others else last
    raise ValueError(
        f"contrast_token_id does not apply to {entry.name} ({entry.no_foil_reason}): choose {choose}, or send null"
    )


def schema() -> dict:
    """The registry as plain JSON values (method names, aggregations, parameter ranges), for an API schema."""
    return {
        "methods": {m.name: m.as_schema() for m in REGISTRY},
        "default_method": DEFAULT_METHOD,
        "aggregations": {a.name: {"label": a.label, "description": a.description, "signed": a.signed}
                         for a in AGGREGATIONS.values()},
        "default_aggregation": DEFAULT_AGGREGATION,
        "parameters": {p.name: p.as_schema() for p in PARAMETERS.values()},
    }  # fmt: skip
