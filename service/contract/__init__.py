"""The request contract as pydantic models: what every operation accepts and answers, with its JSON schema.

`requests` holds the request bodies (strict types, unknown keys refused, ranges from the code's own tables),
`answers` the answer bodies, `messages` the one-line refusal of a body the models refuse, and `check` the
gate every service operation puts its request through before anything else.
"""

from service.contract.check import parse
from service.contract.requests import (
    AttributionRequest,
    DiffRequest,
    LoadRequest,
    PatchingRequest,
    PreviewRequest,
    StepRequest,
    SweepRequest,
    TreeRequest,
    own_keys,
)

__all__ = [
    "AttributionRequest",
    "DiffRequest",
    "LoadRequest",
    "PatchingRequest",
    "PreviewRequest",
    "StepRequest",
    "SweepRequest",
    "TreeRequest",
    "own_keys",
    "parse",
]
