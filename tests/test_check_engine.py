"""The check engine's parts: error kinds on known arrays, kink-aware finite differences,
discovery, re-checks of edited code, chains, strict JSON, and the x64 switch."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import reference
from jaxcnn.check import (
    InputSet,
    check_layer,
    find_layers,
    from_blog,
    from_custom_vjp,
    from_jax_vjp,
    load_file,
    numeric,
    report,
)
from jaxcnn.check import chain as chain_mod
from jaxcnn.check import classify as cls
from jaxcnn.check.compare import errors
from jaxcnn.check.discover import CheckUsageError

FIXTURES = Path(__file__).parent / "fixtures"

RNG = np.random.default_rng(0)
REF = RNG.standard_normal((4, 3, 5))


def kind_of(hand, ref=REF, **ctx):
    return cls.classify(hand, ref, cls.Context(1e-10, **ctx))


# ---------------------------------------------------------------- the vocabulary

def test_every_kind_on_known_arrays():
    assert kind_of(REF.copy()).kind == "correct"
    scaled = kind_of(REF / 4)
    assert (scaled.kind, scaled.scale) == ("scaled", pytest.approx(0.25))
    assert "1/4" in scaled.note and "mean" in scaled.note
    assert kind_of(-REF).kind == "sign-flipped"
    t = kind_of(REF.transpose(0, 2, 1).copy().transpose(0, 2, 1).transpose(0, 2, 1))
    assert (t.kind, tuple(t.axes)) == ("transposed", (0, 2, 1))
    named = kind_of(REF.transpose(0, 2, 1), axis_names=("filter", "x", "y"))
    assert "(filter, y, x) where (filter, x, y) belongs" in named.note
    reshaped = kind_of(REF.reshape(5, 3, 4).transpose(2, 1, 0))
    assert reshaped.kind == "transposed" and "reshape" in reshaped.note
    assert kind_of(np.zeros_like(REF)).kind == "zero"
    nan = REF.copy()
    nan[1, 2, 3] = np.nan
    assert kind_of(nan).kind == "non-finite" and "(1, 2, 3)" in kind_of(nan).note
    assert kind_of(None).kind == "missing"
    flat = kind_of(REF.reshape(4, 15))
    assert flat.kind == "wrong-shape" and "values are right" in flat.note
    column = kind_of(np.ones((4, 1)), ref=np.ones(4))
    assert column.kind == "wrong-shape"
    broadcast = kind_of(np.ones((4, 1)), ref=np.arange(4.0))
    assert broadcast.kind == "wrong-shape" and "broadcasts" in broadcast.note
    noise = REF + RNG.standard_normal(REF.shape)
    assert kind_of(noise).kind == "unclassified"
    assert set(cls.KINDS) >= {"correct", "tie-overcount", "scaled", "sign-flipped", "transposed",
                              "missing-accumulation", "zero", "wrong-shape", "non-finite",
                              "unclassified"}


def test_candidates_name_rules_and_known_bugs():
    first = REF * (RNG.random(REF.shape) > 0.5)
    candidates = (cls.Candidate("first", first, True, "correct", "first maximum"),
                  cls.Candidate("report", 2 * REF, False, "tie-overcount", "all ties"))
    got = kind_of(first, candidates=candidates)
    assert (got.kind, got.rule) == ("correct", "first")
    bug = kind_of(2 * REF, candidates=candidates)
    assert (bug.kind, bug.rule) == ("tie-overcount", "report")
    lazy = kind_of(3 * REF + 1, lazy=lambda: [cls.Candidate("x", 3 * REF + 1, False,
                                                            "missing-accumulation", "")])
    assert lazy.kind == "missing-accumulation"


def test_unclassified_says_where_it_differs():
    hand = REF.copy()
    hand[0, 0, 0] += 1
    mask = np.zeros(REF.shape, bool)
    mask[0, 0, 0] = True
    got = kind_of(hand, kink_mask=mask)
    assert got.kind == "unclassified" and "1 of 60" in got.note and "on kinks" in got.note


def test_errors_report_worst_entries_never_whole_arrays():
    hand = REF.copy()
    hand[2, 1, 4] += 5
    hand[0, 0, 0] -= 1
    e = errors(hand, REF, k=2)
    assert e.max_abs_error == pytest.approx(5)
    assert e.max_rel_error == pytest.approx(5 / np.abs(REF).max())
    assert [w.index for w in e.worst] == [(2, 1, 4), (0, 0, 0)]
    assert e.worst[0].reference == REF[2, 1, 4]


# ---------------------------------------------------------------- the numeric oracle

def test_finite_differences_flag_kinks_and_trust_smooth_entries():
    x = np.array([1.0, 1.0, 0.3, -2.0])  # entries 0 and 1 tie for the max

    def h(v):
        return float(3 * max(v[0], v[1]) + np.sin(v[2]) + v[3] ** 2)

    fd = numeric.differences(h, x, np.arange(4), 1e-6)
    assert list(fd.kink) == [True, True, False, False]
    assert fd.values[2] == pytest.approx(np.cos(0.3), rel=1e-8)
    assert fd.values[3] == pytest.approx(-4.0, rel=1e-8)
    t = RNG.standard_normal((3, 4))
    t[:, :2] = 0  # directions that do not move the tied entries see no kink
    d = numeric.directional(h, x, t, 1e-6)
    assert not d.kink.any()
    assert d.values == pytest.approx(t @ np.array([3.0, 0.0, np.cos(0.3), -4.0]), rel=1e-7)


def test_structural_ties_are_not_kinks_for_the_filters():
    """Tied pool inputs over MNIST's flat background sit on identical patches: moving a
    filter moves them together, so finite differences in the filters see no kink."""
    layer = chain_mod.blog_chain_inputs(1)[0]
    from jaxcnn import model

    def h(filters):
        p = model.Params(jnp.asarray(filters), *(jnp.asarray(a) for a in layer.params[2]))
        return float(model.loss(p, jnp.asarray(layer.x), layer.label))

    with jax.enable_x64(True):
        fd = numeric.differences(h, layer.params[0][0], np.arange(72), 1e-6)
    assert not fd.kink.any()


# ---------------------------------------------------------------- layers and the API

def test_a_custom_vjp_given_its_own_inputs_without_a_catalogue_kind():
    @jax.custom_vjp
    def square_sum(x):
        return jnp.sum(x ** 2)

    square_sum.defvjp(lambda x: (square_sum(x), x), lambda x, g: (3 * g * x,))  # 3, not 2
    layer = from_custom_vjp(square_sum, arg_names=("x",), inputs=[(np.arange(1.0, 5.0),)])
    got = check_layer(layer).check("x")
    assert (got.kind, got.scale) == ("scaled", pytest.approx(1.5))


def test_errors_in_the_users_code_become_findings_not_crashes():
    def forward(x):
        return jnp.tanh(x)

    def broken(x):
        def vjp_fun(g):
            raise RuntimeError("oops in backward")
        return forward(x), vjp_fun

    got = check_layer(from_jax_vjp(forward, broken, "tanh")).check("x")
    assert got.kind == "error" and "RuntimeError: oops in backward" in got.note


def test_inputs_a_forward_refuses_are_skipped_and_float32_code_gets_float32_tolerances(
        tmp_path):
    path = tmp_path / "layers.py"
    path.write_text(
        "import numpy as np\n\n"
        "def affine_forward(x, w, b):\n    return x @ w + b, (x, w)\n\n"  # 2-d x only
        "def affine_backward(dout, cache):\n    x, w = cache\n"
        "    return dout @ w.T, x.T @ dout, dout.sum(0)\n\n"
        "def sigmoid_forward(x):\n    out = 1 / (1 + np.exp(-x.astype(np.float32)))\n"
        "    return out, out\n\n"
        "def sigmoid_backward(dout, out):\n    return dout * out * (1 - out)\n")
    found = find_layers(load_file(path), str(path))
    affine, sigmoid = (check_layer(layer, fd_seconds=0.01) for layer in found.layers)
    assert affine.ok, [(c.quantity, c.kind, c.note) for c in affine.checks]
    assert any("skipped" in n and "(3, 2, 3, 4)" in n for n in affine.notes)
    assert sigmoid.ok and any("float32" in n for n in sigmoid.notes)
    assert sigmoid.check("x").max_rel_error > 1e-9  # float32 round-off, accepted


def test_a_jax_layer_in_nchw_layout_is_matched_to_the_right_reference(tmp_path):
    path = tmp_path / "nchw.py"
    path.write_text(
        "import jax\nimport jax.numpy as jnp\n\n@jax.custom_vjp\ndef max_pool(x):\n"
        "    n, c, h, w = x.shape\n    return x.reshape(n, c, h // 2, 2, w // 2, 2)"
        ".max(axis=(3, 5))\n\n"
        "def bwd(x, g):\n    up = jnp.repeat(jnp.repeat(max_pool(x), 2, 2), 2, 3)\n"
        "    return ((x == up) * jnp.repeat(jnp.repeat(g, 2, 2), 2, 3),)\n\n"
        "max_pool.defvjp(lambda x: (max_pool(x), x), bwd)\n")
    layer = find_layers(load_file(path), str(path)).layers[0]
    assert layer.kind == "max_pool_nchw"
    assert check_layer(layer).check("x").kind == "tie-overcount"


def test_a_blog_dense_class_that_returns_logits_is_checked_as_a_dense_layer(tmp_path):
    path = tmp_path / "dense.py"
    path.write_text(
        "import numpy as np\n\nclass Dense:\n    def __init__(self, input_len, nodes):\n"
        "        self.weights = np.zeros((input_len, nodes))\n"
        "        self.biases = np.zeros(nodes)\n\n    def forward(self, input):\n"
        "        self.x = input.flatten()\n        self.shape = input.shape\n"
        "        return self.x @ self.weights + self.biases\n\n"
        "    def backprop(self, d, learn_rate):\n        d_in = self.weights @ d\n"
        "        self.weights -= learn_rate * np.outer(self.x, d)\n"
        "        self.biases -= learn_rate * d\n        return d_in.reshape(self.shape)\n")
    layer = find_layers(load_file(path), str(path)).layers[0]
    assert (layer.kind, layer.arg_names) == ("dense", ("input", "weights", "biases"))
    assert check_layer(layer, fd_seconds=0.01).ok


def test_x64_does_not_leak_out_of_a_check():
    before = jnp.zeros(1).dtype
    check_layer(from_blog(reference.MaxPool2(), "maxpool2"), fd_seconds=0.01)
    assert jnp.zeros(1).dtype == before


def test_the_object_checked_is_never_modified():
    conv = reference.Conv3x3(4, rng=0)
    filters = conv.filters.copy()
    check_layer(from_blog(conv, "conv3x3"), fd_seconds=0.01)
    assert np.array_equal(conv.filters, filters) and conv.last_input is None


def test_a_jax_function_redefined_in_a_session_is_checked_afresh():
    def forward(x):
        return jnp.maximum(x, 0.0)

    def make(scale):
        def f_vjp(x):
            return forward(x), lambda g: (scale * g * (x > 0),)
        return f_vjp

    assert check_layer(from_jax_vjp(forward, make(1.0), "relu")).ok
    again = check_layer(from_jax_vjp(forward, make(2.0), "relu"))
    assert again.check("x").kind == "scaled"


def test_an_edited_file_is_never_checked_stale(tmp_path):
    """Same file name, same size, same second: the second load must run the new code."""
    path = tmp_path / "layers.py"
    good = "import numpy as np\n\ndef relu_forward(x):\n    return np.maximum(0, x), x\n\n" \
           "def relu_backward(dout, x):\n    return dout * (x > 0)\n"
    path.write_text(good)
    first = check_layer(find_layers(load_file(path), str(path)).layers[0])
    path.write_text(good.replace("(x > 0)", "(x < 0)"))  # one character, same size
    second = check_layer(find_layers(load_file(path), str(path)).layers[0])
    assert first.ok and second.check("x").kind == "wrong-derivative"


def test_an_edited_file_beside_the_checked_one_is_never_imported_stale(tmp_path):
    """The checked file imports its layers from a file beside it: after that file is
    edited (or another folder's file of the same name was imported first), a second load
    in the same process runs the current source, not the module cached by the first."""
    good = "import numpy as np\n\ndef relu_forward(x):\n    return np.maximum(0, x), x\n\n" \
           "def relu_backward(dout, x):\n    return dout * (x > 0)\n"
    kinds = []
    for folder, body in (("a", good), ("a", good.replace("(x > 0)", "(x < 0)")),
                         ("b", good), ("b", good.replace("dout * ", "2 * dout * "))):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "my_relu.py").write_text(body)
        path = tmp_path / folder / "net.py"
        path.write_text("from my_relu import relu_forward, relu_backward\n")
        layer = find_layers(load_file(path), str(path)).layers[0]
        kinds.append(check_layer(layer).check("x").kind)
    assert kinds == ["correct", "wrong-derivative", "correct", "scaled"]
    assert "numpy" in sys.modules and "jaxcnn.check.discover" in sys.modules  # kept


# ---------------------------------------------------------------- discovery

def test_discovery_says_what_it_skipped(tmp_path):
    path = tmp_path / "mixed.py"
    path.write_text(
        "import numpy as np\nimport jax\n\n"
        "class Helper:\n    def forward(self, x):\n        return x\n\n"
        "class Widget:\n    def forward(self, x):\n        return x\n"
        "    def backprop(self, d, lr):\n        return d\n\n"
        "def affine_bn_relu_forward(x, w, b):\n    return x, None\n\n"
        "def affine_bn_relu_backward(dout, cache):\n    return dout\n\n"
        "def swish_forward(x):\n    return x, None\n\n"
        "def swish_backward(dout, cache):\n    return dout\n\n"
        "def lonely_forward(x):\n    return x, None\n\n"
        "@jax.custom_vjp\ndef mystery(x):\n    return x\n"
        "mystery.defvjp(lambda x: (x, None), lambda r, g: (g,))\n")
    found = find_layers(load_file(path), str(path))
    why = dict(found.skipped)
    assert set(why) == {"Helper", "lonely_forward"}
    assert "no backprop" in why["Helper"]
    assert "no lonely_backward" in why["lonely_forward"]
    # Nothing is skipped for its name (issue 17 section 2): a layer without a catalogue
    # reference (a sandwich with a bn part, a swish, an unknown class or custom_vjp)
    # is checked against the numeric oracle of its own forward (a custom_vjp against
    # autodiff of its own forward).
    layers = {layer.name: layer for layer in found.layers}
    assert set(layers) == {"Widget", "affine_bn_relu_forward", "swish_forward", "mystery"}
    assert all(layers[n].reference is None for n in ("Widget", "affine_bn_relu_forward",
                                                     "swish_forward"))
    assert layers["mystery"].reference is not None


@pytest.mark.parametrize("source, message", [
    ("def f(:\n", "SyntaxError"),
    ("def f():\n\tif True:\n        pass\n", "TabError: inconsistent use of tabs"),
    ("import no_such_module_xyz\n", "ModuleNotFoundError"),
    ("raise SystemExit(3)\n", "exits while being imported \\(sys.exit\\(3\\)\\)"),
    ("import os\nos._exit(0)\n", "exits while being imported \\(os._exit\\(0\\)\\)"),
])
def test_import_problems_are_one_clear_line(tmp_path, source, message):
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(CheckUsageError, match=message) as info:
        load_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_and_non_python_files(tmp_path):
    with pytest.raises(CheckUsageError, match="no such file"):
        load_file(tmp_path / "nope.py")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckUsageError, match="not a .py or .ipynb file"):
        load_file(tmp_path / "notes.txt")


# ---------------------------------------------------------------- chains and JSON

def test_the_chain_names_the_pool_as_first_wrong_layer():
    layers = [from_blog(reference.Conv3x3(8), "conv3x3"), from_blog(reference.MaxPool2(),
                                                                     "maxpool2"),
              from_blog(reference.Softmax(13 * 13 * 8, 10), "dense_softmax")]
    result = chain_mod.check_chain(layers, chain_mod.blog_chain_inputs(1))
    assert result["first_wrong"] == {"layer": "MaxPool2", "quantity": "input",
                                     "kind": "tie-overcount"}
    conv = result["inputs"][0]["layers"][0]
    assert conv["local"]["filters"]["kind"] == "correct"  # right formula, wrong input
    assert conv["global"]["filters"]["norm_ratio"] > 2
    assert any("Conv3x3 filters" in line for line in chain_mod.summary(result))



def _cs231n_network(tmp_path, *mutations):
    """The layers of tests/fixtures/cs231n_net.py (its parts from cs231n_layers.py), with
    ``(old, new)`` replacements made in cs231n_layers.py."""
    source = (FIXTURES / "cs231n_layers.py").read_text()
    for old, new in mutations:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    (tmp_path / "cs231n_layers.py").write_text(source)
    path = tmp_path / "cs231n_net.py"
    path.write_text((FIXTURES / "cs231n_net.py").read_text())
    return find_layers(load_file(path), str(path))


def test_a_cs231n_network_is_chained_and_names_its_first_wrong_layer(tmp_path):
    found = _cs231n_network(tmp_path, ("dx = dout * (x > 0)", "dx = dout * (x < 0)"),
                            ("db[f] += dout[n, f, i, j]", "db[f] += 2 * dout[n, f, i, j]"))
    network = chain_mod.cs231n_chain(found.layers)
    assert [layer.name for layer in network] == ["conv", "relu", "max_pool", "affine",
                                                  "softmax_loss"]
    inputs = chain_mod.cs231n_chain_inputs(network)
    assert [np.shape(i.x)[0] for i in inputs] == [2, 2, 1]  # N = 1 too
    result = chain_mod.check_chain(network, inputs)
    # walking back from the loss, relu is wrong before conv is reached; the layers after it
    # are not blamed
    assert result["first_wrong"] == {"layer": "relu", "quantity": "x",
                                     "kind": "wrong-derivative"}
    for r in result["inputs"]:
        local = {e["name"]: e.get("local", {}) for e in r["layers"]}
        assert all(v["kind"] == "correct" for n in ("max_pool", "affine", "softmax_loss")
                   for v in local[n].values()), local


def test_a_correct_cs231n_network_passes_and_a_forward_that_fails_on_n1_is_named(tmp_path):
    found = _cs231n_network(tmp_path)
    network = chain_mod.cs231n_chain(found.layers)
    result = chain_mod.check_chain(network, chain_mod.cs231n_chain_inputs(network))
    assert result["ok"], result["first_wrong"]
    found = _cs231n_network(tmp_path, ("    return np.maximum(0, x), x\n",
                                       "    assert len(x) > 1\n    return np.maximum(0, x), x\n"))
    network = chain_mod.cs231n_chain(found.layers)
    result = chain_mod.check_chain(network, chain_mod.cs231n_chain_inputs(network))
    one = result["inputs"][2]
    assert one["first_wrong"] == {"layer": "relu", "quantity": None, "kind": "error"}
    assert "forward raised" in one["layers"][0]["error"]
    assert any("first wrong layer: relu (error)" in line for line in chain_mod.summary(result))


def test_json_is_strict_with_null_for_non_finite():
    doc = report.to_json([], [("x", "why")], [{"ok": True, "v": math.inf, "w": [np.nan]}])
    text = json.dumps(doc, allow_nan=False)
    back = json.loads(text)
    assert back["chains"][0]["v"] is None and back["chains"][0]["w"] == [None]
    assert back["ok"] is False  # nothing checked is not a pass


def test_input_sets_expose_ties_zeros_overlap_and_gaps():
    from jaxcnn.check.catalogue import spec

    families = {k: {s.family for s in spec(k).input_sets(0)} for k in
                ("maxpool2", "max_pool", "relu", "conv", "cross_entropy")}
    assert {"random", "digits", "flat"} <= families["maxpool2"]
    assert {"random", "digits", "overlap", "flat"} <= families["max_pool"]
    assert "boundary" in families["relu"] and "strided" in families["conv"]
    gaps = [s for s in spec("cross_entropy").input_sets(0) if s.family == "large-gap"]
    assert {s.dtype for s in gaps} == {"float64", "float32"}
    assert all(isinstance(s, InputSet) for s in gaps)


def test_layers_imported_from_a_sibling_file_and_package_relative_imports(tmp_path,
                                                                          monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("import numpy as np\n\ndef mask(x):\n    return x > 0\n")
    (pkg / "layers.py").write_text(
        "import numpy as np\nfrom .helpers import mask\n\n"
        "def relu_forward(x):\n    return np.maximum(0, x), x\n\n"
        "def relu_backward(dout, x):\n    return dout * mask(x)\n")
    (tmp_path / "cnn.py").write_text("from pkg.layers import relu_forward, relu_backward\n")
    relative = find_layers(load_file(pkg / "layers.py"), "layers.py")
    assert [layer.name for layer in relative.layers] == ["relu"]
    imported = find_layers(load_file(tmp_path / "cnn.py"), "cnn.py")
    assert [layer.name for layer in imported.layers] == ["relu"]
    monkeypatch.chdir(tmp_path)
    from jaxcnn.check import load_module
    assert [layer.name for layer in find_layers(load_module("pkg.layers")).layers] == ["relu"]
    with pytest.raises(CheckUsageError, match="is a folder"):
        load_file(pkg)


def test_given_inputs_must_match_the_arguments():
    from jaxcnn.check import from_cs231n

    with pytest.raises(ValueError, match="takes 3"):
        from_cs231n(lambda x, w, b: (x, None), lambda d, c: d, "affine",
                    inputs=[(np.ones((2, 3)),)])
    with pytest.raises(ValueError, match="arg_names names 1"):
        from_custom_vjp(jax.custom_vjp(lambda a, b: a * b), arg_names=("a",),
                        inputs=[(np.ones(2), np.ones(2))])
    report = check_layer(from_blog(reference.MaxPool2(), "maxpool2"), fd_seconds=0.01)
    with pytest.raises(KeyError, match="has input"):
        report.check("nope")


def test_a_kink_hidden_on_both_sides_of_the_step_is_confirmed_away():
    """Two near-ties crossed symmetrically keep the one-sided slopes equal (no kink seen);
    a second, smaller step moves the difference and exposes it."""
    delta = 0.5e-6

    def h(v):
        return float(max(0.0, v[0] - delta) - max(0.0, -v[0] - delta))  # flat at 0

    x = np.zeros(1)
    fd = numeric.differences(h, x, np.arange(1), 1e-6)
    assert not fd.kink[0] and fd.values[0] == pytest.approx(0.5)  # wrong, and unflagged
    confirmed = numeric.confirm(h, x, fd, np.array([True]), 1e-9)
    assert confirmed.kink[0]
    def sine(v):
        return float(np.sin(v[0]))

    smooth = numeric.differences(sine, np.full(1, 0.3), np.arange(1), 1e-6)
    assert not numeric.confirm(sine, np.full(1, 0.3), smooth, np.array([True]), 1e-6).kink[0]


RELU_PAIR = ("def relu_forward(x):\n    return np.maximum(0, x), x\n\n"
             "def relu_backward(dout, x):\n    return dout * (x > 0)\n")


@pytest.mark.parametrize("raw", [
    ("# -*- coding: latin-1 -*-\n# couche écrite à la main\nimport numpy as np\n"
     + RELU_PAIR).encode("latin-1"),
    ("\ufeffimport numpy as np\n" + RELU_PAIR).encode("utf-8"),  # a byte-order mark
])
def test_files_are_decoded_as_python_decodes_source(tmp_path, raw):
    path = tmp_path / "enc.py"
    path.write_bytes(raw)
    found = find_layers(load_file(path), str(path))
    assert [layer.name for layer in found.layers] == ["relu"]
    (tmp_path / "garbage.py").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" * 4)
    with pytest.raises(CheckUsageError, match="cannot read") as info:
        load_file(tmp_path / "garbage.py")
    assert "None" not in str(info.value)


def test_layers_behind_jax_jit_are_found_once(tmp_path):
    path = tmp_path / "jitted.py"
    path.write_text(
        "import jax\nimport jax.numpy as jnp\n\n@jax.jit\ndef relu(x):\n"
        "    return jnp.maximum(x, 0.0)\n\ndef relu_fwd(x):\n    return relu(x), x\n\n"
        "def relu_bwd(x, g):\n    return (g * (x > 0),)\n\n@jax.custom_vjp\n"
        "def tanh(x):\n    return jnp.tanh(x)\n\n"
        "tanh.defvjp(lambda x: (jnp.tanh(x), jnp.tanh(x)), lambda t, g: (g * (1 - t * t),))\n"
        "tanh_jit = jax.jit(tanh)\n")
    found = find_layers(load_file(path), str(path))
    assert sorted(layer.name for layer in found.layers) == ["relu", "tanh"]
    assert all(check_layer(layer, fd_seconds=0.01).ok for layer in found.layers)


def test_imports_made_when_a_function_runs_find_the_files_beside_it(tmp_path):
    (tmp_path / "helpers_late.py").write_text("def mask(x):\n    return x > 0\n")
    path = tmp_path / "late.py"
    path.write_text("import numpy as np\n\ndef relu_forward(x):\n"
                    "    from helpers_late import mask\n    return x * mask(x), x\n\n"
                    "def relu_backward(dout, x):\n    from helpers_late import mask\n"
                    "    return dout * mask(x)\n")
    layer = find_layers(load_file(path), str(path)).layers[0]
    assert check_layer(layer, fd_seconds=0.01).ok


FAST_POOL = (
    "import numpy as np\n\n"
    "def max_pool_forward_fast(x, pool_param):\n"
    "    ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']\n"
    "    n, c, h, w = x.shape\n"
    "    assert ph == pw == s and h % ph == 0 and w % pw == 0, 'reshape method only'\n"
    "    xr = x.reshape(n, c, h // ph, ph, w // pw, pw)\n"
    "    out = xr.max(axis=3).max(axis=4)\n    return out, (x, xr, out)\n\n"
    "def max_pool_backward_fast(dout, cache):\n    x, xr, out = cache\n"
    "    mask = xr == out[:, :, :, None, :, None]\n"
    "    dxr = mask * dout[:, :, :, None, :, None] / mask.sum(axis=(3, 5), keepdims=True)\n"
    "    return dxr.reshape(x.shape)\n")


def test_a_forward_that_refuses_other_settings_is_limited_not_wrong(tmp_path):
    path = tmp_path / "fast.py"
    path.write_text(FAST_POOL)
    report = check_layer(find_layers(load_file(path), str(path)).layers[0], fd_seconds=0.01)
    assert report.ok, [(c.kind, c.note) for c in report.checks]
    assert any("skipped" in n and "stride 1" in n for n in report.notes)
    # the same refusal under settings it ran with is still a bug
    path.write_text(FAST_POOL.replace("h % ph == 0", "h == w"))
    got = check_layer(find_layers(load_file(path), str(path)).layers[0],
                      fd_seconds=0.01).check("x")
    assert got.kind == "error" and "same ranks and settings" in got.note


def test_lost_precision_is_imprecise_never_scaled_by_one():
    rounded = kind_of(REF.astype(np.float16).astype(np.float64))
    assert rounded.kind == "imprecise" and "rounding" in rounded.note
    assert kind_of(REF * (1 + 1e-7)).kind == "imprecise"  # not "scaled x1"
    assert kind_of(REF * 1.01).kind == "scaled"  # a real factor stays scaled
    one_wrong = REF.copy()
    one_wrong[0, 0, 0] += 0.01  # a real error on one entry is not rounding
    assert kind_of(one_wrong).kind == "unclassified"


def test_a_float16_backward_and_a_float32_blog_layer(tmp_path):
    path = tmp_path / "precision.py"
    path.write_text(
        "import numpy as np\n\ndef affine_forward(x, w, b):\n"
        "    return x.reshape(len(x), -1) @ w + b, (x, w)\n\n"
        "def affine_backward(dout, cache):\n    x, w = cache\n"
        "    dx = (dout @ w.T).reshape(x.shape).astype(np.float16)\n"
        "    return dx, x.reshape(len(x), -1).T @ dout, dout.sum(0)\n\n"
        "class Dense:\n    def __init__(self, input_len, nodes):\n"
        "        self.weights = np.zeros((input_len, nodes), np.float32)\n"
        "        self.biases = np.zeros(nodes, np.float32)\n\n    def forward(self, input):\n"
        "        self.x = input.flatten().astype(np.float32)\n        self.shape = input.shape\n"
        "        return self.x @ self.weights + self.biases\n\n"
        "    def backprop(self, d, learn_rate):\n        d = d.astype(np.float32)\n"
        "        d_in = self.weights @ d\n"
        "        self.weights -= np.float32(learn_rate) * np.outer(self.x, d)\n"
        "        self.biases -= np.float32(learn_rate) * d\n"
        "        return d_in.reshape(self.shape)\n")
    layers = {layer.name: layer for layer in find_layers(load_file(path), str(path)).layers}
    affine = check_layer(layers["affine"], fd_seconds=0.01)
    assert affine.check("x").kind == "imprecise" and "float16" in affine.check("x").note
    assert affine.check("w").ok and affine.check("b").ok
    assert layers["Dense"].kind == "dense"  # float32 logits: the dense layout, not softmax
    dense = check_layer(layers["Dense"], fd_seconds=0.01)  # its weights stay float32
    assert dense.ok, [(c.quantity, c.kind, c.note) for c in dense.checks]
    assert all(c.oracle == "exact" and c.max_rel_error < 1e-4 for c in dense.checks)


def test_blog_buffers_the_forward_does_not_use_are_not_parameters(tmp_path):
    path = tmp_path / "buffers.py"
    path.write_text(
        "import numpy as np\n\nclass Dense:\n    def __init__(self, input_len, nodes):\n"
        "        self.weights = np.zeros((input_len, nodes))\n"
        "        self.biases = np.zeros(nodes)\n"
        "        self.d_weights = np.zeros_like(self.weights)\n"  # gradient buffers
        "        self.velocity = np.zeros_like(self.biases)\n\n"  # an optimizer's state
        "    def forward(self, input):\n"
        "        self.x = input.flatten()\n        self.shape = input.shape\n"
        "        return self.x @ self.weights + self.biases\n\n"
        "    def backprop(self, d, learn_rate):\n        d_in = self.weights @ d\n"
        "        self.d_weights = np.outer(self.x, d)\n"
        "        self.weights -= learn_rate * self.d_weights\n"
        "        self.biases -= learn_rate * d\n        return d_in.reshape(self.shape)\n\n"
        "class LeakyReLU:\n    def __init__(self):\n        self.slope = np.full(1, 0.01)\n\n"
        "    def forward(self, input):\n        self.x = input\n"
        "        return np.where(input > 0, input, self.slope * input)\n\n"
        "    def backprop(self, d):\n        return d * np.where(self.x > 0, 1.0, self.slope)\n")
    found = find_layers(load_file(path), str(path))
    (dense,) = found.layers
    assert dense.arg_names == ("input", "weights", "biases")
    assert check_layer(dense, fd_seconds=0.01).ok
    why = dict(found.skipped)  # a float attribute the forward uses would go unchecked
    assert "slope" in why["LeakyReLU"] and "unchecked" in why["LeakyReLU"]


def test_a_numeric_only_pass_at_a_noise_driven_tolerance_is_inconclusive(tmp_path):
    path = tmp_path / "steep.py"
    path.write_text(
        "import numpy as np\n\ndef sigmoid_forward(x):\n"
        "    out = 1 / (1 + np.exp(-2 * x.astype(np.float32)))\n    return out, out\n\n"
        "def sigmoid_backward(dout, out):\n"
        "    return dout * out * (1 - out) * 2.2\n")  # 10% too large, float32 forward
    got = check_layer(find_layers(load_file(path), str(path)).layers[0],
                      fd_seconds=0.01).check("x")
    assert got.kind == "inconclusive" and "too noisy" in got.note and got.oracle == "numeric"
    path.write_text(path.read_text().replace("* 2.2", "* 2"))  # right: agrees closely
    assert check_layer(find_layers(load_file(path), str(path)).layers[0],
                       fd_seconds=0.01).ok


SUM_LOSS = (
    "import numpy as np\n\ndef softmax_loss(x, y):\n    x = x.astype(np.float32)\n"
    "    p = np.exp(x - x.max(1, keepdims=True))\n    p /= p.sum(1, keepdims=True)\n"
    "    n = x.shape[0]\n    loss = -np.log(p[np.arange(n), y]).sum()\n"
    "    dx = p.copy()\n    dx[np.arange(n), y] -= 1\n    return loss, dx\n")


def test_a_loss_summed_over_samples_is_checked_exactly_also_in_float32(tmp_path):
    path = tmp_path / "loss.py"
    path.write_text(SUM_LOSS)
    layer = find_layers(load_file(path), str(path)).layers[0]
    assert layer.kind == "softmax_loss_sum"
    report = check_layer(layer, fd_seconds=0.01)
    assert report.ok and report.check("x").oracle == "exact", report.check("x").note
    path.write_text(SUM_LOSS.replace("    dx[np.arange(n), y] -= 1\n", ""))
    got = check_layer(find_layers(load_file(path), str(path)).layers[0],
                      fd_seconds=0.01).check("x")
    assert (got.kind, got.rule) == ("wrong-derivative", "one-hot not subtracted")


def test_a_blog_network_with_float32_parameters_and_float64_activations(tmp_path):
    # the blog's network with its parameters made float32: the activations stay float64
    # (float64 image, np.dot promotes), so only the weights are rounded
    source = (FIXTURES / "blog_layers.py").read_text()
    for old, new in (("np.random.randn(num_filters, 3, 3) / 9",
                      "(np.random.randn(num_filters, 3, 3) / 9).astype(np.float32)"),
                     ("np.random.randn(input_len, nodes) / input_len",
                      "(np.random.randn(input_len, nodes) / input_len).astype(np.float32)"),
                     ("self.biases = np.zeros(nodes)",
                      "self.biases = np.zeros(nodes, np.float32)")):
        assert old in source
        source = source.replace(old, new)
    path = tmp_path / "net32.py"
    path.write_text(source)
    layers = {layer.name: layer for layer in find_layers(load_file(path), str(path)).layers}
    softmax = check_layer(layers["Softmax"], fd_seconds=0.01)
    assert softmax.ok, [(c.quantity, c.kind, c.note) for c in softmax.checks]
    assert all(c.oracle == "exact" for c in softmax.checks)  # the reference sees float32 weights
    trio = [layers[n] for n in ("Conv3x3", "MaxPool2", "Softmax")]
    result = chain_mod.check_chain(trio, chain_mod.blog_chain_inputs(1))
    assert result["ok"] and result["inputs"][0]["forward_matches"], result["first_wrong"]


def test_a_forward_computing_in_float32_inside_gets_float32_tolerances(tmp_path):
    # float64 in and out, float32 inside (an output array made float32, then promoted)
    path = tmp_path / "inside32.py"
    path.write_text(
        "import numpy as np\n\ndef affine_forward(x, w, b):\n"
        "    out = np.zeros((len(x), w.shape[1]), np.float32)\n"
        "    out[:] = x.reshape(len(x), -1) @ w\n"
        "    return out.astype(np.float64) + b, (x, w)\n\n"
        "def affine_backward(dout, cache):\n    x, w = cache\n"
        "    return ((dout @ w.T).reshape(x.shape), x.reshape(len(x), -1).T @ dout,"
        " dout.sum(0))\n")
    layer = find_layers(load_file(path), str(path)).layers[0]
    report = check_layer(layer, fd_seconds=0.01)
    assert report.ok, [(c.quantity, c.kind, c.note) for c in report.checks]
    assert all(c.oracle == "exact" for c in report.checks)
    assert any("float32 inside" in n for n in report.notes)


def test_an_affine_that_assumes_a_batch_of_one_is_an_error_not_a_pass(tmp_path):
    path = tmp_path / "n1.py"
    path.write_text(
        "import numpy as np\n\ndef affine_forward(x, w, b):\n"
        "    return x.reshape(1, -1) @ w + b, (x, w)\n\n"
        "def affine_backward(dout, cache):\n    x, w = cache\n"
        "    return (dout @ w.T).reshape(x.shape), x.reshape(1, -1).T @ dout, dout.sum(0)\n")
    report = check_layer(find_layers(load_file(path), str(path)).layers[0], fd_seconds=0.01)
    assert not report.ok
    assert all(c.kind == "error" and "a bug in the forward" in c.note for c in report.checks)


def test_float32_inside_is_told_apart_even_where_one_value_sits_on_a_rounding_boundary():
    from jaxcnn.check.engine import _narrow_inside
    from jaxcnn.check.layer import InputSet, Layer

    def layer(fun):
        return Layer("f", "relu", "cs231n", ("x",), lambda args, static: fun(args[0]),
                     None, None, lambda seed: [])

    x = np.linspace(0.5, 1.5, 20)
    x[3] = 1 + 2.0 ** -24  # halfway between two float32 values: the nudge flips its rounding
    s = InputSet("random", "x", (x,))
    in32 = layer(lambda v: v.astype(np.float32).astype(np.float64) * 3)
    assert _narrow_inside(in32, s, in32.forward(s.args, ()))  # seed-independent verdicts
    in64 = layer(lambda v: v * 3)
    assert not _narrow_inside(in64, s, in64.forward(s.args, ()))
