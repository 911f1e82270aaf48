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
