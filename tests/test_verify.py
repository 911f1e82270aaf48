"""`jaxcnn verify`: the command runs, and its JSON report says what it must.

The command runs once for the module (a module-scoped fixture, ``--json``); the
human-readable table is rendered in-process from that same report. The same-session
re-check (a function replaced in a live session is checked afresh) runs in-process on
one function only, to stay fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import backprop, model, verify

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "jaxcnn", "verify", "--images", "2"]
FAMILIES = ("random (tie-free)", "MNIST digits", "large logit gap")


@pytest.fixture(scope="module")
def run():
    proc = subprocess.run([*COMMAND, "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def report(run):
    rc, out, err = run
    assert out.lstrip().startswith("{"), err
    return json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


def test_verify_exits_0_when_everything_required_agrees(run, report):
    rc, _, err = run
    failed = [(r["inputs"], r["quantity"], r["kind"]) for r in report["rows"]
              if r["verdict"] == "FAIL"]
    assert rc == 0 and report["ok"], (failed, err[-2000:])
    assert report["status"] == rc  # as in check's JSON, on every exit
    assert "Traceback" not in err


def test_table_from_the_report(report):
    table = verify.format_table(report)
    assert "All required comparisons agree." in table and "FAIL" not in table
    assert "first wrong layer: maxpool2_backward[report] (input: tie-overcount)" in table
    failed = dict(report, ok=False)
    assert "SOME REQUIRED COMPARISONS FAILED." in verify.format_table(failed)


def test_every_function_and_rule_is_checked_on_every_family(report):
    quantities = {(r["inputs"], r["quantity"]) for r in report["rows"]}
    for family in ("random (tie-free)", "MNIST digits"):
        for ties in model.TIE_RULES:
            assert (family, f"maxpool2_backward[{ties}] dL/dinput") in quantities
            for field in model.Params._fields:
                assert (family, f"grads[{ties}] dL/d{field}") in quantities
        for q in ("conv3x3_backward dL/dfilters", "conv3x3_backward dL/dinput",
                  "softmax_backward dL/dweights", "softmax_backward dL/dbiases",
                  "softmax_backward dL/dinput"):
            assert (family, q) in quantities
    # confident wrong predictions, where a float32 softmax chain underflows
    for q in ("logits_backward dL/dlogits", "softmax_backward dL/dbiases",
              "grads[report] dL/dbiases"):
        assert ("large logit gap", q) in quantities
    references = {r["reference"] for r in report["rows"]}
    assert "jax.vjp of jaxcnn.model.conv3x3" in references
    network = [r for r in report["rows"] if r["quantity"].startswith("grads[")]
    assert network and all(r["numeric_max_rel_error"] is not None for r in network)
    ok = [r for r in network if r["verdict"] == "ok"]
    assert ok and all(r["numeric_agrees"] and r["numeric_max_rel_error"] < 1e-5 for r in ok)


def test_finite_differences_side_with_the_subgradient_rules(report):
    """Tied background pixels move together when a filter changes: no kink, so central
    differences see the true filter gradient, and the report rule disagrees with them."""
    filters = {r["quantity"]: r for r in report["rows"] if r["inputs"] == "MNIST digits"
               and r["quantity"].endswith("dL/dfilters") and r["quantity"].startswith("grads")}
    assert filters["grads[report] dL/dfilters"]["numeric_agrees"] is False
    assert filters["grads[first] dL/dfilters"]["numeric_agrees"] is True
    assert filters["grads[split] dL/dfilters"]["numeric_agrees"] is True


def test_report_rule_differs_only_where_windows_tie(report):
    differs = {(r["inputs"], r["quantity"], r["kind"]) for r in report["rows"]
               if r["verdict"].startswith("differs")}
    assert ("MNIST digits", "maxpool2_backward[report] dL/dinput", "tie-overcount") in differs
    assert ("MNIST digits", "grads[report] dL/dfilters", "tie-overcount") in differs
    assert {q for _, q, _ in differs} == {"maxpool2_backward[report] dL/dinput",
                                          "grads[report] dL/dfilters"}
    for r in report["rows"]:
        if r["inputs"] == "random (tie-free)":
            assert r["kind"] == "correct", r
    rules = {(r["quantity"], r["rule"]) for r in report["rows"] if r["inputs"] == "MNIST digits"}
    assert ("maxpool2_backward[first] dL/dinput", "first") in rules
    assert ("maxpool2_backward[split] dL/dinput", "split") in rules


def test_json_tie_statistics(report):
    ties = report["ties"]
    assert ties["random (tie-free)"] == 0.0
    digits = ties["MNIST digits"]
    assert digits["images"] == 2
    assert 0 < digits["tie_share_min"] <= digits["tie_share_mean"] <= digits["tie_share_max"] <= 1
    assert digits["structural_share_min"] == 1.0  # the flat background: identical patches
    # the report rule passes k times the gradient through k tied maxima: too large
    assert 1 < digits["report_to_true_filter_grad_ratio_min"]
    assert digits["report_to_true_filter_grad_ratio_mean"] <= (
        digits["report_to_true_filter_grad_ratio_max"])


def test_verify_rejects_bad_arguments():
    for args in (["--images", "0"], ["--only", "no_such_function"]):
        proc = subprocess.run([sys.executable, "-m", "jaxcnn", "verify", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        # with --json, stdout is one JSON document on this exit too (it was empty)
        proc = subprocess.run([sys.executable, "-m", "jaxcnn", "verify", *args, "--json"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["ok"] is False and doc["status"] == 2 and doc["error"] in proc.stderr


def test_a_function_replaced_in_the_same_session_is_checked_afresh(monkeypatch):
    """The false pass found by a new user: check, replace the function, check again."""
    first = verify.run_checks(1, only=["conv3x3_backward"])
    assert first["ok"]
    original = backprop.conv3x3_backward
    monkeypatch.setattr(backprop, "conv3x3_backward",
                        lambda d_out, image: 2 * original(d_out, image))
    second = verify.run_checks(1, only=["conv3x3_backward"])
    assert not second["ok"] and second["status"] == 1
    bad = [r for r in second["rows"] if r["verdict"] == "FAIL"]
    assert bad and all(r["quantity"] == "conv3x3_backward dL/dfilters" for r in bad)
    assert {r["kind"] for r in bad} == {"scaled"}


def test_a_helper_replaced_under_a_jitted_step_is_checked_afresh(monkeypatch):
    """backprop's steps are jax.jit functions: one traced before its helper was replaced
    must not keep running the old helper (verify drops the traces first)."""
    assert verify.run_checks(1, only=["logits_backward"])["ok"]
    original = backprop.softmax_jacobian_row
    monkeypatch.setattr(backprop, "softmax_jacobian_row",
                        lambda logits, c: 2 * original(logits, c))
    second = verify.run_checks(1, only=["logits_backward"])
    assert not second["ok"]
    assert {r["quantity"] for r in second["rows"] if r["verdict"] == "FAIL"} == {
        "logits_backward dL/dlogits"}
    monkeypatch.undo()  # and back: the traces of the replaced helper are dropped too
    assert verify.run_checks(1, only=["logits_backward"])["ok"]


def test_tie_share_by_hand():
    conv = np.arange(26 * 26 * 2, dtype=np.float32).reshape(26, 26, 2)  # no ties
    assert float(verify.tie_share(jnp.asarray(conv))) == 0.0
    conv[:2, :2, 0] = 7.0  # one of the 2 * 169 windows ties
    assert float(verify.tie_share(jnp.asarray(conv))) == pytest.approx(1 / 338)
