"""`jaxcnn check` reaches the dialects people write (issue 17, sections 1 and 2): module
style with stored gradients, size constructors, other method names, the deep-learning
specialisation, whole-network pairs, torch.autograd.Function, a network split over
files, JAX custom_vjp layouts of their own, and layers the catalogue does not know
(checked against the numeric oracle of their own forward). Correct code is `correct`;
each planted bug is named with its kind on its quantity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jaxcnn.check import check_layer, find_layers, load_file
from jaxcnn.check.discover import CheckUsageError

ROOT = Path(__file__).resolve().parent.parent
DIALECTS = Path(__file__).parent / "fixtures" / "dialects"


def found(name: str):
    path = DIALECTS / name
    return find_layers(load_file(path), str(path))


def verdicts(name: str, only=None) -> dict:
    """{(layer, quantity): (kind, scale, oracle)} of a fixture's layers."""
    out = {}
    for layer in found(name).layers:
        if only is not None and layer.name not in only:
            continue
        report = check_layer(layer)
        for c in report.checks:
            out[(layer.name, c.quantity)] = (c.kind, c.scale, c.oracle)
    return out


def kinds(v: dict) -> dict:
    return {k: kind for k, (kind, _, _) in v.items()}


# ------------------------------------------------------------- module style (§1 a, b, c)

def test_the_books_module_style_layers_are_found_and_correct():
    f = found("nnfs_layers.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    assert layers["Layer_Dense"].arg_names == ("inputs", "weights", "biases")  # its names
    assert layers["Loss_CategoricalCrossentropy"].arg_names == ("y_pred",)
    v = verdicts("nnfs_layers.py")
    assert set(kinds(v).values()) == {"correct"}, v
    # a catalogue reference where the name and forward match; the numeric oracle else
    assert v[("Layer_Dense", "weights")][2] == "exact"
    assert v[("Activation_ReLU", "inputs")][2] == "exact"
    # the losses too, by their names (catalogue kinds cross_entropy_probs, softmax_loss)
    assert v[("Loss_CategoricalCrossentropy", "y_pred")][2] == "exact"
    assert v[("Activation_Softmax_Loss_CategoricalCrossentropy", "inputs")][2] == "exact"
    dense = check_layer(layers["Layer_Dense"])
    assert any("n_inputs=4, n_neurons=5" in n for n in dense.notes)  # sizes it chose
    assert any("biases zeros" in n and "random" in n for n in dense.notes)


def test_module_style_planted_scale_sign_and_transpose_are_named():
    v = verdicts("module_bugs.py")
    assert v[("Linear", "W")][:2] == ("scaled", pytest.approx(1 / 3))  # (out, in) weight
    assert kinds(v)[("DenseSign", "biases")] == "sign-flipped"
    assert kinds(v)[("FC", "W")] == "transposed"
    assert v[("Swish", "x")] == ("scaled", pytest.approx(2.0), "numeric")  # unknown name
    # a module-style pool that reproduces the catalogue's gets its tie-rich inputs
    assert v[("MaxPool2D", "X")] == ("tie-overcount", None, "exact")
    # a module-style conv that reproduces the catalogue's gets its exact oracle too
    assert v[("Conv2D", "W")] == ("off-by-one", None, "exact")
    wrong = {("Linear", "W"), ("DenseSign", "biases"), ("FC", "W"), ("Swish", "x"),
             ("MaxPool2D", "X"), ("Conv2D", "W")}
    assert all(kind == "correct" for key, kind in kinds(v).items() if key not in wrong), v
    assert kinds(v)[("MSELoss", "y_pred")] == "correct"


def test_other_method_names_call_learning_rate_and_method_pairs():
    f = found("module_pairs.py")
    assert f.skipped == []
    assert {layer.name for layer in f.layers} == {"Dense", "DenseLate", "ConvNet.conv_forward",
                                                  "ConvNet.maxpool_forward", "LinearLayer"}
    v = kinds(verdicts("module_pairs.py"))
    assert v.pop(("DenseLate", "x")) == "update-before-use"
    # its (C, H, W) pool's == mask: the catalogue's one-image pool finds the ties
    assert v.pop(("ConvNet.maxpool_forward", "x")) == "tie-overcount"
    assert set(v.values()) == {"correct"}, v
    assert ("ConvNet.conv_forward", "kernels") in v
    assert ("ConvNet.maxpool_forward", "kernels") not in v
    assert v[("LinearLayer", "W")] == "correct"  # samples in columns: the 1/m convention


# ------------------------------------------------------------------ specialisation (§1 d)

def test_the_specialisation_dialect_pool_and_linear_steps():
    f = found("specialisation.py")
    names = {layer.name for layer in f.layers}
    assert {"conv_forward", "pool_forward (max)", "pool_forward (average)", "linear_forward",
            "linear_activation_forward (relu)", "linear_activation_forward (sigmoid)", "relu",
            "sigmoid", "L_model_forward"} == names  # the L-layer model with compute_cost
    v = verdicts("specialisation.py", only=names - {"conv_forward"})
    # create_mask_from_window's x == max mask gives every tied maximum the full gradient
    assert v.pop(("pool_forward (max)", "A_prev"))[0] == "tie-overcount"
    assert set(kinds(v).values()) == {"correct"}, v


def test_a_missing_one_over_m_in_linear_backward_is_scaled_by_m(tmp_path):
    source = (DIALECTS / "specialisation.py").read_text()
    planted = source.replace("dW = 1 / m * np.dot(dZ, A_prev.T)", "dW = np.dot(dZ, A_prev.T)")
    assert planted != source
    path = tmp_path / "spec_bug.py"
    path.write_text(planted)
    layer = next(layer for layer in find_layers(load_file(path), str(path)).layers
                 if layer.name == "linear_forward")
    report = check_layer(layer)
    assert report.check("W").kind == "scaled" and report.check("W").scale == pytest.approx(3)
    assert report.check("b").kind == "correct" and report.check("A_prev").kind == "correct"


@pytest.mark.slow
def test_the_specialisation_conv_is_no_false_alarm():
    conv = next(layer for layer in found("specialisation.py").layers
                if layer.name == "conv_forward")
    assert conv.arg_names == ("A_prev", "W", "b")
    report = check_layer(conv)
    assert report.ok, [(c.quantity, c.kind, c.note) for c in report.checks]


# ---------------------------------------------------------------- network pairs (§1 e)

def test_a_whole_network_pair_names_a_factor_and_a_missing_one_over_m():
    v = verdicts("network_pair.py")  # rows named by the gradients dict's keys
    names = ("dW1", "db1", "dW2", "db2", "dW3", "db3")
    right = {q: k for (layer, q), k in kinds(v).items() if layer == "forward_propagation"}
    assert right == dict.fromkeys(names, "correct")
    bug = {q: v[("forward_propagation_n", q)] for q in names}
    assert bug["dW2"][:2] == ("scaled", pytest.approx(2.0))
    assert bug["db1"][:2] == ("scaled", pytest.approx(6.0))  # m = 6 examples
    assert all(bug[q][0] == "correct" for q in ("dW1", "db2", "dW3", "db3"))
    assert {o for _, _, o in v.values()} == {"numeric"}


def test_a_network_pair_without_y_gets_its_cost_from_compute_cost():
    v = verdicts("network_planar.py")
    assert kinds(v) == {("forward_propagation", q): "correct"
                        for q in ("dW1", "db1", "dW2", "db2")}


# ---------------------------------------------------------------------- torch (§1 f)

def test_torch_autograd_functions():
    pytest.importorskip("torch")
    v = verdicts("torch_functions.py")
    assert kinds(v) == {("MyReLU", "input"): "correct", ("LinearFunction", "input"): "correct",
                        ("LinearFunction", "weight"): "correct",
                        ("LinearFunction", "bias"): "sign-flipped",
                        ("MulConstant", "tensor"): "scaled", ("NumpyTanh", "input"): "correct"}
    assert v[("MulConstant", "tensor")][1] == pytest.approx(1 / 3)
    # autograd of the forward run outside apply is the exact oracle; a forward through
    # NumPy has only the numeric one
    assert v[("LinearFunction", "bias")][2] == "exact"
    assert v[("NumpyTanh", "input")][2] == "numeric"


def test_a_torch_file_without_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(CheckUsageError, match=r"jaxcnn\[torch\]"):
        load_file(DIALECTS / "torch_functions.py")


# ------------------------------------------------------------ JAX custom_vjp layouts (§1 h)

def test_custom_vjp_layouts_of_their_own_get_no_invented_arguments():
    f = found("jax_layouts.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    assert layers["dense"].arg_names == ("x", "w")  # no `biases` it does not have
    assert layers["linear_sample"].input_sets(0)[0].args[0].ndim == 1  # per-sample x
    v = kinds(verdicts("jax_layouts.py"))
    assert v.pop(("softplus", "x")) == "sign-flipped"  # a name jaxcnn does not know
    assert set(v.values()) == {"correct"}, v


# ------------------------------------------------------- nothing skipped for its name (§2)

def test_pairs_without_a_reference_are_checked_numerically_with_static_labels():
    f = found("unknown_pairs.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    # batchnorm and svm_loss are catalogue kinds (issue 18): their exact oracle; swish and
    # a softplus pair named by no kind are checked against the numeric oracle
    assert set(layers) == {"swish_forward", "batchnorm", "svm_loss", "softplus"}
    assert layers["batchnorm"].arg_names == ("x", "gamma", "beta")  # bn_param static
    svm = layers["svm_loss"]
    assert svm.arg_names == ("x",)
    assert svm.input_sets(0)[0].static[0].dtype.kind == "i"  # a label vector is static
    v = verdicts("unknown_pairs.py")
    assert v[("batchnorm", "beta")][:2] == ("sign-flipped", -1.0)
    assert all(kind == "correct" for key, (kind, _, _) in v.items()
               if key != ("batchnorm", "beta")), v
    assert {k: o for k, (_, _, o) in v.items() if k[0] in ("swish_forward", "softplus")} == {
        ("swish_forward", "x"): "numeric", ("softplus", "z"): "numeric"}
    assert {o for k, (_, _, o) in v.items() if k[0] in ("batchnorm", "svm_loss")} == {"exact"}


def test_a_function_and_its_derivative_beside_it():
    v = verdicts("derivative_pairs.py")
    assert v[("tanh", "x")][0] == "correct"
    assert v[("mse", "y_pred")][:2] == ("scaled", pytest.approx(0.5))


# ------------------------------------------------------- a network split over files (§1 g)

def test_a_network_split_over_files_is_chained_and_a_broken_file_skipped():
    split = DIALECTS / "split"
    proc = subprocess.run([sys.executable, "-m", "jaxcnn", "check", "conv.py", "maxpool.py",
                           "softmax.py", "cnn.py"], cwd=split, capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Skipped cnn.py" in proc.stdout and "No module named 'mnist'" in proc.stdout
    assert ("chain conv.py:Conv3x3 -> maxpool.py:MaxPool2 -> softmax.py:Softmax"
            in proc.stdout)
    assert "every layer correct" in proc.stdout


def test_a_module_class_that_accumulates_its_gradients_is_not_reentrant(tmp_path):
    """Issue 17 section 6, for module style: `self.dW += ...` never reset gives a right
    first gradient and a wrong second one (a training loop's second step)."""
    path = tmp_path / "accumulate.py"
    path.write_text(
        "import numpy as np\n\nclass Linear:\n"
        "    def __init__(self, n_in, n_out):\n"
        "        self.W = np.random.randn(n_in, n_out)\n"
        "        self.b = np.zeros(n_out)\n"
        "        self.dW = np.zeros((n_in, n_out))\n"
        "        self.db = np.zeros(n_out)\n"
        "    def forward(self, x):\n        self.x = x\n        return x @ self.W + self.b\n"
        "    def backward(self, dout):\n"
        "        self.dW += self.x.T @ dout\n        self.db += dout.sum(axis=0)\n"
        "        return dout @ self.W.T\n")
    (layer,) = find_layers(load_file(path), str(path)).layers
    kinds = {c.quantity: c.kind for c in check_layer(layer).checks}
    assert kinds == {"x": "correct", "W": "not-reentrant", "b": "not-reentrant"}, kinds


def test_a_torch_constant_without_a_default_is_a_number(tmp_path):
    """PyTorch's own MulConstant example, ``forward(ctx, tensor, constant)`` with no
    default: ``constant`` was made a (3, 4) tensor, so the missing factor showed as
    `unclassified` plus a `missing` gradient for a number."""
    pytest.importorskip("torch")
    path = tmp_path / "mul.py"
    path.write_text(
        "import torch\n\n"
        "class MulConstant(torch.autograd.Function):\n"
        "    @staticmethod\n"
        "    def forward(ctx, tensor, constant):\n"
        "        ctx.constant = constant\n"
        "        return tensor * constant\n\n"
        "    @staticmethod\n"
        "    def backward(ctx, grad_output):\n"
        "        return grad_output, None\n")
    (layer,) = find_layers(load_file(path), str(path)).layers
    report = check_layer(layer)
    assert [c.quantity for c in report.checks] == ["tensor"]
    assert report.checks[0].kind == "scaled"
    assert report.checks[0].scale == pytest.approx(1 / 3)
