"""Smoke test of ``python -m experiments.check_benchmark``: it runs, prints its tables and
writes strict JSON with every phase. No speed assertions: timings depend on the machine
and its load."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


@pytest.mark.slow
def test_check_benchmark_writes_phases_and_verdicts(tmp_path):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.check_benchmark", "--quick", "--cases",
         "readme-cs231n", "--json", str(out), "--markdown", str(md)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Phases" in proc.stdout and "readme-cs231n" in proc.stdout
    report = _strict(out.read_text())
    assert report["machine"]["cores"] >= 1 and report["load"]["median"] >= 0
    this = report["summary"]["this"]["readme-cs231n"]
    for state in ("cold", "warm"):
        run = this[state]
        assert run["exit_codes"] == [1]  # the README's example: dw is scaled
        assert set(run["phases"]) >= {"startup", "import", "discovery", "user", "fd",
                                      "compile", "reference", "classify", "report", "engine"}
        assert all(math.isfinite(v) and v >= 0 for v in run["phases"].values())
        assert run["wall_seconds"]["median"] > 0 and "affine" in run["per_layer"]
        assert ["affine", "w", "scaled", None, 0.25] in run["verdicts"]
    assert report["verdicts_identical"] == {"readme-cs231n": True}
    assert md.read_text().startswith("# `jaxcnn check` / `verify` benchmark")
