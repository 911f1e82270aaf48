"""The report's softmax chain on confident wrong predictions (issue 10, section 3).

The report's dL/dt_k = -1/p_c * (-e^{t_c} e^{t_k} / S^2) underflows in float32 long
before e^{t_c} == 0: from a logit gap of about 80 its product is subnormal (flushed to
zero by XLA on CPU), then NaN. Over many random logit vectors (gaps 0..1e4, 1-4 tied top
logits, every label), in float32 and float64, ``backprop.logits_backward``,
``backprop.grads`` and ``fast.manual_grads`` must be finite and agree with

* the exact gradient ``p - onehot``, computed in 60-digit decimal arithmetic from the
  very same float logits, to 1e-5 (float32) / 1e-12 (float64) relative to its largest
  entry, plus an absolute ``C * finfo.tiny`` (values below the smallest normal number
  are flushed to zero on CPU, by jax.grad too);
* ``jax.grad`` to the same tolerance, wherever jax.grad itself meets it. jax.grad
  computes the label's entry as ``p_c - 1``, which cancels when the label is the top
  class with p_c near 1 (abs. error ~eps while the entry is ~1 - p_c): there it misses
  the exact value, and the hand chain is checked to be the closer of the two.
"""

from __future__ import annotations

import decimal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tree_rel_err

from jaxcnn import backprop, fast, model

TOL = {"float32": 1e-5, "float64": 1e-12}
C = 10
# float32: e^{t_4 - max} = 1.6e-38 is normal but p_4 = e/8 is not (flushed to 0): the
# report's -1/p_c * J[c, k] was -inf * 0 = NaN in every entry for label 4.
NAN_EXAMPLE = [0.0, 0.0, 0.0, 0.0, -87.0, -87.0, 0.0, 0.0, 0.0, 0.0]


def _exact(logits: np.ndarray) -> np.ndarray:
    """dL/dt = p - onehot for every label: (C, C), row c for label c, in 60-digit decimal."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        t = [decimal.Decimal(float(x)) for x in logits]  # the float values, exactly
        top = max(t)
        e = [(x - top).exp() for x in t]
        s = sum(e)
        rows = np.empty((len(t), len(t)))
        for c in range(len(t)):
            rest = sum(e[:c] + e[c + 1:])  # 1 - p_c without cancellation
            rows[c] = [float(-rest / s) if k == c else float(ek / s) for k, ek in enumerate(e)]
    return rows


def _error(got, want, dtype) -> float:
    """max|got - want| / max|want|, with differences below C * tiny counted as zero."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.maximum(np.abs(got - want) - C * np.finfo(dtype).tiny, 0)
    return float(diff.max() / np.abs(want).max()) if np.abs(want).max() > 0 else float(diff.max())


def _logit_vectors(dtype, n=150, seed=0) -> np.ndarray:
    """(n, C) logits: 1-4 tied top logits at a random value in [-20, 20], the others
    ``gap * U(1, 2)`` below, gaps 0 and log-spaced from 1e-3 to 1e4; plus the issue's
    example [86.5, 86.5, 0, ..., 0] and a vector on which the report's chain gave NaN."""
    rng = np.random.default_rng(seed)
    gaps = np.concatenate([[0.0], np.logspace(-3, 4, n - 2)])
    rows = []
    for gap in gaps:
        top = rng.uniform(-20, 20)
        t = top - gap * rng.uniform(1, 2, C)
        t[rng.choice(C, rng.integers(1, 5), replace=False)] = top
        rows.append(t)
    rows.append([86.5, 86.5] + [0.0] * (C - 2))
    rows.append(NAN_EXAMPLE)
    return np.asarray(rows, dtype)


def test_issue_example_float32():
    """logits [86.5, 86.5, 0, ..., 0], label 9: jax.grad says [0.5, 0.5, ~0, ..., -1]."""
    t = jnp.array([86.5, 86.5] + [0.0] * 8, jnp.float32)
    got = np.asarray(backprop.logits_backward(t, 9))
    np.testing.assert_allclose(got[:2], [0.5, 0.5], rtol=1e-6)
    assert got[9] == pytest.approx(-1.0, rel=1e-6)
    np.testing.assert_allclose(got, jax.grad(model.cross_entropy)(t, 9), rtol=1e-6, atol=1e-37)


def test_nan_example_float32():
    t = jnp.array(NAN_EXAMPLE, jnp.float32)
    got = np.asarray(backprop.logits_backward(t, 4))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, jax.grad(model.cross_entropy)(t, 4), rtol=1e-6, atol=1e-37)
    assert got[4] == pytest.approx(-1.0) and got[0] == pytest.approx(1 / 8)


def _check_logits_backward(dtype):
    tol = TOL[dtype]
    hand = jax.jit(jax.vmap(backprop.logits_backward, (None, 0)))
    auto = jax.jit(jax.vmap(jax.grad(model.cross_entropy), (None, 0)))
    labels = jnp.arange(C)
    jax_misses = 0
    for t in _logit_vectors(dtype):
        got, by_jax = np.asarray(hand(jnp.asarray(t), labels)), np.asarray(auto(t, labels))
        assert got.dtype == dtype and np.all(np.isfinite(got)), t
        exact = _exact(t)
        for c in range(C):
            assert _error(got[c], exact[c], dtype) <= tol, (t, c, got[c], exact[c])
            jax_error = _error(by_jax[c], exact[c], dtype)
            if jax_error <= tol:
                assert _error(got[c], by_jax[c], dtype) <= 2 * tol, (t, c)
            else:  # jax.grad's p_c - 1 cancellation: the label is the top class
                jax_misses += 1
                assert c == np.argmax(t) and exact[c, c] > -1e-3, (t, c)
                assert _error(got[c], exact[c], dtype) < jax_error
    return jax_misses


def test_logits_backward_is_exact_for_any_gap_float32():
    misses = _check_logits_backward("float32")
    assert misses < 0.02 * 150 * C


def test_logits_backward_is_exact_for_any_gap_float64(x64):
    misses = _check_logits_backward("float64")
    assert misses < 0.02 * 150 * C


# ---------------------------------------------------------------- the whole chain


def _network(t_target: np.ndarray, dtype, seed: int):
    """(params, image) whose logits are ``t_target`` up to rounding of the last bits
    (tied target logits become near-ties; exact ties are tested on logits_backward)."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(-0.5, 0.5, (28, 28))
    filters = np.asarray(model.init_params(jax.random.key(seed), 8, C, dtype).filters)
    windows = np.lib.stride_tricks.sliding_window_view(image, (3, 3))  # (26, 26, 3, 3)
    conv = np.einsum("ijxy,fxy->ijf", windows, filters.astype(np.float64))
    pooled = conv.reshape(13, 2, 13, 2, -1).max(axis=(1, 3))
    weights = rng.normal(size=(pooled.size, C)) * 0.01
    biases = t_target.astype(np.float64) - pooled.reshape(-1) @ weights
    params = model.Params(jnp.asarray(filters), jnp.asarray(weights, dtype),
                          jnp.asarray(biases, dtype))
    return params, jnp.asarray(image, dtype)


def _model_logits(params, image):
    return model.logits(params, image)


def _fast_logits(params, image):
    return fast.logits(fast.to_fast(params), image[None])[0]


def _backprop_case(params, image, labels):
    """Per label: (hand gradients, their forward logits, jax.grad, jax.grad's dL/dt)."""
    def one(c):
        _, got = backprop.grads(params, image, c)
        logits = model.logits(params, image)
        return got, logits, jax.grad(model.loss)(params, image, c), \
            jax.grad(model.cross_entropy)(logits, c)
    return jax.vmap(one)(labels)


def _fast_case(params, image, labels):
    fp = fast.to_fast(params)

    def one(c):
        (_, logits), got = fast.manual_grads(fp, image[None], c[None])
        (_, jax_logits), by_jax = fast.autodiff_grads(fp, image[None], c[None])
        return (fast.from_fast(got), logits[0], fast.from_fast(by_jax),
                jax.grad(model.cross_entropy)(jax_logits[0], c))
    return jax.vmap(one)(labels)


CASES = {"backprop": (_backprop_case, _model_logits), "fast": (_fast_case, _fast_logits)}


def _check_chain(dtype, backend):
    """grads / manual_grads vs autodiff of the same forward pass fed the exact dL/dt
    (vjp), and vs jax.grad where jax.grad's own dL/dt is accurate."""
    tol = TOL[dtype]
    case, logits_fn = (jax.jit(f) for f in CASES[backend])
    reference = jax.jit(jax.vmap(lambda p, image, d_t: jax.vjp(
        lambda q: CASES[backend][1](q, image), p)[1](d_t)[0], (None, None, 0)))
    pick = jax.tree.map
    for i, t in enumerate(_logit_vectors(dtype, n=40, seed=1)):
        params, image = _network(t, dtype, seed=i)
        got, logits, by_jax, d_t_jax = case(params, image, jnp.arange(C))
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(got)), t
        exact = np.stack([_exact(np.asarray(logits[c]))[c] for c in range(C)])
        want = reference(params, image, jnp.asarray(exact, dtype))
        for c in range(C):
            got_c = pick(lambda leaf, c=c: leaf[c], got)
            assert tree_rel_err(got_c, pick(lambda leaf, c=c: leaf[c], want)) <= tol, (t, c)
            if _error(d_t_jax[c], exact[c], dtype) <= tol:
                assert tree_rel_err(got_c, pick(lambda leaf, c=c: leaf[c], by_jax)) <= 2 * tol


@pytest.mark.parametrize("backend", ["backprop", "fast"])
def test_chain_is_finite_and_exact_float32(backend):
    _check_chain("float32", backend)


@pytest.mark.parametrize("backend", ["backprop", "fast"])
def test_chain_is_finite_and_exact_float64(x64, backend):
    _check_chain("float64", backend)
