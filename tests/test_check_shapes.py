"""A layer with no parameters to say its input's shape is probed with a few shapes; the
one it is checked on must be one its backward answers for. The Independent Code's
`Softmax` runs on (n,) and on (n, 1) columns, but its backward is written for columns:
checked on (n, 1), saying so, not `unclassified` on (n,)."""

from __future__ import annotations

import textwrap

import pytest

from jaxcnn.check import check_layer, find_layers, load_file

SOURCE = """
import numpy as np


class Softmax:
    def forward(self, input):
        tmp = np.exp(input)
        self.output = tmp / np.sum(tmp)
        return self.output

    def backward(self, output_gradient, learning_rate):
        n = np.size(self.output)
        return np.dot((np.identity(n) - self.output.T) * self.output, output_gradient)


class SoftmaxNoDiagonal:
    def forward(self, input):
        tmp = np.exp(input)
        self.output = tmp / np.sum(tmp)
        return self.output

    def backward(self, output_gradient, learning_rate):
        n = np.size(self.output)
        return np.dot(-self.output * self.output.T, output_gradient)
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "softmax.py"
    path.write_text(textwrap.dedent(SOURCE))
    found = find_layers(load_file(path), str(path))
    return {layer.name: (layer, check_layer(layer)) for layer in found.layers}


def test_a_column_softmax_is_checked_on_columns_and_says_so(reports):
    layer, report = reports["Softmax"]
    assert layer.input_sets(0)[0].args[0].shape == (4, 1)
    check = report.check("input")
    assert (check.kind, check.oracle) == ("correct", "exact")
    note = " ".join(report.notes)
    assert "checked on input (4, 1) (column vectors)" in note
    assert "also runs on (4,), where its backward disagrees" in note


def test_a_backward_wrong_on_every_shape_is_not_hidden_by_the_probe(reports):
    layer, report = reports["SoftmaxNoDiagonal"]
    assert report.check("input").kind != "correct"
    assert not any("checked on input" in n for n in report.notes)


BATCH_FC = """
import numpy as np


class BatchFCLayer:
    def __init__(self, input_size=4, output_size=5):
        self.weights = np.random.randn(input_size, output_size) * 0.1
        self.bias = np.zeros((1, output_size))

    def forward(self, input):
        self.input = input
        return input @ self.weights + self.bias

    def backward(self, output_gradient, learning_rate):
        input_gradient = output_gradient @ self.weights.T
        self.weights -= learning_rate * self.input.T @ output_gradient
        self.bias -= learning_rate * output_gradient.sum(axis=0, keepdims=True)
        return input_gradient
"""


def test_fc_as_a_word_of_a_camel_case_name_is_a_dense_layer(tmp_path):
    from jaxcnn.check.adapters.module_style import layer_kind

    assert [layer_kind(n) for n in ("BatchFCLayer", "FCLayer", "MyFCNet", "Batch")] == [
        "dense", "dense", "dense", None]
    path = tmp_path / "batch_fc.py"
    path.write_text(textwrap.dedent(BATCH_FC))
    (layer,) = find_layers(load_file(path), str(path)).layers
    assert layer.kind == "dense" and layer.reference is not None  # the exact oracle
    report = check_layer(layer)
    assert {c.quantity: (c.kind, c.oracle) for c in report.checks} == {
        "input": ("correct", "exact"), "weights": ("correct", "exact"),
        "bias": ("correct", "exact")}
