"""The deep-learning specialisation's logistic regression (course 1, week 2, "Logistic
Regression with a Neural Network mindset")::

    propagate(w, b, X, Y) -> (grads, cost)   # w (n_x, 1), b a number, X (n_x, m),
                                             # Y (1, m) of 0/1; grads {"dw", "db"}

How the engine sees it (``from_propagate``): ``w`` and ``b`` are the differentiable
arguments (``b`` a 0-d float64 array: a number, as the exercise's ``b = 0``), ``X`` and
``Y`` are static, the output is the cost, the mean cross-entropy of ``A = sigmoid(w.T X +
b)``, differentiated exactly (``jax.vjp``). The cost holds the ``1/m``, so a ``dw`` without
it is ``scaled`` by ``m``, ``Y - A`` for ``A - Y`` is ``sign-flipped``, and a ``db`` left
as ``(A - Y) / m`` (not summed) is ``wrong-shape`` (the engine's own kinds: no alternate
needed). A function returning ``(cost, grads)`` is read the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxcnn.check.layer import InputSet, Layer, Reference

SIZES = ((4, 6), (3, 1))  # (n_x, m): random, then a batch of one


def _cost(args, static):
    """The mean cross-entropy of sigmoid(w.T X + b) against Y (JAX, float64 inputs)."""
    import jax.numpy as jnp

    def log_sigmoid(t):  # stable, and without jax.nn's custom_jvp (the program stays keyed)
        return jnp.minimum(t, 0.0) - jnp.log1p(jnp.exp(-jnp.abs(t)))

    w, b = args
    x, y = static
    z = w.T @ x + b
    return -jnp.mean(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z))


def _input_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 21])
    sets = []
    for (n_x, m), family in zip(SIZES, ("random", "batch-of-one"), strict=True):
        w = 0.5 * rng.standard_normal((n_x, 1))
        b = np.asarray(0.3 * rng.standard_normal())
        x = rng.standard_normal((n_x, m))
        y = (rng.random((1, m)) < 0.5).astype(np.float64)
        if m > 1:
            y[0, :2] = (0.0, 1.0)  # both labels
        sets.append(InputSet(family, f"w ({n_x}, 1), b a number, X ({n_x}, {m}), Y (1, {m})",
                             (w, b), (x, y), note="samples in columns"))
    return sets


def _grads_and_cost(result, fn) -> tuple[dict, object]:
    """(grads dict, cost) of ``(grads, cost)`` or ``(cost, grads)``; TypeError otherwise."""
    if isinstance(result, (tuple, list)) and len(result) == 2:
        first, second = result
        if isinstance(first, dict):
            return first, second
        if isinstance(second, dict):
            return second, first
    raise TypeError(f"{getattr(fn, '__name__', 'it')} must return (grads, cost) with grads "
                    "a dict {'dw': ..., 'db': ...}")


def from_propagate(fn: Callable, name: str | None = None, file: str | None = None) -> Layer:
    """A ``Layer`` for ``propagate(w, b, X, Y) -> (grads, cost)`` (see the module
    docstring); a missing ``"dw"`` / ``"db"`` key is a missing gradient."""

    def call(args, static, own: bool):
        w, b = args if own else (np.array(a, copy=True) for a in args)
        x, y = static if own else (np.array(s, copy=True) for s in static)
        return _grads_and_cost(fn(w, b, x, y), fn)

    def fwd(args, static):
        return np.asarray(call(args, static, False)[1], np.float64)

    def vjp(args, static, own: bool = False):
        grads, cost = call(args, static, own)

        def back(ct):
            out = []
            for keys in (("dw", "dW"), ("db",)):
                g = next((grads[k] for k in keys if k in grads), None)
                out.append(None if g is None else np.asarray(ct) * np.asarray(g))
            return tuple(out)
        return np.asarray(cost, np.float64), back

    reference = Reference("mean cross-entropy of sigmoid(w.T X + b)", _cost)
    return Layer(name or fn.__name__, "logistic_regression", "specialisation", ("w", "b"), fwd,
                 vjp, reference, _input_sets,
                 axis_names={"w": ("feature", None), "b": ()}, file=file,
                 sources=(fn, fn), static_names=("X", "Y"),
                 raw=lambda args, static: vjp(args, static, own=True),
                 notes=("the cost is a mean over the m columns of X: dw and db carry its 1/m",))


def is_propagate(name: str, required: list[str]) -> bool:
    """Whether ``name(required...)`` is the exercise's ``propagate(w, b, X, Y)``."""
    lowered = name.lower()
    return ("propagat" in lowered and "forward" not in lowered and "backward" not in lowered
            and [p.lower() for p in required] == ["w", "b", "x", "y"])


__all__ = ["from_propagate", "is_propagate"]
