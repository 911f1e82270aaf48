"""The deep-learning specialisation's recurrent networks (course 5, week 1, "Building a
Recurrent Neural Network - Step by Step"): parameters and gradients in dicts, examples in
columns, time as the last axis.

The forms of the exercise::

    rnn_cell_forward(xt, a_prev, parameters) -> (a_next, yt_pred, cache)
    rnn_cell_backward(da_next, cache) -> {"dxt", "da_prev", "dWax", "dWaa", "dba"}
    rnn_forward(x, a0, parameters) -> (a, y_pred, caches)      # x (n_x, m, T_x)
    rnn_backward(da, caches) -> {"dx", "da0", "dWax", "dWaa", "dba"}
    lstm_cell_forward(xt, a_prev, c_prev, parameters) -> (a_next, c_next, yt_pred, cache)
    lstm_cell_backward(da_next, dc_next, cache) -> {"dxt", "da_prev", "dc_prev", "dWf",
                                                    "dbf", "dWi", ..., "dbo"}
    lstm_forward(x, a0, parameters) -> (a, y, c, caches)
    lstm_backward(da, caches) -> {"dx", "da0", "dWf", "dbf", ..., "dbo"}

``parameters`` holds Wax (n_a, n_x), Waa (n_a, n_a), ba (n_a, 1) (the LSTM: Wf, Wi, Wc,
Wo (n_a, n_a + n_x), bf, bi, bc, bo (n_a, 1)) and the prediction's Wya / Wy (n_y, n_a)
and by (n_y, 1). The prediction (a softmax) has no backward in the exercise: only a_next
(and c_next; for a sequence, a) carries the cotangent, and Wya, by are fixed random
arrays, not checked. The math (cells, sequences, the assignment's usual slips) is the
catalogue's (``catalogue.recurrent``: kinds ``rnn_cell``, ``lstm_cell``, ``rnn_columns``,
``lstm_columns``); this module maps the dicts to the engine's ``Layer``.

The same week's character-level model ("Dinosaur Island", ``utils.py``)::

    rnn_forward(X, Y, a0, parameters, vocab_size=27) -> (loss, cache)  # X: indices
    rnn_backward(X, Y, parameters, cache) -> (gradients, a)             # dWax, ..., dby

is one network (``from_char_rnn``, kind ``char_rnn``), checked against finite
differences of its own loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxcnn.check.layer import Layer

N_Y = 2  # rows of the prediction's Wya / Wy (not differentiated)

# the dict key of each argument's gradient, first found wins
GRAD_KEYS = {"xt": ("dxt", "dx"), "x": ("dx", "dxt"), "a_prev": ("da_prev",),
             "a0": ("da0", "da_prev"), "c_prev": ("dc_prev",)}

FORMS = {  # kind -> (forward outputs before the cache, cotangents its backward takes)
    "rnn_cell": (2, 1), "lstm_cell": (3, 2), "rnn_columns": (2, 1), "lstm_columns": (3, 1)}


def _outputs(result, fn, count: int) -> tuple[list, object]:
    """(outputs, cache) of ``fn``'s ``result``: ``count`` outputs then the cache.

    Raises TypeError when ``result`` is not a tuple of ``count + 1``."""
    if not (isinstance(result, (tuple, list)) and len(result) == count + 1):
        raise TypeError(f"{getattr(fn, '__name__', 'it')} must return {count} outputs and "
                        f"a cache; it returned a {type(result).__name__}"
                        + (f" of {len(result)}" if isinstance(result, (tuple, list)) else ""))
    return list(result[:count]), result[count]


def _parameters(kind: str, names: tuple, weights: tuple) -> dict:
    """The ``parameters`` dict of ``weights`` (float64 arrays named ``names``) with the
    prediction's fixed Wya / Wy (N_Y, n_a) and by (N_Y, 1), drawn from a fixed seed."""
    n_a = np.shape(weights[0])[0]
    rng = np.random.default_rng(n_a)
    params = dict(zip(names, weights, strict=True))
    params["Wy" if kind.startswith("lstm") else "Wya"] = rng.standard_normal((N_Y, n_a))
    params["by"] = rng.standard_normal((N_Y, 1))
    return params


def _grads(result, arg_names: tuple) -> tuple:
    """One gradient per argument from the backward's dict (``GRAD_KEYS``, else ``"d" +
    name``; None where the key is missing), or a tuple returned as it is."""
    if not isinstance(result, dict):
        return result
    out = []
    for name in arg_names:
        keys = GRAD_KEYS.get(name, ("d" + name,))
        out.append(next((result[k] for k in keys if k in result), None))
    return tuple(out)


def from_rnn(forward: Callable, backward: Callable, kind: str, name: str | None = None,
             file: str | None = None) -> Layer:
    """A ``Layer`` for one of the exercise's pairs: ``kind`` is "rnn_cell", "lstm_cell",
    "rnn_columns" (``rnn_forward`` / ``rnn_backward``) or "lstm_columns". The arrays
    (xt or x, a_prev or a0, c_prev for the LSTM cell, then the weights) are the
    differentiable arguments; the weights reach the user's code in a ``parameters`` dict.
    KeyError for another kind."""
    from jaxcnn.check.catalogue import spec

    s = spec(kind)
    outs, cotangents = FORMS[kind]
    states = 3 if kind == "lstm_cell" else 2
    weight_names = s.arg_names[states:]

    def call(args, own: bool):
        args = tuple(args) if own else tuple(np.array(a, copy=True) for a in args)
        result = forward(*args[:states], _parameters(kind, weight_names, args[states:]))
        got, cache = _outputs(result, forward, outs)
        out = [np.asarray(o) for o in got[:cotangents]]
        return out, cache

    def joined(out):
        from jaxcnn.check.catalogue.base import join_outputs

        return join_outputs(out) if cotangents > 1 else out[0]

    def fwd(args, static):
        return joined(call(args, False)[0])

    def vjp(args, static, own: bool = False):
        """``own``: the user's code gets the arrays themselves (``Layer.raw``)."""
        from jaxcnn.check.catalogue.base import split_outputs

        out, cache = call(args, own)
        shapes = [o.shape for o in out]

        def back(ct):
            parts = split_outputs(ct, shapes) if cotangents > 1 else [ct]
            if not own:
                parts = [np.array(p, copy=True) for p in parts]
            return _grads(backward(*parts, cache), s.arg_names)
        return joined(out), back

    what = ("a_next and c_next carry the cotangents (da_next, dc_next)" if kind == "lstm_cell"
            else "a_next carries the cotangent (da_next)" if kind == "rnn_cell"
            else "a carries the cotangent (da; c0 = 0)" if kind == "lstm_columns"
            else "a carries the cotangent (da)")
    note = (f"the prediction (softmax of {'Wy' if 'lstm' in kind else 'Wya'} a + by) is not "
            f"differentiated, as in the exercise: {what}")
    return Layer(name or forward.__name__, kind, "specialisation", s.arg_names, fwd, vjp,
                 s.reference, s.input_sets, axis_names=s.axis_names, file=file,
                 sources=(forward, backward), notes=(note,),
                 raw=lambda args, static: vjp(args, static, own=True))


def rnn_kind(name: str, params: list[str]) -> str | None:
    """The kind of a forward named ``name`` taking ``params`` (lower-cased), if it is one
    of the exercise's: ``rnn_cell_forward(xt, a_prev, parameters)`` -> "rnn_cell",
    ``lstm_cell_forward(xt, a_prev, c_prev, parameters)`` -> "lstm_cell",
    ``rnn_forward(x, a0, parameters)`` -> "rnn_columns", ``lstm_forward`` ->
    "lstm_columns"; None otherwise."""
    lowered = name.lower()
    lstm = "lstm" in lowered
    if not (lstm or "rnn" in lowered) or not params or params[-1] not in (
            "parameters", "params", "parameter"):
        return None
    cell = "cell" in lowered
    want = 4 if lstm and cell else 3
    if len(params) != want:
        return None
    return ("lstm" if lstm else "rnn") + ("_cell" if cell else "_columns")


CHAR_RNN_KEYS = ("Wax", "Waa", "Wya", "b", "by")
CHAR_VOCAB, CHAR_HIDDEN = 5, 4


def is_char_rnn(forward_params: list[str], backward_params: list[str]) -> bool:
    """Whether the pair is the character-level language model's ("Dinosaur Island", its
    ``utils.py``): ``rnn_forward(X, Y, a0, parameters, vocab_size=27) -> (loss, cache)``
    with ``rnn_backward(X, Y, parameters, cache) -> (gradients, a)`` (lower-cased
    argument names)."""
    return (forward_params[:4] == ["x", "y", "a0", "parameters"]
            and backward_params[:4] == ["x", "y", "parameters", "cache"])


def _char_inputs(seed: int) -> list:
    """Two input sets of the character model: X a list of indices led by None (the
    exercise's zero first input), Y the next characters, a0 (n_a, 1)."""
    from jaxcnn.check.layer import InputSet

    sets = []
    for k, steps in enumerate((4, 2)):
        rng = np.random.default_rng([seed, 23, k])
        chars = [int(c) for c in rng.integers(0, CHAR_VOCAB, steps)]
        x, y = [None, *chars[:-1]], chars
        shapes = {"Wax": (CHAR_HIDDEN, CHAR_VOCAB), "Waa": (CHAR_HIDDEN, CHAR_HIDDEN),
                  "Wya": (CHAR_VOCAB, CHAR_HIDDEN), "b": (CHAR_HIDDEN, 1),
                  "by": (CHAR_VOCAB, 1)}
        args = tuple(0.5 * rng.standard_normal(shapes[key]) for key in CHAR_RNN_KEYS)
        a0 = 0.5 * rng.standard_normal((CHAR_HIDDEN, 1))
        sets.append(InputSet("random", f"{steps} characters of a {CHAR_VOCAB}-letter "
                             f"vocabulary, n_a = {CHAR_HIDDEN}", args, (x, y, a0)))
    return sets


def from_char_rnn(forward: Callable, backward: Callable, name: str | None = None,
                  file: str | None = None) -> Layer:
    """A ``Layer`` for the character model's ``rnn_forward(X, Y, a0, parameters,
    vocab_size)`` / ``rnn_backward(X, Y, parameters, cache)`` (see ``is_char_rnn``): the
    loss (a sum of each step's cross-entropy) against finite differences of its own
    forward, each of ``dWax``, ``dWaa``, ``dWya``, ``db``, ``dby`` checked (the numeric
    oracle; ``da_next`` is an intermediate)."""

    def run(args, static, own: bool):
        x, y, a0 = static
        params = dict(zip(CHAR_RNN_KEYS, args if own else
                          (np.array(a, copy=True) for a in args), strict=True))
        result = forward(list(x), list(y), a0 if own else np.array(a0, copy=True), params,
                         CHAR_VOCAB)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError(f"{getattr(forward, '__name__', 'it')} must return (loss, cache)")
        return params, np.asarray(result[0], np.float64).reshape(()), result[1]

    def fwd(args, static):
        return run(args, static, False)[1]

    def vjp(args, static, own: bool = False):
        params, loss, cache = run(args, static, own)

        def back(ct):
            result = backward(list(static[0]), list(static[1]), params, cache)
            grads = result[0] if isinstance(result, (tuple, list)) else result
            if not isinstance(grads, dict):
                raise TypeError(f"{getattr(backward, '__name__', 'it')} must return a "
                                "gradients dict (or (gradients, a))")
            return tuple(None if grads.get("d" + k) is None
                         else float(ct) * np.asarray(grads["d" + k], np.float64)
                         for k in CHAR_RNN_KEYS)
        return loss, back

    note = ("the character-level model: the loss, a sum over the steps of -log y_hat[Y[t]], "
            "against finite differences of your own rnn_forward; da_next is an "
            "intermediate, not checked")
    return Layer(name or forward.__name__, "char_rnn", "specialisation", CHAR_RNN_KEYS, fwd,
                 vjp, None, _char_inputs, file=file, notes=(note,),
                 sources=(forward, backward), static_names=("X", "Y", "a0"),
                 raw=lambda args, static: vjp(args, static, own=True))


__all__ = ["from_char_rnn", "from_rnn", "is_char_rnn", "rnn_kind"]
