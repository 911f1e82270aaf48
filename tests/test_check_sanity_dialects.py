"""The sanity checks (jaxcnn.check.sanity: modifies-input, not-reentrant, the note for a
write into dout) reach every dialect that runs NumPy code, through each adapter's
``Layer.raw``: function-taking constructors, linear classifier losses (their X and y),
pairs the catalogue does not know, derivative pairs. One check of the fixture for the
module; every gradient value in it is right."""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxcnn.check import check_layer, find_layers, load_file

FIXTURE = Path(__file__).parent / "fixtures" / "dialects" / "writes_into_inputs.py"


@pytest.fixture(scope="module")
def reports() -> dict:
    found = find_layers(load_file(FIXTURE), str(FIXTURE))
    return {layer.name: check_layer(layer, fd_seconds=0.05) for layer in found.layers}


def rows(reports: dict) -> dict:
    return {(name, c.quantity): c.kind for name, r in reports.items() for c in r.checks}


def test_each_dialect_gets_the_sanity_verdicts(reports):
    assert rows(reports) == {
        ("swish_forward", "x"): "modifies-input",                    # through its cache
        ("ActivationLayer(relu, relu_prime)", "input_data"): "modifies-input",
        ("ActivationLayer(square, square_prime)", "input_data"): "correct",
        ("CountingActivation(relu, relu_prime)", "input_data"): "modifies-input",
        ("CountingActivation(square, square_prime)", "input_data"): "not-reentrant",
        ("softmax_loss_vectorized", "W"): "modifies-input",          # its y
        ("relu", "x"): "modifies-input",                              # relu_prime's write
        ("square", "x"): "correct",
    }


def test_a_write_into_a_static_array_is_named_on_the_layers_row(reports):
    check = reports["softmax_loss_vectorized"].check("W")
    assert "the gradient's values are correct" in check.note
    assert "writes into its argument y" in check.note


def test_a_write_into_dout_is_a_note_in_the_function_taking_dialect(reports):
    report = reports["ActivationLayer(square, square_prime)"]
    assert report.check("input_data").kind == "correct"
    assert any("writes into the upstream gradient (dout)" in n for n in report.notes)
    # the counting layer leaves dout alone: no note
    assert not any("(dout)" in n for n in reports["CountingActivation(square, square_prime)"]
                   .notes)


def test_a_second_backward_that_answers_differently_is_not_reentrant(reports):
    check = reports["CountingActivation(square, square_prime)"].check("input_data")
    assert "second call of the backward" in check.note
    assert "max rel difference 1" in check.note


STACK_AND_BUFFER = '''
import numpy as np


class StackDense:
    """Right: the forward pushes its input, the backward pops it (for a shared layer)."""

    def __init__(self, n_in=4, n_out=3):
        self.W = np.random.randn(n_in, n_out)
        self.b = np.zeros(n_out)
        self.stack = []

    def forward(self, x):
        self.stack.append(x)
        return x @ self.W + self.b

    def backward(self, dout):
        x = self.stack.pop()
        self.dW = x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class BufferDense:
    """Wrong: dW accumulates across steps, never reset."""

    def __init__(self, n_in=4, n_out=3):
        self.W = np.random.randn(n_in, n_out)
        self.b = np.zeros(n_out)
        self.dW = np.zeros_like(self.W)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW += self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T
'''


def test_a_module_steps_reentrancy_follows_a_training_loop(tmp_path):
    """The kind: a module's second backward is a training loop's next step, so it
    follows a forward of its own. A cache kept as a stack (pushed by the forward, popped
    by the backward) is right (before: all its rows not-reentrant); a gradient buffer
    that accumulates across steps is still not-reentrant."""
    path = tmp_path / "steps.py"
    path.write_text(STACK_AND_BUFFER)
    found = find_layers(load_file(path), str(path))
    got = {layer.name: check_layer(layer) for layer in found.layers}
    assert got["StackDense"].ok, rows({"StackDense": got["StackDense"]})
    assert got["BufferDense"].check("W").kind == "not-reentrant"
