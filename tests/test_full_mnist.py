"""Full MNIST: the committed results agree with the README, and the recipe's command runs.

The tests that read the four IDX files use ``../shared/mnist`` beside the project (or
``$JAXCNN_FULL_MNIST``) and skip cleanly when they are absent: a user's clone has none,
and the files never enter the project.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "full_mnist.json"
MNIST = Path(os.environ.get("JAXCNN_FULL_MNIST", ROOT.parent / "shared" / "mnist"))
needs_mnist = pytest.mark.skipif(not (MNIST / "train-labels-idx1-ubyte.gz").exists()
                                 and not (MNIST / "train-labels-idx1-ubyte").exists(),
                                 reason=f"no full MNIST at {MNIST} (set $JAXCNN_FULL_MNIST)")


def jaxcnn(*args, timeout=300):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "jaxcnn", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def result():
    return json.loads(RESULTS.read_text())


def test_readme_tables_are_the_committed_results(result):
    pytest.importorskip("matplotlib")  # experiments' plotting helpers import it lazily
    from experiments import full_mnist

    readme = (ROOT / "README.md").read_text()
    for block in full_mnist.readme_tables(result).split("\n\n"):  # tables, with prose between
        assert block in readme, block
    assert f"```\n{result['best']['command']}\n```" in readme
    assert result["best"]["printed"] in readme


def test_the_recipe_command_is_one_train_command_on_the_shared_files(result):
    best = result["best"]
    argv = shlex.split(best["command"])
    assert argv[:2] == ["jaxcnn", "train"]
    assert argv[argv.index("--data") + 1] == "idx:../shared/mnist"
    assert int(argv[argv.index("--seeds") + 1]) == best["seeds"] >= 5
    acc = best["test_accuracy"]
    assert len(acc["per_seed"]) == best["seeds"]
    assert best["printed"].startswith(f"Test Accuracy: {acc['mean']:.4f} ± {acc['std']:.4f}")


@needs_mnist
def test_the_shared_files_are_the_full_mnist():
    proc = jaxcnn("data", "--data", f"idx:{MNIST}")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"total\s+60,000\s+10,000", proc.stdout), proc.stdout


@needs_mnist
def test_the_recipe_command_runs_on_the_shared_files_when_shortened(result):
    """The committed command's flags, on 2,000 images for one epoch and one seed: the
    flags parse and train (the full run is the experiment's, minutes long)."""
    argv = shlex.split(result["best"]["command"])[1:]
    short = {"--data": f"idx:{MNIST}", "--train-size": "2000", "--test-size": "1000",
             "--epochs": "1", "--seeds": "1", "--log-every": "20"}
    for flag, value in short.items():
        argv[argv.index(flag) + 1] = value
    proc = jaxcnn(*argv, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Test Accuracy: "))
    assert float(line.split()[2]) > 0.5  # far above chance (0.1) after 62 steps
