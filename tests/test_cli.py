"""The `jaxcnn` command end to end, in subprocesses: train, evaluate, resume, errors."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"^\[Step (\d+)\] Past (\d+) steps: Average Loss (\d+\.\d{3}) \| "
                      r"Accuracy: (\d+)%$")


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (not JSON)."""
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def jaxcnn(*args, timeout=300):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "jaxcnn", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


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
    metrics = strict_json((out / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 2 and metrics["config"]["learning_rate"] == 0.005
    assert [w["step"] for w in metrics["windows"]] == [100, 200, 300, 400, 500, 600]
    assert metrics["timings"]["images_per_second"] > 0
    assert {"jax", "jaxlib", "optax", "numpy"} <= set(metrics["versions"])
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and list(rows[0]) == ["run_id", "step", "epoch", "seed", "steps",
                                                "images", "loss", "accuracy"]
    assert {row["run_id"] for row in rows} == {metrics["run_id"]}
    assert float(rows[-1]["loss"]) == metrics["windows"][-1]["loss"]["mean"]  # exact
    printed = float(re.search(r"^Test Accuracy: (\S+)", proc.stdout, re.M).group(1))
    assert metrics["test"]["accuracy"]["mean"] == pytest.approx(printed, abs=1e-5)


def test_evaluate_reproduces_the_training_test_result(trained):
    out, _ = trained
    proc = jaxcnn("evaluate", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = strict_json(proc.stdout)
    metrics = strict_json((out / "metrics.json").read_text())
    assert result["accuracy"] == metrics["test"]["accuracy"]  # bit for bit
    assert result["loss"] == metrics["test"]["loss"]
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


def test_resume_refuses_settings_that_are_not_the_optimizers(trained):
    out, _ = trained
    proc = jaxcnn("train", "--resume", str(out), "--epochs", "3", "--batch-size", "4",
                  "--train-size", "300")
    assert proc.returncode == 2
    assert "--batch-size 1 -> 4 cannot change" in proc.stderr
    assert "--init-from" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_of_a_finished_run_asks_for_more_epochs(trained):
    out, _ = trained
    proc = jaxcnn("train", "--resume", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "already trained its 2 epoch(s); give --epochs 3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_accepts_restated_flags_and_a_new_learning_rate_and_optimizer(trained, tmp_path):
    """Issue 10 (4): the divergence message advises a smaller --lr; resume must take it."""
    out, _ = trained
    proc = jaxcnn("train", "--resume", str(out), "--epochs", "3", "--train-size", "300",
                  "--test-size", "200", "--lr", "0.001", "--optimizer", "momentum",
                  "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "--lr changed from 0.005 to 0.001" in proc.stdout
    assert "no longer bit-identical" in proc.stdout and "starts afresh" in proc.stdout
    change = {"step": 600, "epochs_done": 2,
              "changed": {"optimizer": ["sgd", "momentum"], "lr": [0.005, 0.001]}}
    metrics = strict_json((tmp_path / "metrics.json").read_text())
    assert metrics["history"] == [change] and metrics["config"]["optimizer"] == "momentum"
    assert [w["step"] for w in metrics["windows"]] == [100 * i for i in range(1, 10)]
    from jaxcnn.training import checkpoint

    assert checkpoint.load(tmp_path).history == [change]


def test_init_from_starts_a_new_run_from_the_weights(trained, tmp_path):
    out, _ = trained
    proc = jaxcnn("train", "--init-from", str(out), "--optimizer", "adam", "--train-size",
                  "100", "--test-size", "200", "--batch-size", "10", "--log-every", "5",
                  "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "Starting from the parameters of" in proc.stdout
    source = strict_json((out / "metrics.json").read_text())
    metrics = strict_json((tmp_path / "metrics.json").read_text())
    assert metrics["init_from"]["run_id"] == source["run_id"] != metrics["run_id"]
    assert metrics["init_from"]["step"] == 600 and metrics["steps"] == 10
    # it starts where the source ended, far better than a fresh model's ~2.3
    assert metrics["windows"][0]["loss"]["mean"] < 1.5
    wrong = jaxcnn("train", "--init-from", str(out), "--filters", "4")
    assert wrong.returncode == 2 and "has 8 filters" in wrong.stderr


def test_evaluate_refuses_other_class_names_unless_told(trained, tmp_path):
    """Issue 10 (5): a digits model on Fashion-MNIST scored 4.2 % without a word."""
    from idx_helpers import write_idx_dir

    out, _ = trained
    fashion = tmp_path / "fashion-mnist"
    write_idx_dir(fashion, n_train=20, n_test=200)
    proc = jaxcnn("evaluate", str(out), "--data", f"idx:{fashion}")
    assert proc.returncode == 2
    assert "classes (0, 1, 2" in proc.stderr and "(T-shirt/top, Trouser" in proc.stderr
    assert "--ignore-class-names" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = jaxcnn("evaluate", str(out), "--data", f"idx:{fashion}", "--ignore-class-names")
    assert proc.returncode == 0, proc.stderr


def test_evaluate_refuses_a_diverged_checkpoint(trained, tmp_path):
    import hashlib

    import numpy as np

    from jaxcnn.training import checkpoint

    out, _ = trained
    with np.load(out / checkpoint.FILE_NAME) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    arrays["params.filters"] = np.full_like(arrays["params.filters"], np.inf)
    meta["arrays"]["params.filters"]["sha256"] = checkpoint._sha256(arrays["params.filters"])
    meta.pop("sha256")
    meta["sha256"] = hashlib.sha256(checkpoint._canonical(meta)).hexdigest()
    np.savez(tmp_path / checkpoint.FILE_NAME, **arrays,
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    proc = jaxcnn("evaluate", str(tmp_path))
    assert proc.returncode == 2 and "diverged" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize(("args", "message"), [
    (("train", "--lr", "1e4", "--train-size", "200"), "training diverged"),
    (("train", "--lr", "0.04", "--train-size", "500"), "mean loss of steps 1-100 reached 46"),
    (("train", "--lr", "0.5", "--train-size", "20"), "training diverged"),
    (("train", "--seed", "-1"), "--seed must be at least 0"),
    (("train", "--resume", "/no/such/run"), "--resume /no/such/run: no such folder"),
    (("train", "--resume", "README.md"), "--resume README.md is a file, not a run folder; give "
                                         "the folder that `jaxcnn train --out DIR` wrote"),
    (("train", "--epochs", "0"), "--epochs must be at least 1"),
    (("train", "--train-size", "99999"), "more than the 4,000 train images"),
    (("train", "--data", "idx:/no/such/dir"), "does not exist"),
    (("evaluate", "/no/such/checkpoint"), "/no/such/checkpoint: no such folder"),
    # a file or a folder named checkpoint.npz was "there is no checkpoint.npz there"
    (("evaluate", "README.md"), "error: README.md is a file, not a run folder"),
    (("evaluate", "/no/such/checkpoint", "--test-size", "0"),
     "argument --test-size: must be at least 1, got 0 (see jaxcnn evaluate --help)"),
    (("plot", "/no/such/run", "--test-size", "-5"), "argument --test-size: must be at least 1"),
    (("verify", "--images", "0"), "--images must be between"),
    (("train", "--out", ""), "argument --out: an empty path"),
    (("plot", ""), "argument DIR: an empty path"),
    (("train", "--momentum", "0.5"), "--momentum applies to --optimizer momentum only"),
    (("train", "--cpu-devices", "3", "--seeds", "4"), "--cpu-devices 3 must divide --seeds 4"),
    (("train", "--resume", ".", "--force"), "give one"),
    (("train", "--batch-size", "5000"), "--batch-size 5000 is larger than the 3,000"),
    (("train", "--bogus"), "unrecognized arguments: --bogus (see jaxcnn train --help)"),
    (("train", "--shift", "5"), "--shift must be at most 4, got 5"),
    (("train", "--validation", "3000"), "--validation 3,000 leaves no training image"),
    (("train", "--train-size", "4000", "--validation", "4000"), "leaves no training image"),
    (("train", "--weight-decay", "2"), "--weight-decay must be in [0, 1]"),
    (("train", "--schedule", "step"), "argument --schedule: invalid choice: 'step'"),
])
def test_user_errors_exit_2_with_one_message(args, message):
    proc = jaxcnn(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    if "diverged" not in message and "mean loss" not in message:  # those train first
        assert proc.stdout == ""  # refused before anything is printed
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_folder_named_checkpoint_npz_is_named_as_such(tmp_path):
    (tmp_path / "checkpoint.npz").mkdir()
    for command in ("evaluate", "plot"):
        proc = jaxcnn(command, str(tmp_path))
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
        assert "its checkpoint.npz is not a file" in proc.stderr, proc.stderr


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
    assert a["windows"] == b["windows"]  # bit for bit: each seed runs the one-seed program
    assert a["test"] == b["test"]


def test_one_seeds_batch_is_split_over_two_cores_by_default_with_the_same_result(tmp_path):
    """A batch of 64 or more (even) splits over two CPU devices by default on a machine
    with two cores or more, one half each: the numbers of --cpu-devices 1, bit for bit."""
    flags = ["--batch-size", "64", "--train-size", "256", "--test-size", "100",
             "--optimizer", "adam", "--epochs", "2", "--log-every", "2", "--no-progress"]
    default = jaxcnn("train", *flags, "--out", str(tmp_path / "default"))
    single = jaxcnn("train", *flags, "--cpu-devices", "1", "--out", str(tmp_path / "single"))
    assert default.returncode == 0 and single.returncode == 0, default.stderr + single.stderr
    if (os.cpu_count() or 1) >= 2:
        assert "2 devices (batch axis sharded)" in default.stdout
    assert "devices" not in single.stdout.splitlines()[-2]
    a = json.loads((tmp_path / "default" / "metrics.json").read_text())
    b = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert a["windows"] == b["windows"] and a["test"] == b["test"]


@pytest.mark.parametrize("cores,seeds,parts,want", [(2, 1, 2, 2), (4, 1, 2, 2), (1, 1, 2, 1),
                                                    (2, 1, 1, 1), (4, 4, 2, 4), (2, 3, 1, 1)])
def test_default_cpu_devices_follow_the_cores(monkeypatch, cores, seeds, parts, want):
    """Default --cpu-devices: the most cores dividing the seeds; one seed whose batch is
    computed in two parts gets two devices when there are two cores (the bits stay)."""
    import jax

    from jaxcnn.cli import train as cli_train

    asked = []
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(jax.config, "update", lambda name, value: asked.append((name, value)))
    assert cli_train.use_cpu_devices(None, seeds, batch_parts=parts) == want
    assert asked == ([("jax_num_cpu_devices", want)] if want > 1 else [])
    assert cli_train.use_cpu_devices(None, seeds, processes=2, batch_parts=parts) == 1


def test_split_parts_of_a_config():
    from jaxcnn.cli.train import split_parts
    from jaxcnn.training.config import TrainConfig

    assert [split_parts(TrainConfig(batch_size=b)) for b in (1, 32, 63, 64, 65, 128)] == [
        1, 1, 1, 2, 1, 2]
    assert split_parts(TrainConfig(batch_size=128, seeds=2)) == 1  # the seeds are split
    assert split_parts(TrainConfig(batch_size=128, grad="autodiff")) == 1


def test_resume_of_a_missing_folder_creates_nothing(tmp_path):
    missing = tmp_path / "never" / "made"
    proc = jaxcnn("train", "--resume", str(missing))
    assert proc.returncode == 2 and "no such folder" in proc.stderr
    assert not (tmp_path / "never").exists()


TINY = ["--train-size", "20", "--test-size", "100", "--log-every", "10", "--no-progress"]


def _shell(command: str):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(command, shell=True, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["train", *TINY, "--out", "{out}"], ["--version"],
                                  ["train", "--help"]])
def test_a_standard_output_that_cannot_be_written_is_named_not_blamed_on_out(tmp_path, args):
    """`jaxcnn train --out DIR > /dev/full` said "a file operation failed ...; choose
    another --out", and `--version > /dev/full` exited 0 with its output lost."""
    line = " ".join(a.format(out=tmp_path / "run") for a in args)
    proc = _shell(f"{sys.executable} -m jaxcnn {line} > /dev/full")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "cannot write to standard output (No space left on device)" in lines[0]
    assert "--out" not in lines[0]


def test_a_closed_standard_output_or_error_is_not_a_failure(tmp_path):
    """`jaxcnn train --out DIR >&-` trained and saved, then ended with a traceback and
    exit 1 (Python starts with sys.stdout = None); and the run lock, the first file opened,
    took file descriptor 1, where native code prints."""
    out = tmp_path / "run"
    proc = _shell(f"{sys.executable} -m jaxcnn train {' '.join(TINY)} --out {out} >&- 2>&-")
    assert proc.returncode == 0
    assert strict_json((out / "metrics.json").read_text())["steps"] == 20
    proc = _shell(f"{sys.executable} -m jaxcnn evaluate {out} >&-")
    assert proc.returncode == 0 and proc.stderr == ""
    proc = _shell(f"{sys.executable} -c 'import os, sys; os.close(1); sys.stdout = None; "
                  "import jaxcnn._program; print(os.readlink(\"/proc/self/fd/1\"), "
                  "file=sys.stderr)'")
    if sys.platform == "linux":
        assert proc.stderr.strip() == "/dev/null"


def test_a_compilation_cache_that_cannot_be_written_or_read_costs_only_time(tmp_path):
    """With the cache on a full disk (here a file size limit of 0), every run printed
    JAX's warning for each program it could not write, then for each truncated entry it
    could not read: 18 lines on stderr for a run that succeeded."""
    cache = tmp_path / "cache"
    cache.mkdir()
    command = f"{sys.executable} -m jaxcnn train {' '.join(TINY)}"
    full = _shell(f"JAXCNN_CACHE_DIR={cache} sh -c 'ulimit -f 0; exec {command}'")
    assert full.returncode == 0 and full.stderr == "", full.stderr
    assert any(p.stat().st_size == 0 for p in cache.rglob("*") if p.is_file())  # truncated
    again = _shell(f"JAXCNN_CACHE_DIR={cache} {command}")
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout.splitlines()[-3:-1] == full.stdout.splitlines()[-3:-1]  # test result


class JaxRuntimeError(RuntimeError):
    """Stands for jax.errors.JaxRuntimeError, which XLA raises when an allocation fails."""


@pytest.mark.parametrize(("command", "error", "hint"), [
    ("train", JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 14176747520 "
                              "bytes.\nmore"), "train fewer --seeds at once"),
    ("evaluate", MemoryError(), "use a smaller --test-size"),
])
def test_running_out_of_memory_is_one_line_not_a_traceback(monkeypatch, capsys, command,
                                                           error, hint):
    """`jaxcnn train --seeds 4096 --filters 1024` ended in a 40-line traceback and exit 1
    (XLA: RESOURCE_EXHAUSTED); now one line that says what to make smaller, exit 2."""
    import importlib

    from jaxcnn.cli import main

    module = importlib.import_module(f"jaxcnn.cli.{command}")

    def run(args):
        raise error

    monkeypatch.setattr(module, "run", run)
    args = [command] + (["--no-progress"] if command == "train" else ["somewhere"])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"jaxcnn {command}: error: out of memory (")
    assert hint in err and "more" not in err
    monkeypatch.setattr(module, "run", lambda args: (_ for _ in ()).throw(ValueError("bug")))
    with pytest.raises(ValueError, match="bug"):  # anything else is still a bug
        main(args)


def test_an_os_error_naming_a_path_with_a_line_break_is_still_one_line(monkeypatch, capsys):
    import errno

    from jaxcnn.cli import main

    def run(args):
        raise OSError(errno.EIO, "Input/output error", "run\nfolder/metrics.csv")

    monkeypatch.setattr("jaxcnn.cli.evaluate.run", run)
    assert main(["evaluate", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(run folder/metrics.csv)" in err


def test_recipe_flags_print_validation_and_are_kept_for_resume_and_evaluate(tmp_path):
    out = tmp_path / "run"
    proc = jaxcnn("train", "--train-size", "150", "--test-size", "100", "--validation", "50",
                  "--optimizer", "adam", "--batch-size", "10", "--shuffle",
                  "--schedule", "cosine", "--shift", "1", "--weight-decay", "0.01",
                  "--log-every", "5", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert ("100 training / 50 validation / 100 test images, adam lr 0.001, cosine schedule, "
            "weight decay 0.01, shifts up to 1 px, batch 10") in proc.stdout
    lines = proc.stdout.splitlines()
    val = next(i for i, line in enumerate(lines) if line.startswith("Validation Accuracy: "))
    assert lines[val + 2].startswith("Test Accuracy: ")
    metrics = strict_json((out / "metrics.json").read_text())
    assert metrics["config"]["shift"] == 1 and metrics["config"]["schedule"] == "cosine"
    assert metrics["validation"]["images"] == 50
    assert lines[val] == f"Validation Accuracy: {metrics['validation']['accuracy']['mean']:.6g}"
    evaluated = jaxcnn("evaluate", str(out))
    assert evaluated.returncode == 0
    assert f"Test Accuracy: {metrics['test']['accuracy']['mean']:.6g}" in evaluated.stdout
    refused = jaxcnn("train", "--resume", str(out), "--epochs", "2")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--epochs cannot change on --resume with --schedule cosine" in refused.stderr


def test_evaluate_and_plot_refuse_their_own_data_source_when_it_changed(tmp_path):
    """Issue 22 (4): one label changed in the checkpoint's own idx: test file, and
    `evaluate` printed a new accuracy with exit 0, while --resume refused the same
    change. Both compare the data with the checkpoint's data_sha256 now."""
    from idx_helpers import write_idx_dir

    from jaxcnn.data import idx

    paths = write_idx_dir(tmp_path / "digits", n_train=20, n_test=20)
    run = tmp_path / "run"
    assert jaxcnn("train", "--data", f"idx:{tmp_path / 'digits'}", "--train-size", "20",
                  "--test-size", "20", "--log-every", "10", "--no-progress", "--out",
                  str(run)).returncode == 0
    assert jaxcnn("evaluate", str(run), "--test-size", "10").returncode == 0  # unchanged
    labels = idx.read_idx(paths["test_labels"])
    labels[3] = (labels[3] + 1) % 10
    paths["test_labels"].write_bytes(idx.encode_idx(labels))
    for command in (["evaluate", str(run)], ["plot", str(run), "--out", str(tmp_path / "p")]):
        proc = jaxcnn(*command)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "no longer holds the images" in proc.stderr
        assert "--ignore-data-change" in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "p").exists()  # plot made no folder for pictures it refused
    assert jaxcnn("evaluate", str(run), "--ignore-data-change").returncode == 0


def test_labels_that_cannot_explain_the_test_set_are_refused_or_warned(tmp_path):
    """Issue 22 (9): every training label 11 and test labels 0-9 loaded as 12 classes,
    trained, and ended "Test Accuracy: 0" with exit 0. train refuses it unless
    --ignore-label-warnings; `jaxcnn data` shows the same warnings."""
    from idx_helpers import write_idx_dir

    from jaxcnn.data import idx

    paths = write_idx_dir(tmp_path / "d", n_train=20, n_test=20)
    paths["train_labels"].write_bytes(idx.encode_idx(np.full(20, 11, np.uint8)))
    flags = ["--data", f"idx:{tmp_path / 'd'}", "--train-size", "20", "--test-size", "20",
             "--log-every", "10", "--no-progress"]
    proc = jaxcnn("train", *flags)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "all 20 training labels are class 11" in proc.stderr and proc.stdout == ""
    assert "20 of the 20 test images belong to classes that no training image has" in proc.stderr
    assert "--ignore-label-warnings" in proc.stderr
    shown = jaxcnn("data", "--data", f"idx:{tmp_path / 'd'}")
    assert shown.returncode == 0
    assert "warning: all 20 training labels are class 11" in shown.stdout
    assert "warning: 1 of the 12 classes have no image in either split (10)" in shown.stdout
    forced = jaxcnn("train", *flags, "--ignore-label-warnings")
    assert forced.returncode == 0 and "warning: all 20 training labels" in forced.stdout
    # a minor problem only warns: half the training set holds class 11, half class 0
    mixed = np.where(np.arange(20) % 2, 11, 0).astype(np.uint8)
    paths["train_labels"].write_bytes(idx.encode_idx(mixed))
    proc = jaxcnn("train", *flags)
    assert proc.returncode == 0 and "training image has (1, 2," in proc.stdout, proc.stderr


def test_label_problems_of_ordinary_subsets_are_none():
    from jaxcnn import data
    from jaxcnn.data import plausible

    ds = data.load("mnist-embedded", train_size=3000, test_size=800)
    assert plausible.label_problems(ds.train_labels, ds.test_labels, ds.class_names) == ([], [])


def test_the_same_mistake_gets_the_same_message_in_every_command(trained, tmp_path):
    """Issue 22 (8): `jaxcnn plot run1/checkpoint.npz` said "Not a directory ... choose
    another --out" (the fault was the run argument), evaluate accepted the file, and
    train --resume asked for its folder. Now DIR/checkpoint.npz means DIR everywhere, and
    another file or a missing folder gets one wording naming the argument at fault."""
    out, _ = trained
    plotted = jaxcnn("plot", str(out / "checkpoint.npz"), "--out", str(tmp_path / "p"))
    assert plotted.returncode == 0 and (tmp_path / "p" / "confusion.png").exists(), \
        plotted.stderr
    (tmp_path / "notes.txt").write_text("x")
    for bad, fact in ((tmp_path / "notes.txt", " is a file, not a run folder"),
                      (tmp_path / "gone", ": no such folder")):
        lines = set()
        for command, argument in ((["evaluate"], ""), (["plot"], ""),
                                  (["train", "--resume"], "--resume "),
                                  (["train", "--init-from"], "--init-from ")):
            proc = jaxcnn(*command, str(bad))
            assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
            line = proc.stderr.split("error: ", 1)[1]
            assert line.startswith(f"{argument}{bad}{fact}"), line
            lines.add(line.removeprefix(argument))
        assert len(lines) == 1, lines  # the same words, whichever command


def test_a_label_number_the_mapping_file_skips_is_no_warning():
    """EMNIST letters declares its label 0 "(unused)": no image there is no surprise."""
    from jaxcnn.data import plausible

    train, test = np.array([1, 2, 3, 1]), np.array([1, 2])
    assert plausible.label_problems(train, test, ["(unused)", "a", "b", "c"]) == ([], [])
    _, minor = plausible.label_problems(train, test, ["x", "a", "b", "c"])
    assert minor == ["1 of the 4 classes have no image in either split (x)"]
