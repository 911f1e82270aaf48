"""`jaxcnn check` reaches the "neural network from scratch" tutorials: layers whose
constructor takes an activation and its derivative (`ActivationLayer(tanh, tanh_prime)`,
built once per f / f_prime pair of the file, or of the other files checked with it),
`forward_propagation` / `backward_propagation(output_error, learning_rate)` that update in
place, samples in columns, and the losses beside them. Correct code is `correct`; each
planted bug is named with its kind on its quantity. One check of each fixture per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxcnn.check import check_layer, find_layers, load_file
from jaxcnn.check.api import check_sources

DIALECTS = Path(__file__).parent / "fixtures" / "dialects"


def _verdicts(name: str) -> dict:
    """{(layer, quantity): (kind, rule, scale, oracle)} of a fixture's layers."""
    path = DIALECTS / name
    out = {}
    for layer in find_layers(load_file(path), str(path)).layers:
        for c in check_layer(layer).checks:
            out[(layer.name, c.quantity)] = (c.kind, c.rule, c.scale, c.oracle)
    return out


@pytest.fixture(scope="module")
def correct() -> dict:
    return _verdicts("scratch_network.py")


@pytest.fixture(scope="module")
def bugs() -> dict:
    return _verdicts("scratch_bugs.py")


def test_an_activation_layer_is_built_with_each_function_pair_of_its_file(correct):
    layers = {name for name, _ in correct}
    assert {"ActivationLayer(tanh, tanh_prime)", "ActivationLayer(sigmoid, sigmoid_prime)",
            "ActivationLayer(relu, relu_prime)", "FCLayer", "tanh", "mse",
            "binary_cross_entropy"} <= layers
    assert {k: v[0] for k, v in correct.items() if v[0] != "correct"} == {}
    # the kind comes from the function's name: the catalogue's exact oracle
    assert correct[("ActivationLayer(tanh, tanh_prime)", "input_data")][3] == "exact"
    assert correct[("ActivationLayer(relu, relu_prime)", "input_data")][3] == "exact"
    # the in-place update's gradients are recovered: (before - after) / learning_rate
    assert correct[("FCLayer", "weights")][0] == "correct"
    assert correct[("FCLayer", "bias")][0] == "correct"
    assert correct[("binary_cross_entropy", "y_pred")][0] == "correct"


def test_planted_bugs_in_the_scratch_style_are_named(bugs):
    kinds = {k: (v[0], v[1]) for k, v in bugs.items()}
    # the layer never multiplies in activation_prime: whatever the pair, the same kind
    assert kinds[("ActivationLayer(sigmoid, sigmoid_prime)", "input_data")] == (
        "wrong-derivative", "no derivative")
    assert kinds[("ActivationLayer(tanh, tanh_prime)", "input_data")] == (
        "wrong-derivative", "no derivative")
    # a right layer with a wrong tanh_prime: the pair's row and the layer's row say so
    assert kinds[("GoodActivation(tanh, tanh_prime)", "input_data")] == (
        "wrong-derivative", "1 - t^2 at the input")
    assert kinds[("tanh", "x")] == ("wrong-derivative", "1 - t^2 at the input")
    assert kinds[("GoodActivation(sigmoid, sigmoid_prime)", "input_data")][0] == "correct"
    assert kinds[("sigmoid", "x")][0] == "correct"
    # a weight gradient (out, in): the layer is rebuilt square, where its update runs
    assert kinds[("FCLayer", "weights")][0] == "transposed"
    assert kinds[("FCLayer", "bias")][0] == kinds[("FCLayer", "input_data")][0] == "correct"
    kind, _, scale, _ = bugs[("BatchFCLayer", "bias")]
    assert (kind, scale) == ("scaled", pytest.approx(1 / 3))  # a mean over 3 samples
    assert bugs[("BatchFCLayer", "weights")][0] == "correct"


def test_the_function_pairs_of_another_file_checked_with_it(monkeypatch):
    folder = DIALECTS / "scratch"
    monkeypatch.chdir(folder)
    report = check_sources(["independent.py", "functions.py"], time_limit=None)
    kinds = {(r.name, c.quantity): c.kind for r in report.layers for c in r.checks}
    assert set(kinds.values()) == {"correct"}, kinds
    assert ("independent.py:Activation(sigmoid, sigmoid_prime)", "input") in kinds
    assert ("independent.py:Dense", "weights") in kinds  # samples in columns, W @ x + b
    assert ("independent.py:Tanh", "input") in kinds
    note = next(n for r in report.layers for n in r.notes if "sigmoid_prime:" in n)
    assert "a function pair of functions.py" in note
    # alone, the base class has no function to be built with: its subclass gives them
    alone = find_layers(load_file(folder / "independent.py"), "independent.py")
    why = dict(alone.skipped)["Activation"]
    assert why == ("its constructor takes functions (activation, activation_prime): checked "
                   "through its subclasses that give them (Tanh)")
    assert "Activation(sigmoid, sigmoid_prime)" not in {layer.name for layer in alone.layers}


def test_a_function_taking_layer_without_any_pair_is_skipped_naming_the_fix(tmp_path):
    path = tmp_path / "activation_layer.py"
    path.write_text("class ActivationLayer:\n"
                    "    def __init__(self, activation, activation_prime):\n"
                    "        self.activation, self.activation_prime = activation, "
                    "activation_prime\n"
                    "    def forward_propagation(self, x):\n"
                    "        self.x = x\n"
                    "        return self.activation(x)\n"
                    "    def backward_propagation(self, e, learning_rate):\n"
                    "        return self.activation_prime(self.x) * e\n")
    found = find_layers(load_file(path), str(path))
    assert found.layers == []
    why = dict(found.skipped)["ActivationLayer"]
    assert "no function with its derivative beside it" in why and "give the file" in why
