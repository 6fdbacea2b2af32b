"""How the text of a flag or an environment variable becomes a value: yes/no words, whole numbers, choices,
log levels and comma-separated lists. Each refusal is one line naming the source, the value and what is accepted."""

from __future__ import annotations

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def choice(value: object, source: str, accepted: tuple[str, ...]) -> str | None:
    """One of `accepted` (any case), or None when not given."""
    if value is None:
        return None
    if str(value).strip().lower() not in accepted:
        raise ValueError(f"{source} {value!r} is not one of {', '.join(accepted)}")
    return str(value).strip().lower()


def flag(value: object, source: str, default: bool) -> bool:
    """A yes/no word (or a bool from argparse), or `default` when not given."""
    if value is None or isinstance(value, bool):
        return default if value is None else value
    word = str(value).lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise ValueError(f"{source} {value!r} is not a yes/no value: use one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")
    return word in TRUE_WORDS


def log_level(value: object, source: str) -> str:
    """A logging level name (any case); INFO when not given."""
    level = "INFO" if value is None else str(value).upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"{source} {value!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
    return level


def number(value: object, source: str, default: int | None, high: int | None = None) -> int | None:
    """A whole number from 1 to `high`, or `default` when not given."""
    if value is None:
        return default
    text = str(value).strip()
    limit = f" and at most {high}" if high else ""
    if not text.isdigit() or int(text) < 1 or (high and int(text) > high):
        raise ValueError(f"{source} {value!r} is not a whole number of at least 1{limit}")
    return int(text)


def id_list(value: object) -> tuple[str, ...]:
    """The non-empty, stripped parts of a comma-separated list."""
    return tuple(part.strip() for part in str(value or "").split(",") if part.strip())
