"""The oracles' compiled programs (``jaxcnn.check.autodiff.compiled``): kept per traced
computation, never per function object, so nothing stale is ever run."""

from __future__ import annotations

import jax
import numpy as np

from jaxcnn.check import autodiff


def test_a_program_is_kept_per_computation_never_per_function_object():
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    with jax.enable_x64(True):
        a = autodiff.vjp(lambda v: (v * 3.0) ** 2, (x,), np.ones((2, 3)))[0]
        kept = list(autodiff._programs)  # at most PROGRAMS: a full suite may have filled it
        b = autodiff.vjp(lambda v: (v * 3.0) ** 2, (x,), np.ones((2, 3)))[0]  # a new closure
        assert set(autodiff._programs) == set(kept)  # the same computation: no new program
        np.testing.assert_array_equal(a, b)
        label = np.array([2, 0])
        picked = autodiff.vjp(lambda v: v[np.arange(2), label], (x,), np.ones(2))[0]
        label = np.array([1, 1])  # an "edited" constant: another program, not the stale one
        again = autodiff.vjp(lambda v: v[np.arange(2), label], (x,), np.ones(2))[0]
    np.testing.assert_array_equal(picked, [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(again, [[0, 1, 0], [0, 1, 0]])


def test_an_untraceable_forward_runs_eagerly():
    def forward(args, static):  # Python control flow on values: not traceable
        v = args[0]
        return v * 2.0 if float(v.sum()) > 0 else v * 3.0

    with jax.enable_x64(True):
        out = autodiff.forward(forward, (np.ones(3),), ())
    np.testing.assert_array_equal(out, [2.0, 2.0, 2.0])
