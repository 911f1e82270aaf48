"""Smoke tests of the research experiments (``experiments/``): each one's ``--quick`` run
into a temporary ``--out`` folder must write well-formed JSON with the expected keys,
valid PNG plots and a README.md that embeds them.

The three quick runs share ONE subprocess (``python -m``-equivalent ``run(argv)`` calls)
with a temporary JAX compilation cache: programs that recur across runs (the seeds'
initialisation, above all) compile once, the whole module stays well under a minute on
2 cores, and the cache setting never touches the pytest process. Needs matplotlib (the
``experiments`` extra); skipped without it.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from experiments import (  # noqa: E402
    common,
    full_mnist,
    gradient_ties,
    optimizers,
    reproduce_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROVENANCE = {"experiment", "command", "date", "quick", "data", "seed", "wall_seconds",
              "versions", "plots"}


ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = """
import sys
from experiments import full_mnist, gradient_ties, optimizers, reproduce_report
status = [m.run(["--quick", "--out", sys.argv[1]])
          for m in (reproduce_report, gradient_ties, optimizers, full_mnist)]
print("STATUS", *status)
"""


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """Run the four ``--quick`` experiments once; return their ``--out`` folder."""
    out = tmp_path_factory.mktemp("experiment-results")
    env = dict(os.environ, JAXCNN_CACHE_DIR=str(tmp_path_factory.mktemp("xla-cache")),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", RUN_ALL, str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STATUS 0 0 0 0" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _run(module, out: Path) -> dict:
    path = out / f"{module.NAME}.json"
    text = path.read_text()
    result = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert result["command"] == f"python -m experiments.{module.NAME} --quick --out {out}"
    assert PROVENANCE <= set(result), PROVENANCE - set(result)
    assert result["experiment"] == module.NAME and result["quick"] is True
    assert result["versions"]["jax"] and result["wall_seconds"] > 0
    plots = result["plots"].values() if isinstance(result["plots"], dict) else result["plots"]
    assert plots
    readme = (out / "README.md").read_text()
    for name in plots:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 100 and height > 100, (name, width, height)
        assert f"]({name})" in readme, f"{name} not embedded in README.md"
    assert f"## {common.TITLES[module.NAME]}" in readme
    assert "Could not render" not in readme
    return result


def _finite_summary(d: dict) -> None:
    for key in ("mean", "std", "min", "max"):
        assert math.isfinite(d[key]), (key, d)
    assert d["min"] <= d["mean"] <= d["max"]
    assert d["mean_ci95"][0] <= d["mean"] <= d["mean_ci95"][1]
    assert len(d["per_seed"]) == d["n"]


def test_reproduce_report_quick(out):
    r = _run(reproduce_report, out)
    assert len(r["seeds"]) == r["settings"]["seeds"]
    for size in r["settings"]["sizes"]:
        for order in ("fixed", "shuffled"):
            _finite_summary(r["full"][str(size)][order]["test_accuracy"])
    _finite_summary(r["untrained"]["loss"])
    assert abs(r["untrained"]["loss"]["mean"] - math.log(10)) < 0.01  # uniform guess
    settings = {row["setting"] for row in r["comparison"]}
    assert any("softmax layer only" in s for s in settings)
    assert all(row["verdict"] for row in r["comparison"])
    assert "| setting | report (1 run)" in (out / "README.md").read_text()


def test_gradient_ties_quick(out):
    r = _run(gradient_ties, out)
    for key in ("initial", "trained"):
        t = r["ties"][key]
        assert 0 < t["tie_share"] < 1
        share = t["tie_share_per_position"]
        assert len(share) == 13 and all(len(row) == 13 for row in share)
        assert t["per_image"]["norm_ratio"]["mean"] > 1  # tied windows count k times
        assert t["per_image"]["first_rule_relative_error"]["max"] < 1e-9
    for by_rule in r["training"].values():
        assert set(by_rule) == set(gradient_ties.RULES)
        _finite_summary(by_rule["report"]["accuracy_minus_reference"])
    assert r["conclusion"]["verdict"]
    assert "**Verdict.**" in (out / "README.md").read_text()


def test_optimizers_quick(out):
    r = _run(optimizers, out)
    assert set(r["final"]) == set(optimizers.OPTIMIZERS)
    for key, f in r["final"].items():
        assert len(f["per_epoch"]) == r["settings"]["epochs"]
        _finite_summary(f["per_epoch"][-1]["test_accuracy"])
        assert r["throughput"][key]["seconds_per_epoch"] > 0
        assert str(r["settings"]["train_size"]) in r["sizes"][key]
    assert r["best"]["selected"]["key"] in optimizers.OPTIMIZERS
    assert r["fashion"] == {"skipped": "--quick"}
    readme = (out / "README.md").read_text()
    assert "**Equal wall time**" in readme and "Fashion-MNIST**: skipped" in readme


def test_full_mnist_quick(out):
    r = _run(full_mnist, out)
    assert r["data"] == "mnist-embedded"  # a smoke run needs no files
    for row in r["report_table"]["rows"]:
        for order in ("report_order", "own_order"):
            _finite_summary(row[order]["test_accuracy"])
            _finite_summary(row[order]["test_accuracy_first_800"])
    for part in ("one_pass", "epochs"):
        assert set(r["tie_rules"][part]) == set(full_mnist.RULES)
    assert [row["name"] for row in r["sweep"]] == [full_mnist.CANDIDATES[i][0]
                                                   for i in r["settings"]["candidates"]]
    best = r["best"]
    assert best["chosen"] == max(r["sweep"], key=lambda row: row["validation_accuracy"]["mean"]
                                 )["name"]
    _finite_summary(best["test_accuracy"])
    assert best["seeds"] == r["settings"]["final_seeds"] == len(best["test_accuracy"]["per_seed"])
    assert best["command"].startswith("jaxcnn train --data mnist-embedded --train-size 600 ")
    assert best["printed"] == (f"Test Accuracy: {best['test_accuracy']['mean']:.4f} ± "
                               f"{best['test_accuracy']['std']:.4f} (min "
                               f"{best['test_accuracy']['min']:.4f}, max "
                               f"{best['test_accuracy']['max']:.4f})")
    assert "**The chosen recipe**" in (out / "README.md").read_text()


def test_readme_keeps_every_section(out):
    """Run after the four above (file order): each experiment left its own section."""
    readme = (out / "README.md").read_text()
    for name in common.EXPERIMENTS:
        assert f"## {common.TITLES[name]}" in readme
    assert "_Not run yet" not in readme
    assert len(re.findall(r"\(--quick smoke run", readme)) == len(common.EXPERIMENTS)


def test_statistics_helpers():
    assert common.t_quantile(0.975, 19) == pytest.approx(2.0930, abs=1e-4)
    assert common.t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-3)
    d = common.describe([0.80, 0.82, 0.84, 0.86])
    assert d["mean"] == pytest.approx(0.83) and d["runs_95"][0] > 0.80
    half = 3.1824 * d["std"] / 2
    assert d["mean_ci95"] == pytest.approx([0.83 - half, 0.83 + half], abs=1e-4)
    assert common.place(0.70, d)["verdict"].startswith("below all 4 runs")
    assert common.place(0.83, d)["inside_runs_95"]


@pytest.mark.parametrize("module", [reproduce_report, gradient_ties, optimizers, full_mnist])
def test_quick_never_writes_into_the_committed_results(module, capsys):
    """``--quick`` alone goes to a new temporary folder; the committed results folder is
    the default of a real run, and ``--out`` (which may name it) always wins."""
    seen = []

    def main(args):
        seen.append(Path(args.out))
        return 0

    assert common.run_cli(module.build_parser(), main, ["--quick"]) == 0
    quick = seen[-1]
    assert quick.resolve() != common.RESULTS_DIR.resolve()
    assert quick.is_dir() and not any(quick.iterdir())
    assert str(quick) in capsys.readouterr().err  # says where it writes
    quick.rmdir()
    assert common.run_cli(module.build_parser(), main, []) == 0
    assert seen[-1] == common.RESULTS_DIR
    explicit = ["--quick", "--out", str(common.RESULTS_DIR)]
    assert common.run_cli(module.build_parser(), main, explicit) == 0
    assert seen[-1] == common.RESULTS_DIR
