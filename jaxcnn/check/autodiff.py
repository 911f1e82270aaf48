"""The exact oracle's machinery: ``jax.vjp`` of a reference forward in float64.

Used by the engine, the chain and the catalogue; it knows no layer.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def as_np(x) -> np.ndarray:
    return np.array(x, dtype=np.float64, copy=True)


def vjp(fun: Callable, args: tuple, cotangent) -> tuple:
    """``jax.vjp`` of ``fun(*args)`` at float64 ``args``, as float64 NumPy arrays.

    Eager on purpose: the hand code runs eagerly too, and an eager reference sees the
    same ties (a jit-compiled forward may round identical patches differently).
    """
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    out, pullback = jax.vjp(fun, *args)
    grads = pullback(jnp.asarray(cotangent, out.dtype))
    return tuple(as_np(g) for g in grads)


def bind(forward: Callable, static: tuple) -> Callable:
    """``f(*args) = forward(args, static)``: a function of the differentiable arrays."""
    def bound(*args):
        return forward(args, static)
    return bound


def vjp_many(fun: Callable, args: tuple, cotangents) -> tuple:
    """``jax.vjp`` of ``fun`` for a stack of cotangents (K, *out): one linearisation,
    the pullback vmapped. Returns per argument a (K, *arg) float64 NumPy array."""
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    out, pullback = jax.vjp(fun, *args)
    grads = jax.vmap(pullback)(jnp.asarray(cotangents, out.dtype))
    return tuple(as_np(g) for g in grads)
