"""Recurrent layers, CS231n's ``rnn_layers.py`` signatures (assignment 3), and a GRU step.

==================  =======================================  ==============================
kind                forward(...) -> (out[, out2], cache)     reference
==================  =======================================  ==============================
rnn_step            x (N, D), prev_h (N, H), Wx (D, H),      tanh(x Wx + prev_h Wh + b)
                    Wh (H, H), b (H,) -> next_h
rnn                 x (N, T, D), h0 (N, H), Wx, Wh, b        rnn_step over t -> h (N, T, H)
lstm_step           x, prev_h, prev_c (N, H), Wx (D, 4H),    gates i, f, o, g = sigma, sigma,
                    Wh (H, 4H), b (4H,) -> next_h, next_c    sigma, tanh of the 4 blocks of
                                                             x Wx + prev_h Wh + b (in that
                                                             order); next_c = f prev_c + i g,
                                                             next_h = o tanh(next_c)
lstm                x (N, T, D), h0, Wx, Wh, b               lstm_step over t, c0 = 0
lstm_step_ifgo,     lstm_step, gates in the order i, f, g, o or f, g, i, o (as below)
lstm_step_fgio
lstm_ifgo,          the same, gates in the order i, f, g, o  (PyTorch's, Keras's) or f, g,
lstm_fgio                                                    i, o (Deep Learning from
                                                             Scratch 2's TimeLSTM)
gru_step            x, prev_h, Wx (D, 3H), Wh (H, 3H),       r, z (sigmoid) and the
                    b (3H,) -> next_h                        candidate n = tanh(a_n + r *
                                                             (prev_h Wh)_n), blocks in the
                                                             order r, z, n (PyTorch's, one
                                                             bias; or z, r, n: kind
                                                             gru_step_zrn); next_h =
                                                             (1 - z) n + z prev_h
gru_step_reset_     gru_step, blocks z, r, n                 n = tanh(x Wx_n + (r prev_h)
before                                                       Wh_n + b_n); next_h = (1 - z)
                                                             prev_h + z n (DLFS2's GRU)
gru, gru_zrn,       x (N, T, D), h0, Wx (D, 3H), Wh, b       gru_step, gru_step_zrn or
gru_reset_before                                             gru_step_reset_before over t
temporal_affine     x (N, T, D), w (D, M), b (M,)            x @ w + b -> (N, T, M)
temporal_softmax_   x (N, T, V); static y (N, T), mask       -sum(mask * log softmax(x)[y])
loss                (N, T) -> (loss, dx)                     / N
time_softmax_loss   x (N, T, V); static y (N, T), -1 where   -sum over kept steps of log
                    a step is ignored -> loss                softmax(x)[y] / their count
==================  =======================================  ==============================

The deep-learning specialisation's cells (course 5), examples in columns: ``rnn_cell``
(xt (n_x, m), a_prev (n_a, m), Wax, Waa, ba (n_a, 1) -> tanh(Wax xt + Waa a_prev + ba))
and ``lstm_cell`` (xt, a_prev, c_prev, Wf, bf, Wi, bi, Wc, bc, Wo, bo on [a_prev; xt] ->
a_next, c_next); ``rnn_columns`` / ``lstm_columns``: the cell over the last axis of x
(n_x, m, T_x) from a0 (n_a, m), c0 = 0, through ``_sequence``; their dicts are
``adapters.specialisation_rnn``'s to map. Their alternates are the exercise's slips
written as forwards whose derivative slipped (``slipped``, ``forget_times_cell``), so
``jax.vjp`` carries a cell's slip through a sequence: tanh' as ``1 - a``, at its input or
left out; a gate's sigmoid derivative left out; tanh'(c_next) as ``1 - c_next^2``;
dc_prev without the forget gate (a sequence: the usual ones, ``LSTM_SEQUENCE_SLIPS``,
and the recurrence dropped).

``lstm_step`` has two outputs: its backward gets ``dnext_h, dnext_c`` and returns
``dx, dprev_h, dprev_c, dWx, dWh, db`` (see ``Spec.outputs``).

Alternates (kind ``wrong-derivative`` unless said): tanh' evaluated at the input of the
tanh instead of from its output (``1 - a^2`` for ``1 - tanh(a)^2``); an LSTM (or GRU)
backward that assembles the gates' gradients in another order than the forward split
them; an LSTM's dprev_c without the path through next_h, or without tanh'(next_c);
a sequence backward that drops the recurrence (``dh = dout[t]`` where ``dout[t] +
dprev_h`` belongs: ``missing-accumulation``); a temporal softmax loss whose backward
ignores the mask. Shapes are never square (N, D, H, T all differ).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import as_np, vjp, vjps
from jaxcnn.check.catalogue.base import Spec, join_outputs, module_name, split_outputs, wrong
from jaxcnn.check.layer import Alternate, InputSet, Reference

N, D, H, T = 3, 4, 5, 3
GATES = "ifog"


def rnn_step(x, h, wx, wh, b):
    return jnp.tanh(x @ wx + h @ wh + b)


def lstm_step(x, h, c, wx, wh, b, order: str = "ifog"):
    """An LSTM step whose four blocks of Wx, Wh, b are the gates in ``order`` ("ifog",
    CS231n's; "ifgo", PyTorch's and Keras's; "fgio", Deep Learning from Scratch 2's)."""
    a = x @ wx + h @ wh + b
    size = h.shape[1]
    block = {k: a[:, order.index(k) * size:(order.index(k) + 1) * size] for k in "ifog"}
    i, f, o = (jax.nn.sigmoid(block[k]) for k in "ifo")
    g = jnp.tanh(block["g"])
    c = f * c + i * g
    return o * jnp.tanh(c), c


LSTM_SLIPS = {
    "g given sigmoid's derivative":
        "the candidate g = tanh(a_g) is given sigmoid's derivative g (1 - g) where tanh's "
        "1 - g^2 belongs",
    "sigmoid gates given tanh's derivative":
        "the sigmoid gates i, f, o are given tanh's derivative 1 - s^2 where sigmoid's "
        "s (1 - s) belongs",
    "gate derivatives at the pre-activations":
        "the gates' derivatives are evaluated at their pre-activations a (a (1 - a), "
        "1 - a^2) instead of from the gates' outputs (i (1 - i), 1 - g^2)",
    "forget gate from next_c":
        "the forget gate's gradient is taken from the new cell state (df = dc * next_c) "
        "where the previous one belongs (df = dc * prev_c)",
    "output gate from the cell":
        "the output gate's gradient is taken from the cell (do = dh * next_c) where its "
        "tanh belongs (do = dh * tanh(next_c))",
    "dprev_c without the forget gate":
        "the cell's gradient is passed back without the forget gate (dprev_c = dc where "
        "dc * f belongs)",
}  # an LSTM's named slips (Hochreiter & Schmidhuber 1997, as CS231n writes the step)


def lstm_step_backward(x, h, c, wx, wh, b, dh, dc, order: str = GATES,
                       slip: str | None = None) -> tuple:
    """An LSTM step's backward in NumPy, right or with ``slip`` (a key of ``LSTM_SLIPS``):
    (dx, dprev_h, dprev_c, dWx, dWh, db) for the upstream gradients ``dh``, ``dc`` of
    next_h and next_c. Float64 arrays: x (N, D), h, c (N, H), Wx (D, 4H), Wh (H, 4H),
    b (4H,), blocks in ``order``."""
    size = h.shape[1]
    a = x @ wx + h @ wh + b
    block = {k: a[:, order.index(k) * size:(order.index(k) + 1) * size] for k in GATES}
    i, f, o = (1 / (1 + np.exp(-block[k])) for k in "ifo")
    g = np.tanh(block["g"])
    next_c = f * c + i * g
    tc = np.tanh(next_c)
    dcell = dc + dh * o * (1 - tc ** 2)
    outer = {"i": dcell * g, "g": dcell * i,  # dL/dgate
             "f": dcell * (next_c if slip == "forget gate from next_c" else c),
             "o": dh * (next_c if slip == "output gate from the cell" else tc)}
    deriv = {"i": i * (1 - i), "f": f * (1 - f), "o": o * (1 - o), "g": 1 - g ** 2}
    if slip == "g given sigmoid's derivative":
        deriv["g"] = g * (1 - g)
    elif slip == "sigmoid gates given tanh's derivative":
        deriv.update(i=1 - i ** 2, f=1 - f ** 2, o=1 - o ** 2)
    elif slip == "gate derivatives at the pre-activations":
        deriv = {k: (1 - block[k] ** 2) if k == "g" else block[k] * (1 - block[k])
                 for k in GATES}
    da = np.concatenate([outer[k] * deriv[k] for k in order], axis=1)
    dx, dprev_h, dwx, dwh, db = _from_da(x, h, wx, wh, da)
    dprev_c = dcell if slip == "dprev_c without the forget gate" else dcell * f
    return dx, dprev_h, dprev_c, dwx, dwh, db


def lstm_sequence_backward(x, h0, wx, wh, b, dout, order: str = GATES,
                           slip: str | None = None, cut: str | None = None) -> tuple:
    """Backpropagation through time of ``lstm_step`` over x (N, T, D) from h0 (c0 = 0),
    in NumPy: (dx, dh0, dWx, dWh, db) for ``dout`` (N, T, H), each step's backward with
    ``slip``; ``cut`` "h": a step's dnext_h is dout[:, t] alone (dh_next not added), "c":
    its dnext_c is 0 (dc_next not carried)."""
    hs, cs = [h0], [np.zeros_like(h0)]
    size = h0.shape[1]
    for t in range(x.shape[1]):
        a = x[:, t] @ wx + hs[-1] @ wh + b
        block = {k: a[:, order.index(k) * size:(order.index(k) + 1) * size] for k in GATES}
        i, f, o = (1 / (1 + np.exp(-block[k])) for k in "ifo")
        cs.append(f * cs[-1] + i * np.tanh(block["g"]))
        hs.append(o * np.tanh(cs[-1]))
    dx = np.zeros_like(x)
    dwx, dwh, db = np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    dprev_h, dprev_c = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        dh = dout[:, t] + (0 if cut == "h" else dprev_h)
        dc = 0 * dprev_c if cut == "c" else dprev_c
        dx[:, t], dprev_h, dprev_c, dwx_t, dwh_t, db_t = lstm_step_backward(
            x[:, t], hs[t], cs[t], wx, wh, b, dh, dc, order, slip)
        dwx, dwh, db = dwx + dwx_t, dwh + dwh_t, db + db_t
    return dx, dprev_h, dwx, dwh, db


def _lstm_slip_alternates(grads_of) -> list[Alternate]:
    """``wrong-derivative`` alternates of every ``LSTM_SLIPS`` entry: ``grads_of(slip)``,
    the gradients of the backward with that slip."""
    return [wrong(name, grads_of(name), note) for name, note in LSTM_SLIPS.items()]


LSTM_ORDERS = {"lstm": "ifog", "lstm_ifgo": "ifgo", "lstm_fgio": "fgio"}


def gru_step(x, h, wx, wh, b, order: str = "rzn"):
    """A GRU step whose blocks of Wx, Wh, b are in ``order`` ("rzn", PyTorch's, or
    "zrn"); the candidate n is always the last block."""
    ax, ah = x @ wx + b, h @ wh
    size = h.shape[1]
    ir, iz = order.index("r") * size, order.index("z") * size
    r = jax.nn.sigmoid(ax[:, ir:ir + size] + ah[:, ir:ir + size])
    z = jax.nn.sigmoid(ax[:, iz:iz + size] + ah[:, iz:iz + size])
    n = jnp.tanh(ax[:, 2 * size:] + r * ah[:, 2 * size:])
    return (1 - z) * n + z * h


def gru_reset_before_step(x, h, wx, wh, b):
    """A GRU step with the reset gate applied before Wh (Cho et al.'s, Deep Learning from
    Scratch 2's ``GRU``): blocks z, r, n; n = tanh(x Wx_n + (r * prev_h) Wh_n + b_n);
    next_h = (1 - z) prev_h + z n."""
    size = h.shape[1]
    a = x @ wx + b
    z = jax.nn.sigmoid(a[:, :size] + h @ wh[:, :size])
    r = jax.nn.sigmoid(a[:, size:2 * size] + h @ wh[:, size:2 * size])
    n = jnp.tanh(a[:, 2 * size:] + (r * h) @ wh[:, 2 * size:])
    return (1 - z) * h + z * n


def _gru_reset_before_alternates(args, static, cotangent):
    """A reset-before GRU's wrong backwards: the z and r gradients exchanged, the direct
    path (1 - z) dropped from dprev_h, the reset gate left out of dWh_n."""
    x, h, wx, wh, b = (as_np(a) for a in args)
    size = h.shape[1]
    a = x @ wx + b
    z = 1 / (1 + np.exp(-(a[:, :size] + h @ wh[:, :size])))
    r = 1 / (1 + np.exp(-(a[:, size:2 * size] + h @ wh[:, size:2 * size])))
    n = np.tanh(a[:, 2 * size:] + (r * h) @ wh[:, 2 * size:])
    d = as_np(cotangent)
    dan = d * z * (1 - n ** 2)
    daz = d * (n - h) * z * (1 - z)
    drh = dan @ wh[:, 2 * size:].T
    dar = drh * h * r * (1 - r)

    def grads(first, second, direct=True, wh_n=None):
        da = np.concatenate([first, second, dan], axis=1)
        dwh = np.concatenate([h.T @ first, h.T @ second,
                              (r * h).T @ dan if wh_n is None else wh_n], axis=1)
        dprev = (d * (1 - z) if direct else 0) + first @ wh[:, :size].T \
            + second @ wh[:, size:2 * size].T + drh * r
        return da @ wx.T, dprev, x.T @ da, dwh, da.sum(axis=0)
    dropped = grads(daz, dar, direct=False)
    return [wrong("gates r, z", grads(dar, daz),
                  "the update and reset gates' gradients are exchanged (stacked r, z, n "
                  "where the forward split z, r, n)"),
            Alternate("direct path dropped", (None, dropped[1], None, None, None), False,
                      "missing-accumulation",
                      "dprev_h keeps only the paths through the gates: the direct term "
                      "dnext_h * (1 - z) of next_h = (1 - z) prev_h + z n is overwritten (`=` "
                      "where `+=` belongs)"),
            wrong("reset gate left out of dWh_n", (None, None, None, grads(
                daz, dar, wh_n=h.T @ dan)[3], None),
                  "dWh_n = prev_h.T @ da_n where (r * prev_h).T @ da_n belongs: the candidate "
                  "reads r * prev_h")]


def _sequence(step, lstm: bool, cut: bool = False, keep: int | None = None):
    """h (N, T, H) of ``step`` over time; ``cut``: no gradient through h_{t-1}, t >= 1;
    ``keep``: the weights ``wx`` get a gradient from step ``keep`` alone (-1: the last),
    the sum over time kept one term (``dW = ...`` where ``dW += ...`` belongs)."""
    def forward(x, h0, wx, wh, b):
        h, c, hs = h0, jnp.zeros_like(h0), []
        last = x.shape[1] - 1
        for t in range(x.shape[1]):
            prev = jax.lax.stop_gradient(h) if cut and t > 0 else h
            w = wx if keep is None or t == (last if keep == -1 else keep) else \
                jax.tree.map(jax.lax.stop_gradient, wx)
            if lstm:
                prev_c = jax.lax.stop_gradient(c) if cut and t > 0 else c
                h, c = step(x[:, t], prev, prev_c, w, wh, b)
            else:
                h = step(x[:, t], prev, w, wh, b)
            hs.append(h)
        return jnp.stack(hs, axis=1)
    return forward


def _weights(rng, d, h, gates):
    return (rng.standard_normal((d, gates * h)) / np.sqrt(d),
            rng.standard_normal((h, gates * h)) / np.sqrt(h),
            0.3 * rng.standard_normal(gates * h))


def _step_sets(gates: int, cell: bool):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 18])
        sets = []
        for n, d, h, family in ((N, D, H, "random"), (1, 3, 2, "batch-of-one")):
            state = (rng.standard_normal((n, h)),) * 1
            if cell:
                state = (rng.standard_normal((n, h)), rng.standard_normal((n, h)))
            sets.append(InputSet(family, f"random x ({n}, {d}), H = {h}",
                                 (rng.standard_normal((n, d)), *state,
                                  *_weights(rng, d, h, gates)),
                                 note="N, D and H all differ"))
        return sets
    return input_sets


def _sequence_sets(gates: int):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 18])
        sets = []
        for n, t, d, h, family in ((2, T, D, H, "random"), (1, 4, 3, 2, "batch-of-one")):
            sets.append(InputSet(family, f"random x ({n}, {t}, {d}), H = {h}",
                                 (rng.standard_normal((n, t, d)),
                                  rng.standard_normal((n, h)), *_weights(rng, d, h, gates))))
        return sets
    return input_sets


def _from_da(x, h, wx, wh, da):
    """(dx, dprev_h, dWx, dWh, db) of ``a = x Wx + h Wh + b`` given dL/da."""
    return da @ wx.T, da @ wh.T, x.T @ da, h.T @ da, da.sum(axis=0)


def _rnn_step_alternates(args, static, cotangent):
    x, h, wx, wh, b = (as_np(a) for a in args)
    a = x @ wx + h @ wh + b
    da = as_np(cotangent) * (1 - a ** 2)
    return [wrong("tanh' at the input", _from_da(x, h, wx, wh, da),
                  "tanh' is evaluated at the input a of the tanh (1 - a^2) instead of from "
                  "its output (1 - next_h^2): cache next_h")]


def _lstm_step_alternates(args, static, cotangent, order: str = GATES):
    """The wrong formulas of an LSTM step whose blocks are the gates in ``order``."""
    x, h, c, wx, wh, b = (as_np(a) for a in args)
    dh, dc = split_outputs(as_np(cotangent), [h.shape, h.shape])
    size = h.shape[1]
    a = x @ wx + h @ wh + b
    block = {k: a[:, order.index(k) * size:(order.index(k) + 1) * size] for k in GATES}
    i, f, o = (1 / (1 + np.exp(-block[k])) for k in "ifo")
    g = np.tanh(block["g"])
    tc = np.tanh(f * c + i * g)
    dcell = dc + dh * o * (1 - tc ** 2)
    grads = {"i": dcell * g * i * (1 - i), "f": dcell * c * f * (1 - f),
             "o": dh * tc * o * (1 - o), "g": dcell * i * (1 - g ** 2)}
    out = [wrong("dprev_c without the path through next_h", (None, None, dc * f, None, None,
                                                             None),
                 "dprev_c = dnext_c * f: the gradient reaching the cell through next_h = o "
                 "tanh(next_c) is not added to dnext_c"),
           wrong("tanh' of the cell left out", _lstm_da(x, h, wx, wh, dh, dc + dh * o, i, f, o,
                                                        g, c, tc, order),
                 "the gradient through next_h = o tanh(next_c) reaches the cell as dnext_h * o, "
                 "without tanh'(next_c) = 1 - tanh(next_c)^2")]
    out += _lstm_slip_alternates(lambda slip: lstm_step_backward(
        x, h, c, wx, wh, b, dh, dc, order, slip))
    for perm in itertools.permutations(order):
        if "".join(perm) == order:
            continue
        da = np.concatenate([grads[k] for k in perm], axis=1)
        dx, dprev_h, dwx, dwh, db = _from_da(x, h, wx, wh, da)
        stacked, split = ", ".join(perm), ", ".join(order)
        out.append(wrong(f"gates {stacked}", (dx, dprev_h, None, dwx, dwh, db),
                         f"the gates' gradients are stacked in the order {stacked} where the "
                         f"forward split a into {split}: the gate order differs between "
                         "forward and backward"))
    return out


def _lstm_da(x, h, wx, wh, dh, dcell, i, f, o, g, c, tc, order: str = GATES) -> tuple:
    """All six gradients of an LSTM step given the cell's gradient ``dcell`` (blocks in
    ``order``)."""
    grads = {"i": dcell * g * i * (1 - i), "f": dcell * c * f * (1 - f),
             "o": dh * tc * o * (1 - o), "g": dcell * i * (1 - g ** 2)}
    da = np.concatenate([grads[k] for k in order], axis=1)
    dx, dprev_h, dwx, dwh, db = _from_da(x, h, wx, wh, da)
    return dx, dprev_h, dcell * f, dwx, dwh, db


def _gru_alternates(args, static, cotangent, order: str = "rzn"):
    x, h, wx, wh, b = (as_np(a) for a in args)
    size = h.shape[1]
    ax, ah = x @ wx + b, h @ wh
    ir, iz = order.index("r") * size, order.index("z") * size
    r = 1 / (1 + np.exp(-(ax[:, ir:ir + size] + ah[:, ir:ir + size])))
    z = 1 / (1 + np.exp(-(ax[:, iz:iz + size] + ah[:, iz:iz + size])))
    n = np.tanh(ax[:, 2 * size:] + r * ah[:, 2 * size:])
    dout = as_np(cotangent)
    dn = dout * (1 - z) * (1 - n ** 2)
    dz = dout * (h - n) * z * (1 - z)
    dr = dn * ah[:, 2 * size:] * r * (1 - r)
    blocks = {"r": dr, "z": dz}
    swapped = np.concatenate([blocks[order[1]], blocks[order[0]], dn], axis=1)  # exchanged
    swapped_h = np.concatenate([blocks[order[1]], blocks[order[0]], dn * r], axis=1)
    dx, dwx, db = swapped @ wx.T, x.T @ swapped, swapped.sum(axis=0)
    dprev_h = swapped_h @ wh.T + dout * z
    dah = np.concatenate([blocks[order[0]], blocks[order[1]], dn * r], axis=1)
    other = ", ".join(order[1::-1] + "n")
    return [wrong(f"gates {other}", (dx, dprev_h, dwx, h.T @ swapped_h, db),
                  f"the reset and update gates' gradients are exchanged (stacked {other} where "
                  f"the forward split {', '.join(order)})"),
            Alternate("direct path dropped", (None, dah @ wh.T, None, None, None), False,
                      "missing-accumulation",
                      "dprev_h keeps only the path through the gates (dah @ Wh.T): the direct "
                      "term dnext_h * z of next_h = (1 - z) n + z prev_h is overwritten (`=` "
                      "where `+=` belongs)")] + _gru_slips(x, h, wx, wh, ah, r, z, n, dout,
                                                            order)


def _gru_slips(x, h, wx, wh, ah, r, z, n, dout, order: str) -> list[Alternate]:
    """A GRU step's slips (Cho et al. 2014, in PyTorch's form next_h = (1 - z) n + z
    prev_h), ``wrong-derivative``: the candidate n given sigmoid's derivative n (1 - n),
    the gates r, z tanh's 1 - s^2; the update gate's gradient with the other convention's
    sign (``dz = dnext_h * (n - prev_h) ...``, of next_h = z n + (1 - z) prev_h); the reset
    gate left out of the candidate's recurrent path (``dah_n = dn`` where ``dn * r``
    belongs)."""
    size = h.shape[1]
    ahn = ah[:, 2 * size:]

    def grads(dn, dz, dr, reset=True):
        blocks = {"r": dr, "z": dz}
        dax = np.concatenate([blocks[order[0]], blocks[order[1]], dn], axis=1)
        dah = np.concatenate([blocks[order[0]], blocks[order[1]], dn * r if reset else dn],
                             axis=1)
        return (dax @ wx.T, dah @ wh.T + dout * z, x.T @ dax, h.T @ dah, dax.sum(axis=0))

    dn = dout * (1 - z) * (1 - n ** 2)
    dz = dout * (h - n) * z * (1 - z)
    dr = dn * ahn * r * (1 - r)
    dn_sig = dout * (1 - z) * n * (1 - n)
    return [
        wrong("n given sigmoid's derivative", grads(dn_sig, dz, dn_sig * ahn * r * (1 - r)),
              "the candidate n = tanh(...) is given sigmoid's derivative n (1 - n) where "
              "tanh's 1 - n^2 belongs"),
        wrong("gates given tanh's derivative", grads(
            dn, dout * (h - n) * (1 - z ** 2), dn * ahn * (1 - r ** 2)),
              "the sigmoid gates r, z are given tanh's derivative 1 - s^2 where sigmoid's "
              "s (1 - s) belongs"),
        wrong("update gate's sign of the other convention", grads(dn, -dz, dr),
              "dz = dnext_h * (n - prev_h) * z (1 - z): the other convention's (next_h = z n + "
              "(1 - z) prev_h) where the forward's next_h = (1 - z) n + z prev_h gives "
              "(prev_h - n)"),
        wrong("reset gate left out of the candidate's recurrent path", grads(
            dn, dz, dr, reset=False),
              "the candidate's recurrent block gets dn where dn * r belongs (n = tanh(a_n + "
              "r * (prev_h Wh)_n))"),
    ]


def _recurrence_dropped(step, lstm, order: str = GATES):
    """A sequence backward that drops the recurrence: every path back through time, and
    for an LSTM each of its two (dh_next never added to dout[t]; dc_next never carried to
    the step before), all ``missing-accumulation``."""
    def alternates(args, static, cotangent):
        grads = vjp(_sequence(step, lstm, cut=True), args, cotangent)
        out = [Alternate("recurrence dropped", grads, False, "missing-accumulation",
                         "each step's backward gets only dout[t]: the gradient flowing back "
                         "from step t + 1 (dprev_h) is not added (`dh = dout[:, t]` where "
                         "`dh = dout[:, t] + dprev_h` belongs)")]
        if lstm:
            x, h0, wx, wh, b = (as_np(a) for a in args)
            dout = as_np(cotangent)

            def bptt(slip=None, cut=None):
                return lstm_sequence_backward(x, h0, wx, wh, b, dout, order, slip, cut)
            out += _lstm_slip_alternates(bptt)
            out += [Alternate("dh_next not accumulated", bptt(cut="h"), False,
                              "missing-accumulation",
                              "each step's backward gets dout[t] alone as its dnext_h: the "
                              "dprev_h of step t + 1 is not added (`dh = dout[:, t]` where "
                              "`dh = dout[:, t] + dprev_h` belongs); the cell's gradient is "
                              "carried"),
                    Alternate("dc_next not carried", bptt(cut="c"), False,
                              "missing-accumulation",
                              "each step's backward starts its cell gradient from zero: the "
                              "dprev_c of step t + 1 is not passed back as dnext_c (the "
                              "hidden state's gradient is carried)")]
        return out
    return alternates


STEP_AXES = {"x": ("sample", "input"), "prev_h": ("sample", "hidden"),
             "prev_c": ("sample", "hidden"), "Wx": ("input", "gate"),
             "Wh": ("hidden", "gate"), "b": ("gate",), "out": ("sample", "hidden")}
SEQ_AXES = {"x": ("sample", "time", "input"), "h0": ("sample", "hidden"),
            "Wx": ("input", "gate"), "Wh": ("hidden", "gate"), "b": ("gate",),
            "out": ("sample", "time", "hidden")}


def rnn_step_spec() -> Spec:
    return Spec("rnn_step", ("x", "prev_h", "Wx", "Wh", "b"), STEP_AXES,
                Reference("tanh(x Wx + prev_h Wh + b)", lambda args, static: rnn_step(*args),
                          _rnn_step_alternates), _step_sets(1, False),
                names={"cs231n": r"(vanilla_)?rnn_step"})


def lstm_step_spec(kind: str = "lstm_step") -> Spec:
    """An LSTM step, blocks i, f, o, g (``lstm_step``, CS231n's), i, f, g, o
    (``lstm_step_ifgo``) or f, g, i, o (``lstm_step_fgio``, Deep Learning from Scratch 2's
    ``LSTM``): the layouts of code named lstm_step."""
    order = LSTM_STEP_ORDERS[kind]

    def forward(args, static):
        return join_outputs(lstm_step(*args, order=order))

    return Spec(kind, ("x", "prev_h", "prev_c", "Wx", "Wh", "b"),
                {k: v for k, v in STEP_AXES.items() if k != "out"},
                Reference(f"LSTM step, gates {', '.join(order)} (next_h, next_c flattened)",
                          forward, lambda args, static, ct: _lstm_step_alternates(
                              args, static, ct, order)), _step_sets(4, True),
                names={"cs231n": r"lstm_step"} if kind == "lstm_step" else None, outputs=2,
                layouts=tuple(LSTM_STEP_ORDERS) if kind == "lstm_step" else ())


LSTM_STEP_ORDERS = {"lstm_step": "ifog", "lstm_step_ifgo": "ifgo", "lstm_step_fgio": "fgio"}


def gru_step_spec(order: str = "rzn") -> Spec:
    """A GRU step, blocks r, z, n (kind ``gru_step``) or z, r, n (``gru_step_zrn``)."""
    return Spec("gru_step" if order == "rzn" else f"gru_step_{order}",
                ("x", "prev_h", "Wx", "Wh", "b"), STEP_AXES,
                Reference(f"GRU step, blocks {', '.join(order)}; (1 - z) n + z prev_h",
                          lambda args, static: gru_step(*args, order=order),
                          lambda args, static, ct: _gru_alternates(args, static, ct, order)),
                _step_sets(3, False), names={"cs231n": r"gru_step"} if order == "rzn" else None,
                layouts=("gru_step", "gru_step_zrn", "gru_step_reset_before")
                if order == "rzn" else ())


def gru_reset_before_spec() -> Spec:
    """A GRU step, the reset gate applied before Wh (kind ``gru_step_reset_before``)."""
    return Spec("gru_step_reset_before", ("x", "prev_h", "Wx", "Wh", "b"), STEP_AXES,
                Reference("GRU step, blocks z, r, n; n = tanh(x Wx_n + (r prev_h) Wh_n + b_n), "
                          "(1 - z) prev_h + z n",
                          lambda args, static: gru_reset_before_step(*args),
                          _gru_reset_before_alternates), _step_sets(3, False))


GRU_STEPS = {"gru": ("gru_step, blocks r, z, n", lambda *a: gru_step(*a)),
             "gru_zrn": ("gru_step, blocks z, r, n", lambda *a: gru_step(*a, order="zrn")),
             "gru_reset_before": ("gru_step_reset_before", gru_reset_before_step)}


def sequence_spec(kind: str) -> Spec:
    """``rnn``, ``lstm`` with its gates in the order of ``LSTM_ORDERS[kind]`` (kinds
    ``lstm``, ``lstm_ifgo``, ``lstm_fgio``: the layouts of code named lstm), or a GRU
    over time (``gru``, ``gru_zrn``, ``gru_reset_before``: the layouts of code named
    gru, e.g. DLFS2's ``TimeGRU``)."""
    lstm = kind in LSTM_ORDERS
    order = LSTM_ORDERS.get(kind, "")
    step = (lambda x, h, c, wx, wh, b: lstm_step(x, h, c, wx, wh, b, order)) if lstm \
        else GRU_STEPS[kind][1] if kind in GRU_STEPS else rnn_step
    gates = 4 if lstm else 3 if kind in GRU_STEPS else 1
    names = None
    if kind == "lstm":
        names = {"cs231n": r"lstm", "module": module_name(r"(time_?|seq(uence)?_?)?lstm")}
    elif kind == "rnn":
        names = {"cs231n": r"(vanilla_)?rnn",
                 "module": module_name(r"(time_?|seq(uence)?_?)?(vanilla_?|simple_?)?rnn")}
    if kind == "gru":
        names = {"module": module_name(r"(time_?|seq(uence)?_?)?gru")}
    step_name = ("lstm_step" if lstm else GRU_STEPS[kind][0] if kind in GRU_STEPS
                 else "rnn_step")
    return Spec(kind, ("x", "h0", "Wx", "Wh", "b"), SEQ_AXES,
                Reference(f"{step_name} over time (h0 given"
                          + (f", c0 = 0, gates {', '.join(order)})" if lstm else ")"),
                          lambda args, static: _sequence(step, lstm)(*args),
                          _recurrence_dropped(step, lstm, order)), _sequence_sets(gates),
                names=names, layouts=tuple(LSTM_ORDERS) if kind == "lstm" else
                tuple(GRU_STEPS) if kind == "gru" else ())


def _temporal_affine_sets(seed):
    rng = np.random.default_rng([seed, 18])
    return [InputSet("random", "random x (2, 3, 4), w (4, 5)",
                     (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)) / 2,
                      rng.standard_normal(5))),
            InputSet("batch-of-one", "random x (1, 4, 3), w (3, 2): a batch of one",
                     (rng.standard_normal((1, 4, 3)), rng.standard_normal((3, 2)),
                      rng.standard_normal(2)))]


def temporal_affine_spec() -> Spec:
    return Spec("temporal_affine", ("x", "w", "b"),
                {"x": ("sample", "time", "input"), "w": ("input", "output"),
                 "b": ("output",), "out": ("sample", "time", "output")},
                Reference("x @ w + b over (N, T)", lambda args, static: args[0] @ args[1]
                          + args[2]), _temporal_affine_sets,
                names={"cs231n": r"temporal_(affine|fc|linear|dense)",
                       "module": module_name(r"(time_?|temporal_?)(affine|dense|linear|fc)|"
                                             r"time_?distributed(_?dense)?")})


def _temporal_loss_sets(seed):
    rng = np.random.default_rng([seed, 18])
    y = rng.integers(6, size=(3, 4))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    gap = np.zeros((2, 3, 6))
    gap[..., :2] = 60.0
    return [InputSet("random", "random x (3, 4, 6), a ragged mask",
                     (rng.standard_normal((3, 4, 6)),), (y, mask),
                     note="masked steps contribute nothing"),
            InputSet("large-gap", "x (2, 3, 6) with two top classes 60 above the label's",
                     (gap,), (np.full((2, 3), 5), np.ones((2, 3), bool))),
            InputSet("batch-of-one", "random x (1, 5, 4), a batch of one",
                     (rng.standard_normal((1, 5, 4)),),
                     (rng.integers(4, size=(1, 5)), np.array([[1, 1, 1, 1, 0]], bool)))]


def temporal_softmax_loss_spec() -> Spec:
    def forward(args, static):
        x, y, mask = args[0], jnp.asarray(static[0]), jnp.asarray(static[1])
        logp = jax.nn.log_softmax(x, axis=-1)
        picked = jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        return -jnp.sum(mask * picked) / x.shape[0]

    def alternates(args, static, cotangent):
        x, y = as_np(args[0]), np.asarray(static[0])
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        onehot = np.eye(x.shape[-1])[y]
        g = float(np.asarray(cotangent)) / x.shape[0]
        return [wrong("mask not applied", (g * (p - onehot),),
                      "the backward ignores the mask: masked time steps get a gradient")]

    return Spec("temporal_softmax_loss", ("x",), {"x": ("sample", "time", "class")},
                Reference("-sum(mask * log softmax(x)[y]) / N", forward, alternates),
                _temporal_loss_sets, ("y", "mask"),
                names={"loss": r"temporal_softmax_loss"})


IGNORE = -1  # a time step's label that is no word (padding): it contributes nothing


def _time_loss_sets(seed):
    rng = np.random.default_rng([seed, 18, 3])
    y = rng.integers(6, size=(3, 4))
    y[0, 3] = y[1, 2] = y[1, 3] = IGNORE
    one = rng.integers(4, size=(1, 5))
    one[0, 4] = IGNORE
    return [InputSet("random", "random x (3, 4, 6), labels y (3, 4) with 3 ignored (-1)",
                     (rng.standard_normal((3, 4, 6)),), (y,),
                     note="ignored steps contribute nothing; the mean is over the 9 others"),
            InputSet("random", "random x (2, 3, 5), no label ignored",
                     (rng.standard_normal((2, 3, 5)),), (rng.integers(5, size=(2, 3)),)),
            InputSet("batch-of-one", "random x (1, 5, 4), a batch of one, one label ignored",
                     (rng.standard_normal((1, 5, 4)),), (one,))]


def time_softmax_loss_spec() -> Spec:
    """A softmax loss over a sequence, Deep Learning from Scratch 2's
    ``TimeSoftmaxWithLoss``: x (N, T, V) scores, y (N, T) labels static, -1 where a step is
    ignored; the mean over the steps not ignored of -log softmax(x)[y] (CS231n's
    ``temporal_softmax_loss`` divides the masked sum by N instead)."""
    def forward(args, static):
        y = jnp.asarray(static[0])
        mask = y != IGNORE
        logp = jax.nn.log_softmax(args[0], axis=-1)
        picked = jnp.take_along_axis(logp, jnp.where(mask, y, 0)[..., None], axis=-1)[..., 0]
        return -jnp.sum(jnp.where(mask, picked, 0.0)) / jnp.sum(mask)

    def alternates(args, static, cotangent):
        x, y = as_np(args[0]), np.asarray(static[0])
        mask = y != IGNORE
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        g = float(np.asarray(cotangent)) / mask.sum()
        note = ("the backward gives the ignored steps (label -1) a gradient: multiply it by "
                "the mask as the forward does")
        eye = np.eye(x.shape[-1])
        return [wrong("ignored steps not masked", (g * (p - eye[y]),),  # -1: the last class
                      note),
                wrong("ignored steps not masked (no label)",
                      (g * (p - eye[np.where(mask, y, 0)] * mask[..., None]),), note)]

    return Spec("time_softmax_loss", ("x",), {"x": ("sample", "time", "class")},
                Reference("mean over the steps not ignored (y != -1) of -log softmax(x)[y]",
                          forward, alternates), _time_loss_sets, ("y",),
                names={"module_loss": module_name(
                    r"time_?softmax_?with_?loss|(time|temporal|seq(uence)?)_?(softmax_?)?"
                    r"(cross_?entropy|ce)(_?loss)?")})


# ------------------------------------------------ the deep-learning specialisation's cells

def slipped(f, derivative):
    """``f`` whose gradient is ``derivative(x, y)`` (y = f(x)) instead of f'(x): a known
    wrong backward written as a forward, so that ``jax.vjp`` carries the slip through a
    whole network or sequence (no ``custom_vjp``: the oracle's programs stay keyed)."""
    def g(x):
        y = f(x)
        d = jax.lax.stop_gradient(derivative(x, y))
        return jax.lax.stop_gradient(y) + d * (x - jax.lax.stop_gradient(x))
    return g


def forget_times_cell(ft, c_prev):
    """``ft * c_prev`` whose gradient to ``c_prev`` leaves ``ft`` out (dc_prev = dc_next,
    where dc_next * ft belongs); its gradient to ``ft`` is right."""
    sg = jax.lax.stop_gradient
    return sg(ft * c_prev) + sg(c_prev) * (ft - sg(ft)) + (c_prev - sg(c_prev))


LSTM_ACTS = {"f": jax.nn.sigmoid, "i": jax.nn.sigmoid, "o": jax.nn.sigmoid, "c": jnp.tanh,
             "a": jnp.tanh, "fc": lambda ft, c_prev: ft * c_prev}


def rnn_cell(xt, a_prev, wax, waa, ba, tanh=jnp.tanh):
    """a_next (n_a, m) = tanh(Wax xt + Waa a_prev + ba); ``tanh``: a stand-in with a
    slipped derivative (``slipped``) for the alternates."""
    return tanh(wax @ xt + waa @ a_prev + ba)


def lstm_cell(xt, a_prev, c_prev, wf, bf, wi, bi, wc, bc, wo, bo, acts=None):
    """(a_next, c_next), each (n_a, m), of the specialisation's LSTM cell on concat =
    [a_prev; xt] ((n_a + n_x, m)); ``acts`` replaces entries of ``LSTM_ACTS`` (gates
    "f", "i", "o", candidate "c", the tanh of the cell "a", the product "fc" = ft *
    c_prev) by stand-ins with a slipped derivative, for the alternates."""
    act = {**LSTM_ACTS, **(acts or {})}
    concat = jnp.concatenate([a_prev, xt], axis=0)
    ft, it = act["f"](wf @ concat + bf), act["i"](wi @ concat + bi)
    cct, ot = act["c"](wc @ concat + bc), act["o"](wo @ concat + bo)
    c_next = act["fc"](ft, c_prev) + it * cct
    return ot * act["a"](c_next), c_next


def _one(x, y):
    return jnp.ones_like(x)


# (name, acts, note) of the usual slips of the assignment's backward passes
COLUMN_RNN_SLIPS = (
    ("tanh' at the input", lambda x, y: 1 - x ** 2,
     "tanh' is evaluated at its input z (1 - z^2) instead of from a_next (1 - a_next^2)"),
    ("tanh' as 1 - a", lambda x, y: 1 - y,
     "tanh' is written 1 - a_next where 1 - a_next ** 2 belongs"),
    ("tanh' left out", _one, "the tanh's derivative is never multiplied in: dz = da_next"),
)
GATE_NAMES = {"f": "forget gate", "i": "update gate", "o": "output gate"}
COLUMN_LSTM_SLIPS = tuple(
    [(f"{GATE_NAMES[k]}'s derivative left out", {k: slipped(jax.nn.sigmoid, _one)},
      f"the {GATE_NAMES[k]}'s sigmoid derivative {k}t * (1 - {k}t) is never multiplied in")
     for k in "fio"]
    + [("candidate's tanh' as 1 - cct", {"c": slipped(jnp.tanh, lambda x, y: 1 - y)},
        "the candidate's tanh' is written 1 - cct where 1 - cct ** 2 belongs"),
       ("candidate's tanh' left out", {"c": slipped(jnp.tanh, _one)},
        "the candidate's tanh' (1 - cct ** 2) is never multiplied in"),
       ("tanh'(c_next) as 1 - c_next^2", {"a": slipped(jnp.tanh, lambda x, y: 1 - x ** 2)},
        "the derivative of tanh(c_next) is written 1 - c_next ** 2 where 1 - "
        "np.tanh(c_next) ** 2 belongs"),
       ("tanh'(c_next) left out", {"a": slipped(jnp.tanh, _one)},
        "the gradient through a_next = ot * tanh(c_next) reaches the cell as da_next * ot, "
        "without tanh'(c_next) = 1 - tanh(c_next) ** 2"),
       ("dc_prev without the forget gate", {"fc": forget_times_cell},
        "dc_prev is not multiplied by the forget gate ft (c_next = ft * c_prev + ...)")])

LSTM_SEQUENCE_SLIPS = ("forget gate's derivative left out", "tanh'(c_next) as 1 - c_next^2",
                       "dc_prev without the forget gate")


def _cell_sets(lstm: bool):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 18])
        sets = []
        for n_x, n_a, m, family in ((3, 5, 4, "random"), (2, 3, 1, "batch-of-one")):
            xt, a_prev = rng.standard_normal((n_x, m)), rng.standard_normal((n_a, m))
            weights = _cell_weights(rng, n_x, n_a, lstm)
            args = ((xt, a_prev, rng.standard_normal((n_a, m)), *weights) if lstm
                    else (xt, a_prev, *weights))
            sets.append(InputSet(family, f"xt ({n_x}, {m}), n_a = {n_a} (features first)",
                                 args, note="the specialisation's layout: examples in columns"))
        return sets
    return input_sets


def _cell_weights(rng, n_x, n_a, lstm: bool) -> list:
    """Wf, bf, Wi, bi, Wc, bc, Wo, bo (``lstm``), else Wax, Waa, ba."""
    if not lstm:
        return [rng.standard_normal((n_a, n_x)) / np.sqrt(n_x),
                rng.standard_normal((n_a, n_a)) / np.sqrt(n_a),
                0.3 * rng.standard_normal((n_a, 1))]
    weights = []
    for _ in range(4):
        weights += [rng.standard_normal((n_a, n_a + n_x)) / np.sqrt(n_a + n_x),
                    0.3 * rng.standard_normal((n_a, 1))]
    return weights


def _columns_sequence(lstm: bool, acts=None, cut: bool = False, keep: int | None = None):
    """a (n_a, m, T_x) of the specialisation's cell over the last axis of x (n_x, m, T_x)
    from a0 (n_a, m) (c0 = 0 for the LSTM), through ``_sequence`` (which steps along axis
    1); ``acts``: the cell's slipped stand-ins; ``cut``: the recurrence dropped; ``keep``:
    the parameters' gradients from one step alone (see ``_sequence``)."""
    if lstm:
        def step(x, h, c, weights, _wh, _b):
            return lstm_cell(x, h, c, *weights, acts=acts)
    else:
        tanh = acts or jnp.tanh

        def step(x, h, weights, _wh, _b):
            return rnn_cell(x, h, *weights, tanh=tanh)

    def forward(x, a0, *weights):
        out = _sequence(step, lstm, cut, keep)(jnp.swapaxes(x, 1, 2), a0, weights, None,
                                               None)
        return jnp.transpose(out, (0, 2, 1))  # (n_a, T, m) -> (n_a, m, T)
    return forward


def _columns_alternates(lstm: bool, sequence: bool):
    """The slips of ``COLUMN_RNN_SLIPS`` / ``COLUMN_LSTM_SLIPS`` carried through the cell (or the
    sequence), plus, for a sequence, the recurrence dropped; one compiled program."""
    slips = COLUMN_LSTM_SLIPS if lstm else tuple((n, slipped(jnp.tanh, d), note)
                                          for n, d, note in COLUMN_RNN_SLIPS)
    if lstm and sequence:  # each slip costs a sequence's backward: the usual ones only
        slips = tuple(s for s in slips if s[0] in LSTM_SEQUENCE_SLIPS)

    def cell(acts):
        if lstm:
            return lambda *a: join_outputs(lstm_cell(*a, acts=acts))
        return lambda *a: rnn_cell(*a, tanh=acts)

    def alternates(args, static, cotangent):
        funs = [(_columns_sequence(lstm, acts) if sequence else cell(acts))
                for _, acts, _ in slips]
        names = [(n, note, "wrong-derivative") for n, _, note in slips]
        if sequence:
            funs.append(_columns_sequence(lstm, cut=True))
            names.append(("recurrence dropped", "each step's backward gets only da[:, :, t]: "
                          "the gradient da_prev flowing back from step t + 1 is not added "
                          "(`da[:, :, t] + da_prevt` belongs)", "missing-accumulation"))
        if sequence:  # the sum over time of a parameter's gradient kept one step: its
            # first (a loop from the last step down ends there) or its last
            for keep, which in ((0, "the first"), (-1, "the last")):
                funs.append(_columns_sequence(lstm, keep=keep))
                names.append((f"{which} step only", f"a parameter's gradient holds {which} "
                              "time step's term alone: `dW = dWt` where `dW += dWt` "
                              "belongs", "missing-accumulation"))
        out = [Alternate(n, grads, False, kind, note)
               for (n, note, kind), grads in zip(names, vjps(funs, args, cotangent),
                                                 strict=True)]
        if sequence:  # (the one-step ones say nothing of x and a0: their own gradients)
            out = [a._replace(grads=(None, None, *a.grads[2:])) if a.name.endswith(
                "step only") else a for a in out]
        if lstm and not sequence:
            out.append(_dc_prev_without_hidden_path(args, cotangent))
        return out
    return alternates


def _dc_prev_without_hidden_path(args, cotangent) -> Alternate:
    """An LSTM cell whose dc_prev is dc_next * ft alone (the path through a_next left
    out)."""
    xt, a_prev, c_prev, wf, bf = (as_np(a) for a in args[:5])
    n_a, m = a_prev.shape
    _, dc = split_outputs(as_np(cotangent), [(n_a, m), (n_a, m)])
    ft = 1 / (1 + np.exp(-(wf @ np.concatenate([a_prev, xt]) + bf)))
    return wrong("dc_prev without the path through a_next", (None, None, dc * ft)
                 + (None,) * 8, "dc_prev = dc_next * ft: the gradient reaching the cell "
                 "through a_next = ot * tanh(c_next) is not added to dc_next")


CELL_AXES = {"xt": ("input", "example"), "a_prev": ("hidden", "example"),
             "c_prev": ("hidden", "example"), "Wax": ("hidden", "input"),
             "Waa": ("hidden", "hidden"), "ba": ("hidden", "1"), "out": ("hidden", "example"),
             **{f"W{k}": ("hidden", "concat") for k in "fico"},
             **{f"b{k}": ("hidden", "1") for k in "fico"}}
LSTM_CELL_ARGS = ("xt", "a_prev", "c_prev", "Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")


def rnn_cell_spec() -> Spec:
    """The specialisation's ``rnn_cell_forward(xt, a_prev, parameters)`` (course 5, week
    1): a_next = tanh(Wax xt + Waa a_prev + ba), examples in columns (xt (n_x, m), a_prev
    (n_a, m), ba (n_a, 1)); its backward returns the dict {"dxt", "da_prev", "dWax",
    "dWaa", "dba"} (the prediction yt_pred is not differentiated). The dicts are mapped
    by ``adapters.specialisation_rnn``."""
    return Spec("rnn_cell", ("xt", "a_prev", "Wax", "Waa", "ba"),
                {k: CELL_AXES[k] for k in ("xt", "a_prev", "Wax", "Waa", "ba", "out")},
                Reference("tanh(Wax xt + Waa a_prev + ba)", lambda args, static: rnn_cell(*args),
                          _columns_alternates(False, False)), _cell_sets(False))


def lstm_cell_spec() -> Spec:
    """The specialisation's ``lstm_cell_forward(xt, a_prev, c_prev, parameters)``: concat
    = [a_prev; xt], forget/update/output gates sigmoid(W concat + b), candidate tanh(Wc
    concat + bc); outputs a_next and c_next (two cotangents: its backward takes
    ``da_next, dc_next``)."""
    return Spec("lstm_cell", LSTM_CELL_ARGS, {k: CELL_AXES[k] for k in LSTM_CELL_ARGS},
                Reference("the specialisation's LSTM cell (a_next, c_next flattened)",
                          lambda args, static: join_outputs(lstm_cell(*args)),
                          _columns_alternates(True, False)),
                _cell_sets(True), outputs=2)


def _columns_sequence_sets(lstm: bool):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 19])
        sets = []
        for n_x, n_a, m, t, family in ((3, 5, 2, 3, "random"), (2, 3, 1, 2, "batch-of-one")):
            args = (rng.standard_normal((n_x, m, t)), rng.standard_normal((n_a, m)),
                    *_cell_weights(rng, n_x, n_a, lstm))
            sets.append(InputSet(family, f"x ({n_x}, {m}, {t}), n_a = {n_a} (features first, "
                                 "time last)", args,
                                 note="the specialisation's layout: examples in columns"))
        return sets
    return input_sets


def columns_sequence_spec(lstm: bool) -> Spec:
    """The specialisation's ``rnn_forward(x, a0, parameters) -> (a, y_pred, caches)`` /
    ``lstm_forward`` (kinds ``rnn_columns``, ``lstm_columns``): the cell over the last
    axis of x (n_x, m, T_x) -> a (n_a, m, T_x), c0 = 0; only ``a`` carries a cotangent
    (its backward is ``rnn_backward(da, caches)``)."""
    weights = LSTM_CELL_ARGS[3:] if lstm else ("Wax", "Waa", "ba")
    axes = {"x": ("input", "example", "time"), "a0": ("hidden", "example"),
            **{k: CELL_AXES[k] for k in weights}, "out": ("hidden", "example", "time")}
    cell = "lstm_cell" if lstm else "rnn_cell"
    return Spec("lstm_columns" if lstm else "rnn_columns", ("x", "a0", *weights), axes,
                Reference(f"the specialisation's {cell} over the last axis (a0 given"
                          + (", c0 = 0)" if lstm else ")"),
                          lambda args, static: _columns_sequence(lstm)(*args),
                          _columns_alternates(lstm, True)), _columns_sequence_sets(lstm))


SPECS = {"rnn_cell": rnn_cell_spec, "lstm_cell": lstm_cell_spec,
         "rnn_columns": lambda: columns_sequence_spec(False),
         "lstm_columns": lambda: columns_sequence_spec(True),
         "rnn_step": rnn_step_spec, "rnn": lambda: sequence_spec("rnn"),
         "lstm_step": lstm_step_spec, "lstm": lambda: sequence_spec("lstm"),
         "lstm_step_ifgo": lambda: lstm_step_spec("lstm_step_ifgo"),
         "lstm_step_fgio": lambda: lstm_step_spec("lstm_step_fgio"),
         "lstm_ifgo": lambda: sequence_spec("lstm_ifgo"),
         "lstm_fgio": lambda: sequence_spec("lstm_fgio"),
         "gru_step": gru_step_spec, "gru_step_zrn": lambda: gru_step_spec("zrn"),
         "gru_step_reset_before": gru_reset_before_spec,
         **{k: (lambda k=k: sequence_spec(k)) for k in GRU_STEPS},
         "temporal_affine": temporal_affine_spec,
         "temporal_softmax_loss": temporal_softmax_loss_spec,
         "time_softmax_loss": time_softmax_loss_spec}
