"""Run folders that survive anything (issue 13): real kills and signals at chosen points,
a second writer, unusable and full output folders, resume after a crash.

Every test runs ``python -m jaxcnn train`` on tiny data (20 training images, 10 steps
per window, 2 windows per epoch). Crashes are placed with ``JAXCNN_FAULT``
(``jaxcnn.faults``): the process really receives SIGKILL / SIGINT / SIGTERM / SIGSTOP at
that point (or, with ``+SECONDS``, from a timer while the next operation runs).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcnn.training import checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--train-size", "20", "--test-size", "100", "--log-every", "10", "--no-progress"]


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def jaxcnn(*args, fault: str | None = None, timeout=300):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    env.pop("JAXCNN_FAULT", None)
    if fault:
        env["JAXCNN_FAULT"] = fault
    # A suite started in the background (``pytest &``, nohup) inherits SIGINT ignored,
    # the child would too, and jaxcnn rightly keeps an ignored signal ignored: the Ctrl-C
    # tests would test the shell. A handled signal is reset to its default at exec, so
    # handle it here while the child starts (no preexec_fn: forking a threaded process).
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.run([sys.executable, "-m", "jaxcnn", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=ROOT)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def one_clean_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Fatal Python error" not in proc.stderr
    return lines[0]


def csv_steps(directory: Path) -> list[int]:
    with open(directory / "metrics.csv", newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("stage", ["written", "synced", "renamed"])
def test_kill_9_while_saving_leaves_the_old_or_the_new_checkpoint(tmp_path, stage):
    """Issue 13 (1): kill -9 inside the commit of epoch 2, before and after the rename."""
    proc = jaxcnn("train", *TINY, "--epochs", "3", "--out", tmp_path,
                  fault=f"checkpoint-e2:{stage}=KILL")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpt = checkpoint.load(tmp_path)
    assert ckpt.epochs_done == (2 if stage == "renamed" else 1)
    assert bool(temp_files(tmp_path)) == (stage != "renamed")
    assert csv_steps(tmp_path) == [10, 20, 30, 40]  # flushed as they happened


def test_a_kill_between_metrics_json_and_the_last_checkpoint_is_completed_by_resume(tmp_path):
    proc = jaxcnn("train", *TINY, "--epochs", "2", "--out", tmp_path,
                  fault="metrics.json:renamed=KILL")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert checkpoint.load(tmp_path).epochs_done == 1 and (tmp_path / "metrics.json").exists()
    proc = jaxcnn("train", "--resume", tmp_path, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert checkpoint.load(tmp_path).epochs_done == 2 and csv_steps(tmp_path) == [10, 20, 30, 40]


def test_resume_after_a_kill_sweeps_temporary_files_and_completes_the_metrics(tmp_path):
    crashed, straight = tmp_path / "crashed", tmp_path / "straight"
    proc = jaxcnn("train", *TINY, "--epochs", "3", "--out", crashed,
                  fault="checkpoint-e2:written=KILL")
    assert proc.returncode == -signal.SIGKILL and temp_files(crashed)
    proc = jaxcnn("train", "--resume", crashed, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert temp_files(crashed) == []
    assert jaxcnn("train", *TINY, "--epochs", "3", "--out", straight).returncode == 0
    resumed = strict_json((crashed / "metrics.json").read_text())
    uninterrupted = strict_json((straight / "metrics.json").read_text())
    assert csv_steps(crashed) == [10, 20, 30, 40, 50, 60]  # each window once
    assert resumed["windows"] == uninterrupted["windows"]
    assert resumed["test"] == uninterrupted["test"]
    a, b = checkpoint.load(crashed), checkpoint.load(straight)
    for x, y in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.run_id == resumed["run_id"] != uninterrupted["run_id"]


@pytest.mark.parametrize(("fault", "code", "what"), [
    ("start=INT+0.3", 130, "interrupted (Ctrl-C)"),  # during the start-up imports
    ("compile=INT+0.05", 130, "interrupted (Ctrl-C)"),  # while XLA compiles
    ("window-30=INT", 130, "interrupted (Ctrl-C)"),  # training
    ("checkpoint-e2:synced=INT", 130, "interrupted (Ctrl-C)"),  # saving
    ("compile=TERM+0.05", 143, "terminated (SIGTERM)"),
    ("checkpoint-e2:written=TERM", 143, "terminated (SIGTERM)"),
])
def test_signals_at_any_moment_give_one_line_and_their_exit_code(tmp_path, fault, code, what):
    """Issue 13 (5): Ctrl-C during compile used to end in a segmentation fault."""
    proc = jaxcnn("train", *TINY, "--epochs", "3", "--out", tmp_path, fault=fault)
    assert proc.returncode == code, proc.stderr
    line = one_clean_line(proc)
    assert line.startswith(f"jaxcnn train: {what}") and "intact" in line
    if fault.startswith(("checkpoint-e2", "window-30")):
        assert checkpoint.load(tmp_path).epochs_done == 1


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAXCNN_FAULT": "window-10=STOP"}
    first = subprocess.Popen([sys.executable, "-m", "jaxcnn", "train", *TINY, "--out",
                              str(tmp_path)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _, status = os.waitpid(first.pid, os.WUNTRACED)  # until it stops itself, lock held
        assert os.WIFSTOPPED(status)
        second = jaxcnn("train", *TINY, "--out", tmp_path)
        assert second.returncode == 2
        line = one_clean_line(second)
        assert "is in use by another run" in line and f"pid {first.pid}" in line
        assert "[Step" not in second.stdout
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert checkpoint.load(tmp_path).epochs_done == 1


def test_a_folder_holding_a_run_needs_resume_or_force(tmp_path):
    assert jaxcnn("train", *TINY, "--out", tmp_path).returncode == 0
    first_id = strict_json((tmp_path / "metrics.json").read_text())["run_id"]
    again = jaxcnn("train", *TINY, "--out", tmp_path)
    assert again.returncode == 2
    assert "already holds a run" in one_clean_line(again) and "--force" in again.stderr
    forced = jaxcnn("train", *TINY, "--out", tmp_path, "--force")
    assert forced.returncode == 0, forced.stderr
    metrics = strict_json((tmp_path / "metrics.json").read_text())
    assert metrics["run_id"] != first_id and csv_steps(tmp_path) == [10, 20]


@pytest.mark.parametrize(("name", "message"), [
    ("a-file", "is a file, not a folder"),  # issue 13 (4): trained an epoch, then a traceback
    ("a-file/run", "cannot create the output folder"),  # a file where a folder must be
])
def test_out_naming_a_file_is_refused_before_any_work(tmp_path, name, message):
    (tmp_path / "a-file").write_text("x")
    proc = jaxcnn("train", *TINY, "--out", tmp_path / name)
    assert proc.returncode == 2
    assert message in one_clean_line(proc)
    assert proc.stdout == ""  # nothing loaded, nothing trained


def _mount_tmpfs(path: Path, options: str) -> bool:
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_an_unwritable_out_is_refused_before_any_work(tmp_path):
    target = tmp_path / "ro"
    if os.geteuid() == 0:
        if not _mount_tmpfs(target, "ro,size=64k"):
            pytest.skip("as root, a read-only folder needs a read-only tmpfs mount")
    else:
        target.mkdir()
        target.chmod(0o555)
    try:
        proc = jaxcnn("train", *TINY, "--out", target)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(target)])
    assert proc.returncode == 2
    line = one_clean_line(proc)
    assert "cannot write to the output folder" in line
    assert "Read-only file system" in line or "Permission denied" in line
    assert proc.stdout == ""


def test_a_full_disk_keeps_the_last_checkpoint_and_says_so(tmp_path):
    target = tmp_path / "full"
    if not _mount_tmpfs(target, "size=100k"):
        pytest.skip("a full disk needs a small tmpfs mount (root on Linux)")
    try:
        proc = jaxcnn("train", *TINY, "--epochs", "3", "--out", target)
        assert proc.returncode == 2
        line = one_clean_line(proc)
        assert "cannot save the checkpoint of epoch 2" in line
        assert "No space left on device" in line and f"epoch 1 in {target} is kept" in line
        assert checkpoint.load(target).epochs_done == 1
        assert temp_files(target) == []
    finally:
        subprocess.run(["umount", str(target)])


def test_output_pipe_closed_early_is_one_line_not_a_traceback():
    """`jaxcnn train | head -1`: the reader exits, the next write finds the pipe closed."""
    proc = subprocess.run(f"{sys.executable} -m jaxcnn train {' '.join(TINY)} --epochs 3000 "
                          "| head -1", shell=True, capture_output=True, text=True, cwd=ROOT,
                          env=os.environ | {"PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.stdout.startswith("jaxcnn: 1 model")
    assert "output pipe was closed" in one_clean_line(proc)


def test_a_diverged_run_writes_nothing_non_finite_and_keeps_the_last_checkpoint(tmp_path):
    """Issue 10 (2): lr 0.5 on 20 images saved filters of 1e19 and a metrics.json with a
    bare NaN. Now: no checkpoint of a diverged state, no metrics.json, finite rows only."""
    fresh = tmp_path / "fresh"
    proc = jaxcnn("train", *TINY, "--lr", "0.5", "--out", fresh)
    assert proc.returncode == 2 and "training diverged" in one_clean_line(proc)
    assert sorted(p.name for p in fresh.iterdir()) == [".jaxcnn.lock", "metrics.csv"]
    healthy = tmp_path / "healthy"
    assert jaxcnn("train", *TINY, "--out", healthy).returncode == 0
    proc = jaxcnn("train", "--resume", healthy, "--epochs", "2", "--lr", "1e4")
    assert proc.returncode == 2
    line = one_clean_line(proc)
    assert "The checkpoint of epoch 1" in line
    assert f"--resume {healthy} --epochs 2 --lr 1000" in line  # a command that runs as is
    ckpt = checkpoint.load(healthy)
    assert ckpt.epochs_done == 1 and ckpt.history == []
    with open(healthy / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(np.isfinite(float(row["loss"])) for row in rows)
    strict_json((healthy / "metrics.json").read_text())


def test_a_resume_into_another_folder_that_fails_names_a_command_that_continues_it(tmp_path):
    """A run resumed into a new --out that diverged before its first save said "the
    checkpoint in NEW is kept: --resume NEW", but NEW held no checkpoint, and the same
    resume again was refused because NEW held the failed attempt's log (with --force
    refused too). Now the message names the folder that holds the checkpoint and a
    command that runs as is."""
    import shlex

    source, target = tmp_path / "source", tmp_path / "new run"
    assert jaxcnn("train", *TINY, "--out", source).returncode == 0
    proc = jaxcnn("train", "--resume", source, "--out", target, "--epochs", "2",
                  "--lr", "1e4", "--no-progress")
    assert proc.returncode == 2
    line = one_clean_line(proc)
    assert f"The checkpoint of epoch 1 in {source} is kept" in line
    command = line.split("`")[1]
    assert command == (f"jaxcnn train --resume {source} --out {shlex.quote(str(target))} "
                       "--force --epochs 2 --lr 1000")
    retry = jaxcnn(*shlex.split(command)[1:-1], "0.001", "--no-progress")
    assert retry.returncode == 0, retry.stderr
    assert checkpoint.load(target).epochs_done == 2 and csv_steps(target) == [10, 20, 30, 40]
    assert checkpoint.load(source).epochs_done == 1  # the source run is untouched
    same = jaxcnn("train", "--resume", source, "--out", source, "--force")
    assert same.returncode == 2 and "give one" in one_clean_line(same)


def test_resume_refuses_data_that_changed_since_the_checkpoint(tmp_path):
    """`--data idx:DIR` names files, not images: after DIR's files were replaced, --resume
    trained on the new images with exit 0 and a run that no uninterrupted run equals.
    The checkpoint now records the sha256 of its images and labels, and resume checks it."""
    from idx_helpers import make_split, write_idx, write_idx_dir

    from jaxcnn.data.idx import SPLIT_FILES

    write_idx_dir(tmp_path / "digits", n_train=20, n_test=20)
    run = tmp_path / "run"
    flags = ["--data", f"idx:{tmp_path / 'digits'}", "--train-size", "20", "--test-size", "20",
             "--log-every", "10", "--no-progress"]
    assert jaxcnn("train", *flags, "--out", run).returncode == 0
    recorded = checkpoint.load(run).data_sha256
    assert len(recorded) == 64
    assert strict_json((run / "metrics.json").read_text())["data_sha256"] == recorded
    images, _ = make_split(20, seed=7)
    write_idx(tmp_path / "digits" / SPLIT_FILES["train"][0], images)
    proc = jaxcnn("train", "--resume", run, "--epochs", "2")
    assert proc.returncode == 2
    line = one_clean_line(proc)
    assert "no longer holds the images the checkpoint" in line and "--init-from" in line
    assert proc.stdout == "" and checkpoint.load(run).epochs_done == 1


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_lock_that_is_not_a_plain_file_is_refused_and_never_written_through(tmp_path, kind):
    """A run folder whose .jaxcnn.lock was a symbolic link truncated the link's target and
    wrote the holder's JSON into it (any file the user may write: as root, any file)."""
    target, out = tmp_path / "precious.txt", tmp_path / "run"
    target.write_text("precious data\n")
    out.mkdir()
    if kind == "symlink":
        (out / ".jaxcnn.lock").symlink_to(target)
    else:
        os.mkfifo(out / ".jaxcnn.lock")
    proc = jaxcnn("train", *TINY, "--out", out)
    assert proc.returncode == 2
    line = one_clean_line(proc)
    assert ".jaxcnn.lock is " + ("a symbolic link" if kind == "symlink" else
                                 "not a plain file") in line
    assert proc.stdout == "" and target.read_text() == "precious data\n"


def test_force_also_removes_the_pictures_of_the_run_it_replaces(tmp_path):
    """--force deleted the run's files but left DIR/plots/*.png, which went on showing the
    replaced run's curves and filters beside the new run."""
    from jaxcnn.training import plots

    assert jaxcnn("train", *TINY, "--out", tmp_path).returncode == 0
    (tmp_path / plots.FOLDER).mkdir()
    for name in plots.FILES:
        (tmp_path / plots.FOLDER / name).write_bytes(b"\x89PNG old run")
    assert jaxcnn("train", *TINY, "--out", tmp_path, "--force").returncode == 0
    assert not (tmp_path / plots.FOLDER).exists()
    (tmp_path / plots.FOLDER).mkdir()  # a folder the user keeps more in is kept
    (tmp_path / plots.FOLDER / plots.FILES[0]).write_bytes(b"\x89PNG old run")
    (tmp_path / plots.FOLDER / "notes.txt").write_text("mine")
    assert jaxcnn("train", *TINY, "--out", tmp_path, "--force").returncode == 0
    assert sorted(p.name for p in (tmp_path / plots.FOLDER).iterdir()) == ["notes.txt"]


def test_evaluate_plot_and_init_from_on_a_run_that_stopped_before_its_first_checkpoint(
        tmp_path):
    """A diverged run leaves metrics.csv and no checkpoint; evaluate, plot and --init-from
    said "train with `jaxcnn train --out DIR` to make one", which is refused there."""
    proc = jaxcnn("train", *TINY, "--lr", "0.5", "--out", tmp_path)
    assert proc.returncode == 2 and "diverged" in proc.stderr
    for args in (("evaluate", tmp_path), ("plot", tmp_path), ("train", "--init-from", tmp_path),
                 ("train", "--resume", tmp_path)):  # one line for one fact (issue 22 (8))
        proc = jaxcnn(*args)
        assert proc.returncode == 2
        line = one_clean_line(proc)
        assert "stopped (diverged, failed or was stopped) before its first checkpoint" in line
        assert f"`jaxcnn train --out {tmp_path} --force` and its flags" in line


def _contents(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(directory.rglob("*"))}


def test_a_refused_force_leaves_the_run_it_would_replace_exactly_as_it_was(tmp_path):
    """Issue 22 (1): `--force --data idx:typo` exited 2 and left only .jaxcnn.lock: the
    finished run was deleted before the new one was known to start. Now nothing goes
    until every check that can fail before training passed (flags, data, sizes, resume
    rules), and a run refused before that leaves its folder, and a folder it would have
    made, as they were."""
    from jaxcnn.training import plots

    run = tmp_path / "good"
    assert jaxcnn("train", *TINY, "--out", run).returncode == 0
    (run / plots.FOLDER).mkdir()
    (run / plots.FOLDER / plots.FILES[0]).write_bytes(b"\x89PNG the good run")
    before = _contents(run)
    for flags, says in [
        (["--data", f"idx:{tmp_path / 'typo'}"], "does not exist"),  # the data
        (["--batch-size", "50"], "larger than the 20"),  # the sizes, known with the data
        (["--init-from", tmp_path / "nothing"], "no such folder"),  # a flag's folder
    ]:
        proc = jaxcnn("train", *TINY, *flags, "--out", run, "--force")
        assert proc.returncode == 2 and says in one_clean_line(proc), proc.stderr
        assert _contents(run) == before, flags
    import shutil

    other = tmp_path / "other"  # --resume into another --out: its resume rules come first
    shutil.copytree(run, other)
    kept = _contents(other)
    proc = jaxcnn("train", "--resume", run, "--out", other, "--force", "--epochs", "2",
                  "--batch-size", "2", "--no-progress")
    assert proc.returncode == 2 and "cannot change" in one_clean_line(proc), proc.stderr
    assert _contents(other) == kept and _contents(run) == before
    fresh = tmp_path / "new" / "run"  # a refused run makes no folder either
    proc = jaxcnn("train", *TINY, "--data", "idx:typo", "--out", fresh)
    assert proc.returncode == 2 and not (tmp_path / "new").exists()
    # a run that starts but fails before its first checkpoint commits (it diverges) leaves
    # the old run whole too: it logged into a staged file, swept at the next start
    diverged = jaxcnn("train", *TINY, "--lr", "0.5", "--out", run, "--force")
    assert diverged.returncode == 2 and "diverged" in one_clean_line(diverged)
    after = _contents(run)
    from jaxcnn.training import rundir

    assert after.pop(rundir.STAGED_CSV).startswith(b"run_id,step")
    after.pop(".jaxcnn.lock")  # names the last holder: the run that started
    assert after == {k: v for k, v in before.items() if k != ".jaxcnn.lock"}
    forced = jaxcnn("train", *TINY, "--out", run, "--force")  # its first commit replaces
    assert forced.returncode == 0 and not (run / plots.FOLDER).exists()
    assert not (run / rundir.STAGED_CSV).exists() and csv_steps(run) == [10, 20]
    metrics = strict_json((run / "metrics.json").read_text())
    assert metrics["run_id"] == checkpoint.load(run).run_id != json.loads(
        before["metrics.json"])["run_id"]
    assert (run / checkpoint.FILE_NAME).read_bytes() != before[checkpoint.FILE_NAME]


def _under_ulimit_v(kib: int, *args):
    command = shlex.join([sys.executable, "-m", "jaxcnn", *map(str, args)])
    return subprocess.run(["bash", "-c", f"ulimit -v {kib} && exec {command}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=os.environ | {"PYTHONPATH": str(ROOT)})


def test_out_of_address_space_is_one_line_saying_how_much_and_what_to_lower(tmp_path):
    """Issue 22 (5): `(ulimit -v 1000000; jaxcnn train --seeds 512 ...)` aborted in C++
    with std::bad_alloc (exit 134), or segfaulted (139) with a little more. Under a limit,
    malloc keeps one arena (XLA's thread pools had reserved 1.5 GiB of address space),
    and a run that cannot fit is refused before JAX allocates, in one line."""
    proc = _under_ulimit_v(800_000, "train", "--seeds", "512", "--train-size", "500",
                           "--test-size", "800", "--no-progress")
    line = one_clean_line(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert re.search(r"needs about [\d,]+ MiB of address space but `ulimit -v` allows 781 MiB; "
                     r"train at most about \d+ seeds", line), line
    small = _under_ulimit_v(500_000, "train", *TINY)
    assert small.returncode == 2 and "JAX's runtime alone needs" in one_clean_line(small)
    fits = _under_ulimit_v(1_000_000, "train", *TINY, "--out", tmp_path)  # had aborted
    assert fits.returncode == 0 and "Test Accuracy" in fits.stdout, fits.stderr[-500:]

    evaluate = _under_ulimit_v(500_000, "evaluate", tmp_path)  # before JAX allocates too
    assert evaluate.returncode == 2 and "`ulimit -v` allows 488 MiB" in evaluate.stderr
