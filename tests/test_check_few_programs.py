"""The catalogue's oracles compile few programs (each XLA program compiled is most of a
cold check's time): a CS231n sandwich's alternates, a norm's alternates and known wrong
forwards are one program each, not one per primitive and shape, and the FC chain's shapes
compile nothing. Counts of compiles, never times; and the one-program results equal the
step-by-step (eager) computation they replaced."""

from __future__ import annotations

import contextlib

import jax
import numpy as np
from jax import monitoring

from jaxcnn.check import autodiff
from jaxcnn.check.catalogue import network, norms
from jaxcnn.check.chain import _output_shape


@contextlib.contextmanager
def compiles():
    """A list that counts the XLA programs compiled (or read back) inside the block."""
    autodiff.compiler_options()  # its one-off probe (a tiny compile) is not counted
    count: list = []
    active = [True]

    def on_span(event, start, end, **kwargs):
        if active[0] and event.endswith("backend_compile_duration"):
            count.append(event)

    monitoring.register_event_time_span_listener(on_span)
    try:
        yield count
    finally:
        active[0] = False
        unregister = getattr(monitoring, "unregister_event_time_span_listener", None)
        if unregister is not None:  # (older JAX cannot: the listener stays, inactive)
            unregister(on_span)


def _eager_skipped(parts, args, static, cotangent, skip):
    """The step-by-step computation ``network._sandwich_skips`` replaced (one part's
    backward left out), eagerly, primitive by primitive."""
    funs, k = [], 0
    for n, part in enumerate(parts):
        st = None
        if part in ("max_pool", "conv"):
            st, k = static[k], k + 1
        if n == 0:
            funs.append(lambda *a, p=part, st=st: network._sandwich_run((p,))(
                a, (st,) if st else ()))
        else:
            funs.append(lambda v, p=part, st=st: jax.numpy.maximum(v, 0.0) if p == "relu"
                        else network.tie_rule_max(network.nchw_windows(st)(v), "first"))
    values = [tuple(jax.numpy.asarray(a) for a in args)]
    for fun in funs:
        values.append((fun(*values[-1]),))
    ct = jax.numpy.asarray(cotangent)
    for n in range(len(parts) - 1, -1, -1):
        if n == skip:
            if ct.shape != values[n][0].shape:
                return ()
            continue
        grads = jax.vjp(funs[n], *values[n])[1](ct)
        if n == 0:
            return tuple(np.asarray(g) for g in grads)
        ct = grads[0]
    return ()


def _conv_relu_pool_inputs(seed=5):
    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal((2, 3, 7, 9)), rng.standard_normal((4, 3, 3, 3)),
               rng.standard_normal(4))
    static = ({"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2})
    return x, w, b, static, rng.standard_normal((2, 4, 3, 4))


def test_a_sandwichs_wiring_alternates_are_one_program_equal_to_the_eager_steps():
    parts = ("conv", "relu", "max_pool")
    x, w, b, static, ct = _conv_relu_pool_inputs()
    with jax.enable_x64(True):
        with compiles() as count:
            skips = network._sandwich_skips(parts, (x, w, b), static, ct)
        assert len(count) <= 1  # (0 when an earlier test compiled the same program)
        want = [_eager_skipped(parts, (x, w, b), static, ct, skip) for skip in (1, 2)]
    # relu left out: the pool's gradient goes straight to the conv's backward; the pool
    # left out: dout has the pool's output shape, not the relu's: no alternate
    assert [len(g) for g in skips] == [len(g) for g in want] == [3, 0]
    for g, e in zip(skips[0], want[0], strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_a_sandwichs_alternates_compile_at_most_two_programs():
    spec = network.sandwich_spec(("conv", "relu", "max_pool"))
    x, w, b, static, ct = _conv_relu_pool_inputs(seed=6)
    x, ct = x[:, :, :5, :7], ct[:, :, :2, :3]  # shapes of their own: nothing kept
    with jax.enable_x64(True), compiles() as count:
        alternates = spec.reference.alternates((x, w, b), static, ct)
    assert len(count) <= 2  # the tie rules' program and the wiring's
    assert [a.name for a in alternates] == ["first", "last", "relu backward left out"]


def test_a_norms_alternates_and_wrong_forwards_compile_one_program_each():
    spec = norms.norm_spec("layernorm")
    rng = np.random.default_rng(3)
    x = 2 + 3 * rng.standard_normal((3, 11))  # a shape no other test uses
    gamma, beta, ct = rng.standard_normal(11), rng.standard_normal(11), rng.standard_normal(
        (3, 11))
    with jax.enable_x64(True):
        with compiles() as count:
            alternates = spec.reference.alternates((x, gamma, beta), ({},), ct)
        assert len(count) <= 1
        names = [a.name for a in alternates]
        assert names[:3] == ["statistics constants", "unbiased variance",
                             "gamma left out of dx"]
        with compiles() as count:
            wrong = spec.reference.wrong_forwards((x, gamma, beta), ({},))
        assert len(count) <= 1
    assert [name for name, _, _ in wrong] == ["the unbiased variance",
                                              "eps outside the square root"]
    mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    np.testing.assert_allclose(wrong[1][1], gamma * (x - mu) / (np.sqrt(var) + 1e-5) + beta,
                               rtol=1e-12)


def test_the_fc_chains_shapes_compile_nothing():
    spec = norms.norm_spec("batchnorm")

    class Layer:  # what _output_shape reads of a layer
        reference = spec.reference

    rng = np.random.default_rng(4)
    with jax.enable_x64(True), compiles() as count:
        shape = _output_shape(Layer, (6, 13), (rng.standard_normal(13),
                                               rng.standard_normal(13)), ({"mode": "train"},))
    assert shape == (6, 13) and count == []


def test_the_overcount_alternate_has_the_reports_vjp_bit_for_bit(x64):
    """``pool.overcount_max`` (no custom_vjp: stored by its forward) gives the VJP of the
    report's ``model.window_max(..., "report")`` exactly: ties, -0.0, NaN, infinities, in
    float64 and float32, eagerly and compiled."""
    from jaxcnn import model
    from jaxcnn.check.catalogue import pool

    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        w = rng.integers(-2, 3, (6, 5, 4)).astype(dtype)  # tie-rich
        w[0, 0], w[0, 1], w[1, 1], w[1, 2] = -0.0, [np.nan, 1, 1, 0], [np.inf, np.inf, 1, 2], [
            -np.inf] * 4
        g = rng.standard_normal((6, 5)).astype(dtype)
        for run in (lambda f: f, jax.jit):
            want, got = (np.asarray(run(lambda v, c, f=f: jax.vjp(f, v)[1](c)[0])(w, g))
                         for f in (lambda v: model.window_max(v, "report"), pool.overcount_max))
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
