"""CS231n style: ``layer_forward(x, *params, *config) -> (out, cache)`` and
``layer_backward(dout, cache) -> (dx, *dparams)``.

The style of Stanford CS231n's assignments (``layers.py``)::

    def conv_forward_naive(x, w, b, conv_param):   # conv_param = {"stride": 1, "pad": 1}
        ...
        return out, cache
    def conv_backward_naive(dout, cache):
        ...
        return dx, dw, db

    def softmax_loss(x, y):                        # a loss: value and gradient at once
        ...
        return loss, dx

``from_cs231n`` reduces the pair to the engine's contract: the differentiable arguments
are the arrays (``x``, ``w``, ``b``: the catalogue kind says which), the config dicts and
labels are static. The backward must return one gradient per differentiable argument,
in order (a single array when there is one argument). ``from_cs231n_loss`` does the same
for a loss function, whose ``dx`` is scaled by the cotangent of the loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from jaxcnn.check.catalogue import spec
from jaxcnn.check.catalogue.base import join_outputs, split_outputs
from jaxcnn.check.layer import InputSet, Layer


def _copies(args):
    return tuple(np.array(a, copy=True) for a in args)


def _call(fn, s, args, static, fresh: bool = True):
    """``fn`` called with fresh copies of the arrays and of the static arguments (a
    ``bn_param`` the forward updates in place stays the input set's) (``fresh``; else
    the ones given, to see whether it writes into them: ``Layer.raw``), in the order of
    ``s.signature`` (``word_embedding_forward(x, W)``), else arrays then statics."""
    args, static = ((_copies(args), copy.deepcopy(tuple(static))) if fresh
                    else (tuple(args), tuple(static)))
    if s.signature is None:
        return fn(*args, *static)
    by_name = dict(zip(s.arg_names, args, strict=True))
    by_name.update(zip(s.static_names, static, strict=False))
    return fn(*(by_name[n] for n in s.signature if n in by_name))


def _outputs(result, fn, count: int):
    """(outputs, cache) of a forward returning ``out, cache`` (``count`` = 1) or
    ``out1, ..., outk, cache``; TypeError saying what ``fn`` must return."""
    if count == 1:
        out, cache = _pair(result, fn, "(out, cache)")
        return out, cache
    if not (isinstance(result, (tuple, list)) and len(result) == count + 1):
        raise TypeError(f"{getattr(fn, '__name__', 'it')} must return {count} outputs and a "
                        "cache")
    outs = [np.asarray(o) for o in result[:count]]
    return outs, result[count]


def _pair(result, fn, what: str):
    """``result`` as a 2-tuple, or a TypeError saying what ``fn`` must return."""
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        got = (f"a {type(result).__name__} of {len(result)}" if isinstance(result, (tuple, list))
               else f"a {type(result).__name__}")
        raise TypeError(f"{getattr(fn, '__name__', 'it')} must return {what}; it returned {got}")
    return result


def _given(s, inputs, static):
    """The spec's input sets, or the user's own ``inputs`` (tuples of arrays)."""
    if inputs is None:
        return s.input_sets
    sets = []
    for k, args in enumerate(inputs):
        args = tuple(np.array(a, dtype=np.float64, copy=True) for a in args)
        if len(args) != len(s.arg_names):
            raise ValueError(f"inputs #{k} has {len(args)} arrays; a {s.kind} layer takes "
                             f"{len(s.arg_names)} ({', '.join(s.arg_names)})")
        sets.append(InputSet("given", f"given inputs #{k}", args, tuple(static)))
    return lambda seed: sets


def from_cs231n(forward: Callable, backward: Callable, kind: str, name: str | None = None,
                file: str | None = None, inputs=None, static: tuple = ()) -> Layer:
    """A ``Layer`` for a CS231n ``(forward, backward)`` pair of catalogue ``kind``
    ("affine", "relu", "conv", "max_pool", "batchnorm", "dropout", "lstm_step", ...).
    A kind with several outputs (``lstm_step``: ``next_h, next_c, cache``) has its
    backward called with one upstream gradient per output (``dnext_h, dnext_c, cache``).

    ``inputs``: your own inputs instead of the catalogue's, a list of tuples of arrays
    (one per differentiable argument, e.g. ``[(x, w, b)]``), with ``static`` the
    non-differentiated arguments (e.g. ``({"stride": 2, "pad": 1},)``). ValueError when
    an input has the wrong number of arrays."""
    s = spec(kind)
    input_sets = _given(s, inputs, static)
    many = s.outputs > 1

    def fwd(args, static):
        out, _ = _outputs(_call(forward, s, args, static), forward, s.outputs)
        return join_outputs(out) if many else out

    def vjp(args, static):
        out, cache = _outputs(_call(forward, s, args, static), forward, s.outputs)
        if not many:
            return out, lambda ct: backward(np.array(ct, copy=True), cache)
        shapes = [o.shape for o in out]
        return join_outputs(out), lambda ct: backward(
            *(np.array(c, copy=True) for c in split_outputs(ct, shapes)), cache)

    def raw(args, static):
        out, cache = _outputs(_call(forward, s, args, static, fresh=False), forward, s.outputs)
        if not many:
            return out, lambda ct: backward(ct, cache)
        shapes = [o.shape for o in out]
        return join_outputs(out), lambda ct: backward(*split_outputs(ct, shapes), cache)

    reference = s.from_user(fwd) if s.from_user is not None else s.reference
    return Layer(name or forward.__name__, kind, "cs231n", s.arg_names, fwd, vjp, reference,
                 input_sets, axis_names=s.axis_names, file=file, raw=raw,
                 static_names=s.static_names, sources=(forward, backward))


def from_cs231n_loss(loss: Callable, kind: str, name: str | None = None,
                     file: str | None = None) -> Layer:
    """A ``Layer`` for ``loss(x, y, ...) -> (value, dx)`` of catalogue ``kind``
    ("softmax_loss", "svm_loss", "temporal_softmax_loss", ...)."""
    s = spec(kind)

    def fwd(args, static):
        value, _ = _pair(_call(loss, s, args, static), loss, "(loss, dx)")
        return np.asarray(value)  # its own dtype: a float32 loss gets float32 tolerances

    def vjp(args, static):
        value, dx = _pair(_call(loss, s, args, static), loss, "(loss, dx)")
        return value, lambda ct: (None if dx is None else np.asarray(ct) * np.asarray(dx),)

    def raw(args, static):
        value, dx = _pair(_call(loss, s, args, static, fresh=False), loss, "(loss, dx)")
        return value, lambda ct: (None if dx is None else np.asarray(ct) * np.asarray(dx),)

    return Layer(name or loss.__name__, kind, "cs231n", s.arg_names, fwd, vjp, s.reference,
                 s.input_sets, axis_names=s.axis_names, file=file, raw=raw,
                 static_names=s.static_names, sources=(loss, loss))


__all__ = ["from_cs231n", "from_cs231n_loss"]
