"""Smoke test of ``python -m experiments.benchmark --quick``: the JSON is well formed.

No speed assertions: timings depend on the machine and its load. The benchmark runs in
a subprocess (a fresh process, as a user runs it), with PyTorch or without it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JAXCNN = ["numpy-reference", "jaxcnn-per-sample-manual", "jaxcnn-per-sample-autodiff",
          "jaxcnn-per-sample-16-seeds", "jaxcnn-batch-32", "jaxcnn-batch-128",
          "jaxcnn-batch-1024", "jaxcnn-evaluate"]
TORCH = ["torch-per-sample", "torch-batch-32", "torch-batch-128", "torch-evaluate"]
FLAX = ["flax-per-sample-loop", "flax-per-sample-scan", "flax-batch-32", "flax-batch-128"]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_quick_benchmark_writes_well_formed_json(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--quick", "--json", str(out),
         "--markdown", str(md)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    rows = {row["name"]: row for row in report["contenders"]}
    assert set(JAXCNN + TORCH) <= set(rows), sorted(rows)
    for name in JAXCNN:
        row = rows[name]
        assert row["skipped"] is False
        assert _positive(row["images_per_second"]), row
        assert _positive(row["ratio_to_numpy"]), row
        assert row["images_per_second_min"] <= row["images_per_second"] \
            <= row["images_per_second_max"]
    assert rows["numpy-reference"]["ratio_to_numpy"] == pytest.approx(1.0)
    for name in JAXCNN[1:]:
        assert _positive(rows[name]["compile_seconds"]), name

    torch_skipped = [rows[name]["skipped"] for name in TORCH]
    assert all(torch_skipped) or not any(torch_skipped)
    if all(torch_skipped):
        assert all(rows[name]["reason"] for name in TORCH)
        assert report["per_sample_ratio_to_torch"] is None
    else:
        for name in TORCH:
            assert _positive(rows[name]["images_per_second"]), name
            assert _positive(rows[name]["ratio_to_numpy"]), name
        assert _positive(report["per_sample_ratio_to_torch"])
        assert _positive(rows["jaxcnn-batch-128"]["ratio_to_torch"])
        assert _positive(rows["jaxcnn-batch-32"]["ratio_to_torch"])
        assert _positive(rows["jaxcnn-evaluate"]["ratio_to_torch"])

    assert _positive(report["per_sample_ratio_to_numpy"])
    assert report["per_sample_ratio_to_numpy"] == rows["jaxcnn-per-sample-manual"][
        "ratio_to_numpy"]
    assert {t["contender"] for t in report["targets"]} <= set(rows)
    for target in report["targets"]:
        assert target["met"] in (True, False, None)
    targets = {t["target"]: t for t in report["targets"]}
    roof_128 = targets["mini-batch 128 >= 50% of its roof"]  # quick mode: no roofline
    assert roof_128["measured"] is None and roof_128["met"] is None
    to_per_sample = targets["mini-batch 128 >= 2x per-sample SGD, one seed"]
    assert _positive(to_per_sample["measured"]) and to_per_sample["met"] in (True, False)
    assert report["cold_train"]["return_codes"] == [0, 0]  # empty cache, then warm
    assert _positive(report["cold_train"]["median_seconds"])
    for kind in ("empty_cache", "warm_cache"):
        assert _positive(report["cold_train"][kind]["median"])
        assert report["cold_train"][kind]["met"] in (True, False)
    assert all(_positive(b["gb_per_second"]) for b in report["memory_bandwidth"])
    roof = rows["jaxcnn-per-sample-manual"]["roofline"]
    assert roof["bound"] in ("memory", "compute") and _positive(roof["fraction_of_roof"])
    if report["one_core"] is not None:
        assert len(report["one_core"]["cpu"]) == 1
        assert _positive(report["one_core"]["ratio"]["median"])
    for name in FLAX:  # the idiomatic-JAX peers, when flax is installed
        assert rows[name]["skipped"] or _positive(rows[name]["images_per_second"])
    assert _positive(report["flops"]["per_sample_flops_per_image"])
    assert _positive(report["flops"]["forward_flops_per_image"])
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"]
    assert {"python", "jax", "jaxlib", "numpy", "torch"} <= set(machine["versions"])
    assert report["mode"] == "quick"
    text = md.read_text()
    assert "| contender |" in text and "## Targets" in text
