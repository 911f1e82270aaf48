"""Leaky ReLU, ELU, GELU (erf and tanh forms), softplus, log-softmax: correct on every
input set (any slope between the one-sided ones at a kink); their classic wrong
derivatives are named."""

from __future__ import annotations

import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, run_mutant

FIXTURE = "cs231n_extra_layers.py"


@pytest.mark.parametrize("name,kind", [("leaky_relu", "leaky_relu"), ("elu", "elu"),
                                       ("gelu", "gelu"), ("gelu_tanh", "gelu_tanh"),
                                       ("softplus", "softplus"), ("log_softmax", "log_softmax")])
def test_correct_activations_are_correct(name, kind):
    report = check(FIXTURES / FIXTURE, name)
    assert_correct(report)
    assert report.kind == kind


def test_leaky_relu_with_its_slope_as_an_argument_is_checked_with_that_slope(tmp_path):
    path = tmp_path / "lrelu.py"
    path.write_text((FIXTURES / FIXTURE).read_text().replace(
        "def leaky_relu_forward(x, alpha=0.01):", "def leaky_relu_forward(x, alpha):"))
    report = check(path, "leaky_relu")
    assert_correct(report)
    assert report.kind == "leaky_relu_alpha"


def test_log_softmax_is_checked_on_large_gaps_in_float32():
    report = check(FIXTURES / FIXTURE, "log_softmax")
    assert any(r.family == "large-gap" and "float32" in r.inputs
               for r in report.check("x").inputs)


MUTANTS = [
    ("leaky-no-leak", "leaky_relu", "    return dout * np.where(x > 0, 1.0, alpha)",
     "    return dout * (x > 0)", "wrong-derivative", "no leak"),
    ("leaky-1-at-0", "leaky_relu", "    return dout * np.where(x > 0, 1.0, alpha)",
     "    return dout * np.where(x >= 0, 1.0, alpha)", "correct", "1 at 0"),
    ("elu-at-output", "elu", "    return dout * np.where(x > 0, 1.0, out + alpha)",
     "    return dout * np.where(x > 0, 1.0, alpha * np.exp(out))", "wrong-derivative",
     "e^out"),
    ("gelu-phi-only", "gelu", "    return dout * (cdf + x * pdf)", "    return dout * cdf",
     "wrong-derivative", "Phi(x) only"),
    ("softplus-e-x", "softplus", "    return dout / (1 + np.exp(-x))",
     "    return dout * np.exp(x)", "wrong-derivative", "e^x"),
    ("log-softmax-sum-dropped", "log_softmax",
     "    return dout - np.exp(out) * dout.sum(axis=1, keepdims=True)",
     "    return dout - np.exp(out)", "wrong-derivative", "sum of dout"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_activation_mutants_are_named(mutant, tmp_path):
    _, layer, old, new, kind, rule = mutant
    run_mutant(tmp_path, FIXTURE, layer, old, new, ["x"], kind, rule)


# ------------------------------------------------------------------ module style

MODULES = "module_layers.py"


@pytest.mark.parametrize("name,kind", [("LeakyReLU", "leaky_relu_alpha"), ("ELU", "elu"),
                                       ("GELU", "gelu_tanh")])
def test_module_style_activations_get_the_catalogue_reference(name, kind):
    report = check(FIXTURES / MODULES, name)
    assert_correct(report)
    assert report.kind == kind
    assert report.check("x").oracle == "exact"


def test_a_module_leaky_relu_is_checked_with_its_own_slope():
    report = check(FIXTURES / MODULES, "LeakyReLU")
    assert "0.1 x" in report.reference, report.reference


@pytest.mark.parametrize("layer,old,new,rule", [
    ("LeakyReLU", "        return dout * np.where(self.x > 0, 1.0, self.alpha)",
     "        return dout * np.where(self.x > 0, 1.0, 0.0)", "no leak"),
    ("LeakyReLU", "        return dout * np.where(self.x > 0, 1.0, self.alpha)",
     "        return dout * np.where(self.x > 0, self.alpha, 1.0)", "wrong side"),
    ("ELU", "        return dout * np.where(self.x > 0, 1.0, self.out + self.alpha)",
     "        return dout * np.where(self.x > 0, 1.0, self.out)", "out for x < 0"),
    ("GELU", "        return dout * (0.5 * (1 + t) + 0.5 * x * dt)",
     "        return dout * (0.5 * (1 + t))", "Phi(x) only"),
])
def test_module_style_activation_mistakes_are_named(layer, old, new, rule, tmp_path):
    run_mutant(tmp_path, MODULES, layer, old, new, ["x"], "wrong-derivative", rule)


PAIRS = '''import numpy as np


def leaky_relu(x, alpha=0.05):
    return np.where(x > 0, x, alpha * x)


def leaky_relu_prime(x, alpha=0.05):
    return np.where(x > 0, 1.0, alpha)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def gelu_prime(x):
    t = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * np.sqrt(2 / np.pi) * (
        1 + 3 * 0.044715 * x ** 2)
'''


def test_derivative_pairs_of_catalogue_activations_get_the_reference(tmp_path):
    path = tmp_path / "pairs.py"
    path.write_text(PAIRS)
    leaky = check(path, "leaky_relu")
    assert_correct(leaky)
    assert leaky.kind == "leaky_relu_alpha" and "0.05 x" in leaky.reference
    gelu = check(path, "gelu")
    assert_correct(gelu)
    assert gelu.kind == "gelu_tanh" and gelu.check("x").oracle == "exact"
    path.write_text(PAIRS.replace("    return np.where(x > 0, 1.0, alpha)",
                                  "    return np.where(x > 0, 1.0, 0.0)"))
    from catalogue_helpers import assert_named

    assert_named(check(path, "leaky_relu"), ["x"], "wrong-derivative", "no leak")


ROW_SOFTMAX = '''
import numpy as np


class Softmax:
    def forward(self, x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.out = e / e.sum(axis=1, keepdims=True)
        return self.out

    def backward(self, dout):
        BACKWARD
'''
RIGHT_SOFTMAX = "return self.out * (dout - (self.out * dout).sum(axis=1, keepdims=True))"


@pytest.mark.parametrize("backward, kind", [
    (RIGHT_SOFTMAX, "correct"),
    ("return self.out * (1 - self.out) * dout", "wrong-derivative"),  # the diagonal only
    ("return np.zeros_like(dout)", "zero"),
])
def test_a_row_softmax_module_is_never_checked_where_it_is_constant(tmp_path, backward, kind):
    """The kind: a shape on which the forward does not depend on its input (a softmax
    over rows, given a column (n, 1): every output is 1). Any backward returning 0 agreed
    with it there, so a diagonal-only or zero backward passed; such a shape is never the
    one checked now, and the diagonal-only Jacobian is named."""
    from jaxcnn.check import check_file

    path = tmp_path / "row_softmax.py"
    path.write_text(ROW_SOFTMAX.replace("BACKWARD", backward))
    (layer,) = check_file(path).layers
    assert layer.checks[0].kind == kind, layer.checks[0]
    assert not any("(4, 1)" in n for n in layer.notes), layer.notes


def test_an_elu_with_slope_1_at_0_is_a_subgradient(tmp_path):
    """ELU's one-sided slopes at 0 are alpha and 1: `x >= 0` (slope 1 there) is valid.
    The subgradient test and the kink rules used alpha for every x < 0, where the
    derivative is alpha e^x, so a right ELU with alpha 0.1 was unclassified."""
    from jaxcnn.check import check_file

    path = tmp_path / "elu_ge.py"
    path.write_text(
        "import numpy as np\n\n\nclass ELU:\n    def __init__(self, alpha=0.1):\n"
        "        self.alpha = alpha\n\n    def forward(self, x):\n        self.x = x\n"
        "        self.out = np.where(x >= 0, x, self.alpha * (np.exp(x) - 1))\n"
        "        return self.out\n\n    def backward(self, dout):\n"
        "        return dout * np.where(self.x >= 0, 1.0, self.out + self.alpha)\n")
    (layer,) = check_file(path).layers
    assert layer.kind == "elu_alpha" and layer.ok, layer.checks[0]
    assert layer.checks[0].rule == "1 at 0"
