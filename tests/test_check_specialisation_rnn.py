"""The deep-learning specialisation's "Building a Recurrent Neural Network - Step by Step"
(course 5, week 1): rnn_cell_forward / rnn_forward / lstm_cell_forward / lstm_forward and
their backwards (parameters and gradients in dicts, examples in columns, time last) are
found and checked against the catalogue's cells; the assignment's usual slips are named
in the cell and carried through the sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jaxcnn.check import check_layer, find_layers, load_file

FIXTURE = Path(__file__).parent / "fixtures" / "dialects" / "specialisation_rnn.py"
CELL = ("xt", "a_prev", "Wax", "Waa", "ba")
SEQ = ("x", "a0", "Wax", "Waa", "ba")
LSTM_W = ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")


def layers(path: Path, names=None) -> dict:
    found = find_layers(load_file(path), str(path), [])
    return {la.name: la for la in found.layers if names is None or la.name in names}


def verdicts(path: Path, names) -> dict:
    """{layer: {quantity: (kind, rule)}} of the layers ``names`` found in ``path``."""
    return {n: {c.quantity: (c.kind, c.rule) for c in check_layer(la, fd_seconds=0.02).checks}
            for n, la in layers(path, names).items()}


def planted(tmp_path: Path, old: str, new: str) -> Path:
    source = FIXTURE.read_text()
    assert source.count(old) == 1, old
    path = tmp_path / "specialisation_rnn.py"
    path.write_text(source.replace(old, new))
    return path


def test_the_four_pairs_are_found_with_their_kinds():
    found = layers(FIXTURE)
    assert {n: la.kind for n, la in found.items()} == {
        "rnn_cell_forward": "rnn_cell", "rnn_forward": "rnn_columns",
        "lstm_cell_forward": "lstm_cell", "lstm_forward": "lstm_columns"}
    assert found["lstm_cell_forward"].arg_names == ("xt", "a_prev", "c_prev", *LSTM_W)
    assert found["lstm_forward"].arg_names == ("x", "a0", *LSTM_W)


def test_the_right_code_is_correct_everywhere():
    for name, checks in verdicts(FIXTURE, None).items():  # every layer, once
        assert all(kind == "correct" for kind, _ in checks.values()), (name, checks)


def test_the_sequence_reference_is_the_cell_over_the_last_axis(x64):
    layer = layers(FIXTURE)["rnn_forward"]
    s = layer.input_sets(0)[0]
    x, a0, wax, waa, ba = s.args
    a = np.asarray(layer.reference.forward(s.args, s.static))
    assert a.shape == (a0.shape[0], x.shape[1], x.shape[2])
    step = np.tanh(wax @ x[:, :, 0] + waa @ a0 + ba)
    np.testing.assert_allclose(a[:, :, 0], step, rtol=1e-12)
    np.testing.assert_allclose(a[:, :, 1], np.tanh(wax @ x[:, :, 1] + waa @ step + ba),
                               rtol=1e-12)


def test_tanh_derivative_as_one_minus_a_is_named_in_the_cell_and_the_sequence(tmp_path):
    path = planted(tmp_path, "    dtanh = (1 - a_next ** 2) * da_next",
                   "    dtanh = (1 - a_next) * da_next")
    v = verdicts(path, ("rnn_cell_forward", "rnn_forward"))
    for name, quantities in (("rnn_cell_forward", CELL), ("rnn_forward", SEQ)):
        for q in quantities:
            assert v[name][q] == ("wrong-derivative", "tanh' as 1 - a"), (name, q, v[name][q])


def test_rnn_backward_without_the_next_steps_gradient_is_missing_accumulation(tmp_path):
    path = planted(tmp_path, "rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])",
                   "rnn_cell_backward(da[:, :, t], caches[t])")
    v = verdicts(path, ("rnn_cell_forward", "rnn_forward"))
    assert all(kind == "correct" for kind, _ in v["rnn_cell_forward"].values())
    for q in SEQ:
        assert v["rnn_forward"][q][0] == "missing-accumulation", (q, v["rnn_forward"][q])


def test_a_parameter_gradient_kept_from_one_step_is_missing_accumulation(tmp_path):
    """A tester's `dWaa = dWaat` (for `+=`) inside rnn_backward's loop was unclassified:
    the sum over time kept one term, here the first step's (the loop runs backwards)."""
    path = planted(tmp_path, '        dWaa += gradients["dWaa"]',
                   '        dWaa = gradients["dWaa"]')
    v = verdicts(path, ("rnn_forward",))["rnn_forward"]
    assert v["Waa"] == ("missing-accumulation", "the first step only")
    assert all(v[q][0] == "correct" for q in v if q != "Waa"), v


def test_dba_summed_over_the_examples_axis_is_wrong_shape(tmp_path):
    path = planted(tmp_path, "    dba = np.sum(dtanh, axis=1, keepdims=True)",
                   "    dba = np.sum(dtanh, axis=0, keepdims=True)")
    v = verdicts(path, ("rnn_cell_forward",))["rnn_cell_forward"]
    assert v["ba"][0] == "wrong-shape"
    assert all(v[q][0] == "correct" for q in CELL if q != "ba")


@pytest.mark.parametrize("old, new, cell_wrong, rule, sequence", [
    ("    dft = dcell * c_prev * ft * (1 - ft)", "    dft = dcell * c_prev",
     ("xt", "a_prev", "Wf", "bf"), "forget gate's derivative left out", False),
    ("    dc_prev = dcell * ft", "    dc_prev = dcell", ("c_prev",),
     "dc_prev without the forget gate", True),
], ids=["forget-gate-derivative", "dc-prev-without-forget-gate"])
def test_lstm_slips_are_named_in_the_cell_and_carried_through_the_sequence(
        tmp_path, old, new, cell_wrong, rule, sequence):
    names = ("lstm_cell_forward", "lstm_forward") if sequence else ("lstm_cell_forward",)
    v = verdicts(planted(tmp_path, old, new), names)
    for q, (kind, got) in v["lstm_cell_forward"].items():
        assert (kind, got) == (("wrong-derivative", rule) if q in cell_wrong
                               else ("correct", None)), (q, kind, got)
    if sequence:  # every gradient of the sequence goes through dc_prev
        assert set(v["lstm_forward"].values()) == {("wrong-derivative", rule)}, v


def test_the_lstm_cells_tanh_of_c_next_at_its_input_is_named(tmp_path):
    path = planted(tmp_path, "    dcell = dc_next + da_next * ot * (1 - np.tanh(c_next) ** 2)",
                   "    dcell = dc_next + da_next * ot * (1 - c_next ** 2)")
    v = verdicts(path, ("lstm_cell_forward",))["lstm_cell_forward"]
    assert v["c_prev"] == ("wrong-derivative", "tanh'(c_next) as 1 - c_next^2")
    assert v["Wo"] == ("correct", None)  # dot uses tanh(c_next) itself


def test_test_case_builders_and_evaluation_helpers_are_skipped_with_a_reason():
    path = FIXTURE.parent / "not_layers.py"
    found = find_layers(load_file(path), str(path), [])
    assert sorted(la.name for la in found.layers) == ["relu", "tanh"]
    skipped = dict(found.skipped)
    for name in ("linear_forward_test_case", "linear_backward_test_case",
                 "L_model_forward_test_case_2hidden", "rnn_cell_forward_tests"):
        assert "test-case builder" in skipped[name], (name, skipped)
    assert "torch.no_grad()" in skipped["split_loss"]
    assert "takes no array (split)" in skipped["eval_loss"]


LOGISTIC = FIXTURE.parent / "logistic.py"


def _propagate(path: Path) -> dict:
    found = find_layers(load_file(path), str(path), [])
    (layer,) = [la for la in found.layers if la.name == "propagate"]
    assert layer.kind == "logistic_regression"
    return {c.quantity: (c.kind, c.scale) for c in check_layer(layer, fd_seconds=0.02).checks}


def test_logistic_regressions_propagate_is_checked_exactly():
    assert _propagate(LOGISTIC) == {"w": ("correct", None), "b": ("correct", None)}


@pytest.mark.parametrize("old, new, want", [
    ("    dw = np.dot(X, (A - Y).T) / m", "    dw = np.dot(X, (A - Y).T)",
     {"w": ("scaled", pytest.approx(6.0)), "b": ("correct", None)}),
    ("    db = np.sum(A - Y) / m", "    db = np.sum(Y - A) / m",
     {"w": ("correct", None), "b": ("sign-flipped", pytest.approx(-1.0))}),
    ("    db = np.sum(A - Y) / m", "    db = (A - Y) / m",
     {"w": ("correct", None), "b": ("wrong-shape", None)}),
], ids=["one-over-m-left-out", "sign-of-a-minus-y", "db-not-summed"])
def test_logistic_regressions_slips_are_named(tmp_path, old, new, want):
    source = LOGISTIC.read_text()
    assert source.count(old) == 1
    path = tmp_path / "logistic.py"
    path.write_text(source.replace(old, new))
    got = _propagate(path)
    assert {q: got[q] for q in want} == want, got


def test_a_gates_gradient_named_for_the_gate_is_its_inputs_and_not_a_first_wrong_step(
        tmp_path):
    """The exercise's ``dot = da_next * np.tanh(c_next) * ot * (1 - ot)`` is the gradient
    of the output gate's input (``ot = sigmoid(...)``): right, so the first wrong step of a
    cell whose da_prev reads other weights is da_prev's line, not dot's."""
    path = planted(tmp_path, "    da_prev = (np.dot(Wf[:, :n_a].T, dft)",
                   "    da_prev = (np.dot(Wf[:, :n_a].T, 2 * dft)")
    report = check_layer(layers(path)["lstm_cell_forward"], fd_seconds=0.02)
    first = report.first_wrong_step
    assert first is not None and first.name == "da_prev", first
    assert {"dot", "dcct", "dit", "dft"} <= set(first.right_before)


CHAR = FIXTURE.parent / "char_rnn.py"


def _char(path: Path):
    found = find_layers(load_file(path), str(path), [])
    (layer,) = found.layers
    assert layer.kind == "char_rnn"
    return {c.quantity: c.kind for c in check_layer(layer, fd_seconds=0.02).checks}, dict(
        found.skipped)


def test_the_character_models_rnn_forward_and_backward_are_one_network():
    verdict, skipped = _char(CHAR)
    assert verdict == dict.fromkeys(("Wax", "Waa", "Wya", "b", "by"), "correct")
    assert "checked through them" in skipped["rnn_step_forward"]
    assert "only sizes" in skipped["get_initial_loss"]


def test_the_character_models_dropped_recurrence_is_found(tmp_path):
    source = CHAR.read_text()
    old = '    da = np.dot(parameters["Wya"].T, dy) + gradients["da_next"]'
    path = tmp_path / "char_rnn.py"
    path.write_text(source.replace(old, '    da = np.dot(parameters["Wya"].T, dy)'))
    verdict, _ = _char(path)
    assert verdict["Wya"] == verdict["by"] == "correct"
    assert all(verdict[q] != "correct" for q in ("Wax", "Waa", "b")), verdict
