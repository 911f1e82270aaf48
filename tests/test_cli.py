"""The `jaxcnn` command end to end, in subprocesses: train, evaluate, resume, errors."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"^\[Step (\d+)\] Past (\d+) steps: Average Loss (\d+\.\d{3}) \| "
                      r"Accuracy: (\d+)%$")


def jaxcnn(*args, timeout=300):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jaxcnn", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)
    proc.seconds = time.perf_counter() - start
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = jaxcnn("train", "--train-size", "300", "--test-size", "200", "--epochs", "2",
                  "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_train_prints_the_reports_log_lines_and_test_result(trained):
    _, proc = trained
    lines = proc.stdout.splitlines()
    steps = [int(m.group(1)) for m in map(LOG_LINE.match, lines) if m]
    assert steps == [100, 200, 300, 400, 500, 600]
    assert all(int(m.group(2)) == 100 for m in map(LOG_LINE.match, lines) if m)
    assert "--- Epoch 2 ---" in lines
    assert re.search(r"^Test Loss: \d+\.\d+", proc.stdout, re.M)
    accuracy = float(re.search(r"^Test Accuracy: (\d\.\d+)", proc.stdout, re.M).group(1))
    assert 0.5 < accuracy <= 1.0
    assert "Traceback" not in proc.stderr


def test_out_files_parse_and_agree(trained):
    out, proc = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 2 and metrics["config"]["learning_rate"] == 0.005
    assert [w["step"] for w in metrics["windows"]] == [100, 200, 300, 400, 500, 600]
    assert metrics["timings"]["images_per_second"] > 0
    assert {"jax", "jaxlib", "optax", "numpy"} <= set(metrics["versions"])
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and rows[0].keys() == {"step", "epoch", "seed", "images", "loss",
                                                 "accuracy"}
    assert float(rows[-1]["loss"]) == pytest.approx(metrics["windows"][-1]["loss"]["mean"],
                                                    rel=1e-5)
    printed = float(re.search(r"^Test Accuracy: (\S+)", proc.stdout, re.M).group(1))
    assert metrics["test"]["accuracy"]["mean"] == pytest.approx(printed, abs=1e-5)


def test_evaluate_reproduces_the_training_test_result(trained):
    out, _ = trained
    proc = jaxcnn("evaluate", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert result["accuracy"]["mean"] == pytest.approx(metrics["test"]["accuracy"]["mean"])
    assert result["test_images"] == 200


def test_resume_extends_training_and_keeps_earlier_windows(trained, tmp_path):
    out, _ = trained
    proc = jaxcnn("train", "--resume", str(out), "--epochs", "3", "--out", str(tmp_path),
                  "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "Resuming" in proc.stdout and "[Step 900]" in proc.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [w["step"] for w in metrics["windows"]] == [100 * i for i in range(1, 10)]
    uninterrupted = tmp_path / "straight"
    proc = jaxcnn("train", "--train-size", "300", "--test-size", "200", "--epochs", "3",
                  "--out", str(uninterrupted), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    straight = json.loads((uninterrupted / "metrics.json").read_text())
    assert straight["test"] == metrics["test"]


def test_resume_refuses_changed_settings(trained):
    out, _ = trained
    proc = jaxcnn("train", "--resume", str(out), "--lr", "0.1")
    assert proc.returncode == 2
    assert "only --epochs may change" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_of_a_finished_run_asks_for_more_epochs(trained):
    out, _ = trained
    proc = jaxcnn("train", "--resume", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "already trained its 2 epoch(s); give --epochs 3" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("train", "--lr", "1e4", "--train-size", "200"), "training diverged"),
    (("train", "--epochs", "0"), "--epochs must be at least 1"),
    (("train", "--train-size", "99999"), "more than the 4,000 train images"),
    (("train", "--data", "idx:/no/such/dir"), "does not exist"),
    (("evaluate", "/no/such/checkpoint"), "expected checkpoint.json"),
    (("verify", "--images", "0"), "--images must be between"),
])
def test_user_errors_exit_2_with_one_message(args, message):
    proc = jaxcnn(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_and_entry_points():
    proc = jaxcnn("--help")
    assert proc.returncode == 0 and "train" in proc.stdout and "verify" in proc.stdout
    proc = jaxcnn("train", "--help")
    assert proc.returncode == 0 and "--seeds" in proc.stdout and "--resume" in proc.stdout


def test_seeds_run_on_several_cpu_devices_with_the_same_result(tmp_path):
    split = jaxcnn("train", "--seeds", "2", "--train-size", "200", "--test-size", "100",
                   "--cpu-devices", "2", "--out", str(tmp_path / "split"), "--no-progress")
    single = jaxcnn("train", "--seeds", "2", "--train-size", "200", "--test-size", "100",
                    "--cpu-devices", "1", "--out", str(tmp_path / "single"), "--no-progress")
    assert split.returncode == 0 and single.returncode == 0, split.stderr + single.stderr
    assert "2 devices (seeds axis sharded)" in split.stdout
    assert "devices" not in single.stdout.splitlines()[-2]
    a = json.loads((tmp_path / "split" / "metrics.json").read_text())
    b = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert a["windows"] == b["windows"]  # training: bit for bit
    assert a["test"]["accuracy"] == b["test"]["accuracy"]
    # the sharded evaluation program sums the test losses in another order
    assert a["test"]["loss"]["mean"] == pytest.approx(b["test"]["loss"]["mean"], rel=1e-6)
