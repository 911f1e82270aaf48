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
