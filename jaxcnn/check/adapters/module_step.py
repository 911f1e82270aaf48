"""Module-style recurrent step classes: one time step, its state passed in and out.

The style of "Deep Learning from Scratch 2" (``RNN``, ``LSTM``, ``GRU``) and of
CS231n-like cell classes::

    class RNN:                                  # Wx (D, H), Wh (H, H), b (H,)
        def __init__(self, Wx, Wh, b):
            self.params = [Wx, Wh, b]
            self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        def forward(self, x, h_prev):           # x (N, D), h_prev (N, H) -> h_next (N, H)
            ...
        def backward(self, dh_next):            # -> dx (N, D), dh_prev (N, H)
            ...
            self.grads[0][...] = dWx            # or self.dWx, or returned after dh_prev
            return dx, dh_prev

    class LSTM:                                 # Wx (D, 4H), Wh (H, 4H), b (4H,)
        def forward(self, x, h_prev, c_prev):   # -> h_next, c_next
        def backward(self, dh_next, dc_next):   # -> dx, dh_prev, dc_prev

Recognised by the forward's state arguments (``h_prev``, ``prev_h``, ``h``; ``c_prev``,
``prev_c``, ``c``) and the parameters' shapes: Wx (D, G H), Wh (H, G H), b (G H,) (or
(1, G H)) with G = 1 (``rnn_step``), 4 (``lstm_step``: gates i, f, o, g, or the layouts
i, f, g, o and f, g, i, o) or 3 (``gru_step``, blocks r, z, n or z, r, n, or the reset
gate applied before Wh: ``gru_step_reset_before``, DLFS2's); the first
layout whose reference reproduces the forward is the exact oracle, with its named
mistakes (tanh' at the input, gates stacked in another order, dprev_c without the path
through next_h, ...). A forward none reproduces is checked against finite differences.
The differentiable arguments are x, the state(s) and the three parameters (drawn afresh
in the constructor's shapes); an LSTM's two outputs are seen as one flat array
(``catalogue.base.join_outputs``), its backward gets one cotangent per output.
"""

from __future__ import annotations

import contextlib
import copy
import re
import sys

import numpy as np

from jaxcnn.check.adapters.module_names import (
    GRAD_NAME,
    Slot,
    candidate_slots,
    float_array,
    positional_params,
    required_params,
    stored_grad,
)
from jaxcnn.check.adapters.probe import seeded
from jaxcnn.check.layer import InputSet, Layer

H_STATE = re.compile(r"h|h_?prev|prev_?h|h_?t|h_?t_?1|hidden|hx|h0|s_?prev|prev_?state|state|"
                     r"prev_?hidden(_?state)?|hidden_?(state_?)?prev|a_?prev",
                     re.IGNORECASE)
C_STATE = re.compile(r"c|c_?prev|prev_?c|c_?t|c_?t_?1|cell|cx|c0|prev_?cell(_?state)?|"
                     r"cell_?(state_?)?prev|prev_?memory", re.IGNORECASE)

LAYOUTS = {1: ("rnn_step",), 4: ("lstm_step", "lstm_step_ifgo", "lstm_step_fgio"),
           3: ("gru_step", "gru_step_zrn", "gru_step_reset_before")}


def states(fwd_method) -> tuple[str, ...]:
    """The names of a step forward's state arguments after its input: ``("h_prev",)``,
    ``("h_prev", "c_prev")``; () for any other forward."""
    req = [p.name for p in required_params(fwd_method)]
    if len(req) == 2 and H_STATE.fullmatch(req[1]):
        return (req[1],)
    if len(req) == 3 and H_STATE.fullmatch(req[1]) and C_STATE.fullmatch(req[2]):
        return (req[1], req[2])
    return ()


def _roles(template, slots: list[Slot]) -> tuple[Slot, Slot, Slot, int]:
    """(Wx, Wh, b, G) among the parameters by their shapes; ValueError if they are not
    Wx (D, G H), Wh (H, G H), b (G H,) or (1, G H) for G in 1, 3, 4."""
    shapes = {s: np.shape(s.get(template)) for s in slots}
    mats = [s for s in slots if len(shapes[s]) == 2 and shapes[s][0] > 1]
    vecs = [s for s in slots if s not in mats]
    for wh in sorted(mats, key=lambda s: "h" not in s.shown.lower()):
        rows, width = shapes[wh]
        gates = width // rows if width % rows == 0 else 0
        others = [s for s in mats if s is not wh and shapes[s][1] == width]
        biases = [s for s in vecs if shapes[s] in ((width,), (1, width))]
        if gates in LAYOUTS and len(others) == 1 and len(biases) == 1 and len(slots) == 3:
            return others[0], wh, biases[0], gates
    shown = ", ".join(f"{s.shown} {shapes[s]}" for s in slots) or "none"
    raise ValueError(f"a recurrent step (its forward takes a state), but its parameters "
                     f"({shown}) are not Wx (D, G H), Wh (H, G H), b (G H,) with G = 1 "
                     "(RNN), 3 (GRU) or 4 (LSTM): check it from Python "
                     "(jaxcnn.check.from_function_pair)")


def _sets(shapes: list[tuple], hidden: int, lstm: bool, dtypes: list):
    """A random batch (N = 3) and a batch of one, the parameters in their own shapes and
    dtypes (weights scaled by 1/sqrt(rows), the bias 0.3 x normal)."""
    d = shapes[0][0]

    def make(seed):
        rng = np.random.default_rng([seed, 18])
        out = []
        for n, family in ((3, "random"), (1, "batch-of-one")):
            state = [rng.standard_normal((n, hidden)) for _ in range(2 if lstm else 1)]
            ps = [rng.standard_normal(shapes[0]) / np.sqrt(d),
                  rng.standard_normal(shapes[1]) / np.sqrt(hidden),
                  0.3 * rng.standard_normal(shapes[2])]
            ps = [np.asarray(p.astype(t), np.float64) for p, t in zip(ps, dtypes, strict=True)]
            out.append(InputSet(family, f"random x ({n}, {d}), H = {hidden}",
                                (rng.standard_normal((n, d)), *state, *ps),
                                note="N, D and H all differ"))
        return out
    return make


def from_step_module(template, name: str, file: str | None, forward: str, backward: str,
                     notes: list[str]) -> Layer:
    """A ``Layer`` for a constructed step class (see the module docstring); ValueError
    when its parameters or its backward do not fit the pattern."""
    from jaxcnn.check import catalogue
    from jaxcnn.check.adapters import module_catalogue
    from jaxcnn.check.catalogue.base import join_outputs, split_outputs

    fwd_method, bwd_method = getattr(template, forward), getattr(template, backward)
    state_names = states(fwd_method)
    lstm = len(state_names) == 2
    bwd_req = required_params(bwd_method)
    if len(bwd_req) != len(state_names):
        raise ValueError(f"a recurrent step: its {forward} takes {', '.join(state_names)} "
                         f"but its {backward} takes {len(bwd_req)} upstream gradients where "
                         f"{len(state_names)} belong (dh_next{', dc_next' if lstm else ''})")
    wx, wh, b, gates = _roles(template, candidate_slots(template))
    if lstm != (gates == 4):
        raise ValueError(f"a recurrent step with {len(state_names)} state(s) but {gates} "
                         "gate blocks in its weights: not an RNN, GRU or LSTM step")
    slots = [wx, wh, b]
    dtypes = [np.asarray(s.get(template)).dtype for s in slots]
    hidden = np.shape(wh.get(template))[0]
    plist = getattr(template, "params", None)
    positions = [next((j for j, p in enumerate(plist) if p is s.get(template)), None)
                 if isinstance(plist, (list, tuple)) else None for s in slots]
    k = 1 + len(state_names)  # x and the states come first

    def fresh(args):
        o = copy.deepcopy(template)
        for slot, value, dtype in zip(slots, args[k:], dtypes, strict=True):
            slot.set(o, np.array(value, dtype=dtype, copy=True))
        return o

    def run_forward(o, args, own=False):
        ins = [a if own else np.array(a, copy=True) for a in args[:k]]
        with seeded(), contextlib.redirect_stdout(sys.stderr), np.errstate(all="ignore"):
            ret = getattr(o, forward)(*ins)
        if lstm:
            if not (isinstance(ret, (tuple, list)) and len(ret) >= 2):
                raise ValueError(f"its {forward} takes c_prev but does not return "
                                 "(h_next, c_next)")
            return join_outputs([np.asarray(ret[0]), np.asarray(ret[1])])
        return np.asarray(ret[0] if isinstance(ret, (tuple, list)) else ret)

    def layer_forward(args, static):
        return run_forward(fresh(args), args)

    def run_backward(o, args, ct, own=False):
        h = np.shape(args[1])
        cts = split_outputs(ct, [h, h]) if lstm else [ct]
        before = {key: None for key, v in vars(o).items() if not float_array(v) or not
                  GRAD_NAME.search(key)}
        with contextlib.redirect_stdout(sys.stderr):
            ret = getattr(o, backward)(*[c if own else np.array(c, copy=True) for c in cts])
        ret = list(ret) if isinstance(ret, (tuple, list)) else [ret]
        ins = (ret + [None] * k)[:k]
        if len(ret) == k + 3:  # dx, dh_prev[, dc_prev], dWx, dWh, db
            return (*ins, *ret[k:])
        return (*ins, *(stored_grad(o, s, before, i, positions[i])
                        for i, s in enumerate(slots)))

    def vjp(args, static):
        o = fresh(args)
        out = run_forward(o, args)
        return out, lambda ct: run_backward(copy.deepcopy(o), args, ct)

    def raw(args, static):
        o = copy.deepcopy(template)
        for slot, value, dtype in zip(slots, args[k:], dtypes, strict=True):
            own = dtype == np.float64 and isinstance(value, np.ndarray)
            slot.set(o, value if own else np.array(value, dtype=dtype, copy=True))
        out = run_forward(o, args, own=True)
        return out, lambda ct: run_backward(o, args, ct, own=True)

    input_sets = _sets([np.shape(s.get(template)) for s in slots], hidden, lstm, dtypes)
    first = input_sets(0)[0]
    reference, kind = None, None
    for layout in LAYOUTS[gates]:
        entry = catalogue.spec(layout)
        if module_catalogue.forward_agrees(entry.reference, layer_forward, first) == "forward":
            reference, kind = entry.reference, layout
            notes = [*notes, f"a recurrent step: matched to the catalogue's {layout} "
                             f"({entry.reference.name})"]
            break
    if reference is None:
        notes = [*notes, "a recurrent step whose forward none of "
                         f"{', '.join(LAYOUTS[gates])} reproduces: checked against finite "
                         "differences of your forward only"]
    own = [p.name for p in positional_params(fwd_method)]
    arg_names = (own[0] if own else "x", *state_names, *(s.shown for s in slots))
    return Layer(name, kind or "custom", "module", arg_names, layer_forward, vjp, reference,
                 input_sets, file=file, notes=tuple(notes),
                 sources=(getattr(type(template), forward), getattr(type(template), backward)),
                 raw=raw)


__all__ = ["from_step_module", "states"]
