"""backprop.py: every hand-derived function against autodiff of the matching forward in
model.py, in float64, to 1e-12 relative, on tie-free inputs (uniform random images in
[-0.5, 0.5] have no tied pool windows). Ties have their own module, test_ties.py."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rel_err, tree_rel_err
from jax.test_util import check_grads

from jaxcnn import backprop, model

TOL = 1e-12


def _image(seed=0):
    return jax.random.uniform(jax.random.key(100 + seed), (28, 28), jnp.float64, -0.5, 0.5)


def _params(num_filters=8, num_classes=10, seed=0):
    """Report init, plus non-zero biases so that a dropped bias term would show."""
    p = model.init_params(jax.random.key(seed), num_filters, num_classes)
    return p._replace(biases=0.3 * jax.random.normal(jax.random.key(seed + 50), p.biases.shape,
                                                     p.biases.dtype))


def _logits(num_classes, seed, scale=3.0):
    return scale * jax.random.normal(jax.random.key(200 + seed), (num_classes,), jnp.float64)


def _is_tie_free(conv):
    windows = np.asarray(model.pool_windows(conv))
    return np.all(np.sum(windows == windows.max(axis=-1, keepdims=True), axis=-1) == 1)


# ---------------------------------------------------------------- steps (1) and (2): softmax


@pytest.mark.parametrize("num_classes", [2, 10])
def test_loss_output_gradient_is_grad_of_minus_log(x64, num_classes):
    p = jax.nn.softmax(_logits(num_classes, 0))
    hand = jax.jit(backprop.loss_output_gradient)
    auto = jax.jit(jax.grad(lambda q, c: -jnp.log(q[c])))
    for label in range(num_classes):
        want = auto(p, label)
        got = hand(p, label)
        assert rel_err(got, want) <= TOL
        assert float(got[label]) == pytest.approx(-1 / float(p[label]), rel=1e-15)


@pytest.mark.parametrize("num_classes", [2, 5, 12])
def test_softmax_jacobian_matches_autodiff(x64, num_classes):
    jacobian, row = jax.jit(backprop.softmax_jacobian), jax.jit(backprop.softmax_jacobian_row)
    reference = jax.jit(jax.jacobian(jax.nn.softmax))
    for seed in range(3):
        t = _logits(num_classes, seed)
        want = reference(t)
        assert rel_err(jacobian(t), want) <= TOL
        for c in range(num_classes):
            assert rel_err(row(t, c), want[c]) <= TOL


def test_softmax_jacobian_by_hand(x64):
    """The report's formulas written out for t = (0, ln 2, ln 3): e^t = (1, 2, 3), S = 6."""
    t = jnp.log(jnp.array([1.0, 2.0, 3.0]))
    e, s = np.array([1.0, 2.0, 3.0]), 6.0
    want = -np.outer(e, e) / s**2
    want[np.diag_indices(3)] = e * (s - e) / s**2
    assert rel_err(backprop.softmax_jacobian(t), want) <= 1e-15


def test_softmax_jacobian_is_finite_for_huge_logits(x64):
    t = _logits(10, 1) * 1000
    got = backprop.softmax_jacobian(t)
    assert np.all(np.isfinite(got))
    assert rel_err(got, jax.jacobian(jax.nn.softmax)(t)) <= TOL


@pytest.mark.parametrize("num_classes", [2, 10])
def test_logits_backward_is_p_minus_onehot(x64, num_classes):
    hand, auto = jax.jit(backprop.logits_backward), jax.jit(jax.grad(model.cross_entropy))
    for seed in range(3):
        t = _logits(num_classes, seed)
        p = np.asarray(jax.nn.softmax(t))
        for label in range(num_classes):
            want = p - np.eye(num_classes)[label]
            got = hand(t, label)
            assert rel_err(got, want) <= TOL
            assert rel_err(got, auto(t, label)) <= TOL


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_backward_does_not_overflow_for_huge_logits(x64, dtype):
    """dL/dt = p - onehot is bounded by 1 for any logits; the report's chain
    -1/p_c * d out_c/dt must not turn into inf * 0 when p_c underflows."""
    t = (jnp.array([1.0, 2.0, -3.0, 0.5]) * 1000).astype(dtype)
    for label in range(4):
        got = np.asarray(backprop.logits_backward(t, label), np.float64)
        want = np.eye(4)[1] - np.eye(4)[label]  # softmax(t) is one-hot at the max, class 1
        assert np.all(np.isfinite(got)), (label, got)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_grads_finite_when_the_label_is_very_unlikely(x64):
    """End to end: a confidently wrong network (p_label underflows to 0) must still get
    the finite gradient jax.grad gives, not NaN (see the test above)."""
    params = _params()
    params = params._replace(weights=params.weights * 1e5)
    image = _image(8)
    t = np.asarray(model.logits(params, image))
    label = int(np.argmin(t))
    assert t.max() - t[label] > 800  # exp(-800) underflows float64
    want = jax.grad(model.loss)(params, image, label)
    assert all(np.all(np.isfinite(leaf)) for leaf in want)
    _, got = backprop.grads(params, image, label, "split")
    assert all(np.all(np.isfinite(leaf)) for leaf in got)
    assert tree_rel_err(got, want) <= TOL


def test_softmax_backward_matches_autodiff(x64):
    params = _params()
    pooled = model.maxpool2(model.conv3x3(_image(), params.filters))

    def dense_loss(w, b, x, y):
        return model.cross_entropy(model.dense(x, w, b), y)

    hand, auto = jax.jit(backprop.softmax_backward), jax.jit(jax.grad(dense_loss, (0, 1, 2)))
    for label in (0, 7):
        t = model.dense(pooled, params.weights, params.biases)
        got = hand(t, label, pooled, params.weights)
        want = auto(params.weights, params.biases, pooled, label)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            assert rel_err(g, w) <= TOL


# ---------------------------------------------------------------- step (3): pool, tie-free


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_maxpool2_backward_tie_free_matches_vjp(x64, ties):
    """Without ties all three rules are the same (sub)gradient."""
    conv = jax.random.normal(jax.random.key(1), (26, 26, 8), jnp.float64)
    assert _is_tie_free(conv)
    g = jax.random.normal(jax.random.key(2), (13, 13, 8), jnp.float64)
    want = jax.vjp(model.maxpool2, conv)[1](g)[0]
    assert rel_err(backprop.maxpool2_backward(g, conv, ties), want) <= TOL
    rule_vjp = jax.vjp(lambda x: model.maxpool2(x, ties), conv)[1](g)[0]
    assert rel_err(rule_vjp, want) <= TOL


# ---------------------------------------------------------------- step (4): conv


def test_conv3x3_backward_matches_vjp(x64):
    image, filters = _image(1), _params(5).filters
    d_out = jax.random.normal(jax.random.key(3), (26, 26, 5), jnp.float64)
    want = jax.vjp(lambda f: model.conv3x3(image, f), filters)[1](d_out)[0]
    got = backprop.conv3x3_backward(d_out, image)
    assert got.shape == (5, 3, 3)
    assert rel_err(got, want) <= TOL


def test_conv3x3_backward_is_the_reports_sum(x64):
    """dL/dfilter(x, y) = sum_{i,j} dL/dout(i, j) * image(i+x, j+y), written as loops."""
    image = np.asarray(_image(2))
    d_out = np.random.default_rng(0).normal(size=(26, 26, 2))
    want = np.zeros((2, 3, 3))
    for f in range(2):
        for x in range(3):
            for y in range(3):
                for i in range(26):
                    want[f, x, y] += np.dot(d_out[i, :, f], image[i + x, y:y + 26])
    got = backprop.conv3x3_backward(jnp.asarray(d_out), jnp.asarray(image))
    assert rel_err(got, want) <= TOL


def test_conv3x3_input_backward_matches_vjp(x64):
    image, filters = _image(3), _params(8).filters
    d_out = jax.random.normal(jax.random.key(4), (26, 26, 8), jnp.float64)
    want = jax.vjp(lambda im: model.conv3x3(im, filters), image)[1](d_out)[0]
    got = backprop.conv3x3_input_backward(d_out, filters)
    assert got.shape == (28, 28)
    assert rel_err(got, want) <= TOL


def test_conv3x3_input_backward_single_pixel_by_hand(x64):
    """A unit gradient at out(i, j) of filter f sends filter f to image[i:i+3, j:j+3]."""
    filters = jnp.arange(18.0).reshape(2, 3, 3) + 1
    d_out = jnp.zeros((26, 26, 2)).at[4, 7, 1].set(1.0)
    want = np.zeros((28, 28))
    want[4:7, 7:10] = np.asarray(filters[1])
    np.testing.assert_array_equal(backprop.conv3x3_input_backward(d_out, filters), want)


# ---------------------------------------------------------------- the whole chain


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_grads_match_jax_grad_of_loss_tie_free(x64, ties):
    params = _params()
    for seed in range(2):
        image = _image(seed)
        assert _is_tie_free(model.conv3x3(image, params.filters))
        for label in (seed, 9 - seed):
            loss, got = backprop.grads(params, image, label, ties)
            assert isinstance(got, model.Params)
            assert float(loss) == pytest.approx(float(model.loss(params, image, label)),
                                                rel=1e-14)
            want = jax.grad(model.loss)(params, image, label, ties)
            assert tree_rel_err(got, want) <= TOL


def test_grads_default_rule_is_the_reports(x64):
    params, image = _params(), _image()
    want = backprop.grads(params, image, 4, "report")[1]
    got = backprop.grads(params, image, 4)[1]
    assert tree_rel_err(got, want) == 0


def test_grads_work_under_jit_and_vmap(x64):
    params = _params(3, 4)
    images = jnp.stack([_image(s) for s in range(3)])
    labels = jnp.array([0, 3, 1])
    losses, batched = jax.jit(jax.vmap(backprop.grads, (None, 0, 0, None)),
                              static_argnums=3)(params, images, labels, "split")
    assert losses.shape == (3,) and batched.filters.shape == (3, 3, 3, 3)
    for b in range(3):
        want = jax.grad(model.loss)(params, images[b], labels[b])
        assert tree_rel_err(jax.tree.map(lambda leaf, i=b: leaf[i], batched), want) <= TOL


# ---------------------------------------------------------------- check_grads on the loss


@pytest.mark.parametrize("ties,orders,modes", [
    ("split", (1, 2), ("fwd", "rev")),
    ("first", (1,), ("fwd", "rev")),
    ("report", (1, 2), ("rev",)),  # custom_vjp: reverse mode only
], ids=["split", "first", "report"])
def test_check_grads_of_loss(x64, ties, orders, modes):
    """Autodiff vs finite differences (random directions). eps 1e-6: the direction is not
    normalised over the ~1400 parameters, and a larger step's curvature error shows."""
    params, image = _params(3, 4), _image(7)
    assert _is_tie_free(model.conv3x3(image, params.filters))
    f = jax.jit(lambda p: model.loss(p, image, 2, ties))
    for order in orders:
        check_grads(f, (params,), order=order, modes=modes, eps=1e-6)


def test_x64_did_not_leak():
    """Every test above ran in float64 through the fixture; the default must be back."""
    if os.environ.get("JAX_ENABLE_X64", "").lower() in ("1", "true"):
        pytest.skip("x64 enabled globally by the environment")
    assert jnp.zeros(1).dtype == jnp.float32
    assert jax.random.uniform(jax.random.key(0), (2,)).dtype == jnp.float32
