"""Batch norm (and its _alt backward), spatial batch norm, layer norm, spatial group norm:
correct hand code is correct on every input set; each classic mistake, planted in the
assignment-2 fixture, is named on the right quantity, every other gradient correct."""

from __future__ import annotations

import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, run_mutant

from jaxcnn.check import catalogue

FIXTURE = "cs231n_assignment2.py"
NORMS = ["batchnorm", "batchnorm_alt", "layernorm", "spatial_batchnorm", "spatial_groupnorm"]


@pytest.mark.parametrize("name", NORMS)
def test_correct_norms_are_correct_on_every_input_set(name):
    report = check(FIXTURES / FIXTURE, name)
    assert_correct(report)
    assert all(r.kind == "correct" for c in report.checks for r in c.inputs)
    assert report.kind == ("batchnorm" if name == "batchnorm_alt" else name)


def test_norm_inputs_have_n_different_from_d_and_more_than_one_sample():
    for kind in ("batchnorm", "layernorm"):
        sets = catalogue.spec(kind).input_sets(0)
        assert any(s.args[0].shape[0] > 1 and s.args[0].shape[0] != s.args[0].shape[1]
                   for s in sets)


MUTANTS = [
    # batch statistics treated as constants
    ("bn-constants", "batchnorm_alt",
     "    dx = ivar / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))",
     "    dx = dxhat * ivar", ["x"], "wrong-derivative", "constants"),
    # the unbiased (N - 1) variance in the backward
    ("bn-unbiased", "batchnorm", "    dsq = 1.0 / n * np.ones_like(dout) * dvar",
     "    dsq = 1.0 / (n - 1) * np.ones_like(dout) * dvar", ["x"], "wrong-derivative",
     "unbiased"),
    # dbeta as a mean: scaled by 1/N
    ("bn-dbeta-mean", "batchnorm", "    dbeta = dout.sum(axis=0)\n    dgamma = (dout * xhat)"
     ".sum(axis=0)\n    dxhat = dout * gamma\n    divar",
     "    dbeta = dout.mean(axis=0)\n    dgamma = (dout * xhat).sum(axis=0)\n"
     "    dxhat = dout * gamma\n    divar", ["beta"], "scaled", None),
    # layer norm's backward summed over the batch axis (batch norm's formula)
    ("ln-batch-axis", "layernorm",
     "    dx = ivar / d * (d * dxhat - dxhat.sum(axis=1, keepdims=True)\n"
     "                     - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))",
     "    n = dout.shape[0]\n"
     "    dx = ivar / n * (n * dxhat - dxhat.sum(axis=0, keepdims=True)\n"
     "                     - xhat * (dxhat * xhat).sum(axis=0, keepdims=True))",
     ["x"], "wrong-derivative", "over the batch"),
    ("ln-constants", "layernorm",
     "    dx = ivar / d * (d * dxhat - dxhat.sum(axis=1, keepdims=True)\n"
     "                     - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))",
     "    dx = dxhat * ivar", ["x"], "wrong-derivative", "constants"),
    ("gn-constants", "spatial_groupnorm",
     "    dx = ivar / m * (m * dxhat - dxhat.sum(axis=(2, 3, 4), keepdims=True)\n"
     "                     - xg * (dxhat * xg).sum(axis=(2, 3, 4), keepdims=True))",
     "    dx = dxhat * ivar", ["x"], "wrong-derivative", "constants"),
    # one of the compact backward's two terms left out; gamma taken out of the sums
    ("ln-mean-term-left-out", "layernorm",
     "    dx = ivar / d * (d * dxhat - dxhat.sum(axis=1, keepdims=True)\n",
     "    dx = ivar / d * (d * dxhat\n", ["x"], "wrong-derivative", "mean's term left out"),
    ("ln-variance-term-left-out", "layernorm",
     "                     - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))",
     "                     )", ["x"], "wrong-derivative", "variance's term left out"),
    ("ln-gamma-outside-the-sums", "layernorm",
     "    dx = ivar / d * (d * dxhat - dxhat.sum(axis=1, keepdims=True)\n"
     "                     - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))",
     "    dx = gamma * ivar / d * (d * dout - dout.sum(axis=1, keepdims=True)\n"
     "                     - xhat * (dout * xhat).sum(axis=1, keepdims=True))",
     ["x"], "wrong-derivative", "gamma outside the sums"),
    ("bn-mean-term-left-out", "batchnorm_alt",
     "    dx = ivar / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))",
     "    dx = ivar / n * (n * dxhat - xhat * (dxhat * xhat).sum(axis=0))", ["x"],
     "wrong-derivative", "mean's term left out"),
    ("sbn-dgamma-x2", "spatial_batchnorm",
     "    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta",
     "    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), 2 * dgamma, dbeta",
     ["gamma"], "scaled", None),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_norm_mutants_are_named(mutant, tmp_path):
    _, layer, old, new, quantities, kind, rule = mutant
    run_mutant(tmp_path, FIXTURE, layer, old, new, quantities, kind, rule)


def test_dgamma_computed_from_the_input_is_named(tmp_path):
    source = (FIXTURES / FIXTURE).read_text()
    old = "    out = gamma * xhat + beta\n    return out, (xhat, ivar, gamma)"
    new = "    out = gamma * xhat + beta\n    return out, (x, ivar, gamma)"
    assert source.count(old) == 1
    path = tmp_path / FIXTURE
    # layer norm's cache keeps x, and dgamma uses it (the backward's x_hat is recomputed)
    path.write_text(source.replace(old, new).replace(
        "    xhat, ivar, gamma = cache\n    d = dout.shape[1]\n",
        "    x, ivar, gamma = cache\n    d = dout.shape[1]\n"
        "    xhat = (x - x.mean(axis=1, keepdims=True)) * ivar\n").replace(
        "    dgamma = (dout * xhat).sum(axis=0)\n    dxhat = dout * gamma\n    dx = ivar / d",
        "    dgamma = (dout * x).sum(axis=0)\n    dxhat = dout * gamma\n    dx = ivar / d"))
    from catalogue_helpers import assert_named

    assert_named(check(path, "layernorm"), ["gamma"], "wrong-derivative", "x for x_hat")


def test_gamma_left_out_of_dx_is_named(tmp_path):
    run_mutant(tmp_path, FIXTURE, "layernorm", "    dxhat = dout * gamma\n    dx = ivar / d",
               "    dxhat = dout\n    dx = ivar / d", ["x"], "wrong-derivative",
               "gamma left out")


@pytest.mark.parametrize("layer,old,new", [
    ("spatial_groupnorm", "    m = (c // G) * h * w\n", "    m = h * w\n"),
])
def test_a_count_of_only_some_statistic_axes_is_named(layer, old, new, tmp_path):
    run_mutant(tmp_path, FIXTURE, layer, old, new, ["x"], "wrong-derivative", "count")


def test_a_forward_with_the_unbiased_variance_is_a_bug_though_its_backward_agrees(tmp_path):
    """Forward and backward both use N - 1: the gradient is right for that forward, but
    the layer is not batch norm; the forward is named and the gradients are judged
    against the textbook's."""
    source = (FIXTURES / FIXTURE).read_text()
    old_f = "        var = (xmu ** 2).mean(axis=0)\n"
    old_b = "    dsq = 1.0 / n * np.ones_like(dout) * dvar"
    assert source.count(old_f) == 1 and source.count(old_b) == 1
    path = tmp_path / FIXTURE
    path.write_text(source.replace(old_f, "        var = (xmu ** 2).sum(axis=0) / (n - 1)\n")
                    .replace(old_b, "    dsq = 1.0 / (n - 1) * np.ones_like(dout) * dvar"))
    report = check(path, "batchnorm")
    assert report.check("x").kind != "correct"
    assert report.check("gamma").kind != "correct"
    assert report.check("beta").kind == "correct"
    assert any("unbiased variance" in note for note in report.notes), report.notes
    assert all(f.get("known_wrong_forward") == "the unbiased variance" for f in report.forward)


# ------------------------------------------------------------------ module style

MODULES = "module_layers.py"  # classes with forward(x) / backward(dout), self.dgamma


@pytest.mark.parametrize("name,kind", [("BatchNorm1d", "batchnorm"),
                                       ("BatchNorm2d", "spatial_batchnorm"),
                                       ("LayerNorm", "layernorm")])
def test_module_style_norms_get_the_catalogue_reference(name, kind):
    report = check(FIXTURES / MODULES, name)
    assert_correct(report)
    assert report.kind == kind
    assert {c.quantity for c in report.checks} == {"x", "gamma", "beta"}
    assert all(c.oracle == "exact" for c in report.checks), [c.oracle for c in report.checks]


def test_module_style_norm_inputs_have_n_different_from_d_and_a_batch_of_one():
    from catalogue_helpers import layers_of

    sets = layers_of(FIXTURES / MODULES)["LayerNorm"].input_sets(0)
    assert any(s.family == "batch-of-one" and s.args[0].shape[0] == 1 for s in sets)
    bn = layers_of(FIXTURES / MODULES)["BatchNorm1d"].input_sets(0)
    assert any(s.args[0].shape[0] not in (1, s.args[0].shape[1]) for s in bn)
    assert all(s.args[0].shape[0] > 1 for s in bn)  # N = 1: one value per statistic


MODULE_MUTANTS = [
    ("module-bn-constants", "BatchNorm1d",
     "        dx = self.inv_std / n * (n * dxhat - dxhat.sum(axis=0)\n"
     "                                 - self.x_hat * (dxhat * self.x_hat).sum(axis=0))",
     "        dx = dxhat * self.inv_std", ["x"], "wrong-derivative", "constants"),
    ("module-sbn-count", "BatchNorm2d",
     "        m = dout.shape[0] * dout.shape[2] * dout.shape[3]",
     "        m = dout.shape[0]", ["x"], "wrong-derivative", "count"),
    ("module-ln-no-gamma", "LayerNorm",
     "        dxhat = dout * self.gamma\n        dx = self.inv_std / d",
     "        dxhat = dout\n        dx = self.inv_std / d", ["x"], "wrong-derivative",
     "gamma left out"),
]


@pytest.mark.parametrize("mutant", MODULE_MUTANTS, ids=[m[0] for m in MODULE_MUTANTS])
def test_module_style_norm_mutants_are_named(mutant, tmp_path):
    _, layer, old, new, quantities, kind, rule = mutant
    run_mutant(tmp_path, MODULES, layer, old, new, quantities, kind, rule)


def test_a_module_norm_whose_forward_is_no_norm_keeps_the_numeric_oracle(tmp_path):
    """A class named BatchNorm whose forward computes something else (no centring) is
    not matched: it is checked against finite differences of its own forward."""
    from catalogue_helpers import mutate

    path = mutate(tmp_path, MODULES, "        self.x_hat = (x - mu) * self.inv_std\n"
                                     "        return self.gamma * self.x_hat + self.beta\n\n"
                                     "    def backward(self, dout):\n        n = ",
                  "        self.x_hat = x * self.inv_std\n"
                  "        return self.gamma * self.x_hat + self.beta\n\n"
                  "    def backward(self, dout):\n        n = ")
    report = check(path, "BatchNorm1d")
    assert report.kind == "custom"
    assert all(c.oracle == "numeric" for c in report.checks)


def test_a_module_style_group_norm_is_checked_with_its_own_groups():
    report = check(FIXTURES / MODULES, "GroupNorm")
    assert_correct(report)
    assert report.kind == "spatial_groupnorm"
    assert "G=2" in report.reference
    assert all(c.oracle == "exact" for c in report.checks)


def test_a_module_style_group_norm_mistake_is_named(tmp_path):
    run_mutant(tmp_path, MODULES, "GroupNorm",
               "        dx = self.inv_std / m * (m * dxhat - dxhat.sum(axis=2, keepdims=True)\n"
               "                                 - xg * (dxhat * xg).sum(axis=2, "
               "keepdims=True))",
               "        dx = dxhat * self.inv_std", ["x"], "wrong-derivative", "constants")


GROUPNORM_G = """import numpy as np


class GroupNorm:
    def __init__(self, num_groups, num_channels, eps=1e-5):
        self.G = num_groups
        self.gamma = np.ones(num_channels)
        self.beta = np.zeros(num_channels)
        self.eps = eps

    def forward(self, x):
        N, C, H, W = x.shape
        xg = x.reshape(N, self.G, -1)
        self.mu = xg.mean(axis=2, keepdims=True)
        self.inv = 1.0 / np.sqrt(xg.var(axis=2, keepdims=True) + self.eps)
        self.xhat = ((xg - self.mu) * self.inv).reshape(x.shape)
        return self.gamma[None, :, None, None] * self.xhat + self.beta[None, :, None, None]

    def backward(self, dout):
        N, C, H, W = dout.shape
        self.dgamma = (dout * self.xhat).sum(axis=(0, 2, 3))
        self.dbeta = dout.sum(axis=(0, 2, 3))
        dxhat = (dout * self.gamma[None, :, None, None]).reshape(N, self.G, -1)
        xhat = self.xhat.reshape(N, self.G, -1)
        m = xhat.shape[2]
        dx = self.inv / m * (m * dxhat - dxhat.sum(axis=2, keepdims=True)
                             - xhat * (dxhat * xhat).sum(axis=2, keepdims=True))
        return dx.reshape(dout.shape)
"""


def test_a_group_norm_keeping_its_groups_as_self_G_gets_the_catalogue(tmp_path):
    """The group count's attribute read whatever its case (``self.G``): before, the
    class fell back to finite differences, its named mistakes lost."""
    from jaxcnn.check import check_file

    path = tmp_path / "gn.py"
    path.write_text(GROUPNORM_G)
    (layer,) = check_file(path).layers
    assert layer.kind == "spatial_groupnorm" and layer.ok, (layer.kind, layer.checks)


def test_a_gradient_reshaped_for_its_groups_is_no_wrong_step(tmp_path):
    """``dxhat = (dout * gamma).reshape(N, G, -1)`` regroups dL/dxhat's entries for the
    arithmetic: right, not "wrong-shape" (a keepdims lost is another thing); the first
    wrong step is the slip after it (the statistics taken as constants)."""
    from jaxcnn.check import check_file

    start = GROUPNORM_G.index("        dx = self.inv / m")
    end = GROUPNORM_G.index("        return dx.reshape")
    path = tmp_path / "gn_bug.py"
    path.write_text(GROUPNORM_G[:start] + "        dx = self.inv * dxhat\n"
                    + GROUPNORM_G[end:])
    (layer,) = check_file(path).layers
    first = layer.first_wrong_step
    assert not layer.ok and first is not None and first.code == "dx = self.inv * dxhat", (
        first and first.text())
    assert "dxhat" in first.right_before
