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

from jaxcnn.check import api, engine, limits

assert engine  # JAX imported before the time limits run: they time the user's code only

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
    ("stuck_derivative.py", (9, 10)),  # an f_prime an ActivationLayer calls
])
def test_code_that_never_returns_is_stopped_wherever_it_runs(name, lines):
    with pytest.raises(limits.Stuck) as info:
        api.check_sources([str(HERE / name)], time_limit=0.5)
    assert " did not finish in 0.5 s: stuck at " in str(info.value)
    assert any(info.value.where.startswith(f"{HERE / name}:{n} ") for n in lines), info.value


@pytest.mark.parametrize(("name", "row", "lines"), [
    ("stuck_fc_backward.py", "FCLayer", (14, 15)),  # a module-style backward, run by the probe
    ("stuck_module_forward.py", "Sigmoid", (3, 4)),  # a module-style forward, run by the probe
])
def test_a_module_layer_stuck_while_it_is_found_is_an_error_row(name, row, lines):
    """Its shape probe ran the code that never returns: the run ended with one line
    (finding the file's layers did not finish); now that layer is an error row."""
    result = api.check_sources([str(HERE / name)], time_limit=0.5)
    assert result.status == 2
    (check,) = result.layer(row).checks
    assert check.kind == "error" and f"finding the layer {row} did not finish in 0.5 s" in (
        check.note)
    assert any(f"{HERE / name}:{n} " in check.note for n in lines), check.note


def test_a_layer_whose_check_never_ends_is_one_error_row_and_the_others_are_checked():
    """The kind: the time limit running out while a layer is checked (its backward never
    returns). That layer is one error row saying where it was stuck; every other layer
    is still checked (before: the whole run ended with the one line)."""
    report = api.check_sources([str(HERE / "stuck_one_of_two.py")], time_limit=1.0)
    rows = {r.name: r for r in report.layers}
    assert set(rows) == {"affine", "relu"}
    assert rows["relu"].ok
    (row,) = rows["affine"].checks
    assert row.kind == "error" and not report.ok and report.status == 2
    assert "checking affine did not finish in 1 s: stuck at " in row.note
    assert f"{HERE / 'stuck_one_of_two.py'}:19 " in row.note
    assert "affine was found but could not be run: checking affine did not finish" in (
        report.summary())
    # a CS231n backward stuck on its own: the same
    report = api.check_sources([str(HERE / "stuck_relu_backward.py")], time_limit=0.5)
    assert report.status == 2 and "stuck at " in report.layers[0].checks[0].note


def test_code_that_swallows_the_first_alarm_is_stopped_by_the_next():
    """The kind: user code (or a library's cleanup) that catches BaseException around
    the place the alarm hits. The alarm fires again every second until the block ends
    (before: the check hung for ever)."""
    report = api.check_sources([str(HERE / "stuck_swallowed.py")], time_limit=0.5)
    (row,) = report.layers[0].checks
    assert row.kind == "error" and "did not finish in 0.5 s: stuck at " in row.note
    assert f"{HERE / 'stuck_swallowed.py'}:14 " in row.note


def test_a_stuck_layer_with_json_is_one_document_with_every_row():
    proc = jaxcnn_check(HERE / "stuck_one_of_two.py", "--time-limit", "2", "--json")
    doc = strict(proc.stdout)
    assert proc.returncode == 2 and doc["status"] == 2 and not doc["ok"]
    kinds = {(layer["name"], c["kind"]) for layer in doc["layers"] for c in layer["checks"]}
    assert ("affine", "error") in kinds and ("relu", "correct") in kinds
    assert "Traceback" not in proc.stderr


def test_a_stuck_discovery_is_one_json_document_and_exit_2():
    proc = jaxcnn_check(HERE / "stuck_model_loss.py", "--time-limit", "2", "--json")
    doc = strict(proc.stdout)
    assert proc.returncode == 2 and doc["status"] == 2 and not doc["ok"]
    # (where it was stuck is named too, unless the limit ran out while JAX was imported)
    assert doc["error"].startswith("finding the layers of ")
    assert " did not finish in 2 s" in doc["error"] and "Traceback" not in proc.stderr


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


@pytest.mark.parametrize("json_flag", [True, False])
def test_ctrl_c_keeps_the_layers_checked_before_it(json_flag):
    """Nothing checked is lost: a Ctrl-C while the second layer runs printed no rows
    (the table) or an empty ``layers`` list (--json). The first layer's rows are printed."""
    proc = subprocess.Popen([sys.executable, "-m", "jaxcnn", "check", "--time-limit", "0",
                             *(["--json"] if json_flag else []),
                             str(HERE / "interrupted_second.py")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    seen = ""
    while "affine backward is running" not in seen:  # relu is checked; affine never ends
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "jaxcnn check: interrupted (Ctrl-C)"
    if json_flag:
        doc = strict(out)
        assert doc["ok"] is False and doc["status"] == 130 and doc["chains"] == []
        assert [(layer["name"], [c["kind"] for c in layer["checks"]])
                for layer in doc["layers"]] == [("relu", ["correct"])]
        assert doc["error"] == ("interrupted (Ctrl-C); 1 layer checked before it, the "
                                "others and the chains not")
    else:
        rows = [line.split()[:3] for line in out.splitlines() if line.startswith("relu ")]
        assert rows == [["relu", "x", "correct"]]
        assert "1 layer checked before the interruption; the others, and the chains, " \
               "were not" in out


# ------------------------------------ a recognised layer that cannot run is an error row

@pytest.mark.parametrize(("name", "row", "why"), [
    ("model_raises.py", "TwoLayerNet", "its loss raised on X (6, 4) with 3 classes: "
                                       "RuntimeError: loss not written yet"),
    ("model_grads_list.py", "TinyNet", "its loss(X, y) returns (a float64, a list of 1), "
                                       "not (loss, grads)"),
    ("scalar_only.py", "ScalarReLU", "its forward refused every input shape tried"),
])
def test_a_layer_that_cannot_be_run_is_an_error_row_and_exit_2(name, row, why):
    result = api.check_sources([str(HERE / name)])
    assert result.status == 2 and not result.ok
    assert not any(n.endswith(row) for n, _ in result.skipped)  # not a skipped line
    r = result.layer(row)
    assert api.layer_status(r) == "not checked"
    assert [(c.quantity, c.kind, c.oracle) for c in r.checks] == [("-", "error", "none")]
    assert why in r.checks[0].note
    text = result.text()
    assert f"{row} was found but could not be run: " in text and why in text
    others = [x for x in result.layers if x.name != row]  # the relu beside it still passes
    assert all(x.ok for x in others)
    rows = sum(len(x.checks) for x in result.layers)
    assert f"{rows - 1} of {rows} gradient{'s' * (rows != 1)} correct, 1 could not be " \
           "checked" in text  # the summary counts what the table shows


def test_the_error_row_is_in_the_json_and_named_by_layer():
    proc = jaxcnn_check(HERE / "model_raises.py", "--layer", "TwoLayerNet", "--json")
    doc = strict(proc.stdout)
    assert proc.returncode == 2 and doc["status"] == 2 and not doc["ok"]
    assert [layer["name"] for layer in doc["layers"]] == ["TwoLayerNet"]
    check = doc["layers"][0]["checks"][0]
    assert check["kind"] == "error" and "loss not written yet" in check["note"]
    assert doc["skipped"] == []
    proc = jaxcnn_check(HERE / "model_raises.py", "--layer", "TwoLayerNet")
    assert proc.returncode == 2
    assert "TwoLayerNet was found but could not be run: ValueError: its loss raised" \
        in proc.stdout


def test_a_flattened_gradient_is_wrong_shape_not_skipped():
    result = api.check_sources([str(HERE / "linear_ravel.py")])
    assert result.status == 1 and result.skipped == []
    check = result.layer("softmax_loss_vectorized").check("W")
    assert check.kind == "wrong-shape" and "the values are right" in check.note


def test_a_loss_returning_only_scores_is_still_skipped_not_an_error(tmp_path):
    (tmp_path / "scores.py").write_text(
        "import numpy as np\n\ndef relu_forward(x):\n    return np.maximum(0, x), x\n\n"
        "def relu_backward(dout, cache):\n    return dout * (cache > 0)\n\n"
        "class Linear:\n    def __init__(self, input_dim=10, num_classes=10):\n"
        "        self.params = {'W': np.zeros((input_dim, num_classes))}\n"
        "    def loss(self, X, y=None):\n        return X @ self.params['W']\n")
    result = api.check_sources([str(tmp_path / "scores.py")])
    assert result.status == 0 and [r.name for r in result.layers] == ["relu"]
    why = dict(result.skipped)[f"{tmp_path / 'scores.py'}:Linear"]
    assert "returns no (loss, grads) pair" in why


MODEL = """import numpy as np

class Linear:
    def __init__(self, input_dim=4, num_classes=3):
        self.params = {"W": np.ones((input_dim, num_classes)), "b": np.zeros(num_classes)}

    def loss(self, X, y=None):
        s = X @ self.params["W"] + self.params["b"]
        if y is None:
            return s
        e = np.exp(s - s.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        n = X.shape[0]
        loss = -np.log(p[np.arange(n), y]).mean()
        d = p.copy()
        d[np.arange(n), y] -= 1
        d /= n
        grads = {"W": X.T @ d, "b": d.sum(axis=0)}
        return RETURN
"""


@pytest.mark.parametrize(("returned", "status"), [
    ("loss, grads, s", 0),  # (loss, grads, extra): checked, the extra named in a note
    ("loss, s, grads", 2),  # grads not second: an error row, never a skipped line
    ("loss, grads, None, s", 0),
])
def test_a_model_returning_more_than_loss_and_grads_is_checked_or_an_error(tmp_path, returned,
                                                                           status):
    (tmp_path / "more.py").write_text(MODEL.replace("RETURN", returned))
    result = api.check_sources([str(tmp_path / "more.py")])
    assert result.status == status and result.skipped == []
    r = result.layer("Linear")
    if status == 0:
        assert [(c.quantity, c.kind) for c in r.checks] == [("W", "correct"), ("b", "correct")]
        assert any("the first two are read as (loss, grads)" in n for n in r.notes)
    else:
        assert [c.kind for c in r.checks] == ["error"] and "not (loss, grads)" in \
            r.checks[0].note


# ------------------------------------------------------------- stray keys of a grads dict

def test_stray_grads_keys_are_named_with_the_key_they_were_meant_for():
    result = api.check_sources([str(HERE / "model_stray_keys.py")])
    r = result.layer("TinyNet")
    assert r.check("W1").kind == "missing" and r.check("b1").ok
    notes = " ".join(r.notes)
    assert "grads['w1'] is not a key of self.params, so it is not checked: did you mean " \
           "'W1'?" in notes
    assert "grads['W3'] is not a key of self.params ('W1', 'b1'), so it is not checked" \
        in notes


# ------------------------------------------------------------------------ --layer names

@pytest.mark.parametrize(("wanted", "rows"), [
    ("ActivationLayer", ["ActivationLayer(tanh, tanh_prime)",
                         "ActivationLayer(sigmoid, sigmoid_prime)"]),
    ("tanh_prime", ["ActivationLayer(tanh, tanh_prime)", "tanh"]),
    ("ActivationLayer(sigmoid, sigmoid_prime)", ["ActivationLayer(sigmoid, sigmoid_prime)"]),
    ("tanh", ["tanh"]),  # an exact row name is that row alone
])
def test_layer_takes_the_class_or_function_a_row_is_built_from(wanted, rows):
    result = api.check_sources([str(HERE / "activation_layer.py")], layers=[wanted])
    assert [r.name for r in result.layers] == rows and result.status == 0


def test_layer_naming_a_skipped_base_class_or_nothing_says_so():
    from jaxcnn.check.discover import CheckUsageError

    with pytest.raises(CheckUsageError) as info:
        api.check_sources([str(HERE / "activation_layer.py")], layers=["Layer"])
    assert str(info.value).startswith("no layer named Layer (")
    assert "Layer was skipped: a base class" in str(info.value)
    with pytest.raises(CheckUsageError) as info:
        api.check_sources([str(HERE / "activation_layer.py")], layers=["nothing"])
    assert str(info.value) == (
        "no layer named nothing; found: ActivationLayer(tanh, tanh_prime), "
        "ActivationLayer(sigmoid, sigmoid_prime), tanh, sigmoid")


def test_a_negative_zero_entry_reads_0():
    from jaxcnn.check import html, report

    assert html.value(-0.0) == "0" and html.value(0.0) == "0"
    assert html.value(-1e-300) == "-1e-300" and html.value(-0.01495) == "-0.01495"
    assert report._value(float("nan")) == "nan"


def test_a_stuck_place_inside_pythons_own_library_is_the_users_line_that_called_it():
    import textwrap

    def users_code():
        return textwrap.dedent(None)  # raises inside the standard library

    try:
        users_code()
    except TypeError as exc:
        where = limits.user_frame(exc.__traceback__)
    assert where.startswith(f"{__file__}:") and "textwrap.dedent(None)" in where


def test_a_network_with_a_stuck_layer_is_not_chained_and_exits_2():
    """A CS231n network whose affine_forward never returns: affine is one error row, the
    other layers are checked, and no chain runs (it would wait as long again on the same
    code); the run could not check everything: 2, not 1."""
    report = api.check_sources([str(HERE / "stuck_in_a_network.py")], time_limit=1.0)
    assert report.chains == [] and report.status == 2
    rows = {r.name: r for r in report.layers}
    assert rows["affine"].checks[0].kind == "error" and rows["relu"].ok


def test_a_layer_stuck_while_it_is_found_is_an_error_row_and_the_others_are_checked():
    """A class whose constructor never returned ended the whole run (finding the file's
    layers did not finish): now that class is an error row naming where it was stuck,
    and the file's other layers are checked."""
    result = api.check_sources([str(HERE / "stuck_constructor.py")], time_limit=1)
    assert result.status == 2
    rows = {r.name: r for r in result.layers}
    assert set(rows) == {"Dense", "Sigmoid"}
    assert rows["Dense"].ok
    (row,) = rows["Sigmoid"].checks
    assert row.kind == "error" and "finding the layer Sigmoid did not finish in 1 s" in row.note
    assert f"{HERE / 'stuck_constructor.py'}:21 " in row.note


def test_a_refusal_by_a_time_limit_says_its_message_not_its_class():
    """"Cannot run Sigmoid: Stuck: finding ..." named jaxcnn's exception class; the
    user's own exceptions keep theirs."""
    from jaxcnn.check.refusals import refused

    stuck = limits.Stuck("finding the layer Sigmoid did not finish in 2 s: stuck at a.py:5")
    assert refused("Sigmoid", stuck, "module")[1] == (
        "cannot run it: finding the layer Sigmoid did not finish in 2 s: stuck at a.py:5")
    assert refused("Sigmoid", ValueError("bad"), "module")[1] == "cannot run it: ValueError: bad"
