"""Whole-network pairs: a cost and the gradients dict of every parameter.

The form of the deep-learning specialisation's gradient-checking exercise (and of most
NumPy MLP tutorials)::

    forward_propagation(X, Y, parameters) -> (cost, cache)   # parameters {"W1": ...}
    backward_propagation(X, Y, cache) -> gradients           # {"dW1": ..., "db1": ...,
                                                             #  "dZ1": ..., "dA1": ...}

How the engine sees it (``from_network_pair``): the differentiable arguments are the
parameters (``W1, b1, ..., WL, bL``: the keys the forward reads), ``X`` and ``Y`` are
static; the layer's output is the scalar cost, and each returned ``d<key>`` is checked
against finite differences of the cost (the numeric oracle), times the cotangent. The
cost already holds the dialect's ``1/m`` (a mean over the ``m`` examples), so a correct
``dW`` equals ``d cost / dW``: a missing ``1/m`` is ``scaled`` by ``m``, a stray factor
``scaled`` by it. Entries for intermediate values (``dZ1``, ``dA1``) follow the
dialect's own convention (``dZ3 = A3 - Y`` without ``1/m``) and are not parameters: they
are not checked.

Shapes: ``W<l>`` is ``(n_l, n_{l-1})`` and ``b<l>`` ``(n_l, 1)`` with samples in columns
(``X`` ``(4, m)``, ``Y`` ``(1, m)`` of 0/1 labels), sizes 4, 5, 3, ..., 1, ``m = 6``; or,
when the forward refuses those, samples in rows (``X`` ``(m, 4)``, ``W<l>`` ``(n_{l-1},
n_l)``); or ``n_L = 3`` classes with one-hot ``Y``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
import sys
from collections.abc import Callable

import numpy as np

from jaxcnn.check.adapters import probe
from jaxcnn.check.layer import InputSet, Layer

SAMPLES = 6
SIZES = (4, 5, 3, 4, 5, 3)  # n_0, n_1, ... (the output layer's size is set apart)


def parameter_keys(forward: Callable) -> list[str]:
    """The keys of the parameters dict the forward reads (``parameters["W1"]``), in
    layer order, W before b; ``["W1", "b1", "W2", "b2"]`` when its source says none."""
    try:
        source = inspect.getsource(forward)
    except (OSError, TypeError):
        source = ""
    found = set(re.findall(r"""\[\s*['"]([WbwB]\d+)['"]\s*\]""", source))
    layers = sorted({int(k[1:]) for k in found})
    if not layers:
        layers = [1, 2]
    return [f"{p}{n}" for n in layers for p in ("W", "b")]


def _layouts(keys: list[str], rng) -> list[tuple[str, dict, np.ndarray, np.ndarray]]:
    """(description, parameters, X, Y) candidates, tried in order."""
    layers = sorted({int(k[1:]) for k in keys})
    out = []
    for classes, rows in ((1, False), (3, False), (1, True), (3, True)):
        sizes = [SIZES[i % len(SIZES)] for i in range(len(layers))] + [classes]
        params = {}
        for i, n in enumerate(layers):
            fan_in, fan_out = sizes[i], sizes[i + 1]
            w = rng.standard_normal((fan_in, fan_out) if rows else (fan_out, fan_in))
            params[f"W{n}"] = w / np.sqrt(fan_in)
            params[f"b{n}"] = rng.standard_normal((1, fan_out) if rows else (fan_out, 1)) * 0.1
        labels = rng.integers(0, max(classes, 2), SAMPLES)
        y = (labels[None, :].astype(float) if classes == 1 else np.eye(classes)[labels].T)
        x = rng.standard_normal((sizes[0], SAMPLES))
        if rows:
            x, y = x.T.copy(), y.T.copy()
        what = (f"X {x.shape}, Y {y.shape} ({'0/1 labels' if classes == 1 else 'one-hot'}), "
                + ", ".join(f"{k} {v.shape}" for k, v in params.items()))
        out.append((what, {k: params[k] for k in keys if k in params}, x, y))
    return out


def from_model_pair(forward: Callable, backward: Callable, cost: Callable,
                    name: str | None = None, file: str | None = None) -> Layer:
    """The specialisation's L-layer model: ``forward(X, parameters) -> (AL, caches)``,
    ``cost(AL, Y)``, ``backward(AL, Y, caches) -> grads``, checked as the pair
    ``(X, Y, parameters) -> (cost, (AL, caches))`` / ``(X, Y, cache) -> grads``."""
    def pair_forward(x, y, parameters):
        al, caches = forward(x, parameters)
        return cost(al, y), (al, caches)

    def pair_backward(x, y, cache):
        al, caches = cache
        return backward(al, y, caches)

    # the steps of L_model_backward run through the file's helpers: no one source to read
    return from_network_pair(pair_forward, pair_backward, name or forward.__name__, file,
                             keys_from=forward)._replace(sources=())


ROLES = {"x": "X", "y": "Y", "parameters": "parameters", "params": "parameters",
         "cache": "cache", "caches": "cache"}


def by_name(fn: Callable, values: dict, own: bool = False):
    """``fn`` called with its arguments by their names (``X``, ``Y``, ``parameters``,
    ``cache``, any order, as the exercises vary: ``backward_propagation(parameters,
    cache, X, Y)``), copies of the arrays and dicts, or (``own``) the values themselves.
    TypeError naming an argument it has no value for."""
    args = []
    for p in inspect.signature(fn).parameters.values():
        role = ROLES.get(p.name.lower())
        if role is None or role not in values:
            if p.default is not p.empty:
                break
            raise TypeError(f"no value for its argument {p.name!r} (known: X, Y, "
                            "parameters, cache)")
        v = values[role]
        args.append(v if own else copy.deepcopy(v) if isinstance(v, dict) else
                    np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
    return fn(*args)


def takes(fn: Callable, role: str) -> bool:
    return any(ROLES.get(p.lower()) == role for p in inspect.signature(fn).parameters)


def from_network_pair(forward: Callable, backward: Callable, name: str | None = None,
                      file: str | None = None, keys_from: Callable | None = None,
                      cost_fn: Callable | None = None) -> Layer:
    """A ``Layer`` for ``forward(X, Y, parameters) -> (cost, cache)`` and
    ``backward(X, Y, cache) -> gradients dict`` (see the module docstring), arguments
    matched by name; a forward without ``Y`` (``forward_propagation(X, parameters) ->
    (A2, cache)``) gets its cost from ``cost_fn(A2, Y)``. ValueError when the forward runs
    on none of the layouts tried (saying what it raised). ``keys_from``: the function
    whose source names the parameters (default: forward)."""
    keys = parameter_keys(keys_from or forward)
    with_y = takes(forward, "Y")
    if not with_y and cost_fn is None:
        raise ValueError("its forward takes no Y and the file has no compute_cost(A, Y): "
                         "the cost to differentiate is unknown")

    def cost(params: dict, x, y, own=False):
        result = by_name(forward, {"X": x, "Y": y, "parameters": params}, own)
        value = result[0] if isinstance(result, (tuple, list)) else result
        if not with_y:
            value = (cost_fn(value, y) if own else
                     cost_fn(np.array(value, copy=True), np.array(y, copy=True)))
        return np.asarray(value, dtype=np.float64), result

    rng = np.random.default_rng(0)
    chosen, why = None, ""
    for what, params, x, y in _layouts(keys, rng):
        ok, why_here = probe.runs(lambda p=params, x=x, y=y: cost(p, x, y)[0])
        if ok and np.size(cost(params, x, y)[0]) == 1:
            chosen = (what, params, x, y)
            break
        why = why or why_here or "its cost is not a single number"
    if chosen is None:
        raise ValueError(f"its forward runs on none of the networks tried (parameters "
                         f"{', '.join(keys)}, samples in columns or rows): {why}")
    _, template, x0, y0 = chosen
    rows = x0.shape[0] == SAMPLES  # samples in rows: W (n_in, n_out)

    def input_sets(seed):
        sets = []
        for k in range(2):
            r = np.random.default_rng(seed * 1000 + k)
            params = [_draw(r, key, template[key].shape, rows) for key in keys]
            x = r.standard_normal(x0.shape)
            y = _relabel(y0, r)
            what = (f"random X {x.shape}, Y {y.shape}, "
                    + ", ".join(f"{key} {p.shape}" for key, p in zip(keys, params,
                                                                      strict=True)))
            sets.append(InputSet("random", what, tuple(params), (x, y)))
        return sets

    def fwd(args, static):
        value, _ = cost(dict(zip(keys, args, strict=True)), *static)
        return value.reshape(())

    def vjp(args, static, own=False):
        """``own``: the user's code gets the arrays themselves (``Layer.raw``)."""
        x, y = static
        params = dict(zip(keys, args, strict=True))
        value, result = cost(params, x, y, own)
        cache = result[1] if isinstance(result, (tuple, list)) and len(result) > 1 else None

        def back(ct):
            with contextlib.redirect_stdout(sys.stderr):
                grads = by_name(backward, {"X": x, "Y": y, "cache": cache,
                                           "parameters": params if own else
                                           dict(zip(keys, args, strict=True))}, own)
            if not isinstance(grads, dict):
                raise TypeError(f"{getattr(backward, '__name__', 'backward')} returned a "
                                f"{type(grads).__name__}; a gradients dict belongs "
                                "({'dW1': ..., 'db1': ...})")
            return tuple(None if grads.get(f"d{k}") is None
                         else float(ct) * np.asarray(grads[f"d{k}"], np.float64) for k in keys)
        return value.reshape(()), back

    note = ("a whole network: each d<parameter> of the gradients dict is checked against "
            "finite differences of the cost (which holds the 1/m); dZ and dA entries are "
            "intermediates, not checked")
    # rows are named by the gradients dict's keys (dW1, db1): what the user returns
    return Layer(name or forward.__name__, "network", "network", tuple(f"d{k}" for k in keys),
                 fwd, vjp, None, input_sets, file=file, notes=(note,),
                 sources=(forward, backward), static_names=("X", "Y"),
                 raw=lambda args, static: vjp(args, static, own=True))


def _draw(rng, key: str, shape: tuple, rows: bool) -> np.ndarray:
    """A weight scaled by 1/sqrt(fan-in), or a small bias: no unit saturates."""
    if key[0] in "Ww":
        return rng.standard_normal(shape) / np.sqrt(shape[0] if rows else shape[1])
    return 0.1 * rng.standard_normal(shape)


def _relabel(y: np.ndarray, rng) -> np.ndarray:
    """Labels of the same form as ``y``: 0/1, or one-hot along the class axis."""
    if y.shape[0] == 1 or y.shape[-1] == 1:
        return rng.integers(0, 2, y.shape).astype(float)
    axis = 0 if y.shape[1] == SAMPLES else 1
    classes = y.shape[axis]
    labels = rng.integers(0, classes, SAMPLES)
    one_hot = np.eye(classes)[labels]
    return one_hot.T if axis == 0 else one_hot


__all__ = ["from_model_pair", "from_network_pair", "parameter_keys"]
