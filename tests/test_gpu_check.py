"""The GPU check's dry run: `bench/gpu_check.py --device cpu --quick` writes its one table, every section, no error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("1 precision", "2 attribution", "3 attention fallback", "4 tree")


def test_the_quick_cpu_run_fills_every_section(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.md"
    command = [sys.executable, "bench/gpu_check.py", "--device", "cpu", "--quick", "--threads", "1", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    table = out.read_text()
    assert table == done.stdout
    rows = [
        line.split(" | ") for line in table.splitlines() if line.startswith("| ") and not line.startswith("| section")
    ]
    assert {row[0].removeprefix("| ") for row in rows} == set(SECTIONS)
    assert "error" not in table.lower()
    assert {row[2] for row in rows if row[0] == "| 1 precision"} == {"float32", "bfloat16", "float16"}
    assert "skipped on the CPU" in next(row[-1] for row in rows if row[2] == "float16")
    assert "path: device" in table and "path: CPU copy" in table  # the attention fallback really ran
