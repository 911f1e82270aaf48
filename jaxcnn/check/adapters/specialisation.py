"""The deep-learning specialisation's dialect: NHWC functions with an ``hparameters`` dict,
a pooling ``mode``, an ``activation`` name, and caches of tuples or dicts.

The forms of its programming exercises::

    conv_forward(A_prev, W, b, hparameters) -> (Z, cache)  # A_prev (m, H, W, C_prev)
    conv_backward(dZ, cache) -> (dA_prev, dW, db)           # W (f, f, C_prev, C),
                                                            # b (1, 1, 1, C),
                                                            # hparameters {"stride", "pad"}
    pool_forward(A_prev, hparameters, mode="max") -> (A, cache)   # {"f", "stride"}
    pool_backward(dA, cache, mode="max") -> dA_prev         # create_mask_from_window
    linear_forward(A_prev, W, b) -> (Z, cache)              # A_prev (n_prev, m) columns,
    linear_backward(dZ, cache) -> (dA_prev, dW, db)         # W (n, n_prev), b (n, 1)
    linear_activation_forward(A_prev, W, b, activation) -> (A, cache)
    linear_activation_backward(dA, cache, activation) -> (dA_prev, dW, db)
    relu(Z) -> (A, cache); relu_backward(dA, cache) -> dZ   # also sigmoid

How the engine sees them (``from_conv``, ``from_pool``, ``from_linear``):

* the conv is checked against ``lax.conv_general_dilated`` in NHWC / HWIO with the
  catalogue's conv inputs (overlapping, strided, padded, non-square, MNIST crops) given
  channels last, ``b`` as ``(1, 1, 1, C)``; the max pool against the window max with
  the catalogue's pool inputs channels last (square windows: ``f``), so that its tie
  rules and its mistakes are named as for CS231n's (``create_mask_from_window``'s
  ``x == max`` mask gives every tied maximum the full gradient: ``tie-overcount``); the
  average pool against finite differences of its own forward;
* a linear step's ``dW`` and ``db`` carry the dialect's ``1/m`` (the cost is a mean over
  the ``m`` columns, and ``dA`` enters without it): they are checked as ``m * dW`` and
  ``m * db`` against ``jax.vjp`` of ``W @ A_prev + b`` (then the activation), and the
  output says so; a missing ``1/m`` is ``scaled`` by ``m``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.layer import InputSet, Kinks, Layer, Reference

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def _pair(result, fn):
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"{getattr(fn, '__name__', 'it')} must return (output, cache); it "
                        f"returned a {type(result).__name__}")
    return result


def _copies(args):
    return tuple(np.array(a, copy=True) for a in args)


def from_conv(forward: Callable, backward: Callable, name: str | None = None,
              file: str | None = None) -> Layer:
    """``conv_forward(A_prev, W, b, hparameters)`` / ``conv_backward(dZ, cache)``."""
    from jaxcnn.check.catalogue import spec

    base = spec("conv_nhwc_param")

    def ref_forward(args, static):
        x, w, b = args
        return base.reference.forward((x, w, jnp.reshape(b, (-1,))), static)

    def alternates(args, static, cotangent):
        x, w, b = args
        out = []
        for a in base.reference.alternates((x, w, np.reshape(np.asarray(b), (-1,))), static,
                                           cotangent):
            g = list(a.grads)
            if len(g) > 2 and g[2] is not None:
                g[2] = np.reshape(g[2], np.shape(b))
            out.append(a._replace(grads=tuple(g)))
        return out

    def input_sets(seed):
        return [s._replace(args=(s.args[0], s.args[1], np.reshape(s.args[2], (1, 1, 1, -1))))
                for s in base.input_sets(seed)]

    def fwd(args, static):
        return _pair(forward(*_copies(args), *static), forward)[0]

    def vjp(args, static, own=False):
        """``own``: the user's code gets the arrays themselves (``Layer.raw``)."""
        out, cache = _pair(forward(*(args if own else _copies(args)), *static), forward)
        return out, lambda ct: backward(ct if own else np.array(ct, copy=True), cache)

    reference = Reference("lax.conv_general_dilated (NHWC, HWIO) + b", ref_forward, alternates)
    axis_names = dict(base.axis_names, b=(None, None, None, "filter"))
    return Layer(name or forward.__name__, "conv_nhwc_hparameters", "specialisation",
                 ("A_prev", "W", "b"), fwd, vjp, reference, input_sets,
                 axis_names={"A_prev": axis_names["x"], "W": axis_names["w"],
                             "b": axis_names["b"], "out": axis_names["out"]}, file=file,
                 sources=(forward, backward), raw=_raw(vjp), static_names=("hparameters",))


def _hparameters(pool_param: dict) -> dict:
    return {"f": int(pool_param["pool_height"]), "stride": int(pool_param["stride"])}


def _pool_param(h: dict) -> dict:
    return {"pool_height": int(h["f"]), "pool_width": int(h["f"]), "stride": int(h["stride"])}


def from_pool(forward: Callable, backward: Callable, mode: str = "max",
              name: str | None = None, file: str | None = None,
              mode_given: bool = True) -> Layer:
    """``pool_forward(A_prev, hparameters, mode)`` / ``pool_backward(dA, cache, mode)`` in
    one ``mode`` ("max": exact oracle with the tie rules; "average": numeric oracle).
    ``mode_given``: whether the functions take a ``mode`` argument at all."""
    from jaxcnn.check.catalogue import spec

    base = spec("max_pool")

    def nchw(x):
        return jnp.transpose(x, NHWC_TO_NCHW) if isinstance(x, jax.Array) else np.transpose(
            x, NHWC_TO_NCHW)

    def nhwc(g):
        return None if g is None else np.transpose(np.asarray(g), NCHW_TO_NHWC)

    def ref_forward(args, static):
        return jnp.transpose(base.reference.forward((nchw(args[0]),),
                                                    (_pool_param(static[0]),)), NCHW_TO_NHWC)

    def alternates(args, static, cotangent):
        out = []
        for a in base.reference.alternates((nchw(np.asarray(args[0])),),
                                           (_pool_param(static[0]),),
                                           np.transpose(np.asarray(cotangent), NHWC_TO_NCHW)):
            out.append(a._replace(grads=tuple(nhwc(g) for g in a.grads)))
        return out

    def subgradient(args, static, cotangent, i, hand, tol):
        if np.ndim(hand) != 4:
            return None
        return base.reference.subgradient(
            (nchw(np.asarray(args[0])),), (_pool_param(static[0]),),
            np.transpose(np.asarray(cotangent), NHWC_TO_NCHW), i,
            np.transpose(np.asarray(hand), NHWC_TO_NCHW), tol)

    def kinks(s: InputSet):
        k = base.reference.kinks(s._replace(args=(nchw(np.asarray(s.args[0])),),
                                            static=(_pool_param(s.static[0]),)))
        return Kinks(tuple(nhwc(m) for m in k.mask), k.stats, k.summary)

    def input_sets(seed):
        sets = []
        for s in base.input_sets(seed):
            p = s.static[0]
            if p["pool_height"] != p["pool_width"]:
                continue  # hparameters has one window size, f
            h = _hparameters(p)
            sets.append(s._replace(
                args=(np.ascontiguousarray(np.transpose(s.args[0], NCHW_TO_NHWC)),),
                static=(h, mode) if mode_given else (h,),
                name=s.name.replace("x (", "x NCHW (").replace(
                    f"pool {p['pool_height']}x{p['pool_width']}", f"f {h['f']}")
                + ", given channels last"))
        return sets

    def fwd(args, static):
        return _pair(forward(*_copies(args), *static), forward)[0]

    def vjp(args, static, own=False):
        """``own``: the user's code gets the arrays themselves (``Layer.raw``)."""
        out, cache = _pair(forward(*(args if own else _copies(args)), *static), forward)
        extra = static[1:]  # the mode
        return out, lambda ct: backward(ct if own else np.array(ct, copy=True), cache, *extra)

    reference = None
    if mode == "max":
        reference = Reference("max over each window (NHWC)", ref_forward, alternates, kinks,
                              subgradient)
    names = ("sample", "row", "column", "channel")
    shown = f"{name or forward.__name__} ({mode})" if mode_given else (name or forward.__name__)
    return Layer(shown, f"{mode}_pool_nhwc_hparameters", "specialisation", ("A_prev",), fwd,
                 vjp, reference, input_sets, axis_names={"A_prev": names, "out": names},
                 file=file, sources=(forward, backward), raw=_raw(vjp),
                 static_names=("hparameters", "mode"))


ACTIVATIONS = {"relu": lambda z: jnp.maximum(z, 0.0), "sigmoid": jax.nn.sigmoid,
               "tanh": jnp.tanh, None: lambda z: z}


def from_linear(forward: Callable, backward: Callable, activation: str | None = None,
                name: str | None = None, file: str | None = None) -> Layer:
    """``linear_forward(A_prev, W, b)`` / ``linear_backward(dZ, cache)``, or with an
    ``activation`` ("relu", "sigmoid") ``linear_activation_forward`` /
    ``linear_activation_backward(dA, cache, activation)``: A_prev (n_prev, m) columns,
    W (n, n_prev), b (n, 1); dW and db checked times m (the dialect's 1/m)."""
    act = ACTIVATIONS[activation]

    def ref_forward(args, static):
        a, w, b = args
        return act(w @ a + b)

    def alternates(args, static, cotangent):
        """The activation's classic wrong derivatives, carried through the linear step."""
        a, w, b = (np.asarray(v, np.float64) for v in args)
        g = np.asarray(cotangent, np.float64)
        z = w @ a + b
        wrong = []
        if activation == "sigmoid":
            wrong.append(("s(1 - s) at Z", g * z * (1 - z), "the sigmoid's derivative "
                          "s * (1 - s) evaluated at Z instead of s = sigmoid(Z)"))
        elif activation == "tanh":
            wrong.append(("1 - t^2 at Z", g * (1 - z * z), "tanh's derivative 1 - t^2 "
                          "evaluated at Z instead of t = tanh(Z)"))
        elif activation == "relu":
            wrong += [("mask from dA", g * (g > 0), "the ReLU mask taken from dA (dA > 0) "
                       "where it belongs to Z (Z > 0)"),
                      ("no mask", g, "the ReLU's mask is missing: dZ = dA")]
        from jaxcnn.check.catalogue.base import wrong as wrong_alt

        return [wrong_alt(n, (w.T @ dz, dz @ a.T, dz.sum(axis=1, keepdims=True)), note)
                for n, dz, note in wrong]

    def input_sets(seed):
        rng = np.random.default_rng(seed)
        sets = []
        for n_prev, n, m in ((4, 5, 3), (3, 2, 6)):
            a = rng.standard_normal((n_prev, m))
            w = rng.standard_normal((n, n_prev)) / np.sqrt(n_prev)
            b = rng.standard_normal((n, 1))
            what = f"random A_prev ({n_prev}, {m}), W ({n}, {n_prev}), b ({n}, 1)"
            sets.append(InputSet("random", what, (a, w, b),
                                 (activation,) if activation else ()))
        return sets

    def fwd(args, static):
        return _pair(forward(*_copies(args), *static), forward)[0]

    def vjp(args, static, own=False):
        """``own``: the user's code gets the arrays themselves (``Layer.raw``)."""
        out, cache = _pair(forward(*(args if own else _copies(args)), *static), forward)
        m = np.shape(args[0])[1]

        def back(ct):
            grads = backward(ct if own else np.array(ct, copy=True), cache, *static)
            if not (isinstance(grads, (tuple, list)) and len(grads) == 3):
                return grads
            da, dw, db = grads
            return (da, None if dw is None else m * np.asarray(dw, np.float64),
                    None if db is None else m * np.asarray(db, np.float64))
        return out, back

    text = "W @ A_prev + b" if activation is None else f"{activation}(W @ A_prev + b)"
    note = ("the specialisation's convention: dW and db carry 1/m (m = the number of "
            "columns of A_prev), dA_prev does not; dW and db are checked as m * dW, m * db")
    return Layer(f"{name or forward.__name__}" + (f" ({activation})" if activation else ""),
                 "linear_columns", "specialisation", ("A_prev", "W", "b"), fwd, vjp,
                 Reference(text, ref_forward, alternates if activation else None), input_sets,
                 axis_names={"A_prev": ("feature", "sample"), "W": ("out", "in"),
                             "b": ("out", None), "out": ("out", "sample")},
                 file=file, notes=(note,), raw=_raw(vjp), static_names=("activation",))


def _raw(vjp):
    """``Layer.raw`` of a ``vjp(args, static, own)``: the same call on the arrays
    themselves."""
    return lambda args, static: vjp(args, static, own=True)


__all__ = ["from_conv", "from_linear", "from_pool"]
