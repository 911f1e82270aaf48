"""svm_loss (multiclass hinge, exact margins of 0: any subgradient), MSE (mean, half,
per-sample forms), binary cross-entropy (probabilities and logits): correct on every
input set; their classic mistakes are named."""

from __future__ import annotations

import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, run_mutant

from jaxcnn.check import catalogue

A2 = "cs231n_assignment2.py"
EXTRA = "cs231n_extra_layers.py"


def test_svm_loss_inputs_hold_margins_of_exactly_zero():
    import numpy as np

    for s in catalogue.spec("svm_loss").input_sets(0):
        if s.family == "boundary":
            x, y = s.args[0], s.static[0]
            margins = x - x[np.arange(len(y)), y][:, None] + 1
            margins[np.arange(len(y)), y] = 1
            assert (margins == 0).any()
            return
    raise AssertionError("no exact-margin input set")


@pytest.mark.parametrize("path,name,kind", [(A2, "svm_loss", "svm_loss"),
                                            (EXTRA, "mse_loss", "mse"),
                                            (EXTRA, "binary_cross_entropy", "bce"),
                                            (EXTRA, "bce_with_logits_loss", "bce_logits")])
def test_correct_losses_are_correct(path, name, kind):
    report = check(FIXTURES / path, name)
    assert_correct(report)
    assert report.kind == kind


@pytest.mark.parametrize("test,rule", [("raw > 0", "0 at 0"), ("raw >= 0", "1 at 0"),
                                       ("(raw > 0) + 0.25 * (raw == 0)", "slope")])
def test_any_subgradient_at_an_exact_margin_is_correct(test, rule, tmp_path):
    old = "    positive = (margins > 0).astype(x.dtype)"
    new = ("    raw = x - correct + 1.0\n"
           f"    positive = ({test}).astype(x.dtype)\n"
           "    positive[np.arange(n), y] = 0")
    source = (FIXTURES / A2).read_text()
    assert source.count(old) == 1
    path = tmp_path / A2
    path.write_text(source.replace(old, new))
    report = check(path, "svm_loss")
    assert_correct(report)
    assert rule in (report.check("x").rule or ""), report.check("x")


MUTANTS = [
    ("svm-label-not-subtracted", A2, "svm_loss",
     "    positive[np.arange(n), y] = -positive.sum(axis=1)\n", "", "wrong-derivative"),
    ("svm-no-mean", A2, "svm_loss", "    dx = positive / n", "    dx = positive", "scaled"),
    ("mse-no-2", EXTRA, "mse_loss", "    dx = 2 * diff / diff.size", "    dx = diff / diff.size",
     "scaled"),
    ("mse-sign", EXTRA, "mse_loss", "    dx = 2 * diff / diff.size",
     "    dx = -2 * diff / diff.size", "sign-flipped"),
    ("bce-logit-derivative", EXTRA, "binary_cross_entropy",
     "    dp = (p - y) / (p * (1 - p)) / p.size", "    dp = (p - y) / p.size",
     "wrong-derivative"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_loss_mutants_are_named(mutant, tmp_path):
    _, fixture, layer, old, new, kind = mutant
    run_mutant(tmp_path, fixture, layer, old, new, ["x"], kind)


# ------------------------------------------------------------------ module style

MODULES = "module_layers.py"


@pytest.mark.parametrize("name,kind", [("SoftmaxCrossEntropy", "softmax_loss"),
                                       ("CategoricalCrossEntropy", "cross_entropy_probs"),
                                       ("MSELoss", "mse")])
def test_module_style_losses_get_the_catalogue_reference(name, kind):
    report = check(FIXTURES / MODULES, name)
    assert_correct(report)
    assert report.kind == kind
    assert all(c.oracle == "exact" for c in report.checks)
    assert any("batch of one" in r.inputs for c in report.checks for r in c.inputs)


@pytest.mark.parametrize("layer,old,new,kind,rule", [
    ("SoftmaxCrossEntropy", "        return (self.probs - self.targets) / self.targets.shape[0]",
     "        return self.probs / self.targets.shape[0]", "wrong-derivative",
     "one-hot not subtracted"),
    ("CategoricalCrossEntropy", "        self.dinputs = -onehot / dvalues / len(dvalues)",
     "        self.dinputs = (dvalues - onehot) / len(dvalues)", "wrong-derivative",
     "softmax-with-loss derivative"),
    ("CategoricalCrossEntropy", "        self.dinputs = -onehot / dvalues / len(dvalues)",
     "        self.dinputs = -onehot / len(dvalues)", "wrong-derivative", "log's derivative"),
    ("MSELoss", "        return 2 * (y_pred - y_true) / y_pred.size",
     "        return (y_pred - y_true) / y_pred.size", "scaled", None),
])
def test_module_style_loss_mistakes_are_named(layer, old, new, kind, rule, tmp_path):
    run_mutant(tmp_path, MODULES, layer, old, new, [
        {"SoftmaxCrossEntropy": "scores"}.get(layer, "y_pred")], kind, rule)


def test_a_module_cross_entropy_on_scores_is_not_taken_for_one_on_probabilities():
    """Both names match "CrossEntropy"; the forward decides which kind it is."""
    from jaxcnn.check import catalogue

    assert {"softmax_loss", "cross_entropy_probs"} <= set(
        catalogue.matches("categorical_cross_entropy", "module_loss"))
    assert check(FIXTURES / MODULES, "CategoricalCrossEntropy").kind == "cross_entropy_probs"


def test_module_style_mean_absolute_error_is_checked_at_its_kink():
    report = check(FIXTURES / MODULES, "MAELoss")
    assert_correct(report)
    assert report.kind == "mae"
    assert any(r.family == "boundary" for r in report.check("y_pred").inputs)


@pytest.mark.parametrize("new,kind,rule", [
    ("        return np.sign(y_true - y_pred) / y_pred.size", "sign-flipped", None),
    ("        return (y_pred - y_true) / y_pred.size", "wrong-derivative",
     "squared error's derivative"),
    ("        return 2 * (y_pred - y_true) / y_pred.size", "wrong-derivative",
     "squared error's derivative, x2"),
])
def test_mean_absolute_error_mistakes_are_named(new, kind, rule, tmp_path):
    run_mutant(tmp_path, MODULES, "MAELoss",
               "        return np.sign(y_pred - y_true) / y_pred.size", new, ["y_pred"], kind,
               rule)


def test_a_mae_loss_function_gets_the_reference_and_any_slope_at_the_kink(tmp_path):
    path = tmp_path / "l1.py"
    path.write_text("import numpy as np\n\n\ndef mae_loss(x, y):\n"
                    "    d = x - y\n    dx = np.where(d >= 0, 1.0, -1.0) / x.size\n"
                    "    return np.mean(np.abs(d)), dx\n")  # slope 1 at x = y: a subgradient
    report = check(path, "mae_loss")
    assert_correct(report)
    assert report.kind == "mae"


def test_derivative_pairs_of_catalogue_losses_get_the_reference(tmp_path):
    path = tmp_path / "losses.py"
    path.write_text("import numpy as np\n\n\ndef mse(y_true, y_pred):\n"
                    "    return np.mean(np.power(y_true - y_pred, 2))\n\n\n"
                    "def mse_prime(y_true, y_pred):\n"
                    "    return 2 * (y_pred - y_true) / np.size(y_true)\n")
    report = check(path, "mse")
    assert_correct(report)
    assert report.kind == "mse" and report.check("y_pred").oracle == "exact"


SUM_CE = '''import numpy as np


class CrossEntropyLoss:
    """One-hot targets; the sum over the batch; a log that warns on scores."""

    def forward(self, prediction_tensor, label_tensor):
        self.pred = prediction_tensor
        return -np.sum(label_tensor * np.log(prediction_tensor + np.finfo(float).eps))

    def backward(self, label_tensor):
        return -label_tensor / (self.pred + np.finfo(float).eps)
'''


def test_a_summed_cross_entropy_of_probabilities_is_its_own_layout(tmp_path):
    """Its name matches softmax_loss too; its forward (a sum, on probabilities) says which
    kind it is."""
    path = tmp_path / "loss.py"
    path.write_text(SUM_CE)
    report = check(path, "CrossEntropyLoss")
    assert_correct(report)
    assert report.kind == "cross_entropy_probs_sum"
    path.write_text(SUM_CE.replace("        return -label_tensor / (self.pred + np.finfo(float)"
                                   ".eps)", "        return self.pred - label_tensor"))
    from catalogue_helpers import assert_named

    assert_named(check(path, "CrossEntropyLoss"), ["prediction_tensor"], "wrong-derivative",
                 "softmax-with-loss derivative")


def test_a_module_whose_code_adds_globals_while_its_classes_are_listed(tmp_path):
    """Running a class's code may add to its module's globals (a warning adds
    __warningregistry__): discovery lists the classes from a snapshot, no RuntimeError."""
    path = tmp_path / "adds.py"
    path.write_text(SUM_CE.replace("        self.pred = prediction_tensor\n",
                                   "        self.pred = prediction_tensor\n"
                                   "        globals()['seen'] = True\n"))
    from catalogue_helpers import layers_of

    assert "CrossEntropyLoss" in layers_of(path)


EPS_EXACT = '''
import numpy as np


class CrossEntropyLoss:
    def forward(self, y, t):
        self.y, self.t = y, t
        return -np.sum(t * np.log(y + 1e-7)) / y.shape[0]

    def backward(self, dout=1):
        return -dout * self.t / (self.y + 1e-7) / self.y.shape[0]
'''


def test_the_exact_gradient_of_a_log_with_an_epsilon_is_right(tmp_path):
    """The kind: a backward that differentiates the user's own log(y + 1e-7), epsilon
    included. It differs from the epsilon-free loss's gradient by about eps / y: right
    for the forward it has (before: imprecise, exit 1)."""
    from jaxcnn.check import check_file

    path = tmp_path / "eps_exact.py"
    path.write_text(EPS_EXACT)
    (layer,) = check_file(path).layers
    assert layer.ok, layer.checks
    assert layer.checks[0].rule == "gradient of 1e-07 inside the log"
    # a real slip beside the epsilon is still named
    path.write_text(EPS_EXACT.replace("-dout * self.t", "dout * self.t"))
    (layer,) = check_file(path).layers
    assert layer.checks[0].kind == "sign-flipped", layer.checks[0]
