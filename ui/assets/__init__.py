"""The page's stylesheets and scripts, as the .css and .js files beside this module, read once at import.

A file names a value that Python owns as `{{NAME}}` (upper case); `asset` puts each value in its place and
refuses a file whose placeholders and given values differ, so no placeholder reaches the page unfilled.
"""

from __future__ import annotations

import re
from pathlib import Path

FOLDER = Path(__file__).parent
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def asset(name: str, **values: object) -> str:
    """The text of the asset file `name` (e.g. "bars.css"), each `{{NAME}}` replaced by `values[NAME]`."""
    path = FOLDER / name
    if path.suffix not in (".css", ".js") or path.parent != FOLDER or not path.is_file():
        known = sorted(p.name for p in FOLDER.iterdir() if p.suffix in (".css", ".js"))
        raise ValueError(f"asset {name!r} does not exist: the assets are {', '.join(known)}")
    text = path.read_text(encoding="utf-8")
    wanted = set(PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise ValueError(f"asset {name!r} has placeholders {sorted(wanted)}, not {sorted(values)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)
