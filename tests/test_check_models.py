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


def _line(text: str) -> int:
    lines = (DIALECTS / "cs231n_model_bugs.py").read_text().splitlines()
    return next(k for k, line in enumerate(lines, 1) if text in line)


def test_a_models_first_wrong_step_is_the_line_that_wrote_the_wrong_entry(bugs):
    """A whole model's loss(X, y) is its forward and its backward in one function: its
    steps are paired with its own parameters (perturbed where the loss reads them, in
    whatever method) and its ``grads`` entries with the parameter they are named for
    (``grads["W1"] = ...``, one entry of a dict display on its own line), and a returned
    entry takes its row's verdict, so the line is named with the row's kind. A step the
    loss cannot be perturbed at (``h, scores = self.forward(X)`` returns h beside the
    scores it was used for) is not judged but listed as an unchecked input."""
    first = {name: report.first_wrong_step for name, (_, report) in bugs.items()}
    expected = {
        "NoRegGradient": ('grads["W1"] = X.T @ dh ', "wrong-derivative"),
        "DoubleReg": ('grads = {"W2": h.T @ dscores + 2 * self.reg * W2', "wrong-derivative"),
        "TransposedW2": ('grads = {"W2": dscores.T @ h', "transposed"),
        "BiasAxis": ('"b2": dscores.sum(axis=1)}', "wrong-shape"),
        "NoReluMask": ('grads["W1"] = X.T @ dh + self.reg * W1', "unclassified"),
        "TiedPoolConvNet": ('grads["b1"] = dconv.sum(axis=(0, 1))', "tie-overcount"),
    }
    for name, (code, kind) in expected.items():
        f = first[name]
        assert f is not None and f.line > _line(f"class {name}"), (name, f)
        assert f.code.startswith(code.strip()) and f.kind == kind, (name, f.text())
        assert "dscores" in f.right_before, f.text()
    # the ReLU's mask left out of dh: dh cannot be judged here, and is named as such
    assert "dh" in first["NoReluMask"].unchecked_inputs
    assert first["TiedPoolConvNet"].unchecked_inputs == ("dconv",)
    # right models and the rows that are no wrong step get none
    for name in ("TwoLayerNet", "CentresInPlace", "KeepsGradients"):
        assert first[name] is None, name
        assert not any("not analysed" in n for n in bugs[name][1].notes), name


def test_a_relu_outputs_gradient_may_hold_its_inputs(tmp_path):
    """CS231n names the gradient of the pre-activation after the activation:
    ``dhidden = (dscores @ W2.T) * (hidden > 0)``. That is right (the ReLU's mask
    applied), and the first wrong step is the regularization line after it."""
    source = (DIALECTS / "cs231n_models.py").read_text()
    right = "        grads[\"W1\"] = X.T @ dhidden + 2 * reg * W1\n"
    assert right in source
    path = tmp_path / "two_layer_sign.py"
    path.write_text(source.replace(right, right.replace("+ 2 * reg", "- 2 * reg")))
    found = {x.name: x for x in find_layers(load_file(path), str(path)).layers}
    first = check_layer(found["TwoLayerNet"]).first_wrong_step
    assert first is not None and first.code == right.strip().replace("+ 2", "- 2"), first
    assert first.kind == "wrong-derivative" and "dhidden" in first.right_before


def test_planted_bugs_in_a_models_grads_are_named(bugs):
    v = kinds(bugs)
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


MODEL_WITH_LATE_REG = '''
import numpy as np


def softmax_loss(x, y):
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), y]).mean()
    p[np.arange(n), y] -= 1
    return loss, p / n


class FullyConnectedNet:
    def __init__(self, hidden_dims, input_dim=4, num_classes=3, reg=0.0):
        self.reg, dims = reg, [input_dim, *hidden_dims, num_classes]
        self.num_layers = len(dims) - 1
        self.params = {}
        for i in range(self.num_layers):
            self.params[("W", i)] = np.random.randn(dims[i], dims[i + 1])
            self.params[("b", i)] = np.zeros(dims[i + 1])

    def loss(self, X, y=None):
        caches, out = [], X
        for i in range(self.num_layers):
            caches.append(out)
            out = out @ self.params[("W", i)] + self.params[("b", i)]
            if i < self.num_layers - 1:
                out = np.maximum(out, 0)
        if y is None:
            return out
        loss, dout = softmax_loss(out, y)
        grads = {}
        for i in reversed(range(self.num_layers)):
            x = caches[i]
            grads[("W", i)], grads[("b", i)] = x.T @ dout, dout.sum(axis=0)
            if i > 0:
                dout = dout @ self.params[("W", i)].T * (x > 0)
        for i in range(self.num_layers):
            W = self.params[("W", i)]
            loss += 0.5 * self.reg * np.sum(W * W)
            grads[("W", i)] += self.reg * W
        return loss, grads
'''


@pytest.mark.parametrize("slip, kind, scale_", [("-=", "sign-flipped", -1.0),
                                                ("+= 2 *", "scaled", 2.0)])
def test_a_models_regularization_added_in_a_later_loop_is_named_there(tmp_path, slip, kind,
                                                                      scale_):
    """The kind: entries of a model's grads dict written under keys computed at run time
    (``grads[("W", i)]``), then built up in place by a later loop. The entry written first
    is a partial value, not judged; the loop's ``+=`` is judged by its share."""
    right = "            grads[(\"W\", i)] += self.reg * W"
    assert right in MODEL_WITH_LATE_REG
    path = tmp_path / "late_reg.py"
    path.write_text(MODEL_WITH_LATE_REG.replace(right, right.replace("+=", slip)))
    found = {x.name: x for x in find_layers(load_file(path), str(path)).layers}
    model = next(x for name, x in found.items() if name.startswith("FullyConnectedNet"))
    report = check_layer(model)
    assert not report.ok
    first = report.first_wrong_step
    assert first is not None and first.code == right.strip().replace("+=", slip), first
    assert first.kind == kind and abs(first.scale - scale_) < 1e-9, first.text()
    assert not first.last_write and first.name.startswith("grads[")
