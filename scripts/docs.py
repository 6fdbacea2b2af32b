"""The generated tables of docs/CONFIGURATION.md: every command-line flag with its environment variable, and
every budget with its defaults.

Run `python scripts/docs.py` to rewrite them in place, or `python scripts/docs.py --check` to exit 1 when the
file is out of date (tests/test_docs.py checks the same). The flags come from `cli.build_parser()`, the budgets
from `service.budgets.LIMITS`; each table sits between `<!-- generated: NAME -->` and
`<!-- end generated: NAME -->`, and only the text between them is replaced.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as scripts/docs.py: the project is one folder up

import cli  # noqa: E402
from service.budgets import LIMIT_BY_NAME, LIMITS  # noqa: E402

CONFIGURATION = ROOT / "docs" / "CONFIGURATION.md"
ENV_IN_HELP = re.compile(r"\s*\[([A-Z0-9_, ]+)\]$")  # cli's help ends with its variables in brackets
SECTION = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated: \2 -->)", re.DOTALL)


def _options(action: argparse.Action) -> str:
    """`--flag METAVAR`, or `--flag` / `--no-flag` for a yes/no flag."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return " / ".join(f"`{flag}`" for flag in action.option_strings)
    metavar = f" {action.metavar}" if action.metavar else ""
    return f"`{action.option_strings[0]}{metavar}`"


def flags_table() -> str:
    """One row per flag of `app.py` (the budgets have their own table): flag, environment variables, help."""
    rows = ["| flag | environment variable | what it does |", "|---|---|---|"]
    # argparse has no public list of its arguments; `_actions` is what its own help formatter reads
    for action in cli.build_parser()._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in LIMIT_BY_NAME:
            continue
        match = ENV_IN_HELP.search(action.help or "")
        names = ", ".join(f"`{name.strip()}`" for name in match.group(1).split(",")) if match else ""
        text = ENV_IN_HELP.sub("", action.help or "").replace("|", "\\|")
        rows.append(f"| {_options(action)} | {names} | {text} |")
    return "\n".join(rows)


def budgets_table() -> str:
    """One row per budget: flag, environment variable, public and local defaults, what it counts."""
    rows = [
        "| flag | environment variable | public | local | counts |",
        "|---|---|---:|---:|---|",
    ]
    for limit in LIMITS:
        local = "the model's context" if limit.local is None else f"{limit.local:,}"
        what = f"{limit.unit}: {limit.help}".replace("|", "\\|")
        rows.append(f"| `{limit.flag} N` | `{limit.env}` | {limit.public:,} | {local} | {what} |")
    return "\n".join(rows)


TABLES = {"flags": flags_table, "budgets": budgets_table}


def render(text: str) -> str:
    """`text` with every generated section rewritten; ValueError for a section name without a table."""

    def section(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise ValueError(f"generated section {name!r} is not known: use one of {', '.join(TABLES)}")
        return f"{match.group(1)}{TABLES[name]()}\n{match.group(4)}"

    return SECTION.sub(section, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/CONFIGURATION.md is out of date")
    check = parser.parse_args().check
    text = CONFIGURATION.read_text()
    fresh = render(text)
    if check:
        sys.exit(0 if fresh == text else f"{CONFIGURATION.relative_to(ROOT)} is out of date: run scripts/docs.py")
    CONFIGURATION.write_text(fresh)


if __name__ == "__main__":
    main()
