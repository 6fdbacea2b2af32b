"""A body the request models refuse, as one line naming the field, the value sent and what is accepted."""

from __future__ import annotations

from pydantic import ValidationError

from decoding.fields import shown


def _field(loc: tuple) -> str:
    """`params.top_p`, `messages[0].role`: the keys and list indexes of a location (union branch names left out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).isidentifier():
            out += f".{part}" if out else str(part)
    return out or "the request"


def one_line(exc: ValidationError) -> str:
    """The first problem of a refused body; a validator's own message as it is."""
    error = exc.errors(include_url=False)[0]
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        where = _field(loc[:-1])
        return f"unknown key {shown(loc[-1])} in {'the request' if where == 'the request' else where}"
    if kind == "missing":
        return f"{_field(loc)} is missing: it is required"
    message = error["msg"][:1].lower() + error["msg"][1:]
    return f"{_field(loc)} {shown(error['input'])} is not accepted: {message}"
