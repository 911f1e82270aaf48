"""`jaxcnn check` reaches more dialects found in public from-scratch code: explicit
argument pairs (``relu(Z)`` with ``relu_backward(dA, Z)``, camelCase
``convolutionBackward`` in another file than its forward). Correct code is `correct`;
each planted bug is named with its kind on its quantity."""

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
    assert v[("maxpool", "image")][0] == "correct"


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

