"""RNN/LSTM/GRU steps and sequences, temporal affine and temporal softmax loss: correct
on every input set; tanh' at the input, gates in another order, the recurrence dropped
and the mask ignored are named. lstm_step has two outputs and two upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, layers_of, run_mutant

FIXTURE = "cs231n_rnn_layers.py"
KINDS = ["rnn_step", "rnn", "lstm_step", "lstm", "gru_step", "temporal_affine",
         "temporal_softmax_loss"]


@pytest.mark.parametrize("name", KINDS)
def test_correct_recurrent_layers_are_correct(name):
    report = check(FIXTURES / FIXTURE, name)
    assert_correct(report)
    assert report.kind == name


def test_lstm_step_backward_gets_one_cotangent_per_output(x64):
    layer = layers_of(FIXTURES / FIXTURE)["lstm_step"]
    s = layer.input_sets(0)[0]
    n, h = s.args[1].shape
    out, backward = layer.vjp(s.args, s.static)
    assert out.shape == (2 * n * h,)  # next_h and next_c, flattened and joined
    only_c = np.concatenate([np.zeros(n * h), np.ones(n * h)])
    grads = backward(only_c)
    assert len(grads) == 6
    # dnext_c alone reaches prev_c through the forget gate only
    np.testing.assert_allclose(grads[2], s.args[2] * 0 + _forget(s.args), rtol=1e-12)


def _forget(args):
    x, h, _, wx, wh, b = args
    size = h.shape[1]
    a = x @ wx + h @ wh + b
    return 1 / (1 + np.exp(-a[:, size:2 * size]))


MUTANTS = [
    ("rnn-tanh-at-input", "rnn_step", "    da = dnext_h * (1 - next_h ** 2)",
     "    a = x.dot(Wx) + prev_h.dot(Wh) + b\n    da = dnext_h * (1 - a ** 2)",
     ["x", "prev_h", "Wx", "Wh", "b"], "wrong-derivative", "tanh' at the input"),
    ("lstm-gate-order", "lstm_step",
     "    da = np.hstack((di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), "
     "dg * (1 - g ** 2)))",
     "    da = np.hstack((di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), "
     "do * o * (1 - o)))",
     ["x", "prev_h", "Wx", "Wh", "b"], "wrong-derivative", "gates i, f, g, o"),
    ("rnn-recurrence-dropped", "rnn",
     "rnn_step_backward(dh[:, step] + dprev, cache[step])",
     "rnn_step_backward(dh[:, step], cache[step])",
     ["x", "h0", "Wx", "Wh", "b"], "missing-accumulation", "recurrence"),
    ("gru-gates-swapped", "gru_step", "    dax = np.hstack((dr, dz, dn))\n"
     "    dah = np.hstack((dr, dz, dn * r))",
     "    dax = np.hstack((dz, dr, dn))\n    dah = np.hstack((dz, dr, dn * r))",
     ["x", "prev_h", "Wx", "Wh", "b"], "wrong-derivative", "z, r, n"),
    ("temporal-loss-mask-ignored", "temporal_softmax_loss",
     "    dx_flat *= mask_flat[:, None]\n", "", ["x"], "wrong-derivative", "mask"),
    ("temporal-affine-db-mean", "temporal_affine", "    db = dout.sum(axis=(0, 1))",
     "    db = dout.mean(axis=(0, 1))", ["b"], "scaled", None),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_recurrent_mutants_are_named(mutant, tmp_path):
    _, layer, old, new, quantities, kind, rule = mutant
    run_mutant(tmp_path, FIXTURE, layer, old, new, quantities, kind, rule)


LSTM_MORE = [
    ("dprev-c-without-hidden-path", "    dprev_c = dc * f", "    dprev_c = dnext_c * f",
     ["prev_c"], "dprev_c without"),
    ("cell-tanh-derivative-left-out", "    dc = dnext_c + dnext_h * o * (1 - tc ** 2)",
     "    dc = dnext_c + dnext_h * o", ["x", "prev_h", "prev_c", "Wx", "Wh", "b"], "tanh'"),
]


ALL_STEP = ["x", "prev_h", "Wx", "Wh", "b"]
GRU_SLIPS = [  # (id, old, new, quantities, rule)
    ("n-sigmoid-derivative", "    dn = dnext_h * (1 - z) * (1 - n ** 2)",
     "    dn = dnext_h * (1 - z) * n * (1 - n)", ALL_STEP, "n given sigmoid's"),
    ("z-other-convention", "    dz = dnext_h * (prev_h - n) * z * (1 - z)",
     "    dz = dnext_h * (n - prev_h) * z * (1 - z)", ALL_STEP, "other convention"),
    ("reset-left-out-of-dah", "    dah = np.hstack((dr, dz, dn * r))",
     "    dah = np.hstack((dr, dz, dn))", ["prev_h", "Wh"], "reset gate left out"),
]


@pytest.mark.parametrize("mutant", GRU_SLIPS, ids=[m[0] for m in GRU_SLIPS])
def test_gru_step_slips_are_named(mutant, tmp_path):
    _, old, new, quantities, rule = mutant
    run_mutant(tmp_path, FIXTURE, "gru_step", old, new, quantities, "wrong-derivative", rule)


DA = ("    da = np.hstack((di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), "
      "dg * (1 - g ** 2)))")
LSTM_SLIPS = [  # (id, old, new, quantities, rule): the gates' derivatives slipped
    ("g-sigmoid-derivative", DA, DA.replace("dg * (1 - g ** 2)", "dg * g * (1 - g)"),
     ALL_STEP, "g given sigmoid's derivative"),
    ("gates-tanh-derivative", DA, "    da = np.hstack((di * (1 - i ** 2), df * (1 - f ** 2), "
     "do * (1 - o ** 2), dg * (1 - g ** 2)))", ALL_STEP, "sigmoid gates given tanh's"),
    ("forget-from-next-c", "    df = dc * prev_c", "    df = dc * next_c", ALL_STEP,
     "forget gate from next_c"),
    ("output-from-cell", "    do = dnext_h * tc", "    do = dnext_h * next_c", ALL_STEP,
     "output gate from the cell"),
    ("dprev-c-without-forget", "    dprev_c = dc * f", "    dprev_c = dc", ["prev_c"],
     "without the forget gate"),
]


@pytest.mark.parametrize("mutant", LSTM_SLIPS, ids=[m[0] for m in LSTM_SLIPS])
def test_lstm_step_slips_are_named(mutant, tmp_path):
    _, old, new, quantities, rule = mutant
    run_mutant(tmp_path, FIXTURE, "lstm_step", old, new, quantities, "wrong-derivative", rule)


@pytest.mark.parametrize("order", ["ifog", "ifgo", "fgio"])
def test_the_slips_numpy_backward_without_a_slip_is_the_reference(order, x64):
    """The named slips come from a NumPy backward (no compile per input set): without a
    slip it is jax.vjp of the reference, for a step and through time."""
    from conftest import tree_rel_err

    from jaxcnn.check.autodiff import vjp
    from jaxcnn.check.catalogue import recurrent as r
    from jaxcnn.check.catalogue.base import join_outputs

    rng = np.random.default_rng(3)
    x, h, c = (rng.standard_normal(shape) for shape in ((3, 2), (3, 4), (3, 4)))
    wx, wh, b = (rng.standard_normal(shape) / 2 for shape in ((2, 16), (4, 16), (16,)))
    dh, dc = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    want = vjp(lambda *a: join_outputs(r.lstm_step(*a, order=order)), (x, h, c, wx, wh, b),
               join_outputs((dh, dc)))
    assert tree_rel_err(r.lstm_step_backward(x, h, c, wx, wh, b, dh, dc, order), want) < 1e-12
    xs, dout = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 4))

    def step(x, h, c, wx, wh, b):
        return r.lstm_step(x, h, c, wx, wh, b, order)
    want = vjp(r._sequence(step, lstm=True), (xs, h, wx, wh, b), dout)
    assert tree_rel_err(r.lstm_sequence_backward(xs, h, wx, wh, b, dout, order), want) < 1e-12


SEQ = ["x", "h0", "Wx", "Wh", "b"]
LSTM_SEQUENCE_SLIPS = [  # a slip inside the step, and each recurrence dropped, over time
    ("g-sigmoid-derivative", DA, DA.replace("dg * (1 - g ** 2)", "dg * g * (1 - g)"),
     "wrong-derivative", "g given sigmoid's derivative"),
    ("dh-next-not-accumulated", "            dh[:, step] + dprev_h, dprev_c, cache[step])",
     "            dh[:, step], dprev_c, cache[step])", "missing-accumulation",
     "dh_next not accumulated"),
    ("dc-next-not-carried", "            dh[:, step] + dprev_h, dprev_c, cache[step])",
     "            dh[:, step] + dprev_h, 0 * dprev_c, cache[step])", "missing-accumulation",
     "dc_next not carried"),
]


@pytest.mark.parametrize("mutant", LSTM_SEQUENCE_SLIPS, ids=[m[0] for m in LSTM_SEQUENCE_SLIPS])
def test_lstm_sequence_slips_are_named(mutant, tmp_path):
    _, old, new, kind, rule = mutant
    report = run_mutant(tmp_path, FIXTURE, "lstm", old, new, SEQ, kind, rule)
    assert report.kind == "lstm"


@pytest.mark.parametrize("mutant", LSTM_MORE, ids=[m[0] for m in LSTM_MORE])
def test_lstm_cell_mutants_are_named(mutant, tmp_path):
    _, old, new, quantities, rule = mutant
    run_mutant(tmp_path, FIXTURE, "lstm_step", old, new, quantities, "wrong-derivative", rule)


# --- the deep-learning specialisation's cells, through their dialect's adapter
# (adapters.specialisation_rnn: parameters and gradients in dicts)

DLS_RNN = FIXTURES / "dialects" / "specialisation_rnn.py"


def _dls(path, lstm: bool):
    from jaxcnn.check import find_layers, load_file

    name = "lstm_cell_forward" if lstm else "rnn_cell_forward"
    return next(layer for layer in find_layers(load_file(path), str(path), []).layers
                if layer.name == name)


@pytest.mark.parametrize("lstm", [False, True])
def test_the_specialisations_cells_are_correct(lstm):
    from jaxcnn.check import check_layer

    layer = _dls(DLS_RNN, lstm)
    assert layer.kind == ("lstm_cell" if lstm else "rnn_cell")
    assert_correct(check_layer(layer, fd_seconds=0.02))


def test_the_specialisations_rnn_cell_with_tanh_at_its_input_is_named(tmp_path):
    from catalogue_helpers import assert_named

    from jaxcnn.check import check_layer

    path = tmp_path / "specialisation_rnn.py"
    source = DLS_RNN.read_text()
    old = "    dtanh = (1 - a_next ** 2) * da_next"
    assert source.count(old) == 1
    path.write_text(source.replace(
        old, "    z = np.dot(Waa, a_prev) + np.dot(Wax, xt) + parameters[\"ba\"]\n"
             "    dtanh = (1 - z ** 2) * da_next"))
    report = check_layer(_dls(path, False), fd_seconds=0.02)
    assert_named(report, ["xt", "a_prev", "Wax", "Waa", "ba"], "wrong-derivative", "tanh'")


def test_a_gru_whose_dprev_h_overwrites_its_direct_term_is_missing_accumulation(tmp_path):
    run_mutant(tmp_path, FIXTURE, "gru_step", "    dprev_h = dah.dot(Wh.T) + dnext_h * z",
               "    dprev_h = dnext_h * z\n    dprev_h = dah.dot(Wh.T)", ["prev_h"],
               "missing-accumulation", "direct path")


def test_a_gru_with_its_gates_in_z_r_n_order_is_checked_in_that_layout(tmp_path):
    source = (FIXTURES / FIXTURE).read_text()
    swaps = [("    r = sigmoid(ax[:, :hidden] + ah[:, :hidden])\n"
              "    z = sigmoid(ax[:, hidden:2 * hidden] + ah[:, hidden:2 * hidden])",
              "    z = sigmoid(ax[:, :hidden] + ah[:, :hidden])\n"
              "    r = sigmoid(ax[:, hidden:2 * hidden] + ah[:, hidden:2 * hidden])"),
             ("    dax = np.hstack((dr, dz, dn))\n    dah = np.hstack((dr, dz, dn * r))",
              "    dax = np.hstack((dz, dr, dn))\n    dah = np.hstack((dz, dr, dn * r))")]
    for old, new in swaps:
        assert source.count(old) == 1
        source = source.replace(old, new)
    path = tmp_path / FIXTURE
    path.write_text(source)
    report = check(path, "gru_step")
    assert report.kind == "gru_step_zrn"
    assert_correct(report)


# ------------------------------------------------------------------ module style

MODULES = "module_layers.py"


@pytest.mark.parametrize("name,kind", [("SequenceRNN", "rnn"), ("LSTM", "lstm_ifgo"),
                                       ("TimeDense", "temporal_affine")])
def test_module_style_sequence_layers_get_the_catalogue_reference(name, kind):
    report = check(FIXTURES / MODULES, name)
    assert_correct(report)
    assert report.kind == kind
    assert all(c.oracle == "exact" for c in report.checks), [c.oracle for c in report.checks]
    shapes = [r.inputs for r in report.checks[0].inputs]
    assert any("(1," in s for s in shapes), shapes  # a batch of one


def test_module_style_rnn_weights_are_not_square():
    layer = layers_of(FIXTURES / MODULES)["SequenceRNN"]
    x, wx, wh, b = layer.input_sets(0)[0].args
    assert wx.shape[0] != wx.shape[1] and x.shape[0] != x.shape[1] != x.shape[2]


@pytest.mark.parametrize("layer,edits", [
    ("SequenceRNN", [("            da = (dhs[:, t] + dh) * (1 - self.hs[t + 1] ** 2)",
                      "            da = dhs[:, t] * (1 - self.hs[t + 1] ** 2)")]),
    ("LSTM", [("            dh_t = dhs[:, t] + dh\n", "            dh_t = dhs[:, t]\n"),
              ("            dc_t = dc + dh_t", "            dc_t = dh_t")]),
])
def test_module_style_sequence_with_the_recurrence_dropped_is_named(layer, edits, tmp_path):
    source = (FIXTURES / MODULES).read_text()
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    path = tmp_path / MODULES
    path.write_text(source)
    report = check(path, layer)
    assert report.check(report.checks[0].quantity).kind == "missing-accumulation", [
        (c.quantity, c.kind) for c in report.checks]


def test_an_lstm_of_another_gate_order_is_matched_to_its_own_layout(tmp_path):
    """Deep Learning from Scratch 2 splits the blocks f, g, i, o: its layout, not a
    wrong gradient."""
    source = (FIXTURES / MODULES).read_text().replace(
        "            i, f = _sigmoid(a[:, :hid]), _sigmoid(a[:, hid:2 * hid])\n"
        "            g, o = np.tanh(a[:, 2 * hid:3 * hid]), _sigmoid(a[:, 3 * hid:])\n",
        "            f, g = _sigmoid(a[:, :hid]), np.tanh(a[:, hid:2 * hid])\n"
        "            i, o = _sigmoid(a[:, 2 * hid:3 * hid]), _sigmoid(a[:, 3 * hid:])\n").replace(
        "            da = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f),\n"
        "                                 dc_t * i * (1 - g ** 2), dh_t * tc * o * (1 - o)], "
        "axis=1)",
        "            da = np.concatenate([dc_t * c_prev * f * (1 - f), dc_t * i * (1 - g ** 2),\n"
        "                                 dc_t * g * i * (1 - i), dh_t * tc * o * (1 - o)], "
        "axis=1)")
    path = tmp_path / MODULES
    path.write_text(source)
    report = check(path, "LSTM")
    assert_correct(report)
    assert report.kind == "lstm_fgio"


SEQ_MODULE = ["xs", "Wx", "Wh", "b"]
MODULE_LSTM_SLIPS = [  # a module-style LSTM over time (gates i, f, g, o): its slips named
    ("forget-from-next-c", "dc_t * c_prev * f * (1 - f)", "dc_t * c_next * f * (1 - f)",
     "wrong-derivative", "forget gate from next_c"),
    ("dc-next-not-carried", "            dc = dc_t * f\n", "            dc = 0 * dc_t\n",
     "missing-accumulation", "dc_next not carried"),
]


@pytest.mark.parametrize("mutant", MODULE_LSTM_SLIPS, ids=[m[0] for m in MODULE_LSTM_SLIPS])
def test_module_style_lstm_slips_are_named(mutant, tmp_path):
    _, old, new, kind, rule = mutant
    report = run_mutant(tmp_path, MODULES, "LSTM", old, new,
                        SEQ_MODULE, kind, rule)
    assert report.kind == "lstm_ifgo"
