"""`jaxcnn check` reaches CS231n assignment 1's loss functions: `svm_loss_naive(W, X, y,
reg)` and its kin returning `(loss, dW)`, checked against the exact SVM / softmax loss of
`X W` plus the regularization read from the user's own loss, with the usual mistakes
named. One check of each fixture for the module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jaxcnn.check import check_layer, find_layers, load_file
from jaxcnn.check.adapters.linear_loss import identify, is_linear_loss

DIALECTS = Path(__file__).parent / "fixtures" / "dialects"


def _reports(name: str) -> dict:
    path = DIALECTS / name
    found = find_layers(load_file(path), str(path))
    assert found.skipped == ([("LinearClassifier", "a base class: its loss does nothing "
                               "(pass); the classes built on it are checked")]
                             if name == "linear_losses.py" else [])
    return {layer.name: (layer, check_layer(layer)) for layer in found.layers}


@pytest.fixture(scope="module")
def correct() -> dict:
    return _reports("linear_losses.py")


@pytest.fixture(scope="module")
def bugs() -> dict:
    return _reports("linear_loss_bugs.py")


def verdicts(reports: dict) -> dict:
    return {name: (r.check("W").kind, r.check("W").rule) for name, (_, r) in reports.items()}


def test_the_assignments_losses_are_found_and_correct_with_either_subgradient(correct):
    assert verdicts(correct) == {
        "svm_loss_naive": ("correct", "0 at 0"),        # margin > 0
        "svm_loss_vectorized": ("correct", "1 at 0"),   # margin >= 0 on the raw margins
        "softmax_loss_naive": ("correct", None),
        "softmax_loss_vectorized": ("correct", None),
        "svm_loss_columns": ("correct", "0 at 0"),      # the 2015 form, W (C, D)
        "LinearSVM": ("correct", "1 at 0"),  # linear_classifier.py: loss on self.W
    }
    layers = {name: layer for name, (layer, _) in correct.items()}
    assert layers["svm_loss_naive"].kind == "svm_loss"
    assert layers["softmax_loss_naive"].kind == "softmax_loss"
    assert layers["svm_loss_columns"].input_sets(0)[0].args[0].shape == (4, 5)
    # an exact oracle, and the reg convention read from each loss
    assert all(c.oracle == "exact" for _, (_, r) in correct.items() for c in r.checks)
    assert "reg * sum(W ** 2), gradient 2 * reg * W" in " ".join(
        correct["svm_loss_naive"][1].notes)
    assert "0.5 * reg * sum(W ** 2), gradient reg * W" in " ".join(
        correct["softmax_loss_vectorized"][1].notes)


def test_planted_bugs_are_named(bugs):
    assert verdicts(bugs) == {
        "svm_loss_no_reg_grad": ("wrong-derivative", "regularization left out"),
        "svm_loss_no_mean": ("wrong-derivative", "data term not divided by N"),
        "svm_loss_label_column": ("wrong-derivative", "label column not subtracted"),
        "svm_loss_reg_over_n": ("wrong-derivative", "regularization divided by N"),
        "svm_loss_clipped_ge": ("wrong-derivative", "every margin counted"),
        "softmax_loss_no_onehot": ("wrong-derivative", "one-hot not subtracted"),
        "softmax_loss_reg_halved": ("wrong-derivative", "regularization halved"),
        "softmax_loss_unshifted": ("non-finite", None),
    }
    # a regularization slip shows only where reg is not 0: said per input set
    sets = {s.family: s.kind for s in bugs["svm_loss_no_reg_grad"][1].check("W").inputs}
    assert sets["random"] == "correct" and sets["regularized"] == "wrong-derivative"
    # an exp without the maximum subtracted: fine until the scores are large
    sets = {s.family: s for s in bugs["softmax_loss_unshifted"][1].check("W").inputs}
    assert sets["random"].kind == "correct" and sets["large-gap"].kind == "non-finite"
    assert "maximum before exp" in sets["large-gap"].note  # the fix, not only the symptom
    # the first wrong step is the returned dW, judged as dW (not the loss)
    first = bugs["softmax_loss_no_onehot"][1].first_wrong_step
    assert first is not None and first.kind == "wrong-derivative"
    assert first.expected == "dL/dW" and first.code.startswith("return")


def test_which_functions_are_linear_losses():
    def svm_loss_naive(W, X, y, reg):
        return 0.0, W

    def softmax_loss(x, y):
        return 0.0, x

    def predict(W, X, y, reg):
        return W

    assert is_linear_loss("svm_loss_naive", svm_loss_naive)
    assert not is_linear_loss("softmax_loss", softmax_loss)  # CS231n's softmax_loss(x, y)
    assert not is_linear_loss("predict", predict)


def test_the_reg_convention_is_read_from_the_loss_and_an_odd_one_is_said():
    def svm_loss_odd(W, X, y, reg):  # reg / 3 * sum(W ** 2): neither convention
        s = X @ W
        m = np.maximum(0, s - s[np.arange(len(y)), y][:, None] + 1)
        m[np.arange(len(y)), y] = 0
        return m.sum() / len(y) + reg / 3 * np.sum(W * W), np.zeros_like(W)

    form, notes = identify(svm_loss_odd, "svm_loss_odd")
    assert (form.loss, form.mean, form.transposed) == ("svm", True, False)
    assert abs(form.c - 1 / 3) < 1e-9
    assert "0.333333 * reg * sum(W ** 2)" in " ".join(notes)


def test_a_loss_that_runs_on_no_layout_is_skipped_saying_what_it_raised(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def svm_loss_naive(W, X, y, reg):\n    raise KeyError('nope')\n")
    found = find_layers(load_file(path), str(path))
    assert found.layers == []
    assert "KeyError" in dict(found.skipped)["svm_loss_naive"]
