"""The reference model over the API: load it for a request, report its status, remove it.

A request naming a `reference` (preview, step, tree, diff) has it loaded first, under the model lane and within
the memory budget `max_reference_mb` (the weights' size, estimated before a copy of the main model is made,
measured after another model is loaded); public mode allows only allowlisted models (service.policy). One
reference is kept at a time (backends.reference): another spec replaces it, `remove_reference` frees it.
"""

from __future__ import annotations

import math

from backends.lane import LANE
from backends.model import LoadedModel
from backends.reference import MIB, REFERENCES, Reference
from decoding import fields
from decoding.request import Request
from service.policy import POLICY
from service.readable import readable_errors


def _check_memory(nbytes: int) -> None:
    POLICY.settings.budgets.check("max_reference_mb", math.ceil(nbytes / MIB), "the reference's weights")


def reference_for(main: LoadedModel, req: Request) -> Reference | None:
    """The request's reference, loaded beside `main` (the previous one freed) when it is not yet; None: none."""
    if req.reference is None:
        return None
    return REFERENCES.get(req.reference, main, _check_memory)


def reference_status() -> dict:
    """The reference's state (none, loading, ready, failed), what it is and the memory its weights take."""
    return REFERENCES.status().as_dict()


@LANE.held
@readable_errors
def remove_reference(body: object = None) -> dict:
    """Free the reference (the REST body is an empty object); answers the status, now none."""
    fields.obj("the body", body, ())
    return REFERENCES.remove().as_dict()
