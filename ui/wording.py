"""What the explorer shows of a refusal or notice from below: the screen's words for the API's field names.

The service words its messages for API callers (`params.top_p`, `sampler_order[2]`, "send null"); the page
shows the same message with each field named as its control is labelled. The API's own answers keep their
words: only what the UI shows passes through `on_screen`.
"""

from __future__ import annotations

import re

from service.public import SAMPLER_REGISTRY


def _label(text: str) -> str:
    """A control's label without its parenthesised hint: "Temperature (0 = greedy)" -> "Temperature"."""
    return text.split(" (")[0]


# (API wording, screen wording), applied in order: the longer phrases before the field names inside them
_PHRASES = (
    (r"\s*\(or send messages\)", ""),
    (r"send use_chat_template true", "tick “Wrap in the chat template”"),
    (r"or send null\b", "or pick none"),
    (r"\bsampler_order\[(\d+)\]", lambda m: f"entry {int(m[1]) + 1} of the custom order"),
    (r"\bsampler_order\b", "the custom order"),  # a named order is picked, never typed
    (r"\bcontrast_token_id\b", "the foil"),
    (r"\btarget_token_id\b", "the token to explain"),
    (r"\btarget_index\b", "the position to explain"),
    (r"\bforce_text\b", "the forced text"),
    (r"\bforce_token_id\b", "the forced token"),
    (r"\bstop_sequences\b", "Stop sequences"),
    (r"\bsystem_prompt\b", "the system prompt"),
    (r"\bcompletion_ids\b", "the completion"),
    (r"\buse_chat_template\b", "“Wrap in the chat template”"),
    (r"\binterventions\[\d+\]\.alpha\b", "the strength"),  # a model edit's field as the Edit panel labels it
    (r"\binterventions\[\d+\]\.(layer|head)\b", r"\1"),
    # a knob by its slider's label (a bare stage name stays: the custom order is typed with those names)
    *((rf"\bparams\.{p.name}\b", _label(p.slider.label)) for p in SAMPLER_REGISTRY.params),
    (r"\bparams\.", ""),
    (r"\bparams\b", "the sampling settings"),
)  # fmt: skip
_COMPILED = tuple((re.compile(pattern), screen) for pattern, screen in _PHRASES)
# A knob's own range check names it bare ("top_p 0.0 is out of range: accepted is 0 < top_p <= 1"): when a
# message starts with a knob's name, each mention of it is that knob (a bare name elsewhere is a stage name of
# the custom order, typed as is). The request's own `top_k` is the number of rows shown, accepted from 1.
_ROWS = (
    re.compile(r"^top_k (\S+) is out of range: accepted is an integer >= 1"),
    r"Rows shown \1 is out of range: accepted is a whole number >= 1",
)
_KNOBS = {p.name: _label(p.slider.label) for p in SAMPLER_REGISTRY.params}
_KNOB_FIRST = re.compile(rf"^({'|'.join(map(re.escape, _KNOBS))}) ")


def on_screen(message: str) -> str:
    """`message` with each API field name replaced by what the page calls it."""
    knob = _KNOB_FIRST.match(message.removeprefix("params."))
    for pattern, screen in (*_COMPILED, _ROWS):
        message = pattern.sub(screen, message)
    if knob:
        message = re.sub(rf"\b{knob[1]}\b", _KNOBS[knob[1]], message)
    return message.strip()
