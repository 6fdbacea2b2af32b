"""What the UI offers about constraints: the regex help text, ready-made patterns and one example per type."""

from __future__ import annotations

import json

from outlines import types as outlines_types
from outlines.types.locale import us as outlines_us

REGEX_HELP = (
    "Rust regex syntax (like Python's re, without lookarounds or backreferences); the whole output must match. "
    r"\d means ASCII [0-9] here (write \p{Nd} for any Unicode digit)."
)

# An address of the everyday shape, bounded: a subset of Outlines' email (RFC 5322 in full: quoted local parts,
# IP literals, no length limit), where a small model writing a URL or words never reaches the "@" and never
# stops. Every address this accepts, Outlines' email accepts too.
EMAIL = r"[a-z0-9_+-]{1,20}(?:\.[a-z0-9_+-]{1,20})?@(?:[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?\.){1,2}[a-z]{2,6}"

# Outlines' ready-made regex types, referenced (not copied) so they stay in sync with the installed Outlines.
PRESETS: dict[str, tuple[str, str]] = {"email": ("regex", EMAIL)} | {
    name: ("regex", term.pattern)
    for name, term in (
        ("date (YYYY-MM-DD)", outlines_types.date),
        ("time (HH:MM:SS)", outlines_types.time),
        ("date and time", outlines_types.datetime),
        ("integer", outlines_types.integer),
        ("number", outlines_types.number),
        ("ipv4", outlines_types.ipv4),
        ("ipv6", outlines_types.ipv6),
        ("uuid4", outlines_types.uuid4),
        ("semver", outlines_types.semver),
        ("hex color", outlines_types.hex_color),
        ("phone number (US)", outlines_us.phone_number),
        ("zip code (US)", outlines_us.zip_code),
        ("phone number (E.164)", outlines_types.e164),
    )
}

EXAMPLES: dict[str, str] = {
    "multiple_choice": "positive\nnegative\nneutral",
    "regex": r"\d{1,2} (apples|oranges|pears)",
    "cfg": (
        "start: expr\n"
        'expr: term (("+" | "-") term)*\n'
        'term: factor (("*" | "/") factor)*\n'
        'factor: NUMBER | "(" expr ")"\n'
        "NUMBER: /\\d+/\n"
    ),
    "json_schema": json.dumps(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 20},
                "age": {"type": "integer", "minimum": 0, "maximum": 130},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        indent=2,
    ),
}
