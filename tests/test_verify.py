"""`jaxcnn verify`: the command runs, exits 0, and its JSON report says what it must.

The command takes ~10 s, so it runs once for the module (a module-scoped fixture,
``--json``); the human-readable table is rendered in-process from that same report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rel_err

from jaxcnn import model, verify

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "jaxcnn", "verify", "--images", "2"]
INPUT_SETS = ("random (tie-free)", "MNIST digits")
# The only comparisons allowed to disagree: the report's tie rule, and only where windows tie.
REPORT_RULE_ROWS = ("maxpool2_backward[report]", "grads[report] filters")


@pytest.fixture(scope="module")
def run():
    proc = subprocess.run([*COMMAND, "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def report(run):
    rc, out, err = run
    assert rc == 0, err
    return json.loads(out)


def test_verify_exits_0(run):
    rc, out, err = run
    assert rc == 0, err
    assert out.lstrip().startswith("{")
    assert "Traceback" not in err


def test_table_from_the_report(report):
    table = verify.format_table(report)
    assert "All required comparisons agree." in table
    assert "FAIL" not in table
    assert table.count("differs (expected)") == 2
    assert len(table.splitlines()) == 2 + len(report["rows"]) + 6  # header, rule, rows, notes
    for name in INPUT_SETS:
        assert name in table
    failed = dict(report, ok=False)
    assert "SOME REQUIRED COMPARISONS FAILED." in verify.format_table(failed)


def test_json_is_ok_with_verdicts(report):
    assert report["ok"] is True
    assert report["num_images"] == 2 and report["seed"] == 0
    rows = report["rows"]
    assert {r["inputs"] for r in rows} == set(INPUT_SETS)
    for r in rows:
        assert r["verdict"] in ("ok", "agrees", "differs (expected)"), r
        assert (r["verdict"] == "ok") == r["must_agree"], r
        if r["must_agree"]:
            assert r["max_rel_error"] <= r["tolerance"], r


def test_json_covers_every_layer_and_rule(report):
    for name in INPUT_SETS:
        quantities = {r["quantity"] for r in report["rows"] if r["inputs"] == name}
        for ties in model.TIE_RULES:
            assert f"maxpool2_backward[{ties}]" in quantities
            for field in model.Params._fields:
                assert f"grads[{ties}] {field}" in quantities
        for q in ("softmax Jacobian (report's formulas)", "dL/dt (report's chain)",
                  "conv3x3_backward (dL/dfilters)", "conv3x3_input_backward (dL/dimage)",
                  "softmax_backward dL/dW", "softmax_backward dL/db",
                  "softmax_backward dL/dinput"):
            assert q in quantities
        assert sum(r["reference"] == "central differences" for r in report["rows"]
                   if r["inputs"] == name) == 3


def test_report_rule_is_the_only_difference_and_only_on_digits(report):
    differs = {(r["inputs"], r["quantity"]) for r in report["rows"]
               if r["verdict"].startswith("differs")}
    assert differs == {("MNIST digits", q) for q in REPORT_RULE_ROWS}
    for r in report["rows"]:
        if r["quantity"] in REPORT_RULE_ROWS and r["inputs"] == "random (tie-free)":
            assert r["verdict"] == "agrees"


def test_json_tie_statistics(report):
    ties = report["ties"]
    assert ties["random (tie-free)"] == 0.0
    digits = ties["MNIST digits"]
    assert digits["images"] == 2
    assert 0 < digits["tie_share_min"] <= digits["tie_share_mean"] <= digits["tie_share_max"] <= 1
    # the report rule passes k times the gradient through k tied maxima: too large
    ratio_min = digits["report_to_true_filter_grad_ratio_min"]
    assert 1 < ratio_min <= digits["report_to_true_filter_grad_ratio_mean"]
    assert digits["report_to_true_filter_grad_ratio_mean"] <= (
        digits["report_to_true_filter_grad_ratio_max"])


def test_verify_rejects_a_bad_image_count():
    proc = subprocess.run([sys.executable, "-m", "jaxcnn", "verify", "--images", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--images" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- in-process helpers


def test_compare_errors_and_verdicts():
    want = np.array([[1.0, -2.0], [4.0, 0.0]])
    got = want + np.array([[0.0, 0.0], [0.0, 0.4]])
    row = verify.compare("in", "q", "ref", got, want)
    assert row.max_abs_error == pytest.approx(0.4)
    assert row.max_rel_error == pytest.approx(0.1)  # relative to max |want| = 4
    assert row.verdict == "FAIL" and not row.agrees
    assert verify.compare("in", "q", "ref", want, want).verdict == "ok"
    loose = verify.compare("in", "q", "ref", got, want, must_agree=False)
    assert loose.verdict == "differs (expected)"
    assert verify.compare("in", "q", "ref", want, want, must_agree=False).verdict == "agrees"
    assert verify.compare("in", "q", "ref", -want, want).cosine == pytest.approx(-1.0)


def test_tie_share_by_hand():
    conv = np.arange(26 * 26 * 2, dtype=np.float32).reshape(26, 26, 2)  # no ties
    assert float(verify.tie_share(jnp.asarray(conv))) == 0.0
    conv[:2, :2, 0] = 7.0  # one of the 2 * 169 windows ties
    assert float(verify.tie_share(jnp.asarray(conv))) == pytest.approx(1 / 338)


def test_pool_reduce_window_equals_maxpool2():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(26, 26, 3)), jnp.float32)
    assert rel_err(verify.pool_reduce_window(x), model.maxpool2(x)) == 0
