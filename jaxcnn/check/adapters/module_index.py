"""Module-style layers whose input is integer indices: embeddings (``module_style``).

The style of "Deep Learning from Scratch 2" and of small NumPy transformers::

    class Embedding:                          # W (V, D): one row per word
        def __init__(self, W):
            self.params, self.grads = [W], [np.zeros_like(W)]
        def forward(self, idx):               # idx: integers, any shape (N,) or (N, T)
            self.idx = idx
            return self.params[0][idx]        # (..., D)
        def backward(self, dout):             # dout (..., D); returns nothing
            dW, = self.grads
            dW[...] = 0
            np.add.at(dW, self.idx, dout)     # a repeated word gets every gradient

Such a class is recognised by what its forward does, not by its name: it refuses a float
input with NumPy's ``IndexError`` (arrays used as indices must be integers), or casts it
to integers (its output does not move with its input: a one-hot of ``x.astype(int)``
times the table), and runs on integer indices. It is checked against the catalogue's
``word_embedding`` (``W[x]``, gradient ``np.add.at(dW, x, dout)``): the indices are
static (not differentiated) and repeat, so that ``dW[idx] = dout`` (or ``dW[idx] +=
dout``, which NumPy buffers) is named ``missing-accumulation``. The table keeps the
shape its constructor gave it (a ``TimeEmbedding``'s backward writes into a
``self.grads[0]`` of that shape); its values are drawn afresh for every input set. Where
the gradient is found: as for every module (``module_names.stored_grad``: ``self.dW``,
``self.grads[0]``, a ``self.grads`` array), or the backward's return value of the
table's shape.
"""

from __future__ import annotations

import contextlib
import copy
import sys

import numpy as np

from jaxcnn.check.adapters import probe
from jaxcnn.check.adapters.module_names import (
    GRAD_NAME,
    Slot,
    accumulates_by_design,
    candidate_slots,
    extra_value,
    float_array,
    grad_state,
    output_of,
    positional_params,
    restore_grads,
    stored_grad,
)
from jaxcnn.check.adapters.probe import seeded
from jaxcnn.check.layer import InputSet, Layer

# Index inputs tried, in order: (N, T) as a time-major layer takes them, then (N,).
PROBE_INDICES = (np.array([[0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1]]), np.array([0, 1, 1, 0, 1]))


def _forward(o, method: str, idx, extra) -> np.ndarray:
    with seeded(), contextlib.redirect_stdout(sys.stderr), np.errstate(all="ignore"):
        ret = getattr(o, method)(idx, *extra)
    return np.asarray(output_of(o, ret, method))


def _casts_to_indices(template, method: str, x, out, extra) -> bool:
    """Whether a forward that ran on floats ``x`` reads them as indices (``x.astype(int)``,
    then a one-hot or a row lookup): its output is the same float array for ``x`` moved by
    1e-7 (no float layer is that flat everywhere) and differs for ``x`` moved by 1."""
    try:
        out = np.asarray(out)
        if out.dtype.kind != "f" or out.size == 0 or not np.all(np.isfinite(out)):
            return False
        near = _forward(copy.deepcopy(template), method, x + 1e-7, extra)
        far = _forward(copy.deepcopy(template), method, np.abs(x) + 1, extra)
    except Exception:
        return False
    return np.array_equal(near, out) and (np.shape(far) != out.shape
                                         or not np.array_equal(far, out))


def index_shape(template, method: str, extra) -> int | None:
    """The number of axes (2 for (N, T), 1 for (N,)) of the integer indices the forward
    takes, where it takes indices: a float input (N, 4) makes it raise NumPy's
    ``IndexError`` about index types and integer indices run (with a float output);
    None otherwise (an ordinary layer)."""
    x = probe.random_like(np.random.default_rng(0), (probe.BATCH, probe.FEATURES))
    try:
        out = _forward(copy.deepcopy(template), method, x, extra)
        if not _casts_to_indices(template, method, x, out, extra):
            return None
    except IndexError as exc:
        if "integer" not in str(exc):
            return None
    except Exception:
        return None
    for idx in PROBE_INDICES:
        ok, _ = probe.runs(lambda idx=idx: _forward(copy.deepcopy(template), method,
                                                    idx.copy(), extra))
        if ok and _forward(copy.deepcopy(template), method, idx.copy(),
                           extra).dtype.kind == "f":
            return idx.ndim
    return None


def _table(template, method: str, idx, extra) -> Slot:
    """The one float parameter the forward reads (changing it changes the output): the
    embedding table (V, D). ValueError when there is not exactly one such 2-D array."""
    base = _forward(copy.deepcopy(template), method, idx.copy(), extra)
    used = []
    for slot in candidate_slots(template):
        o = copy.deepcopy(template)
        value = np.asarray(slot.get(o))
        slot.set(o, (value + 1.0).astype(value.dtype))
        try:
            out = _forward(o, method, idx.copy(), extra)
        except Exception:
            continue
        if out.shape != base.shape or not np.array_equal(out, base):
            used.append(slot)
    tables = [s for s in used if np.ndim(s.get(template)) == 2]
    if len(used) != 1 or len(tables) != 1:
        shown = ", ".join(s.shown for s in used) or "none"
        raise ValueError(f"its {method} takes integer indices but reads the parameters "
                         f"{shown}: only a layer reading one (V, D) table (an embedding) "
                         "is checked with index inputs")
    return tables[0]


def _sets(shape: tuple, ndim: int):
    """Input sets for a table of ``shape`` (V, D): indices that repeat (words 0 and 3
    occur several times: their gradients must add), distinct indices, a batch of one;
    ``ndim``: 2 for (N, T) indices, 1 for (N,) (the same indices, flattened)."""
    v = shape[0]

    def make(seed):
        rng = np.random.default_rng([seed, 18])
        repeated = np.array([[0, 3, 3, 1], [4, 0, 3, 2]]) % v
        distinct = rng.permutation(v)[:2 * max(1, min(3, v // 2))].reshape(2, -1)
        one = np.array([[2, 2, 0, 2, 1]]) % v
        out = []
        for family, what, idx, note in (
                ("repeated", "with repeated indices", repeated,
                 "repeated words: their gradients must add"),
                ("random", "all distinct", distinct, ""),
                ("batch-of-one", "with repeats: a batch of one", one, "")):
            idx = idx if ndim == 2 else idx.reshape(-1)
            w = probe.random_like(rng, shape, "param")
            out.append(InputSet(family, f"x {idx.shape} {what}, W {shape}", (w,), (idx,),
                                note=note))
        return out
    return make


def from_index_module(template, name: str, file: str | None, forward: str, backward: str,
                      notes: list[str], fwd_extra: list, ndim: int) -> Layer:
    """A ``Layer`` for a module-style embedding (see the module docstring): argument the
    table (V, D), static the indices ((N, T) when ``ndim`` is 2, else (N,)); its
    backward is called with the upstream gradient (..., D) alone."""
    from jaxcnn.check.catalogue import spec

    idx0 = next(i for i in PROBE_INDICES if i.ndim == ndim)
    slot = _table(template, forward, idx0, fwd_extra)
    table = np.asarray(slot.get(template))
    dtype = table.dtype
    plist = getattr(template, "params", None)
    position = (next((j for j, p in enumerate(plist) if p is slot.get(template)), None)
                if isinstance(plist, (list, tuple)) else None)
    bwd_extra = [extra_value(p) for p in positional_params(getattr(template, backward))[1:]
                 if p.default is p.empty]
    entry = spec("word_embedding")

    def fresh(args):
        o = copy.deepcopy(template)
        slot.set(o, np.array(args[0], dtype=dtype, copy=True))
        return o

    def layer_forward(args, static):
        return _forward(fresh(args), forward, np.array(static[0], copy=True), fwd_extra)

    def run_backward(o, ct, own=False):
        before = {k for k, v in vars(o).items() if not float_array(v) or not
                  GRAD_NAME.search(k)}
        with contextlib.redirect_stdout(sys.stderr):
            ret = getattr(o, backward)(ct if own else np.array(ct, copy=True), *bwd_extra)
        g = stored_grad(o, slot, dict.fromkeys(before), 0, position)
        if g is None and isinstance(ret, np.ndarray) and ret.shape == np.shape(slot.get(o)):
            g = ret
        return (g,)

    def vjp(args, static):
        o = fresh(args)
        out = _forward(o, forward, np.array(static[0], copy=True), fwd_extra)
        return out, lambda ct: run_backward(copy.deepcopy(o), ct)

    def raw(args, static):
        o = copy.deepcopy(template)
        own = dtype == np.float64 and isinstance(args[0], np.ndarray)
        slot.set(o, args[0] if own else np.array(args[0], dtype=dtype, copy=True))
        out = _forward(o, forward, static[0], fwd_extra)
        state = grad_state(o) if accumulates_by_design(o) else None
        calls = []

        def backward(ct):
            if calls and state is not None:  # its zero_grad() between two steps
                restore_grads(o, state)
            calls.append(1)
            return run_backward(o, ct, own=True)
        return out, backward

    idx_name = next((p.name for p in positional_params(getattr(template, forward))), "idx")
    return Layer(name, "word_embedding", "module", (slot.shown,), layer_forward, vjp,
                 entry.reference, _sets(table.shape, ndim), file=file,
                 notes=(*notes, f"its {forward} takes integer indices: matched to the "
                        f"catalogue's word_embedding ({entry.reference.name}); the indices "
                        f"{idx_name} are not differentiated"),
                 sources=(getattr(type(template), forward), getattr(type(template), backward)),
                 raw=raw, static_names=(idx_name,))


__all__ = ["from_index_module", "index_shape"]
