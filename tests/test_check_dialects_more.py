"""`jaxcnn check` reaches more dialects found in public from-scratch code: explicit
argument pairs (``relu(Z)`` with ``relu_backward(dA, Z)``, camelCase
``convolutionBackward`` in another file than its forward), layers updating through an
optimizer object (a course framework's ``calculate_update``, ``initialize(optimizer)``),
CS231n names with hyperparameters as arguments, models with ``gradient(x, t)``,
``dX, [dW, db]`` returns, and classes holding a function and its derivative. Correct
code is `correct`; each planted bug is named with its kind on its quantity."""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxcnn.check import check_layer, find_layers, load_file

DIALECTS = Path(__file__).parent / "fixtures" / "dialects"


def found(name: str, *companions: str):
    path = DIALECTS / name
    others = [load_file(DIALECTS / c) for c in companions]
    return find_layers(load_file(path), str(path), others)


def verdicts(f) -> dict:
    """{(layer, quantity): (kind, scale, oracle)} of found layers."""
    out = {}
    for layer in f.layers:
        for c in check_layer(layer).checks:
            out[(layer.name, c.quantity)] = (c.kind, c.scale, c.oracle)
    return out


# ------------------------------------------------------------- explicit argument pairs

def test_explicit_pairs_take_the_forwards_inputs_and_get_the_exact_oracle_by_name():
    f = found("explicit_pairs.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    assert set(layers) == {"relu", "sigmoid", "tanh", "dense"}
    assert {layer.style for layer in f.layers} == {"explicit"}
    assert layers["relu"].arg_names == ("Z",)  # the user's argument names the row
    assert layers["dense"].arg_names == ("x", "w", "b")
    v = verdicts(f)
    assert v[("tanh", "Z")][:2] == ("sign-flipped", -1.0)
    assert all(kind == "correct" for key, (kind, _, _) in v.items() if key[0] != "tanh"), v
    # relu, sigmoid, tanh: the catalogue's exact oracle; dense: its own forward's
    assert {k: o for k, (_, _, o) in v.items() if k[0] != "dense"} == {
        ("relu", "Z"): "exact", ("sigmoid", "Z"): "exact", ("tanh", "Z"): "exact"}
    assert {o for k, (_, _, o) in v.items() if k[0] == "dense"} == {"numeric"}


def test_a_wrong_explicit_backward_gets_its_first_wrong_step():
    layer = next(x for x in found("explicit_pairs.py").layers if x.name == "tanh")
    report = check_layer(layer)
    step = report.checks[0].first_wrong_intermediate
    assert step is not None and step["kind"] == "sign-flipped" and step["line"] == 30


def test_camel_case_backward_in_another_file_is_paired_with_its_forward():
    f = found("explicit_split/backward.py", "explicit_split/forward.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    assert set(layers) == {"convolution", "maxpool"}
    assert layers["convolution"].arg_names == ("image", "filt", "bias")  # s is static
    assert any("conv_in=image" in n for n in layers["convolution"].notes)
    v = verdicts(f)
    assert v[("convolution", "bias")][:2] == ("scaled", pytest.approx(2.0))
    assert v[("convolution", "image")][0] == v[("convolution", "filt")][0] == "correct"
    # one (C, H, W) image, 2x2 stride 2: the catalogue's pool, its tie rule checked on
    # tie-rich inputs (finite differences leave ties out: an == mask passed them)
    assert layers["maxpool"].kind == "max_pool_chw"
    assert v[("maxpool", "image")][::2] == ("correct", "exact")


def test_a_backward_given_a_cache_is_not_an_explicit_pair():
    from jaxcnn.check.adapters.explicit_pair import argument_map

    def relu(Z):
        return Z

    def relu_backward(dA, cache):
        return dA

    def conv(x, w, b, stride):
        return x

    def conv_backward(dout, conv_in, w, stride):
        return dout

    def layer(A_prev, W):
        return A_prev

    def layer_backward(dA, W, Z_curr, A_prev):  # Z_curr: an output, not an input
        return dA

    assert argument_map(relu, relu_backward) is None
    assert argument_map(conv, conv_backward) == ["x", "w", "stride"]
    assert argument_map(layer, layer_backward) is None


# ------------------------------------------- optimizer objects, shape tuples, initialize

def test_a_course_frameworks_layers_are_built_from_shape_tuples_and_an_optimizer():
    f = found("optimizer_layers.py")
    assert [n for n, _ in f.skipped] == ["BaseLayer"]  # its forward and backward: pass
    layers = {layer.name: layer for layer in f.layers}
    assert set(layers) == {"FullyConnected", "FullyConnectedUpdateFirst", "Pooling",
                           "Dropout"}
    assert any("Pooling(stride_shape=(2, 2), pooling_shape=(2, 2))" in n
               for n in layers["Pooling"].notes)
    assert any("Dropout(probability=0.5)" in n for n in layers["Dropout"].notes)
    assert any("recorder" in n for n in layers["FullyConnected"].notes)
    v = verdicts(f)
    # the weights' gradient: the gradient_weights property, and the optimizer's record
    assert v[("FullyConnected", "weights")][0] == "correct"
    assert v[("FullyConnected", "input_tensor")][0] == "correct"
    assert v[("FullyConnectedUpdateFirst", "input_tensor")][0] == "update-before-use"
    assert v[("FullyConnectedUpdateFirst", "weights")][0] == "correct"
    assert v[("Pooling", "input_tensor")][:1] == ("tie-overcount",)
    assert v[("Dropout", "input_tensor")][0] == "correct"


def test_the_gradient_handed_to_the_optimizer_is_checked_when_nothing_stores_it(tmp_path):
    source = (DIALECTS / "optimizer_layers.py").read_text()
    # no gradient_weights kept: only the optimizer object sees the gradient
    source = source.replace("self._gradient_weights = self.input_tensor.T @ error_tensor",
                            "g = 2 * self.input_tensor.T @ error_tensor")  # BUG: twice
    source = source.replace("self._gradient_weights)", "g)")
    path = tmp_path / "fc.py"
    path.write_text(source)
    f = find_layers(load_file(path), str(path))
    v = verdicts(f)
    assert v[("FullyConnected", "weights")][:2] == ("scaled", pytest.approx(2.0))
    assert v[("FullyConnected", "input_tensor")][0] == "correct"


def test_layers_made_by_initialize_optimizer_after_set_input_shape():
    f = found("initialize_layers.py")
    assert [n for n, _ in f.skipped] == ["Layer"]
    layers = {layer.name: layer for layer in f.layers}
    # the private _pool_forward / _pool_backward helpers are no layer of their own
    assert set(layers) == {"Dense", "Flatten", "AveragePooling"}
    assert any("set_input_shape((4,))" in n for n in layers["Dense"].notes)
    assert any("set_input_shape((2, 6, 8))" in n for n in layers["AveragePooling"].notes)
    v = verdicts(f)
    assert v[("Dense", "w0")][:2] == ("scaled", pytest.approx(1 / 3))
    assert v[("Dense", "W")] == ("correct", None, "exact")  # x @ W + b: its layout found
    assert all(kind == "correct" for key, (kind, _, _) in v.items() if key != ("Dense",
                                                                             "w0")), v


def test_a_layer_of_two_inputs_is_no_loss(tmp_path):
    path = tmp_path / "naive.py"
    path.write_text("class MulLayer:\n"
                    "    def forward(self, x, y):\n"
                    "        self.x, self.y = x, y\n"
                    "        return x * y\n"
                    "    def backward(self, dout):\n"
                    "        return dout * self.y, dout * self.x\n")
    f = find_layers(load_file(path), str(path))
    assert f.layers == []
    (name, why), = f.skipped
    assert name == "MulLayer" and "two inputs" in why and "not a loss" in why


# ------------------------------------------- CS231n names, hyperparameters as arguments

def test_a_cs231n_pair_whose_signature_fits_no_catalogue_layout_is_checked_numerically():
    f = found("keyword_pairs.py")
    # the private helper the pools share is no layer of its own
    assert [n for n, _ in f.skipped] == ["_pool_forward"]
    layers = {layer.name: layer for layer in f.layers}
    # a conv's and a pool's keyword stride and padding: a second row at other values
    assert set(layers) == {"conv", "maxpool", "avgpool", "dropout", "conv (stride=2, padding=1)",
                           "maxpool (stride=1)", "avgpool (stride=1)"}
    assert layers["conv"].arg_names == ("X", "W", "b")  # stride, padding: their defaults
    assert all(any("refuses the catalogue's inputs" in n for n in layers[name].notes)
               for name in ("avgpool", "dropout"))
    # a max pool of one array at its default 2x2 stride 2, and a conv whose keywords are
    # a stride and a padding: the catalogue's, at those settings
    assert layers["maxpool"].kind == "max_pool_nchw" and layers["conv"].kind == "conv"
    v = verdicts(f)
    assert v[("avgpool", "X")][:2] == ("scaled", pytest.approx(4.0))
    assert v.pop(("avgpool (stride=1)", "X"))[:2] == ("scaled", pytest.approx(4.0))
    assert all(kind == "correct" for key, (kind, _, _) in v.items()
               if key != ("avgpool", "X")), v
    exact = {k[0] for k, (_, _, o) in v.items() if o == "exact"}
    assert exact == {"maxpool", "maxpool (stride=1)", "conv", "conv (stride=2, padding=1)"}



# ------------------------------------------------- models with loss(x, t), gradient(x, t)

def test_a_model_whose_gradient_method_returns_the_grads_of_its_scalar_loss():
    f = found("gradient_models.py")
    models = {layer.name: layer for layer in f.layers if layer.style == "model"}
    assert set(models) == {"TwoLayerNet", "TwoLayerNetBug"}
    assert any("gradient(x, t) returns" in n for n in models["TwoLayerNet"].notes)
    v = verdicts(f)
    # its layers share the params' arrays: the values drawn for them reach the loss
    assert {v[("TwoLayerNet", k)][0] for k in ("W1", "b1", "W2", "b2")} == {"correct"}
    assert v[("TwoLayerNetBug", "b2")][:2] == ("scaled", pytest.approx(2.0))
    assert {v[("TwoLayerNetBug", k)][0] for k in ("W1", "b1", "W2")} == {"correct"}


def test_the_l_layer_model_is_one_network_row_not_also_a_cs231n_pair():
    f = found("specialisation.py")
    rows = [(layer.name, layer.style) for layer in f.layers if "L_model" in layer.name]
    assert rows == [("L_model_forward", "network")]
    assert not any("L_model" in name for name, _ in f.skipped)


def test_a_backward_returning_dx_and_a_list_of_parameter_gradients():
    f = found("list_grads.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    assert layers["ChannelScale"].input_sets(0)[0].args[0].shape[1:] == (2, 6, 8)  # X_dim
    # a constructor taking w, b whose forward refuses w (in, out): built with w (out, in)
    assert any("w=array (5, 4), b=array (5,)" in n for n in layers["LinearOutIn"].notes)
    v = verdicts(f)
    assert v[("BiasFirst", "W")][:2] == ("scaled", pytest.approx(3.0))  # by the list's order
    assert all(kind == "correct" for key, (kind, _, _) in v.items() if key != ("BiasFirst",
                                                                             "W")), v


# ------------------------------------------------- a function and its derivative, methods

def test_classes_holding_a_function_and_its_derivative_as_methods():
    f = found("derivative_classes.py")
    assert [n for n, _ in f.skipped] == ["Loss"]  # not implemented: a base class
    layers = {layer.name: layer for layer in f.layers}
    assert set(layers) == {"Sigmoid", "TanH", "LeakyReLU", "SquareLoss", "AbsoluteLoss"}
    assert {layers[n].kind for n in ("Sigmoid", "TanH")} == {"sigmoid", "tanh"}
    v = verdicts(f)
    assert v[("TanH", "x")][0] == "wrong-derivative"  # the catalogue's known mistake
    assert v[("AbsoluteLoss", "y_pred")][:2] == ("sign-flipped", -1.0)
    # one loss value per entry: checked as their sum, whose gradient is per entry
    assert v[("SquareLoss", "y_pred")][0] == "correct"
    assert v[("Sigmoid", "x")][0] == v[("LeakyReLU", "x")][0] == "correct"


def test_a_model_with_loss_and_gradient_methods_is_no_derivative_class():
    f = found("gradient_models.py")
    assert {layer.style for layer in f.layers if "TwoLayerNet" in layer.name} == {"model"}
    assert not any("TwoLayerNet" in name for name, _ in f.skipped)


def test_a_loss_function_returning_the_loss_alone_is_skipped_not_an_error(tmp_path):
    path = tmp_path / "functions.py"
    path.write_text("import numpy as np\n\ndef softmax_loss(x, t):\n"
                    "    e = np.exp(x - x.max(axis=1, keepdims=True))\n"
                    "    p = e / e.sum(axis=1, keepdims=True)\n"
                    "    return -np.mean(np.log(p[np.arange(len(t)), t]))\n")
    f = find_layers(load_file(path), str(path))
    assert f.layers == []
    (name, why), = f.skipped
    assert name == "softmax_loss" and "loss alone" in why
    assert type(f.skipped[0]) is tuple  # a skipped line, not an error row


def test_a_layer_step_whose_backward_takes_its_values_one_by_one_says_so(tmp_path):
    path = tmp_path / "fc.py"
    path.write_text(
        "import numpy as np\n\n"
        "def single_layer_forward_propagation(A_prev, W_curr, b_curr, activation='relu'):\n"
        "    Z_curr = W_curr @ A_prev + b_curr\n"
        "    return np.maximum(0, Z_curr), Z_curr\n\n"
        "def single_layer_backward_propagation(dA_curr, W_curr, b_curr, Z_curr, A_prev,\n"
        "                                      activation='relu'):\n"
        "    dZ = dA_curr * (Z_curr > 0)\n"
        "    return W_curr.T @ dZ, dZ @ A_prev.T, dZ.sum(axis=1, keepdims=True)\n")
    f = find_layers(load_file(path), str(path))
    assert f.layers == []
    (name, why), = f.skipped
    assert name == "single_layer_forward_propagation"
    assert "one by one" in why and "not checked yet" in why


EXPLICIT_KINDS = '''
import numpy as np


def leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x)


def leaky_relu_backward(dout, x, alpha=0.01):
    return np.where(x > 0, dout, 0.0)


def softplus(x):
    return np.log1p(np.exp(x))


def softplus_backward(dout, x):
    return 1.0 / (1.0 + np.exp(-x))
'''


def test_explicit_pairs_of_other_catalogue_kinds_get_their_named_mistakes(tmp_path):
    """The kind: an explicit pair (the backward given the forward's inputs) of a
    catalogue kind beyond relu/sigmoid/tanh was checked by finite differences only, its
    usual mistakes unnamed ("no leak", dout dropped came out unclassified)."""
    from jaxcnn.check import check_file

    path = tmp_path / "explicit_kinds.py"
    path.write_text(EXPLICIT_KINDS)
    got = {r.name: r for r in check_file(path).layers}
    assert got["leaky_relu"].kind == "leaky_relu" and got["softplus"].kind == "softplus"
    leak, soft = got["leaky_relu"].checks[0], got["softplus"].checks[0]
    assert (leak.kind, leak.rule) == ("wrong-derivative", "no leak"), leak
    assert soft.kind == "cotangent-dropped", soft


def test_an_explicit_backward_may_take_the_forwards_inputs_by_keyword(tmp_path):
    """``tanh_backward(dA, *, x)``: keyword-only, the forward's input by name (before: read
    as a CS231n pair and an error row, "tanh must return (out, cache)")."""
    from jaxcnn.check import check_file

    path = tmp_path / "kw.py"
    path.write_text("import numpy as np\n\n\ndef tanh(x):\n    return np.tanh(x)\n\n\n"
                    "def tanh_backward(dA, *, x):\n    return dA * (1 - np.tanh(x) ** 2)\n")
    (layer,) = check_file(path).layers
    assert layer.style == "explicit" and layer.ok, layer.checks


def test_a_conv_pair_that_leaves_the_stride_out_is_caught_at_its_second_setting(tmp_path):
    """``conv_forward(X, W, b, stride=1, padding=0)`` was checked at its defaults only,
    where a backward that indexes windows without the stride is right."""
    source = (DIALECTS / "keyword_pairs.py").read_text()
    old = "            dXp[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += "
    assert source.count(old) == 1
    path = tmp_path / "keyword_pairs.py"
    path.write_text(source.replace(old, "            dXp[:, :, i:i + k, j:j + k] += "))
    f = find_layers(load_file(path), str(path), [])
    v = verdicts(f._replace(layers=[x for x in f.layers if x.name.startswith("conv")]))
    assert v[("conv", "X")][0] == "correct"
    assert v[("conv (stride=2, padding=1)", "X")][::2] == ("wrong-window", "exact")
    assert v[("conv (stride=2, padding=1)", "W")][0] == "correct"
