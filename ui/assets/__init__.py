"""The page's stylesheets and scripts, as the .css and .js files beside this module, read once at import.

A file names a value that Python owns as `{{NAME}}` (upper case); `asset` puts each value in its place and
refuses a file whose placeholders and given values differ, so no placeholder reaches the page unfilled.
`plotly_head` serves plotly.js from the installed `plotly` package, through Gradio's file route: never a CDN.
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import plotly

FOLDER = Path(__file__).parent
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


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


def plotly_head() -> str:
    """A component's `head` loading plotly.js (as `window.Plotly`) before its script runs; the file is served from
    the installed package (Gradio serves it once it is a static path), at a URL relative to the page."""
    gr.set_static_paths([PLOTLY_JS])
    return f'<script src="gradio_api/file={PLOTLY_JS.resolve()}"></script>'
