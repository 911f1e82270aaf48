"""JAX style: a ``jax.custom_vjp`` function, a ``(fwd, bwd)`` pair, or a VJP function.

Three spellings of a hand-written backward pass in JAX, all checked against autodiff of
the *undecorated* forward (the exact oracle)::

    @jax.custom_vjp                      # from_custom_vjp(relu)
    def relu(x): return jnp.maximum(x, 0)
    def relu_fwd(x): return relu(x), x   # -> (out, residuals)
    def relu_bwd(res, g): return (g * (res > 0),)   # -> one cotangent per argument
    relu.defvjp(relu_fwd, relu_bwd)

    from_jax_pair(relu_plain, relu_fwd, relu_bwd)     # the same, before defvjp
    from_jax_vjp(forward, f_vjp)         # f_vjp(*args) -> (out, vjp_fun), like jax.vjp

Non-differentiated arguments (a label, a stride) come last and are passed as
``static``; a ``bwd`` receives them first, as ``jax.custom_vjp``'s ``nondiff_argnums``
convention has it. Inputs come from the catalogue ``kind`` (``jaxcnn.check.catalogue``)
or are given explicitly with ``inputs=[(arg, ...), ...]``.

Where the undecorated forward equals the catalogue's reference on an input set, the
catalogue's alternates apply too (other valid tie rules, the report's overcount), so a
max-pool VJP with the "first" rule is ``correct`` and one with the report's rule is
``tie-overcount``, even though autodiff of ``jnp.max`` splits ties.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import device_array
from jaxcnn.check.catalogue import spec
from jaxcnn.check.layer import InputSet, Layer, Reference


def _jnp(args):
    return tuple(device_array(a) for a in args)


def _given_sets(inputs: Sequence, static: tuple, arg_names: Sequence[str]
                ) -> Callable[[int], list[InputSet]]:
    sets = []
    for k, args in enumerate(inputs):
        args = tuple(np.array(a, dtype=np.float64, copy=True) for a in args)
        if len(args) != len(arg_names):
            raise ValueError(f"inputs #{k} has {len(args)} arrays but arg_names names "
                             f"{len(arg_names)} ({', '.join(arg_names)}): one name per "
                             "differentiable argument, the rest go in static=")
        sets.append(InputSet("given", f"given inputs #{k}", args, tuple(static)))
    return lambda seed: sets


def _function_name(f: Callable) -> str:
    qualname = getattr(f, "__qualname__", None) or getattr(f, "__name__", repr(f))
    module = getattr(f, "__module__", "") or ""
    if "<locals>" in qualname or module in ("", "__main__") or module.startswith("_jaxcnn_"):
        return getattr(f, "__name__", qualname)
    return f"{module}.{qualname}"


def _reference(forward: Callable, name: str, kind: str | None) -> Reference:
    """Autodiff of ``forward``; the catalogue's alternates where forward matches it.

    ``name`` is what the table shows as the reference."""
    catalogue = spec(kind).reference if kind else None

    def ref_forward(args, static):
        return forward(*args, *static)

    last: dict = {}  # the answer for the latest inputs: alternates and kinks ask in turn

    def matches(args, static) -> bool:
        key = (tuple(hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
                     for a in args), repr(static))
        if key not in last:
            with jax.enable_x64(True):
                a = np.asarray(ref_forward(_jnp(args), static), np.float64)
                b = np.asarray(catalogue.forward(_jnp(args), static), np.float64)
            scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
            last.clear()
            last[key] = a.shape == b.shape and float(
                np.max(np.abs(a - b), initial=0.0)) / scale <= 1e-9
        return last[key]

    alternates = kinks = None
    if catalogue is not None and catalogue.alternates is not None:
        def alternates(args, static, ct):
            return catalogue.alternates(args, static, ct) if matches(args, static) else []
    if catalogue is not None and catalogue.kinks is not None:
        def kinks(s):
            return catalogue.kinks(s) if matches(s.args, s.static) else None
    subgradient = None
    if catalogue is not None and catalogue.subgradient is not None:
        def subgradient(args, static, cotangent, i, hand, tol):
            if not matches(args, static):
                return None
            return catalogue.subgradient(args, static, cotangent, i, hand, tol)
    return Reference(name, ref_forward, alternates, kinks, subgradient)


def _unwrapped(f):
    """The Python function behind ``jax.jit`` or another wrapper keeping ``__wrapped__``."""
    while hasattr(f, "__wrapped__"):
        f = f.__wrapped__
    return f


def _layer(name, kind, forward, vjp, arg_names, inputs, static, file, reference_forward,
           reference_name, optional=(), forward_key=None, sources=()):
    s = spec(kind) if kind else None
    if arg_names is None:
        if s is None:
            raise ValueError("give kind= (a catalogue layer) or arg_names= with inputs=")
        arg_names = s.arg_names
    if inputs is not None:
        input_sets = _given_sets(inputs, static, arg_names)
    elif s is not None:
        input_sets = s.input_sets
    else:
        raise ValueError("give kind= (a catalogue layer, which brings its inputs) or inputs=")
    reference = _reference(reference_forward, reference_name, kind)
    return Layer(name, kind or "custom", "jax", tuple(arg_names), forward, vjp, reference,
                 input_sets, axis_names=s.axis_names if s else None,
                 optional=frozenset(optional), file=file, forward_key=forward_key,
                 sources=sources)


def from_jax_vjp(forward: Callable, f_vjp: Callable, kind: str | None = None,
                 name: str | None = None, arg_names: Sequence[str] | None = None,
                 inputs: Sequence | None = None, static: tuple = (),
                 file: str | None = None, optional: Sequence[str] = ()) -> Layer:
    """A ``Layer`` from ``f_vjp(*args, *static) -> (out, vjp_fun)``, checked against
    ``jax.vjp(forward)``. ``vjp_fun(cotangent)`` returns one cotangent per argument
    (None allowed for the arguments named in ``optional``)."""
    name = name or getattr(forward, "__name__", "layer")

    def fwd(args, static_):
        return forward(*_jnp(args), *static_)

    def vjp(args, static_):
        out, vjp_fun = f_vjp(*_jnp(args), *static_)
        return out, lambda ct: vjp_fun(device_array(ct))

    return _layer(name, kind, fwd, vjp, arg_names, inputs, static, file, forward,
                  f"jax.vjp of {_function_name(forward)}", optional, forward)


def from_jax_pair(forward: Callable, fwd: Callable, bwd: Callable, kind: str | None = None,
                  name: str | None = None, arg_names: Sequence[str] | None = None,
                  inputs: Sequence | None = None, static: tuple = (),
                  file: str | None = None) -> Layer:
    """A ``Layer`` from the pair given to ``defvjp``: ``fwd(*args, *static) -> (out, res)``,
    ``bwd(*static, res, g) -> tuple``; checked against ``jax.vjp(forward)``."""
    name = name or getattr(forward, "__name__", "layer")

    def f(args, static_):
        return forward(*_jnp(args), *static_)

    def vjp(args, static_):
        out, res = fwd(*_jnp(args), *static_)
        return out, lambda ct: bwd(*static_, res, jnp.asarray(ct, jnp.asarray(out).dtype))

    return _layer(name, kind, f, vjp, arg_names, inputs, static, file, forward,
                  f"jax.vjp of {_function_name(forward)}", forward_key=forward,
                  sources=(_unwrapped(forward), bwd))


def from_custom_vjp(f, kind: str | None = None, name: str | None = None,
                    arg_names: Sequence[str] | None = None, inputs: Sequence | None = None,
                    static: tuple = (), file: str | None = None) -> Layer:
    """A ``Layer`` for a ``jax.custom_vjp`` function ``f``: its own VJP (through
    ``jax.vjp``, which runs the user's fwd/bwd) against autodiff of ``f.fun``."""
    if not isinstance(f, jax.custom_vjp):
        raise TypeError(f"{f!r} is not a jax.custom_vjp function")
    primal = f.fun
    name = name or getattr(primal, "__name__", "layer")

    def forward(args, static_):
        return f(*_jnp(args), *static_)

    fwd_rule, bwd_rule = getattr(f, "fwd", None), getattr(f, "bwd", None)
    direct = fwd_rule is not None and bwd_rule is not None and not getattr(
        f, "nondiff_argnums", ())

    def vjp(args, static_):
        if direct:  # the user's bwd called as written: a wrong shape is reported, not refused
            out, res = fwd_rule(*_jnp(args), *static_)
            return out, lambda ct: bwd_rule(res, jnp.asarray(ct, jnp.asarray(out).dtype))
        out, pullback = jax.vjp(lambda *a: f(*a, *static_), *_jnp(args))
        return out, lambda ct: pullback(jnp.asarray(ct, out.dtype))

    return _layer(name, kind, forward, vjp, arg_names, inputs, static, file, primal,
                  f"jax.vjp of {name} without its custom_vjp",
                  sources=(_unwrapped(primal), getattr(f, "bwd", None)) if getattr(
                      f, "bwd", None) is not None else ())


__all__ = ["from_custom_vjp", "from_jax_pair", "from_jax_vjp"]
