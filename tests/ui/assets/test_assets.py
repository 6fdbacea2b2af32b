"""The page's CSS and JavaScript files: read by name, placeholders filled, every file in use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app
from ui import assets, quickstep
from ui.draw import heatmap
from ui.panels import session_file

ROOT = Path(__file__).resolve().parents[3]


def test_every_placeholder_is_filled_with_its_value():
    assert f"const PROVISIONAL = {json.dumps(quickstep.PROVISIONAL)};" in quickstep.BARS_JS
    for text in (app.CSS, heatmap.PANEL_CSS, heatmap.PANEL_JS, quickstep.BARS_JS, quickstep.SETTLE_JS,
                 quickstep.APPLY_JS,                 session_file.DOWNLOAD_JS):  # fmt: skip
        assert text.strip() and "{{" not in text  # gr.HTML reads a CSS template's {{ }} as Handlebars


def test_a_missing_or_unknown_value_is_refused_naming_the_asset():
    with pytest.raises(
        ValueError,
        match=r"asset 'quickstep.js' has placeholders \['EDIT_GRACE_MS', 'PANELS', 'PROVISIONAL', 'SETTLE_WITHIN_MS'\], not \[\]",
    ):
        assets.asset("quickstep.js")
    with pytest.raises(ValueError, match=r"asset 'page.css' has placeholders \[\], not \['COLOR'\]"):
        assets.asset("page.css", COLOR="red")


@pytest.mark.parametrize("name", ["nothing.css", "__init__.py", "../app.py"])
def test_only_the_asset_files_can_be_read(name):
    with pytest.raises(ValueError, match=rf"asset '{name}' does not exist: the assets are .*bars\.css"):
        assets.asset(name)


def test_every_asset_file_is_used():
    code = "".join(path.read_text() for path in [ROOT / "app.py", *(ROOT / "ui").rglob("*.py")])
    files = [path.name for path in assets.FOLDER.iterdir() if path.suffix in (".css", ".js")]
    assert files and all(f'asset("{name}"' in code for name in files)


def test_plotly_js_comes_from_the_installed_package_never_a_cdn():
    head = assets.plotly_head()
    assert assets.PLOTLY_JS.is_file() and assets.PLOTLY_JS.parent.parent.name == "plotly"
    assert head == f'<script src="gradio_api/file={assets.PLOTLY_JS.resolve()}"></script>'  # relative: this server
