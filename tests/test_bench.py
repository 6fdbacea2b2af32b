"""Every bench script imports (without running) and stands on its own: none imports the tests. The locust
scenario loads only in a process of its own (locust imports gevent, which patches the standard library), and
the load driver runs it for real, tiny."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))
IN_PROCESS = [script for script in SCRIPTS if script.stem != "locustfile"]
LOCUSTFILE = ROOT / "bench" / "locustfile.py"


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


@pytest.mark.parametrize("script", IN_PROCESS, ids=lambda script: script.name)
def test_every_bench_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `python bench/x.py` finds `harness` in its own folder; appended, so bench/attribution.py cannot hide
    # the attribution package
    monkeypatch.setattr(sys, "path", [*sys.path, str(ROOT / "bench")])
    module = importlib.import_module(f"bench.{script.stem}")
    assert module.__doc__, f"{script.name} has no docstring"


def test_every_bench_script_uses_the_harness() -> None:
    assert [script.name for script in SCRIPTS if script.stem != "harness" and "harness" not in _imported(script)] == []


def _operations() -> tuple[str, ...]:
    """The locustfile's OPERATIONS, read without importing it."""
    for node in ast.parse(LOCUSTFILE.read_text()).body:
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == ["OPERATIONS"]:
            return ast.literal_eval(node.value)
    raise AssertionError("the locustfile names no OPERATIONS")


def _bench(*args: str, timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT / "bench", capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_the_locustfile_loads_in_a_process_of_its_own() -> None:
    out = _bench("-c", "import locustfile; print(locustfile.__doc__ is not None, locustfile.Explorer.__name__)")
    assert out.split() == ["True", "Explorer"]


def test_the_driver_describes_both_modes() -> None:
    assert "--users" in _bench("soak.py", "load", "--help")
    assert "--steps" in _bench("soak.py", "soak", "--help")
    assert "vllm" in _bench("soak.py", "--help")


@pytest.mark.skipif(
    os.environ.get("NEXTTOKEN_LOAD_TEST") != "1",
    reason="about a minute on 2 cores (the app's start, 20 s of load): NEXTTOKEN_LOAD_TEST=1 runs it",
)
def test_a_tiny_load_run_has_every_operation_and_no_error() -> None:
    """2 users for 20 s at a quick pace, an attribution every 3 s: every operation answers, none fails."""
    quick = ("--users", "2", "--spawn-rate", "2", "--time", "20s", "--think", "0.05,0.2", "--attribution-every", "3")
    out = _bench("soak.py", "load", *quick, timeout=300)
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line[:2] == "| "]
    header, *rows = cells
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert set(_operations()) | {"all"} == by_name.keys(), out
    assert all(int(row["requests"]) > 0 for row in by_name.values()), out
    assert by_name["all"]["errors"] == "0", out
