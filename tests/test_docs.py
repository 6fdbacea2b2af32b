"""The documentation stays true to the repository: every path the README and docs/*.md name exists, every
relative link (and its #anchor) resolves, and the generated tables of docs/CONFIGURATION.md are current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
LINK = re.compile(r"\]\(([^)\s]+)\)")
SUFFIXES = "py|md|toml|txt|sh|png|json|lock|yml|yaml|cfg|ini|css|js"
# a repository path: `dir/file.py`, `file.md`, `dir/` (a folder); not `~/x`, `$VAR/x`, `/abs` or a hub id
PATH = re.compile(rf"(?<![\w./~$*-])((?:[\w-]+/)*[\w-]+(?:\.(?:{SUFFIXES})|/))(?![\w/-])")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def _mentioned_paths(page: Path) -> set[str]:
    text = LINK.sub("]", URL.sub(" ", page.read_text()))  # links are checked on their own
    text = re.sub(r"^---\n.*?\n---\n", "", text, flags=re.DOTALL)  # the Spaces front matter
    return set(PATH.findall(text))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_mentioned_path_exists(page: Path) -> None:
    missing = sorted(
        path for path in _mentioned_paths(page) if not (ROOT / path).exists() and not (page.parent / path).exists()
    )
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(URL.sub(" ", page.read_text())):
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} has broken links: {broken}"


def test_the_pages_are_linked_from_the_readme() -> None:
    readme = ROOT / "README.md"
    linked = {(readme.parent / target.partition("#")[0]).resolve() for target in LINK.findall(readme.read_text())}
    assert {page.resolve() for page in PAGES[1:]} <= linked


def test_the_generated_configuration_tables_are_current() -> None:
    spec = importlib.util.spec_from_file_location("docs_script", ROOT / "scripts" / "docs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = script.CONFIGURATION.read_text()
    assert "<!-- generated: flags -->" in text and "<!-- generated: budgets -->" in text
    assert script.render(text) == text, "docs/CONFIGURATION.md is out of date: run python scripts/docs.py"
