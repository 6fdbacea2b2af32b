"""Grammar constraints: Outlines types -> llguidance grammar -> a per-step mask over the model's vocabulary.

- `regex`: `\\d` means ASCII digits, in regexes, Lark regex terminals and JSON-schema patterns;
- `grammar`: a `ConstraintSpec` -> an llguidance grammar;
- `errors`: llguidance's error text -> one readable line naming the constraint type;
- `matcher`: matcher states per (grammar, completion prefix) and the mask of allowed tokens;
- `presets`: what the UI offers (regex help, ready-made patterns, examples).
"""

from decoding.constraints.grammar import choice_options, grammar_for
from decoding.constraints.matcher import ConstraintMask, ConstraintTracker, TrackerStats, tracker_for
from decoding.constraints.presets import EXAMPLES, PRESETS, REGEX_HELP
from decoding.constraints.regex import ascii_digits, ascii_digits_in_lark, ascii_digits_in_schema

__all__ = [
    "EXAMPLES",
    "PRESETS",
    "REGEX_HELP",
    "ConstraintMask",
    "ConstraintTracker",
    "TrackerStats",
    "ascii_digits",
    "ascii_digits_in_lark",
    "ascii_digits_in_schema",
    "choice_options",
    "grammar_for",
    "tracker_for",
]
