"""`jaxcnn check` reaches scalar autograd engines written by hand (micrograd's ``Value``
with a ``_backward`` closure per operation): one row per operation, the engine-level
rows (a node used twice, a shared subexpression, a neuron, a two-layer net, a second
backward), and a network built on it (micrograd's ``MLP``). A right engine passes; each
planted classic bug is caught on its row, named, and its closure's line given."""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxcnn.check import check_layer, find_layers, load_file
from jaxcnn.check.adapters import scalar_engine as se

DIALECTS = Path(__file__).parent / "fixtures" / "dialects"


def found(name: str):
    path = DIALECTS / name
    return find_layers(load_file(path), str(path), [])


def reports(f) -> dict:
    """{layer name: its report}."""
    return {layer.name: check_layer(layer) for layer in f.layers}


def kinds(r) -> dict:
    return {c.quantity: c.kind for c in r.checks}


@pytest.fixture(scope="module")
def right():
    return found("scalar_engine.py")


@pytest.fixture(scope="module")
def bugs():
    f = found("scalar_engine_bugs.py")
    return f, reports(f)


def test_the_engine_and_its_network_are_found_with_their_names(right):
    names = {layer.name for layer in right.layers}
    assert {"Value: a + b", "Value: a / b", "Value: a ** 3", "Value: 1.5 / a", "Value: -a",
            "Value: tanh(a)", "Value: sigmoid(a)", "Value: exp(a)", "Value: log(a)",
            "Value: relu(a)", "Value: a * a (a used twice)", "Value: a + a (a used twice)",
            "Value: neuron tanh(w . x + b)", "MLP: parameters"} <= names
    assert "Value: a ** b" not in names  # its __pow__ asserts a number exponent
    assert not [s for s in right.skipped if "Value" in s[0] or "MLP" in s[0]]


def test_probe_reads_the_attribute_names():
    class Node:
        def __init__(self, val, parents=()):
            self.val, self.gradient, self.parents = val, 0.0, tuple(parents)
            self.fn = lambda: None

        def __mul__(self, other):
            out = Node(self.val * other.val, (self, other))

            def fn():
                self.gradient += other.val * out.gradient
                other.gradient += self.val * out.gradient
            out.fn = fn
            return out

        def backward(self):
            pass

    assert se.is_engine(Node)
    assert se.probe(Node)[1:] == ("val", "gradient", "parents", "fn")


def test_a_right_engine_is_correct_in_float64(right, x64):
    for name, r in reports(right).items():
        assert all(c.kind == "correct" for c in r.checks), (name, kinds(r))
    mlp = next(layer for layer in right.layers if layer.name == "MLP: parameters")
    assert mlp.reference is not None and "tanh hidden, tanh output" in mlp.reference.name


def test_relu_at_its_kink_takes_any_slope_in_0_1(right, x64):
    relu = next(layer for layer in right.layers if layer.name == "Value: relu(a)")
    r = check_layer(relu)
    assert r.checks[0].kind == "correct" and r.checks[0].rule == "0 at 0"
    assert any(s.family == "boundary" for s in relu.input_sets(0))


def test_assign_where_add_belongs_is_missing_accumulation_at_its_line(bugs, x64):
    _, r = bugs
    assert kinds(r["AssignValue: a * b"]) == {"a": "correct", "b": "correct"}
    assert any("overwrites" in n for n in r["AssignValue: a * b"].notes)
    for row, line in (("a * a (a used twice)", 47), ("a + a (a used twice)", 38)):
        rep = r[f"AssignValue: {row}"]
        assert kinds(rep) == {"a": "missing-accumulation"}
        assert rep.first_wrong_step.line == line
        assert "=" in rep.first_wrong_step.code and "+=" not in rep.first_wrong_step.code
    assert set(kinds(r["AssignValue: c = a * b; c * ((c + a) * b) (shared)"]).values()) == {
        "missing-accumulation"}
    assert kinds(r["MLP: parameters"]) == {"parameters": "missing-accumulation"}


def test_wrong_local_derivatives_are_named_with_their_line(bugs, x64):
    _, r = bugs
    tanh = r["DerivValue: tanh(a)"].checks[0]
    assert (tanh.kind, tanh.rule) == ("wrong-derivative", "1 - t")
    assert r["DerivValue: tanh(a)"].first_wrong_step.code == "self.grad += (1 - t) * out.grad"
    power = r["DerivValue: a ** 3"].checks[0]
    assert (power.kind, power.rule) == ("wrong-derivative", "n x^n")
    div = r["DerivValue: a / b"]
    assert kinds(div) == {"a": "correct", "b": "wrong-derivative"}
    assert div.check("b").rule == "-1/b^2"
    assert "other.grad" in div.first_wrong_step.code
    mul = r["DerivValue: a * b"]
    assert kinds(mul) == {"a": "correct", "b": "wrong-argument"}  # b's grad from b's data
    assert mul.first_wrong_step.code == "other.grad += other.data * out.grad"
    assert kinds(r["DerivValue: -a"]) == {"a": "sign-flipped"}
    neuron = r["DerivValue: neuron tanh(w . x + b)"]
    assert "built from __mul__, tanh, whose own rows are wrong" in neuron.check("w").note


def test_no_topological_sort_is_wrong_order(bugs, x64):
    _, r = bugs
    assert kinds(r["NoTopoValue: a * b"]) == {"a": "correct", "b": "correct"}
    shared = r["NoTopoValue: c = a * b; c * ((c + a) * b) (shared)"]
    assert set(kinds(shared).values()) == {"wrong-order"}
    assert shared.first_wrong_step.name == "backward"
    net = r["NoTopoValue: two-layer net with a skip (topological order)"]
    assert kinds(net)["x"] == "wrong-order"


def test_a_second_backward_that_answers_differently_is_not_reentrant(bugs, x64):
    _, r = bugs
    assert set(kinds(r["StaleValue: second backward after zeroing grads"]).values()) == {
        "not-reentrant"}
    assert set(kinds(r["StaleValue: neuron (w . x + b)"]).values()) == {"correct"}


def test_an_operation_that_raises_or_returns_no_node_is_an_error_row(tmp_path):
    path = tmp_path / "engine.py"
    path.write_text('''
class Value:
    def __init__(self, data, _children=()):
        self.data, self.grad, self._prev = data, 0.0, set(_children)
        self._backward = lambda: None

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other))
        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))
        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __neg__(self):
        return self.data * -1

    def __rsub__(self, other):
        return self + (-other)

    def log(self):
        out = Value(log(self.data), (self,))
        def _backward():
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def backward(self):
        self.grad = 1.0
        self._backward()
''')
    f = find_layers(load_file(path), str(path), [])
    refused = {s[0]: s[1] for s in f.skipped}
    assert "NameError" in refused["Value: log(a)"]
    assert "returns a float, not a Value" in refused["Value: -a"]


def test_an_operation_that_stores_no_closure_is_zero_at_its_def_line(tmp_path, x64):
    path = tmp_path / "engine.py"
    path.write_text('''import math


class Value:
    def __init__(self, data, _children=()):
        self.data, self.grad, self._prev = data, 0.0, set(_children)
        self._backward = lambda: None

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other))
        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other))
        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def tanh(self):
        return Value(math.tanh(self.data), (self,))

    def backward(self):
        topo, seen = [], set()
        def build(v):
            if v not in seen:
                seen.add(v)
                for c in v._prev:
                    build(c)
                topo.append(v)
        build(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()
''')
    f = find_layers(load_file(path), str(path), [])
    r = reports(f)
    tanh = r["Value: tanh(a)"]
    assert kinds(tanh) == {"a": "zero"}
    assert (tanh.first_wrong_step.line, tanh.first_wrong_step.code) == (25, "def tanh(self):")
    neuron = r["Value: neuron tanh(w . x + b)"]
    assert "built from tanh, whose own rows are wrong" in neuron.check("w").note


def test_a_number_on_the_left_the_engine_cannot_take_is_listed_not_dropped(tmp_path):
    """A tester's class without __radd__ lost its `1.5 + a` rows silently ("33 of 33
    correct", nothing skipped): `sum()` of its nodes raises in the user's own code. The
    rows it cannot build are listed as skipped, saying why."""
    source = (DIALECTS / "scalar_engine.py").read_text()
    old = "    def __radd__(self, other):\n        return self + other\n"
    assert source.count(old) == 1
    path = tmp_path / "no_radd.py"
    path.write_text(source.replace(old, ""))
    f = find_layers(load_file(path), str(path), [])
    why = dict((name.rsplit(":", 1)[-1].strip(), text) for name, text in f.skipped
               if name.startswith("Value"))
    assert why["1.5 + a"].startswith("not checked: Value defines no __radd__")
    assert "1.5 + a" not in {layer.name.rsplit(": ", 1)[-1] for layer in f.layers}


def test_an_engine_imported_by_the_file_checked_is_checked_there_once(tmp_path):
    """micrograd's layout: nn.py does `from engine import Value`. Checking nn.py checked
    its MLP only, and passed an engine whose tanh' is 1 - t (exit 0). The imported
    engine's rows are checked, named at engine.py; with both files given, once."""
    from jaxcnn.check import api

    source = (DIALECTS / "scalar_engine.py").read_text()
    old = "            self.grad += (1 - t ** 2) * out.grad\n"
    assert source.count(old) == 1
    (tmp_path / "engine.py").write_text(source.replace(
        old, "            self.grad += (1 - t) * out.grad\n"))
    (tmp_path / "nn.py").write_text("from engine import Value  # noqa: F401\n")
    alone = api.check_sources([str(tmp_path / "nn.py")])
    tanh = alone.layer("Value: tanh(a)")
    assert tanh.checks[0].kind == "wrong-derivative" and alone.status == 1
    assert tanh.file == str(tmp_path / "engine.py")
    both = api.check_sources([str(tmp_path / "engine.py"), str(tmp_path / "nn.py")])
    label = str(tmp_path / "engine.py") + ":"
    names = [layer.name for layer in both.layers]
    assert all(n.startswith(label) for n in names)  # where the engine is defined,
    assert len(names) == len(set(names))  # each row once
