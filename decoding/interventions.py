"""Model edits a request carries (`interventions`): ablate a head or a block, or steer the residual stream.

The edits themselves (`Ablate`, `Steer`) are plain frozen dataclasses of backends.interventions, which applies
them as hooks; this module reads and checks them. Parsing needs no model: `parse` reads the JSON list strictly
(unknown keys, wrong types, a non-finite alpha: one line naming the value and what is accepted). `resolve`
then holds each edit to the loaded model (layer and head in range, a vector of d_model floats, a vector id
known to the steering store) and replaces vector ids by their values, so a resolved edit is plain data:
equal edits are equal keys of the prefix cache.
"""

from __future__ import annotations

from backends import steering
from backends.interventions import COMPONENTS, MODES, Ablate, Edits, Intervention, Steer, check_edits
from backends.model import LoadedModel
from decoding import fields as parse_fields

ABLATE_KEYS = ("type", "layer", "head", "component", "mode")
STEER_KEYS = ("type", "layer", "vector", "alpha", "name")
MAX_NAME = 200  # characters of a steering vector's name (words on the status line)
TYPES = ("ablate", "steer")


def parse(value: object) -> Edits:
    """The `interventions` list of a request, strictly; null or missing is no edits."""
    return tuple(_one(f"interventions[{i}]", item) for i, item in enumerate(parse_fields.items("interventions", value)))


def _one(name: str, item: object) -> Intervention:
    if not isinstance(item, dict):
        raise ValueError(f"{name} must be an object with a type (ablate or steer), got {parse_fields.type_name(item)}")
    kind = parse_fields.one_of(f"{name}.type", item.get("type"), TYPES)
    if kind == "steer":
        item = parse_fields.obj(name, item, STEER_KEYS)
        vector, alpha = _vector(name, item.get("vector")), _alpha(name, item.get("alpha"))
        return Steer(_layer(name, item), vector, alpha, _name(f"{name}.name", item.get("name")))
    item = parse_fields.obj(name, item, ABLATE_KEYS)
    head, component = item.get("head"), item.get("component")
    if (head is None) == (component is None):
        given = "both" if head is not None else "neither"
        raise ValueError(
            f"{name} has {given} of head and component: give a head (a number) or a component (attention or mlp)"
        )
    if head is not None:
        head = parse_fields.integer(f"{name}.head", head, 0, accepted="a head number >= 0")
    else:
        component = parse_fields.choice(f"{name}.component", component, COMPONENTS, "")
    mode = parse_fields.choice(f"{name}.mode", "zero" if item.get("mode") is None else item["mode"], MODES, "")
    return Ablate(_layer(name, item), head, component, mode)


def _layer(name: str, item: dict) -> int:
    if item.get("layer") is None:
        raise ValueError(f"{name} has no layer: give the decoder layer's number, counting from 0")
    return parse_fields.integer(f"{name}.layer", item["layer"], 0, accepted="a layer number >= 0")


def _alpha(name: str, value: object) -> float:
    if value is None:
        raise ValueError(f"{name} has no alpha: give the steering strength, a finite number")
    return parse_fields.number(f"{name}.alpha", value, "a finite number")


def _name(name: str, value: object) -> str:
    words = parse_fields.string(name, value)
    if len(words) > MAX_NAME:
        raise ValueError(f"{name} has {len(words)} characters: a steering vector's name has at most {MAX_NAME}")
    return words


def _vector(name: str, value: object) -> str | tuple[float, ...]:
    if isinstance(value, str) and value:
        return value
    if not isinstance(value, list | tuple) or not value:
        shown = parse_fields.shown(value)
        raise ValueError(f"{name}.vector {shown} is not accepted: a steering vector id or d_model floats")
    return tuple(parse_fields.number(f"{name}.vector[{i}]", x, "a finite number") for i, x in enumerate(value))


def resolve(edits: Edits, loaded: LoadedModel) -> Edits:
    """The edits held to the loaded model (layers, heads, residual width; an engine that can run them), vector
    ids replaced by the floats of the model's steering vectors (backends.steering)."""
    check_edits(loaded, edits)
    config = loaded.model.config
    shape = (config.num_hidden_layers, config.num_attention_heads, config.hidden_size)
    return tuple(_resolved(f"interventions[{i}]", edit, shape, loaded) for i, edit in enumerate(edits))


def _resolved(name: str, edit: Intervention, shape: tuple[int, int, int], loaded: LoadedModel) -> Intervention:
    layers, heads, d_model = shape
    if edit.layer >= layers:
        raise ValueError(f"{name}.layer {edit.layer} is out of range: this model has layers 0 to {layers - 1}")
    if isinstance(edit, Ablate):
        if edit.head is not None and edit.head >= heads:
            raise ValueError(f"{name}.head {edit.head} is out of range: this model has heads 0 to {heads - 1}")
        return edit
    vector, words = edit.vector, edit.name
    if isinstance(vector, str):
        found = steering.vector_of(loaded, vector)
        if found is None:
            raise ValueError(f"{name}.vector {vector!r} is not a steering vector of this model: make one first")
        vector, words = found.vector, words or steering.direction(found.positive, found.negative)
    if len(vector) != d_model:
        raise ValueError(f"{name}.vector has {len(vector)} floats: this model's residual stream has {d_model}")
    return Steer(edit.layer, vector, edit.alpha, words)
