"""The mutation suite: deliberately broken backward passes in all three styles.

Each mutant changes one line of a correct fixture (tests/fixtures/), is loaded the way
``jaxcnn check FILE.py`` loads files, and must be classified with the right kind, on
the right layer and quantity, while every other gradient of that layer stays correct.
The unmutated fixtures (correct layers, "first" and "split" tie rules on real digits)
must never be flagged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxcnn.check import check_layer, find_layers, load_file

FIXTURES = Path(__file__).parent / "fixtures"
FD_SECONDS = 0.05  # a small finite-difference budget keeps the suite fast


def _check(path: Path, layer_name: str):
    found = find_layers(load_file(path), str(path))
    layer = next(layer for layer in found.layers if layer.name == layer_name)
    return check_layer(layer, fd_seconds=FD_SECONDS)


def _mutate(tmp_path: Path, fixture: str, old: str, new: str) -> Path:
    source = (FIXTURES / fixture).read_text()
    assert source.count(old) == 1, f"mutation anchor not unique in {fixture}: {old!r}"
    path = tmp_path / fixture
    path.write_text(source.replace(old, new))
    return path


# (id, fixture, layer, old line, new line, quantity, kind, extra assertion on the check)
MUTANTS = [
    # --- blog / report style -----------------------------------------------------------
    ("blog-conv-assign", "blog_layers.py", "Conv3x3",
     "d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region",
     "d_L_d_filters[f] = d_L_d_out[i, j, f] * im_region",
     "filters", "missing-accumulation", None),
    ("blog-conv-transposed", "blog_layers.py", "Conv3x3",
     "d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region",
     "d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region.T",
     "filters", "transposed", lambda c: tuple(c.axes) == (0, 2, 1)),
    ("blog-pool-overcount", "blog_layers.py", "MaxPool2",
     "                i2, j2 = np.unravel_index(np.argmax(im_region[:, :, f]), (2, 2))\n"
     "                d_L_d_input[i * 2 + i2, j * 2 + j2, f] = d_L_d_out[i, j, f]",
     "                tied = im_region[:, :, f] == np.amax(im_region[:, :, f])\n"
     "                d_L_d_input[i * 2:i * 2 + 2, j * 2:j * 2 + 2, f][tied] = "
     "d_L_d_out[i, j, f]",
     "input", "tie-overcount", None),
    ("blog-softmax-ascent", "blog_layers.py", "Softmax",
     "self.weights -= learn_rate * d_L_d_w", "self.weights += learn_rate * d_L_d_w",
     "weights", "sign-flipped", None),
    ("blog-softmax-bias-x2", "blog_layers.py", "Softmax",
     "d_L_d_b = d_L_d_t", "d_L_d_b = 2 * d_L_d_t",
     "biases", "scaled", lambda c: c.scale == pytest.approx(2.0)),
    ("blog-softmax-stale-weights", "blog_layers.py", "Softmax",
     "            d_L_d_inputs = self.weights @ d_L_d_t\n"
     "            self.weights -= learn_rate * d_L_d_w\n",
     "            self.weights -= learn_rate * d_L_d_w\n"
     "            d_L_d_inputs = self.weights @ d_L_d_t\n",
     "input", "update-before-use", None),
    ("blog-softmax-no-lr", "blog_layers.py", "Softmax",
     "self.biases -= learn_rate * d_L_d_b", "self.biases -= d_L_d_b",
     "biases", "update-rule", None),
    ("blog-softmax-reshape-order", "blog_layers.py", "Softmax",
     "return d_L_d_inputs.reshape(self.last_input_shape)",
     "return d_L_d_inputs.reshape(self.last_input_shape[::-1]).transpose(2, 1, 0)",
     "input", "transposed", None),
    # --- CS231n style -----------------------------------------------------------------
    ("cs231n-affine-mean", "cs231n_layers.py", "affine",
     "dw = x.reshape(x.shape[0], -1).T.dot(dout)",
     "dw = x.reshape(x.shape[0], -1).T.dot(dout) / x.shape[0]",
     "w", "scaled", lambda c: c.scale == pytest.approx(1 / 4)),
    ("cs231n-affine-last-sample", "cs231n_layers.py", "affine",
     "db = np.sum(dout, axis=0)", "db = dout[-1]",
     "b", "missing-accumulation", None),
    ("cs231n-affine-flat-dx", "cs231n_layers.py", "affine",
     "dx = dout.dot(w.T).reshape(x.shape)", "dx = dout.dot(w.T)",
     "x", "wrong-shape", None),
    ("cs231n-relu-dropped-dout", "cs231n_layers.py", "relu",
     "dx = dout * (x > 0)", "dx = (x > 0) * 1.0",
     "x", "cotangent-dropped", None),
    ("cs231n-conv-db-assign", "cs231n_layers.py", "conv",
     "db[f] += dout[n, f, i, j]", "db[f] = dout[n, f, i, j]",
     "b", "missing-accumulation", None),
    ("cs231n-conv-dw-transposed", "cs231n_layers.py", "conv",
     "dw[f] += window * dout[n, f, i, j]",
     "dw[f] += window.transpose(0, 2, 1) * dout[n, f, i, j]",
     "w", "transposed", lambda c: tuple(c.axes) == (0, 1, 3, 2)),
    ("cs231n-conv-dx-assign", "cs231n_layers.py", "conv",
     "dxp[n, :, i * stride:i * stride + hh, j * stride:j * stride + ww] += (",
     "dxp[n, :, i * stride:i * stride + hh, j * stride:j * stride + ww] = (",
     "x", "missing-accumulation", None),
    ("cs231n-conv-db-column", "cs231n_layers.py", "conv",
     "db = np.zeros_like(b)", "db = np.zeros((b.shape[0], 1))",
     "b", "wrong-shape", None),
    ("cs231n-pool-overlap-assign", "cs231n_layers.py", "max_pool",
     "dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]",
     "dx[n, c, i * stride + a, j * stride + b] = dout[n, c, i, j]",
     "x", "missing-accumulation", None),
    ("cs231n-pool-overcount", "cs231n_layers.py", "max_pool",
     "                    a, b = np.unravel_index(np.argmax(window), window.shape)\n"
     "                    dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]",
     "                    mask = window == np.max(window)\n"
     "                    dx[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw] += "
     "mask * dout[n, c, i, j]",
     "x", "tie-overcount", None),
    ("cs231n-loss-sum", "cs231n_layers.py", "softmax_loss",
     "    dx /= n\n", "",
     "x", "scaled", lambda c: c.scale == pytest.approx(4.0)),
    ("cs231n-relu-inverted", "cs231n_layers.py", "relu",
     "dx = dout * (x > 0)", "dx = dout * (x < 0)",
     "x", "wrong-derivative", lambda c: c.rule == "mask of x < 0"),
    ("cs231n-sigmoid-at-input", "cs231n_layers.py", "sigmoid",
     "    return out, out\n", "    return out, x\n",
     "x", "wrong-derivative", None),
    ("cs231n-conv-stride-left-out", "cs231n_layers.py", "conv",
     "dw[f] += window * dout[n, f, i, j]",
     "dw[f] += xp[n, :, i:i + hh, j:j + ww] * dout[n, f, i, j]",
     "w", "wrong-window", None),
    ("cs231n-conv-dw-last-row-skipped", "cs231n_layers.py", "conv",
     "dw[f] += window * dout[n, f, i, j]",
     "dw[f] += window * dout[n, f, i, j] * (i < h_out - 1)",
     "w", "off-by-one", None),
    ("cs231n-pool-average", "cs231n_layers.py", "max_pool",
     "                    a, b = np.unravel_index(np.argmax(window), window.shape)\n"
     "                    dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]",
     "                    dx[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw] += "
     "dout[n, c, i, j] / window.size",
     "x", "wrong-derivative", lambda c: c.rule == "average pool"),
    ("cs231n-conv-kernel-flipped", "cs231n_layers.py", "conv",
     "dw[f] += window * dout[n, f, i, j]",
     "dw[f] += window[:, ::-1, ::-1] * dout[n, f, i, j]",
     "w", "flipped", None),
    # --- JAX, hand-written VJPs --------------------------------------------------------
    ("jax-relu-zero", "jax_layers.py", "relu",
     "return (g * (x > 0),)", "return (jnp.zeros_like(g),)",
     "x", "zero", None),
    ("jax-conv-flatten-order", "jax_layers.py", "conv3x3",
     'd_filters = jnp.einsum("ijk,ijf->fk", patches, g).reshape(filters.shape)',
     'd_filters = jnp.einsum("ijk,ijf->kf", patches, g).reshape(filters.shape)',
     "filters", "transposed", None),
    ("jax-pool-overcount", "jax_layers.py", "maxpool",
     "first = jax.nn.one_hot(jnp.argmax(windows, axis=-1), 4, dtype=g.dtype)",
     "first = (windows == windows.max(axis=-1, keepdims=True)).astype(g.dtype)",
     "input", "tie-overcount", None),
    ("jax-dense-weights-transposed", "jax_layers.py", "dense",
     "return (weights @ g).reshape(x.shape), jnp.outer(x.reshape(-1), g), g",
     "return (weights @ g).reshape(x.shape), jnp.outer(g, x.reshape(-1)), g",
     "weights", "transposed", None),
    ("jax-xent-sign", "jax_layers.py", "cross_entropy",
     "return g * (jax.nn.softmax(logits) - jax.nn.one_hot(label, logits.shape[0])), None",
     "return g * (jax.nn.one_hot(label, logits.shape[0]) - jax.nn.softmax(logits)), None",
     "logits", "sign-flipped", None),
    ("jax-xent-report-chain-float32", "jax_layers.py", "cross_entropy",
     "return g * (jax.nn.softmax(logits) - jax.nn.one_hot(label, logits.shape[0])), None",
     "p = jax.nn.softmax(logits)\n"
     "    onehot = jax.nn.one_hot(label, logits.shape[0])\n"
     "    return g * (-1 / p[label]) * p[label] * (onehot - p), None",
     "logits", "non-finite", None),
]


def _named(mutant, tmp_path):
    """Check the mutated layer; assert the mutated quantity's kind (and ``extra``)."""
    _, fixture, layer_name, old, new, quantity, kind, extra = mutant
    report = _check(_mutate(tmp_path, fixture, old, new), layer_name)
    got = report.check(quantity)
    assert got.kind == kind, (got.kind, got.note)
    if extra is not None:
        assert extra(got), got
    return report, quantity


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_named_on_its_layer_and_quantity(mutant, tmp_path):
    report, quantity = _named(mutant, tmp_path)
    others = [c for c in report.checks if c.quantity != quantity]
    assert all(c.kind == "correct" for c in others), [(c.quantity, c.kind) for c in others]


@pytest.mark.parametrize("fixture", ["blog_layers.py", "cs231n_layers.py", "jax_layers.py"])
def test_correct_layers_are_never_flagged(fixture):
    path = FIXTURES / fixture
    found = find_layers(load_file(path), str(path))
    assert found.layers and not found.skipped
    for layer in found.layers:
        report = check_layer(layer, fd_seconds=FD_SECONDS)
        assert report.ok, [(layer.name, c.quantity, c.kind, c.note) for c in report.checks]


def test_tie_rules_are_named_on_real_digits():
    path = FIXTURES / "blog_layers.py"
    layers = {layer.name: layer for layer in find_layers(load_file(path), str(path)).layers}
    first = check_layer(layers["MaxPool2"], fd_seconds=FD_SECONDS).check("input")
    split = check_layer(layers["MaxPool2Split"], fd_seconds=FD_SECONDS).check("input")
    assert (first.kind, first.rule) == ("correct", "first")
    assert (split.kind, split.rule) == ("correct", "split")
    digits = [r for r in first.inputs if r.family == "digits"]
    assert digits and all(r.rule == "first" for r in digits)


# Mutants added from a corpus of user files: each class the checker missed or misnamed.
MORE_MUTANTS = [
    ("cs231n-affine-order-swapped", "cs231n_layers.py", "affine",
     "    db = np.sum(dout, axis=0)\n    return dx, dw, db\n",
     "    db = np.sum(dout, axis=0)\n    return dw, dx, db\n",
     "x", "wrong-argument", lambda c: c.rule == "w"),
    ("cs231n-affine-dx-is-dw", "cs231n_layers.py", "affine",
     "dx = dout.dot(w.T).reshape(x.shape)", "dx = x.reshape(x.shape[0], -1).T.dot(dout)",
     "x", "wrong-argument", lambda c: c.rule == "w"),
    ("cs231n-affine-db-not-returned", "cs231n_layers.py", "affine",
     "    db = np.sum(dout, axis=0)\n    return dx, dw, db\n",
     "    db = np.sum(dout, axis=0)\n    return [dx, dw]\n",
     "b", "missing", None),
    ("blog-pool-max-position-swapped", "blog_layers.py", "MaxPool2",
     "i2, j2 = np.unravel_index(np.argmax(im_region[:, :, f]), (2, 2))",
     "j2, i2 = np.unravel_index(np.argmax(im_region[:, :, f]), (2, 2))",
     "input", "transposed", lambda c: c.rule == "max position swapped"),
    # range(N - 1) over a batch of 2 keeps only the first sample: both readings are named
    ("cs231n-conv-batch-loop-one-short", "cs231n_layers.py", "conv",
     "    db = np.zeros_like(b)\n    for n in range(n_count):",
     "    db = np.zeros_like(b)\n    for n in range(n_count - 1):",
     "x", "missing-accumulation", lambda c: "range(n - 1)" in c.note),
    ("cs231n-pool-max-position-swapped", "cs231n_layers.py", "max_pool",
     "a, b = np.unravel_index(np.argmax(window), window.shape)",
     "b, a = np.unravel_index(np.argmax(window), window.shape)",
     "x", "transposed", lambda c: c.rule == "max position swapped"),
]


@pytest.mark.parametrize("mutant", MORE_MUTANTS, ids=[m[0] for m in MORE_MUTANTS])
def test_more_mutants(mutant, tmp_path):
    """Named on the mutated quantity; the other quantities may change with it (a swapped
    return order moves two gradients)."""
    _named(mutant, tmp_path)


def _network_file(tmp_path: Path, old: str = "", new: str = "") -> Path:
    """tests/fixtures/cs231n_net.py (its parts imported from cs231n_layers.py beside it),
    with one replacement in the sandwiches."""
    (tmp_path / "cs231n_layers.py").write_text((FIXTURES / "cs231n_layers.py").read_text())
    if old:
        return _mutate(tmp_path, "cs231n_net.py", old, new)
    path = tmp_path / "cs231n_net.py"
    path.write_text((FIXTURES / "cs231n_net.py").read_text())
    return path


def test_correct_sandwiches_are_checked_against_their_composed_parts(tmp_path):
    path = _network_file(tmp_path)
    found = find_layers(load_file(path), str(path))
    sandwiches = {layer.name: layer for layer in found.layers if "+" in layer.kind}
    assert {n: layer.kind for n, layer in sandwiches.items()} == {
        "conv_relu_pool": "conv+relu+max_pool", "affine_relu": "affine+relu"}
    assert not found.skipped
    pool = check_layer(sandwiches["conv_relu_pool"], fd_seconds=FD_SECONDS)
    assert pool.ok, [(c.quantity, c.kind, c.note) for c in pool.checks]
    assert pool.check("x").rule == "first"  # argmax's tie rule, on the digit crops
    affine = check_layer(sandwiches["affine_relu"], fd_seconds=FD_SECONDS)
    assert affine.ok, [(c.quantity, c.kind, c.note) for c in affine.checks]


@pytest.mark.parametrize("layer_name, old, new", [
    ("affine_relu", "da = relu_backward(dout, relu_cache)\n    dx, dw, db = affine_backward(da, ",
     "dx, dw, db = affine_backward(dout, "),
    ("conv_relu_pool",
     "da = relu_backward(ds, relu_cache)\n    dx, dw, db = conv_backward_naive(da, ",
     "dx, dw, db = conv_backward_naive(ds, "),
], ids=["affine-relu-left-out", "conv-relu-pool-relu-left-out"])
def test_sandwich_wiring_is_named_though_every_part_is_right(tmp_path, layer_name, old, new):
    report = _check(_network_file(tmp_path, old, new), layer_name)
    for c in report.checks:
        assert c.kind == "wrong-wiring", (c.quantity, c.kind, c.note)
    assert "relu_backward is left out" in report.check("x").note


def test_a_sandwich_with_a_part_without_reference_is_checked_numerically(tmp_path):
    # issue 17 section 2: nothing is skipped for its name; the configs are static
    path = tmp_path / "bn.py"
    path.write_text("def conv_bn_relu_forward(x, w, b, conv_param, bn_param):\n"
                    "    return x, None\n\n\n"
                    "def conv_bn_relu_backward(dout, cache):\n    return dout, None, None\n")
    found = find_layers(load_file(path), str(path))
    assert not found.skipped
    (layer,) = found.layers
    assert layer.reference is None and layer.arg_names == ("x", "w", "b")
    report = check_layer(layer)
    assert report.check("x").kind == "correct" and report.check("x").oracle == "numeric"
    assert report.check("w").kind == "missing"


def test_a_batch_of_one_exposes_a_squeeze(tmp_path):
    path = _mutate(tmp_path, "cs231n_layers.py", "db = np.sum(dout, axis=0)",
                   "db = np.sum(dout.squeeze(), axis=0)")
    got = _check(path, "affine").check("b")
    assert got.kind == "wrong-shape", (got.kind, got.note)
    assert "N = 1" in got.note


NHWC_CONV = '''import numpy as np


def conv_forward_nhwc(x, w, b, conv_param):
    # x (N, H, W, C), w (HH, WW, C, F): channels last
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, wd, c = x.shape
    hh, ww, _, f = w.shape
    ho, wo = 1 + (h + 2 * p - hh) // s, 1 + (wd + 2 * p - ww) // s
    out = np.zeros((n, ho, wo, f))
    for i in range(ho):
        for j in range(wo):
            out[:, i, j, :] = np.tensordot(xp[:, i * s:i * s + hh, j * s:j * s + ww, :], w,
                                           axes=3) + b
    return out, (x, w, b, conv_param)


def conv_backward_nhwc(dout, cache):
    x, w, b, conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    hh, ww = w.shape[:2]
    for i in range(dout.shape[1]):
        for j in range(dout.shape[2]):
            dw += np.tensordot(xp[:, i * s:i * s + hh, j * s:j * s + ww, :], dout[:, i, j, :],
                               axes=(0, 0))
            dxp[:, i * s:i * s + hh, j * s:j * s + ww, :] += np.tensordot(dout[:, i, j, :], w,
                                                                          axes=(1, 3))
    return dxp[:, p:p + x.shape[1], p:p + x.shape[2], :], dw, dout.sum(axis=(0, 1, 2))
'''


@pytest.mark.parametrize("old, new, quantity, kind", [
    ("", "", None, "correct"),
    ("dout[:, i, j, :], w,\n", "dout[:, i, j, :], w[::-1, ::-1],\n", "x", "flipped"),
], ids=["correct", "kernel-flipped"])
def test_a_channels_last_cs231n_conv_is_checked_channels_last(tmp_path, old, new, quantity,
                                                              kind):
    path = tmp_path / "nhwc.py"
    path.write_text(NHWC_CONV.replace(old, new) if old else NHWC_CONV)
    report = _check(path, "conv")
    assert report.kind == "conv_nhwc_param"
    assert all(c.oracle == "exact" for c in report.checks)  # not "your forward differs"
    for c in report.checks:
        want = kind if c.quantity == quantity or quantity is None else "correct"
        assert c.kind == want, (c.quantity, c.kind, c.note)
