"""Model edits as the explorer keeps them: each branch's edits (on or off) and the steering vectors they use.

An `Edit` is one entry of the "Edit the model" panel: an ablation or a steering edit, and whether it is on. A
steering edit names its vector by id; the session keeps the vector itself (`Vector`: its examples and its
floats), and a request carries those floats, so a session read back from a file steers the same way in a
fresh process, where the service's store of vectors is empty. Only the edits that are on reach the request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from service.steering import vector_name

KINDS = ("ablate", "steer")
TARGETS = ("head", "attention", "mlp")  # what an ablation replaces: one head's slice, or a whole block
MODES = ("zero", "mean")
BLOCKS = {"attention": "attention", "mlp": "MLP"}  # a block as the panel names it


@dataclass(frozen=True)
class Vector:
    """A steering vector the session uses: the service's id, its layer, examples, norm and floats."""

    id: str
    layer: int
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    norm: float
    values: tuple[float, ...]

    @property
    def name(self) -> str:
        """The vector in words: by its examples, or by its id where the session file kept none."""
        return vector_name(self.positive, self.negative) if self.positive and self.negative else f"by {self.id}"

    def as_dict(self) -> dict:
        return {
            "id": self.id, "layer": self.layer, "positive": list(self.positive), "negative": list(self.negative),
            "norm": self.norm, "values": list(self.values),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: object) -> Vector:
        """A vector of the session file; ValueError says what is wrong with it."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("layer"), int):
            raise ValueError("a steering vector in the session file needs an id and a layer")
        values = data.get("values")
        if not isinstance(values, list) or not values or not all(_finite(v) for v in values):
            raise ValueError(f"steering vector {data['id']!r} in the session file has no list of finite numbers")
        examples = [tuple(str(t) for t in data.get(side) or ()) for side in ("positive", "negative")]
        norm = data.get("norm")
        return cls(data["id"], data["layer"], *examples, float(norm) if _finite(norm) else 0.0, tuple(values))


@dataclass(frozen=True)
class Edit:
    """One model edit of a branch: ablate `target` (a head, or the attention or MLP block) of `layer` with `mode`,
    or steer after `layer` by `alpha` times vector `vector`; `on` says whether requests carry it."""

    kind: str
    layer: int
    target: str = "head"
    head: int = 0
    mode: str = "zero"
    vector: str = ""
    alpha: float = 0.0
    on: bool = True

    def intervention(self, vectors: dict[str, Vector]) -> dict:
        """The request's form of the edit (the vector's floats in place of its id)."""
        if self.kind == "steer":
            found = vectors[self.vector]
            return {"type": "steer", "layer": self.layer, "vector": list(found.values), "alpha": self.alpha,
                    "name": found.name}  # fmt: skip
        what = {"head": self.head} if self.target == "head" else {"component": self.target}
        return {"type": "ablate", "layer": self.layer, "mode": self.mode} | what

    def label(self, vectors: dict[str, Vector]) -> str:
        """The edit in the panel's words."""
        if self.kind == "steer":
            found = vectors.get(self.vector)
            return f"steer {found.name if found else self.vector} after layer {self.layer}, strength {self.alpha:g}"
        what = f"head {self.head}" if self.target == "head" else f"{BLOCKS[self.target]} block"
        return f"ablate {what} of layer {self.layer} ({self.mode})"

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: object) -> Edit:
        """An edit of the session file; ValueError says what is wrong with it."""
        if not isinstance(data, dict) or data.get("kind") not in KINDS or not isinstance(data.get("layer"), int):
            raise ValueError("an edit in the session file needs a kind (ablate or steer) and a layer")
        edit = cls(
            data["kind"], data["layer"], str(data.get("target") or "head"), int(data.get("head") or 0),
            str(data.get("mode") or "zero"), str(data.get("vector") or ""), float(data.get("alpha") or 0.0),
            bool(data.get("on", True)),
        )  # fmt: skip
        if edit.target not in TARGETS or edit.mode not in MODES or not math.isfinite(edit.alpha):
            raise ValueError(f"an edit in the session file is not one the panel makes: {data}")
        return edit


def interventions(edits: tuple[Edit, ...], vectors: dict[str, Vector]) -> list[dict]:
    """The `interventions` of a request: the edits that are on, in order."""
    return [edit.intervention(vectors) for edit in edits if edit.on]


def vectors_from_json(data: object, used: set[str]) -> dict[str, Vector]:
    """The session file's steering vectors by id; ValueError when one that an edit `used` is missing."""
    vectors = {v.id: v for v in map(Vector.from_dict, data if isinstance(data, list) else ())}
    if missing := used - set(vectors):
        raise ValueError(f"the session file steers by vector {min(missing)!r} but does not hold it")
    return vectors


def switched(edits: tuple[Edit, ...], on: set[int]) -> tuple[Edit, ...]:
    """The edits with exactly the indices in `on` switched on."""
    return tuple(replace(edit, on=i in on) for i, edit in enumerate(edits))


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
