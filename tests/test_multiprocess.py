"""`jaxcnn train` over two local processes with JAX's multi-process runtime (CPU, Gloo,
coordinator on 127.0.0.1): the same numbers bit for bit as one process, only process 0
writes, and every process ends within bounded time when one of them fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["train", "--seeds", "4", "--train-size", "200", "--test-size", "100",
        "--log-every", "50", "--no-progress"]
BOUND_S = 90  # every process of a run has ended by then, however it ends

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra):
    """A user's environment: without the TF_CPP_MIN_LOG_LEVEL an import in this test
    process may have set (jaxcnn leaves a user's own setting alone)."""
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return clean | {"PYTHONPATH": str(ROOT)} | extra


def two_processes(extra0=(), extra1=(), env1=None, env0=None, args=ARGS):
    """Both processes of one run (``args``: the command both run); returns
    [(returncode, stdout, stderr)] and the wall time until the last one ended."""
    port = free_port()
    common = [sys.executable, "-m", "jaxcnn", *args, "--coordinator", f"127.0.0.1:{port}",
              "--num-processes", "2"]
    start = time.perf_counter()
    procs = [subprocess.Popen([*common, "--process-id", str(i), *extra], cwd=ROOT,
                              env=env(**(env1 or {})) if i == 1 else env(**(env0 or {})),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, extra in enumerate((extra0, extra1))]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=BOUND_S)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return results, time.perf_counter() - start


def own_lines(stderr: str) -> list[str]:
    """jaxcnn's own stderr lines (JAX's runtime logs lines of its own: W..., I...)."""
    return [line for line in stderr.splitlines() if line.startswith("jaxcnn")]


def test_two_processes_equal_one_process_bit_for_bit(tmp_path):
    multi, single = tmp_path / "multi", tmp_path / "single"
    results, _ = two_processes(["--out", str(multi)], ["--out", str(tmp_path / "never")])
    for code, _, err in results:
        assert code == 0, err
    assert "2 devices (seeds axis sharded)" in results[0][1]
    assert results[1][1] == ""  # process 1 prints nothing, not even Gloo's C++ lines
    assert "[Gloo]" not in results[0][1]  # nor process 0 (issue 22 (2): "Rank 0 is connected")
    assert results[0][2] == "" and results[1][2] == ""  # no runtime warnings either
    assert not (tmp_path / "never").exists()  # and writes nothing
    one = subprocess.run([sys.executable, "-m", "jaxcnn", *ARGS, "--cpu-devices", "1",
                          "--out", str(single)], cwd=ROOT, env=env(), capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    assert [ln for ln in results[0][1].splitlines() if ln.startswith(("[Step", "Test"))] == [
        ln for ln in one.stdout.splitlines() if ln.startswith(("[Step", "Test"))]
    a, b = np.load(multi / "checkpoint.npz"), np.load(single / "checkpoint.npz")
    floats = [k for k in b.files if b[k].dtype.kind == "f"]
    assert floats and all(np.array_equal(a[k], b[k]) for k in floats)
    ja, jb = (json.loads((d / "metrics.json").read_text()) for d in (multi, single))
    assert ja["test"] == jb["test"] and ja["windows"] == jb["windows"]
    assert ja["timings"]["processes"] == 2 and jb["timings"]["processes"] == 1


def test_one_seeds_batch_split_over_two_processes_equals_one_process_bit_for_bit(tmp_path):
    """One seed, an even batch of 64: each process computes half of every batch and the
    halves' gradients are summed across them (Gloo), as one process sums its two halves."""
    args = ["train", "--train-size", "256", "--test-size", "100", "--batch-size", "64",
            "--optimizer", "adam", "--epochs", "2", "--log-every", "2", "--no-progress"]
    results, _ = two_processes(["--out", str(tmp_path / "multi")],
                               ["--out", str(tmp_path / "never")], args=args)
    for code, _, err in results:
        assert code == 0, err
    assert "2 devices (batch axis sharded)" in results[0][1]
    one = subprocess.run([sys.executable, "-m", "jaxcnn", *args, "--cpu-devices", "1",
                          "--out", str(tmp_path / "single")], cwd=ROOT, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    a, b = (np.load(tmp_path / d / "checkpoint.npz") for d in ("multi", "single"))
    floats = [k for k in b.files if b[k].dtype.kind == "f"]
    assert floats and all(np.array_equal(a[k], b[k]) for k in floats)
    ja, jb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("multi", "single"))
    assert ja["test"] == jb["test"] and ja["windows"] == jb["windows"]


def test_a_killed_process_ends_the_run_with_one_line(tmp_path):
    results, seconds = two_processes(["--out", str(tmp_path / "run")],
                                     env1={"JAXCNN_FAULT": "window-100=KILL"})
    (code0, _, err0), (code1, _, _) = results
    assert code1 == -9
    assert code0 == 2, err0
    assert len(own_lines(err0)) == 1 and "another process" in err0 and "Traceback" not in err0
    assert seconds < BOUND_S
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_setup_error_in_process_0_stops_both(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    results, seconds = two_processes(["--out", str(not_a_folder)])
    (code0, _, err0), (code1, _, err1) = results
    assert (code0, code1) == (2, 2)
    assert own_lines(err0) == [f"jaxcnn train: error: --out {not_a_folder} is a file, not a "
                               "folder; give a folder path"]
    assert len(own_lines(err1)) == 1 and "process 0 of this run failed: --out" in err1
    assert "Traceback" not in err0 + err1


def test_multiprocess_flags_are_checked():
    proc = subprocess.run([sys.executable, "-m", "jaxcnn", *ARGS, "--coordinator", "nohost",
                           "--num-processes", "2", "--process-id", "0"], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("jaxcnn train: error: --coordinator must be HOST:PORT, "
                                   "got 'nohost'")
    proc = subprocess.run([sys.executable, "-m", "jaxcnn", *ARGS, "--seeds", "3",
                           "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "1",
                           "--process-id", "0", "--train-size", "20", "--log-every", "10"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # one process: an ordinary run


@pytest.mark.parametrize(("extra1", "named"), [
    (["--lr", "0.02"], "--lr is 0.005 in process 0 but 0.02 in process 1"),
    (["--shuffle"], "--shuffle is False in process 0 but True in process 1"),
])
def test_processes_given_different_flags_refuse_to_train(tmp_path, extra1, named):
    """Issue 22 (2): process 1 given --lr 0.02 (or --shuffle): both exited 0, its seeds
    trained with its own flags, and the files recorded process 0's config. The
    processes now exchange their settings (and the data's sha256) and refuse."""
    results, seconds = two_processes(["--out", str(tmp_path / "run")], extra1)
    for code, out, err in results:
        assert code == 2, err
        assert len(own_lines(err)) == 1 and named in err and "Traceback" not in err, err
        assert "[Step" not in out
    assert not (tmp_path / "run" / "checkpoint.npz").exists() and seconds < BOUND_S


def test_sigterm_to_one_process_ends_the_run_as_in_a_single_process_run(tmp_path):
    """Issue 22 (2): SIGTERM to either process was ignored (JAX's preemption notifier had
    taken it over): both trained to the end and exited 0."""
    results, seconds = two_processes(["--out", str(tmp_path / "run")],
                                     env1={"JAXCNN_FAULT": "window-50=TERM"})
    (code0, _, err0), (code1, _, err1) = results
    assert code1 == 143 and own_lines(err1) == [
        "jaxcnn train: terminated (SIGTERM); files already saved are intact"], err1
    assert code0 == 2 and len(own_lines(err0)) == 1 and "another process" in err0, err0
    assert "Traceback" not in err0 + err1 and seconds < BOUND_S


def test_process_0_killed_ends_the_other_with_one_line_and_no_cpp_log(tmp_path):
    """Issue 22 (2): when process 0, which hosts the coordination service, died, JAX's C++
    client ended the others with a glog line, the RPC and a stack trace. Now one line."""
    results, seconds = two_processes(["--out", str(tmp_path / "run")],
                                     env0={"JAXCNN_FAULT": "window-100=KILL"})
    (code0, _, _), (code1, _, err1) = results
    assert code0 == -9 and code1 != 0
    assert len(err1.strip().splitlines()) == 1, err1  # nothing but jaxcnn's line
    assert err1.startswith("jaxcnn train: error: ") and "process" in err1, err1
    assert "@" not in err1 and "Check failure" not in err1 and seconds < BOUND_S
