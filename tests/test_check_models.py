"""`jaxcnn check` reaches CS231n's classifiers: a class whose `loss(X, y)` returns
`(loss, grads)` with `grads` keyed like `self.params` (TwoLayerNet in assignment 1's and
2's forms, FullyConnectedNet, ThreeLayerConvNet), each entry checked against finite
differences of the model's own loss, regularization included. One check of each fixture
for the module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jaxcnn.check import check_layer, find_layers, load_file
from jaxcnn.check.adapters.model_loss import _l2_gradients, from_model

DIALECTS = Path(__file__).parent / "fixtures" / "dialects"


def _reports(name: str) -> dict:
    path = DIALECTS / name
    found = find_layers(load_file(path), str(path))
    return {layer.name: (layer, check_layer(layer)) for layer in found.layers
            if layer.style == "model"}


@pytest.fixture(scope="module")
def correct() -> dict:
    return _reports("cs231n_models.py")


@pytest.fixture(scope="module")
def bugs() -> dict:
    return _reports("cs231n_model_bugs.py")


def kinds(reports: dict) -> dict:
    return {(name, c.quantity): (c.kind, c.rule) for name, (_, r) in reports.items()
            for c in r.checks}


def test_the_assignments_models_are_found_built_small_and_correct(correct):
    assert set(correct) == {"TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "NormNet",
                            "NormNet(normalization='batchnorm')"}
    v = kinds(correct)
    assert {k for k, (kind, _) in v.items() if kind != "correct"} == set(), v
    assert {q for (name, q) in v if name == "FullyConnectedNet"} == {
        "W1", "b1", "W2", "b2", "W3", "b3"}  # hidden_dims [5, 4]: three layers
    layer, report = correct["FullyConnectedNet"]
    assert layer.arg_names == ("W1", "b1", "W2", "b2", "W3", "b3")
    # built small, in float64 (the assignment's dtype=np.float32 overridden)
    assert any("hidden_dims=[5, 4], input_dim=4, num_classes=3, dtype=float64" in n
               for n in report.notes)
    # reg an argument of loss (assignment 1) or an attribute (assignment 2): both probed
    for name in correct:
        sets = correct[name][0].input_sets(0)
        assert [s.static[2] for s in sets if s.family != "flat"] == [0.0, 0.25], name
    # the convnet pools: a third set where every window ties (X zeros), and its pool
    # (the first maximum of each window) is right there too
    conv_sets = correct["ThreeLayerConvNet"][0].input_sets(0)
    assert [s.family for s in conv_sets] == ["random", "regularized", "flat"]
    assert not conv_sets[2].static[0].any()
    assert [s.family for s in correct["TwoLayerNet"][0].input_sets(0)] == [
        "random", "regularized"]  # no pool, no tied set
    assert {c.oracle for _, (_, r) in correct.items() for c in r.checks} == {"numeric"}
    conv = correct["ThreeLayerConvNet"][0].input_sets(0)[0]
    assert conv.static[0].shape == (6, 2, 4, 4)


def test_planted_bugs_in_a_models_grads_are_named(bugs):
    v = kinds(bugs)
    # no line to point at in a whole model: said, not silently left out
    for name, (_, report) in bugs.items():
        if any(c.kind not in ("correct", "modifies-input", "not-reentrant")  # not steps
               for c in report.checks):
            assert report.first_wrong_step is None
            assert any(n.startswith("first wrong step not analysed for this model layer")
                       for n in report.notes), name
    wrong = {k: kv for k, kv in v.items() if kv[0] != "correct"}
    assert wrong == {
        ("NoRegGradient", "W1"): ("wrong-derivative", "regularization left out"),
        ("DoubleReg", "W2"): ("wrong-derivative", "regularization doubled"),
        ("TransposedW2", "W2"): ("transposed", None),
        ("BiasAxis", "b2"): ("wrong-shape", None),  # summed over the classes: (N,)
        ("NoReluMask", "W1"): ("unclassified", None),
        ("NoReluMask", "b1"): ("unclassified", None),
        ("CentresInPlace", "W1"): ("modifies-input", None),  # X -= X.mean(axis=0)
        **{("KeepsGradients", k): ("not-reentrant", None) for k in ("W1", "b1", "W2", "b2")},
        ("TiedPoolConvNet", "b1"): ("tie-overcount", None),  # windows == pooled
    }, wrong
    # the regularization's slip shows only where reg is not 0: said per input set
    check = bugs["NoRegGradient"][1].check("W1")
    assert [s.kind for s in check.inputs] == ["correct", "wrong-derivative"]
    # the pool's overcount shows only where the windows tie: b1 four times too large
    check = bugs["TiedPoolConvNet"][1].check("b1")
    assert [(s.family, s.kind) for s in check.inputs] == [
        ("random", "correct"), ("regularized", "correct"), ("flat", "tie-overcount")]
    assert check.scale == pytest.approx(4.0)
    assert "every pool window ties" in check.note
    # the write into X is named as such, the gradient's values being right
    assert "writes into its argument X" in bugs["CentresInPlace"][1].check("W1").note



def test_a_model_whose_loss_returns_no_grads_dict_is_refused(tmp_path):
    path = tmp_path / "scores_only.py"
    path.write_text("import numpy as np\n\n"
                    "class Linear:\n"
                    "    def __init__(self, input_dim=10, num_classes=10):\n"
                    "        self.params = {'W': np.zeros((input_dim, num_classes))}\n"
                    "    def loss(self, X, y=None):\n"
                    "        return X @ self.params['W']\n")
    found = find_layers(load_file(path), str(path))
    assert found.layers == []
    assert "returns no (loss, grads) pair" in dict(found.skipped)["Linear"]


def test_l2_gradients_by_probing(correct):
    layer = correct["TwoLayerNet"][0]
    s = layer.input_sets(0)[1]
    grads = _l2_gradients(layer.forward, s.args, s.static[0], s.static[1], 0.25)
    w1, b1, w2, b2 = s.args
    # assignment 1's loss: reg * sum(W ** 2), gradient 2 reg W; biases left alone
    np.testing.assert_allclose(grads[0], 2 * 0.25 * w1, rtol=1e-6)
    np.testing.assert_allclose(grads[2], 2 * 0.25 * w2, rtol=1e-6)
    assert grads[1] is None and grads[3] is None
    assert from_model  # the public builder (used by dialects.model_losses)


def test_a_normalization_the_source_names_is_checked_too_and_a_zero_bias_gradient_passes(
        correct):
    """With a batch norm after it, a bias's true gradient is 0: finite differences find
    it only up to their round-off, and a hand that is 0 up to round-off is correct (it
    was `inconclusive`: no relative tolerance can judge a reference that is noise)."""
    layer, report = correct["NormNet(normalization='batchnorm')"]
    assert {"gamma1", "beta1", "gamma2", "beta2"} <= set(layer.arg_names)
    b2 = report.check("b2")
    assert b2.kind == "correct"
    assert b2.max_rel_error < 1e-12  # measured against 0
    assert any("0 up to their round-off" in s.note for s in b2.inputs)
