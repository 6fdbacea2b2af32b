"""The REST API's documentation page: a plain list of its operations, and ReDoc over the OpenAPI document.

No installed package ships ReDoc's or Swagger UI's scripts, so ReDoc loads from a CDN; the page says so, and its
list of operations (served from here) and the link to the raw schema work offline.
"""

from __future__ import annotations

import functools
import html

from server.openapi import OPERATIONS

REDOC_JS = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"


def _row(op) -> str:
    body = f"body: <code>{op.request.__name__}</code>, " if op.request else ""
    return (
        f"<li><code>{op.method.upper()} {html.escape(op.path)}</code>: {html.escape(op.summary)} "
        f"({body}answer: <code>{op.answer.__name__}</code>)</li>"
    )


@functools.cache
def page() -> str:
    """The HTML page; links are relative, so it works under any root path."""
    rows = "\n".join(_row(op) for op in OPERATIONS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nexttoken REST API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; margin: 0">
<div style="padding: 1em 2em">
<h1>nexttoken REST API</h1>
<p>The schema: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1). A refused request is 400 and a full model
queue 429, both with <code>{{"detail": "one line"}}</code>.</p>
<ul>
{rows}
</ul>
<p><small>The interactive reference below is ReDoc, loaded from a CDN ({REDOC_JS}): offline, only this list and
the schema are shown.</small></p>
</div>
<redoc spec-url="openapi.json"></redoc>
<script src="{REDOC_JS}"></script>
</body></html>
"""
