"""The `reference` object of a request, read strictly into a backends.reference.ReferenceSpec.

Parsing needs no model (as decoding/interventions.py reads `interventions`); decoding/reference.py then computes
the reference's distribution at a position and its distances from the main model's.
"""

from __future__ import annotations

from backends.reference import DTYPES, ENGINES, QUANTIZATIONS, ReferenceSpec
from decoding import fields

KEYS = ("model", "dtype", "quantization", "engine")


def parse(value: object) -> ReferenceSpec | None:
    """The `reference` object of a request, strictly; null or missing is no reference."""
    if value is None:
        return None
    data = fields.obj("reference", value, KEYS)
    model = data.get("model")
    if model is not None and not fields.text("reference.model", model).strip():
        raise ValueError("reference.model is empty: give a Hugging Face id, a local folder, 'embedded', or null")
    return ReferenceSpec(
        model=None if model is None else model.strip(),
        dtype=fields.choice("reference.dtype", data.get("dtype"), DTYPES, None),
        quantization=fields.choice("reference.quantization", data.get("quantization"), QUANTIZATIONS, None),
        engine=fields.choice("reference.engine", data.get("engine"), ENGINES, "transformers"),
    )
