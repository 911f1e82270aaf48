"""Activations: softmax, ReLU, sigmoid, tanh, with their classic wrong derivatives."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.base import Spec, wrong
from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference


def logit_sets(seed: int, with_label: bool) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    c = 10
    static = lambda y: (y,) if with_label else ()  # noqa: E731
    y = int(rng.integers(c))
    sets = [InputSet("random", "random logits (10,)", (rng.standard_normal(c),), static(y),
                     label=y)]
    tied = np.zeros(c)
    tied[[2, 5]] = 3.0
    sets.append(InputSet("flat", "two tied top logits", (tied,), static(5), label=5))
    for size in (86.5, 100.0):
        gap = np.zeros(c)
        gap[[0, 1]] = size
        for dtype in ("float64", "float32"):
            sets.append(InputSet(
                "large-gap", f"logits [{size:g}, {size:g}, 0, ...], label 9, {dtype}", (gap,),
                static(9), label=9, dtype=dtype,
                note=f"confident and wrong: e^-{size:g} is below float32's smallest normal "
                     "(1.2e-38) once multiplied by a probability"))
    return sets


def softmax_spec() -> Spec:
    def alternates(args, static, cotangent):
        t, g = as_np(args[0]), as_np(cotangent)
        e = np.exp(t - t.max())
        p = e / e.sum()
        return [wrong("no diagonal term", (-p * np.dot(p, g),),
                      "the Jacobian's diagonal term p_i (delta_ij) is missing: -p (p . g) "
                      "where p * g - p (p . g) belongs"),
                wrong("Jacobian transposed the wrong way", (p * g - p * p * g,),
                      "only the diagonal of the Jacobian p_i (1 - p_i) is used")]

    reference = Reference("jax.nn.softmax", lambda args, static: jax.nn.softmax(args[0]),
                          alternates)
    return Spec("softmax", ("logits",), {"logits": ("class",)}, reference,
                functools.partial(logit_sets, with_label=False))


def _elementwise_sets(seed: int, zeros: bool) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    sets = []
    for shape in ((4, 6), (3, 4, 5)):  # a batch of vectors, and of 2-d samples
        away = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)
        sets.append(InputSet("random", f"random x {shape}, no zeros", (away,)))
        if zeros:
            boundary = away.copy()
            boundary[rng.random(shape) < 0.3] = 0.0
            sets.append(InputSet("boundary", f"x {shape} with exact zeros (ReLU's kink)",
                                 (boundary,), note="at x = 0 any value in [0, 1] times dout "
                                                   "is a subgradient"))
    return sets


def _relu_kinks(s: InputSet) -> Kinks:
    x = np.asarray(s.args[0])
    zeros = x == 0
    return Kinks((zeros,), {"entries": int(x.size), "zeros": int(zeros.sum())},
                 f"{int(zeros.sum())} of {x.size} inputs exactly 0")


def relu_spec() -> Spec:
    def alternates(args, static, cotangent):
        x = as_np(args[0])
        g = as_np(cotangent)
        return [Alternate(name, (g * slope,), True, "correct", note) for name, slope, note in (
            ("0 at 0", (x > 0).astype(float), "derivative 0 at x = 0 (x > 0 mask)"),
            ("1 at 0", (x >= 0).astype(float), "derivative 1 at x = 0 (x >= 0 mask)"),
            ("1/2 at 0", np.where(x == 0, 0.5, (x > 0).astype(float)),
             "derivative 1/2 at x = 0 (autodiff of jnp.maximum)"))] + [
            wrong("no mask", (g,), "dout passed through unmasked: the derivative of the "
                                   "identity, not of max(x, 0)"),
            wrong("mask of x < 0", (g * (x < 0),), "the mask is inverted: x < 0 where x > 0 "
                                                   "belongs")]

    def subgradient(args, static, cotangent, i, hand, tol):
        x, g = as_np(args[0]), as_np(cotangent)
        if hand.shape != x.shape:
            return None
        atol = tol * max(float(np.max(np.abs(g), initial=0.0)), 1e-300)
        exact = np.where(x > 0, g, 0.0)
        at_zero = x == 0
        if np.max(np.abs(np.where(at_zero, 0.0, hand - exact)), initial=0.0) > atol:
            return None
        slope_ok = (hand * g >= -atol) & (np.abs(hand) <= np.abs(g) + atol)
        return "other slope in [0, 1] at 0" if np.all(slope_ok | ~at_zero) else None

    reference = Reference("max(x, 0)", lambda args, static: jnp.maximum(args[0], 0.0),
                          alternates, _relu_kinks, subgradient)
    return Spec("relu", ("x",), {"x": None}, reference,
                functools.partial(_elementwise_sets, zeros=True))


def elementwise_spec(kind: str) -> Spec:
    fun = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[kind]

    def alternates(args, static, cotangent):
        x, g = as_np(args[0]), as_np(cotangent)
        if kind == "sigmoid":
            out = 1 / (1 + np.exp(-x))
            return [wrong("s(1 - s) at the input", (g * x * (1 - x),),
                          "the derivative s * (1 - s) evaluated at the input x instead of the "
                          "output s = sigmoid(x) (cache the output)"),
                    wrong("1 - s", (g * (1 - out),), "a factor s missing: dout * (1 - s) "
                                                     "where dout * s * (1 - s) belongs"),
                    wrong("s", (g * out,), "a factor (1 - s) missing: dout * s where "
                                           "dout * s * (1 - s) belongs")]
        out = np.tanh(x)
        return [wrong("1 - t^2 at the input", (g * (1 - x * x),),
                      "the derivative 1 - t^2 evaluated at the input x instead of the output "
                      "t = tanh(x) (cache the output)"),
                wrong("1 - t", (g * (1 - out),), "1 - t where 1 - t^2 belongs")]

    return Spec(kind, ("x",), {"x": None},
                Reference(f"jax.nn.{kind}" if kind == "sigmoid" else "jnp.tanh",
                          lambda args, static: fun(args[0]), alternates),
                functools.partial(_elementwise_sets, zeros=False))


SPECS = {"softmax": softmax_spec, "relu": relu_spec,
         "sigmoid": lambda: elementwise_spec("sigmoid"),
         "tanh": lambda: elementwise_spec("tanh")}
