"""Layers jaxcnn recognises but cannot check: code that never returns is stopped by
--time-limit wherever it runs (finding the layers, probing shapes, checking), a layer
that cannot be run is an error row (exit 2), never a silent skip beside a pass."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jaxcnn.check import api, limits

ROOT = Path(__file__).resolve().parent.parent

HERE = Path(__file__).parent / "fixtures" / "unrunnable"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def jaxcnn_check(*args):
    return subprocess.run([sys.executable, "-m", "jaxcnn", "check", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=ENV)


def strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


@pytest.mark.parametrize(("name", "lines"), [
    ("stuck_model_loss.py", (16, 17)),  # a model's loss, run to find its shape
    ("stuck_linear_loss.py", (7, 8)),  # a linear classifier's loss, run to find its layout
    ("stuck_fc_backward.py", (14, 15)),  # a module-style backward, run by the shape probe
    ("stuck_module_forward.py", (3, 4)),  # a module-style forward, run by the shape probe
    ("stuck_derivative.py", (9, 10)),  # an f_prime an ActivationLayer calls
    ("stuck_relu_backward.py", (9, 10)),  # a CS231n backward, run by the check itself
])
def test_code_that_never_returns_is_stopped_wherever_it_runs(name, lines):
    with pytest.raises(limits.Stuck) as info:
        api.check_sources([str(HERE / name)], time_limit=0.5)
    assert " did not finish in 0.5 s: stuck at " in str(info.value)
    assert any(info.value.where.startswith(f"{HERE / name}:{n} ") for n in lines), info.value


def test_a_stuck_discovery_is_one_json_document_and_exit_2():
    proc = jaxcnn_check(HERE / "stuck_model_loss.py", "--time-limit", "1", "--json")
    doc = strict(proc.stdout)
    assert proc.returncode == 2 and doc["status"] == 2 and not doc["ok"]
    assert doc["error"].startswith("finding the layers of ")
    assert "stuck_model_loss.py:1" in doc["error"] and "Traceback" not in proc.stderr


def test_ctrl_c_with_json_prints_one_document():
    proc = subprocess.Popen([sys.executable, "-m", "jaxcnn", "check", "--json",
                             "--time-limit", "0", str(HERE / "stuck_relu_backward.py")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    seen = ""
    while "Found 1 layer" not in seen:  # the check (and its endless backward) has begun
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert json.loads(out) == {"ok": False, "layers": [], "skipped": [], "chains": [],
                               "status": 130, "error": "interrupted (Ctrl-C)"}
    assert err.splitlines()[-1] == "jaxcnn check: interrupted (Ctrl-C)"
