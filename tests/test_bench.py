"""Every bench script imports (without running) and stands on its own: none imports the tests."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))


def _imported(script: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_no_bench_script_imports_the_tests(script: Path) -> None:
    assert not {name for name in _imported(script) if name.split(".")[0] == "tests"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_every_bench_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `python bench/x.py` finds `harness` in its own folder; appended, so bench/attribution.py cannot hide
    # the attribution package
    monkeypatch.setattr(sys, "path", [*sys.path, str(ROOT / "bench")])
    module = importlib.import_module(f"bench.{script.stem}")
    assert module.__doc__, f"{script.name} has no docstring"


def test_every_bench_script_uses_the_harness() -> None:
    assert [script.name for script in SCRIPTS if script.stem != "harness" and "harness" not in _imported(script)] == []
