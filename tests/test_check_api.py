"""`jaxcnn.check` from Python as the command line runs it (issue 17 §3-§7, §9): check_file
and FileReport, user inputs, names, import roots, unbuilt extensions, time limits,
reentrancy and inputs modified in place, 'only in float32', exit statuses, assert_correct
and the notebook table. Small layers only (affine, relu, softmax_loss, sigmoid)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jaxcnn import check
from jaxcnn.check import api, limits
from jaxcnn.check.discover import CheckUsageError

FIXTURES = Path(__file__).parent / "fixtures"

AFFINE = """\
import numpy as np

def affine_forward{suffix}(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b, (x, w)

def affine_backward{suffix}(dout, cache):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout{scale}
    return dx, dw, dout.sum(axis=0)
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def kinds(result) -> dict:
    return {(r.name, c.quantity): c.kind for r in result.layers for c in r.checks}


# §6: reentrancy, inputs left alone, only in float32

MUTATING = """\
import numpy as np

def softmax_loss(x, y):
    x -= np.max(x, axis=1, keepdims=True)   # the caller's scores change
    p = np.exp(x)
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return -np.log(p[np.arange(n), y]).mean(), dx / n

def relu_forward(x):
    return np.maximum(0, x), x

def relu_backward(dout, cache):
    cache[cache < 0] = 0                   # writes into the caller's x
    return dout * (cache > 0)

def tanh_forward(x):
    out = np.tanh(x)
    return out, out

def tanh_backward(dout, cache):
    dout *= 1 - cache ** 2                  # writes into dout only: a note
    return dout

def sigmoid_forward(x):
    out = 1 / (1 + np.exp(-x))
    return out, out

def sigmoid_backward(dout, out):
    out *= 1 - out                          # turns its cache into the derivative
    return dout * out

class Sigmoid:
    def __init__(self):
        self.grad = None
    def forward(self, input):
        self.out = 1 / (1 + np.exp(-input))
        return self.out
    def backprop(self, d):
        g = d * self.out * (1 - self.out)
        self.grad = g if self.grad is None else self.grad + g   # accumulates across calls
        return self.grad
"""


def test_inputs_modified_in_place_and_a_backward_that_accumulates(tmp_path):
    result = check.check_file(write(tmp_path / "mut.py", MUTATING))
    got = kinds(result)
    assert got[("softmax_loss", "x")] == "modifies-input"
    assert got[("relu", "x")] == "modifies-input"
    assert got[("Sigmoid", "input")] == "not-reentrant"
    assert got[("sigmoid", "x")] == "not-reentrant"
    assert got[("tanh", "x")] == "correct"  # dout written into: a note, not a failure
    assert any("upstream gradient (dout)" in n for n in result.layer("tanh").notes)
    note = result.layer("softmax_loss").check("x").note
    assert "values are correct" in note and "writes into its argument x" in note
    assert result.status == 1
    assert {"not-reentrant", "modifies-input"} <= set(check.KINDS)


def test_correct_code_is_left_alone_by_the_extra_checks():
    result = check.check_file(FIXTURES / "cs231n_layers.py",
                              layers=["affine", "relu", "softmax_loss", "sigmoid"])
    assert set(kinds(result).values()) == {"correct"}, result.text()


F32 = """\
import jax
import jax.numpy as jnp

@jax.custom_vjp
def cross_entropy(logits, label):
    p = jnp.exp(logits) / jnp.sum(jnp.exp(logits))   # no max subtracted: 0 in float32
    return -jnp.log(p[label])

def cross_entropy_fwd(logits, label):
    p = jnp.exp(logits - jnp.max(logits))
    p = p / jnp.sum(p)
    return -jnp.log(p[label]), (p, label)

def cross_entropy_bwd(res, g):
    p, label = res
    return (g * (p - jax.nn.one_hot(label, p.shape[0], dtype=p.dtype)), None)

cross_entropy.defvjp(cross_entropy_fwd, cross_entropy_bwd)
"""


def test_a_failure_only_in_float32_says_so(tmp_path):
    result = check.check_file(write(tmp_path / "f32.py", F32))
    c = result.layer("cross_entropy").check("logits")
    assert not c.ok and c.note.startswith("only in float32")


# §3: the user's inputs


def test_inputs_from_a_python_function_and_an_npz(tmp_path):
    layers = write(tmp_path / "aff.py", AFFINE.format(suffix="", scale=""))
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 2, 2)), rng.standard_normal((4, 5)), np.zeros(5)
    np.savez(tmp_path / "mine.npz", **{"affine/x": x, "affine/w": w, "affine/b": b})
    write(tmp_path / "mine.py", """\
        import numpy as np

        def make():
            r = np.random.default_rng(1)
            return {"affine_forward": [(r.standard_normal((2, 3)), r.standard_normal((3, 4)),
                                np.ones(4)),
                               {"args": (np.ones((1, 3)), np.eye(3), np.zeros(3))}]}
        """)
    for spec, count in ((f"{tmp_path}/mine.py:make", 2), (f"{tmp_path}/mine.npz", 1)):
        result = check.check_file(layers, inputs=spec)
        assert result.ok and result.user_inputs == {"affine": count}
        names = [f["inputs"] for f in result.layer("affine").forward]
        assert [n.startswith("your inputs #") for n in names[:count + 1]] == [True] * count + [
            False]
        doc = result.to_json()
        assert [s["by"] for s in doc["layers"][0]["input_sets"]][:count + 1] == (
            ["you"] * count + ["jaxcnn"])
        assert "of yours" in result.text()


@pytest.mark.parametrize("spec, message", [
    ("nope.npz", "no such file"),
    ("mine.py:absent", "has no function absent()"),
    ("mine.txt", "give FILE.py, FILE.py:FUNC or FILE.npz"),
    ("bad.py", "input 0 for affine has 1 arrays; it takes 3 (x, w, b)"),
    ("other.py", "no layer named conv"),
    # the import error named the file but not the option that named it
    ("broken.py", "--inputs broken.py: cannot import broken.py: SyntaxError"),
])
def test_bad_inputs_are_one_line(tmp_path, spec, message, monkeypatch):
    layers = write(tmp_path / "aff.py", AFFINE.format(suffix="", scale=""))
    write(tmp_path / "mine.py", "def inputs():\n    return []\n")
    write(tmp_path / "bad.py", "import numpy as np\ndef inputs():\n    return [(np.ones(3),)]\n")
    write(tmp_path / "other.py",
          "import numpy as np\ndef inputs():\n    return {'conv': [(np.ones(3),)]}\n")
    write(tmp_path / "broken.py", "def inputs(:\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckUsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check.check_file(layers, inputs=spec)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not a zip\n"), "not an .npz file (not a zip archive)"),
    (lambda p: p.write_bytes(b""), "not an .npz file (not a zip archive)"),
    (lambda p: np.savez(p, **{"affine/x": np.array([None, 1], dtype=object)}),
     "array 'affine/x' cannot be read without pickle"),
    (lambda p: np.savez(p, **{"affine/x": np.ones((2, 3)), "affine/w": np.ones((3, 4)),
                             "affine/b": np.zeros(4), "affine/label": np.array([1, 2])}),
     "affine/0/label must be one integer"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: __import__("os").mkfifo(p), "not a regular file"),
])
def test_a_bad_npz_or_a_non_file_is_one_usage_error(tmp_path, make, message):
    """A text file was read as a pickle ("contains pickled (object) data"), an object
    array ended in a traceback, a label vector in int()'s TypeError, and a folder or a
    FIFO was "no such file"."""
    layers = write(tmp_path / "aff.py", AFFINE.format(suffix="", scale=""))
    make(tmp_path / "mine.npz")
    with pytest.raises(CheckUsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check.check_file(layers, inputs=str(tmp_path / "mine.npz"))


# §4: names, import roots, unbuilt extensions, errors in the backward


def test_rows_are_named_by_function_when_names_collide_and_layer_takes_them(tmp_path):
    write(tmp_path / "layers.py", AFFINE.format(suffix="", scale="") +
          AFFINE.format(suffix="_fast", scale=" / x.shape[0]"))
    result = check.check_file(tmp_path / "layers.py")
    assert {r.name for r in result.layers} == {"affine_forward", "affine_forward_fast"}
    assert kinds(result)[("affine_forward_fast", "w")] == "scaled"
    for name in ("affine_forward_fast", "affine_backward_fast"):
        picked = check.check_file(tmp_path / "layers.py", layers=[name])
        assert [r.name for r in picked.layers] == ["affine_forward_fast"]


def test_a_package_folder_without_init_is_imported_from_its_root(tmp_path):
    write(tmp_path / "cs231n" / "layers.py", AFFINE.format(suffix="", scale=""))
    util = write(tmp_path / "cs231n" / "layer_utils.py", """\
        from cs231n.layers import *

        def affine_relu_forward(x, w, b):
            a, fc_cache = affine_forward(x, w, b)
            return a * (a > 0), (fc_cache, a)

        def affine_relu_backward(dout, cache):
            fc_cache, a = cache
            return affine_backward(dout * (a > 0), fc_cache)
        """)
    result = check.check_file(util, layers=["affine_relu"])
    assert kinds(result) == {("affine_relu", "x"): "correct", ("affine_relu", "w"): "correct",
                             ("affine_relu", "b"): "correct"}


def test_an_unbuilt_extension_is_an_environment_problem(tmp_path, monkeypatch):
    (tmp_path / "cs231n").mkdir()
    (tmp_path / "cs231n" / "im2col_cython.pyx").write_text("# cython source\n")
    (tmp_path / "setup.py").write_text("# builds im2col_cython\n")
    fast = write(tmp_path / "cs231n" / "fast_layers.py", """\
        import numpy as np
        try:
            from cs231n.im2col_cython import col2im_cython
        except ImportError:
            print("run python setup.py build_ext --inplace")

        def relu_forward(x):
            return np.maximum(0, x), x

        def relu_backward(dout, x):
            return dout * (x > 0)

        def sigmoid_forward(x):
            return col2im_cython(x), x

        def sigmoid_backward(dout, x):
            return dout
        """)
    result = check.check_file(fast)
    assert [r.name for r in result.layers] == ["relu"] and result.status == 0
    (name, why), = result.environment
    assert name == "sigmoid" and "not built" in why and "build_ext --inplace" in why
    assert "environment problem" in result.text()
    # the same as a module (-m course_ext.fast_layers, from the folder above): not the
    # NameError its own `except ImportError` leaves behind (a package name of its own:
    # another test's cs231n package may be in sys.modules)
    from jaxcnn.check.api import check_sources

    package = tmp_path / "as_module" / "course_ext"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "im2col_cython.pyx").write_text("# cython source\n")
    (package / "fast_layers.py").write_text(fast.read_text().replace(
        "cs231n.im2col_cython", "course_ext.im2col_cython"))
    monkeypatch.chdir(package.parent)
    result = check_sources(modules=["course_ext.fast_layers"])
    assert [r.name for r in result.layers] == ["relu"] and result.status == 0
    (name, why), = result.environment
    assert name == "sigmoid" and "not built" in why and "NameError" not in why


def test_an_error_in_the_backward_shows_file_and_line_in_the_text(tmp_path):
    path = write(tmp_path / "bad.py", """\
        import numpy as np

        def relu_forward(x):
            return np.maximum(0, x), x

        def relu_backward(dout, x):
            return dout[x.shape[0] + 5] * 0
        """)
    result = check.check_file(path)
    assert result.status == 1
    assert "IndexError" in result.text() and "bad.py:7" in result.text()


# §5: chains never pass a broken layer; exit statuses


def test_a_chain_never_passes_a_layer_its_rows_fail(tmp_path):
    """The issue's layers.py: max_pool_backward_naive returns None, the conv backward
    returns zeros. The chain (run without the slow per-layer checks) names the missing
    gradient; and a chain whose layer has failing rows is never "every layer correct"."""
    from jaxcnn.check import chain
    from jaxcnn.check.engine import LayerReport

    source = (FIXTURES / "cs231n_layers.py").read_text()
    source = source.replace("    return dx\n\n\ndef softmax_loss", "    return None\n\n\n"
                            "def softmax_loss")  # max_pool_backward_naive returns None
    assert "return None" in source
    path = write(tmp_path / "layers.py", source)
    module = check.load_file(path)
    layers = [layer for layer in check.find_layers(module, str(path)).layers
              if layer.name in ("max_pool", "affine", "softmax_loss")]
    network = chain.cs231n_chain(layers)
    c = chain.check_chain(network, chain.cs231n_chain_inputs(network, 0))
    assert not c["ok"] and all(r["first_wrong"] == {"layer": "max_pool", "quantity": "x",
                                                   "kind": "missing"} for r in c["inputs"])
    # rows that fail though the chain's inputs do not show it
    good = (FIXTURES / "cs231n_layers.py").read_text()
    module = check.load_file(write(tmp_path / "good.py", good))
    layers = [layer for layer in check.find_layers(module, str(tmp_path / "good.py")).layers
              if layer.name in ("max_pool", "affine", "softmax_loss")]
    wrong_row = check.Check("x", "zero", None, None, None, 1.0, 1.0, None, [], "", "exact", [])
    rows = [LayerReport("max_pool", "max_pool", "cs231n", None, None, [wrong_row], [], [], [],
                        0.0)]
    (c,) = api._chains([("good.py", module, str(tmp_path / "good.py"))], layers, rows, 0, None)
    assert not c["ok"] and c["rows_not_ok"] == ["max_pool (zero)"]
    text = "\n".join(chain.summary(c))
    assert "every layer correct" not in text and "max_pool (zero)" in text


def test_a_chain_past_the_time_limit_is_a_failed_chain_that_says_so(tmp_path, monkeypatch):
    """A chain that runs past the time limit keeps every layer's rows and is one chain
    that is not ok, saying where it was stuck (before: the run ended there, and text mode
    printed no table)."""
    from jaxcnn.check import chain

    def forever(*args, **kwargs):
        while True:
            pass

    good = (FIXTURES / "cs231n_layers.py").read_text()
    module = check.load_file(write(tmp_path / "good.py", good))
    layers = [layer for layer in check.find_layers(module, str(tmp_path / "good.py")).layers
              if layer.name in ("max_pool", "affine", "softmax_loss")]
    monkeypatch.setattr(chain, "check_chain", forever)
    (c,) = api._chains([("good.py", module, str(tmp_path / "good.py"))], layers, [], 0, 0.5)
    assert not c["ok"] and c["inputs"] == [] and c["first_wrong"] is None
    assert c["error"].startswith("the chain of ") and "did not finish in 0.5 s" in c["error"]
    assert any(line.startswith("  not judged: the chain of ") for line in chain.summary(c))
    json.dumps(c, allow_nan=False)


def test_a_chain_whose_inputs_the_users_forward_cannot_build_says_so(tmp_path, monkeypatch):
    """The kind: the user's forward raising while a chain's inputs are shaped (a 2016
    dropout_forward returning None in one mode). Before: a traceback and no JSON. Now the
    chain is not ok and says where the user's code raised; the rows are kept."""
    from jaxcnn.check import chain

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'astype'")

    good = (FIXTURES / "cs231n_layers.py").read_text()
    module = check.load_file(write(tmp_path / "good.py", good))
    layers = [layer for layer in check.find_layers(module, str(tmp_path / "good.py")).layers
              if layer.name in ("max_pool", "affine", "softmax_loss", "conv", "relu")]
    monkeypatch.setattr(chain, "cs231n_chain_inputs", broken)
    (c,) = api._chains([("good.py", module, str(tmp_path / "good.py"))], layers, [], 0, 10)
    assert not c["ok"] and c["inputs"] == []
    assert "its inputs could not be built: " in c["error"] and "AttributeError" in c["error"]
    json.dumps(c, allow_nan=False)


def test_a_layer_whose_every_input_is_refused_is_exit_2_not_1(tmp_path):
    path = write(tmp_path / "refuse.py", """\
        def relu_forward(x):
            raise ValueError("only my own shapes")

        def relu_backward(dout, x):
            return dout
        """)
    result = check.check_file(path)
    assert result.status == 2 and "Not checked (every input refused): relu" in result.text()


# §7: time limits


def test_an_import_that_never_ends_names_its_line(tmp_path):
    path = write(tmp_path / "forever.py", "import numpy\n\nwhile True:\n    pass\n")
    with pytest.raises(limits.Stuck) as info:
        check.check_file(path, time_limit=0.5)
    assert f"importing {path} did not finish in 0.5 s" in str(info.value)
    assert info.value.where == f"{path}:3 (`while True:`)" or info.value.where.startswith(
        f"{path}:4")


# §9: assert helper, notebook table


def test_assert_correct_takes_a_file_a_module_a_layer_or_a_pair(tmp_path):
    good = write(tmp_path / "good.py", AFFINE.format(suffix="", scale=""))
    bad = write(tmp_path / "bad_affine.py", AFFINE.format(suffix="", scale=" * 2"))
    assert check.assert_correct(good).ok
    with pytest.raises(AssertionError) as info:
        check.assert_correct(bad)
    message = str(info.value)
    assert "scaled x2" in message and "w: SCALED" in message and "max rel err" in message
    module = check.load_file(good)
    check.assert_correct(module)
    check.assert_correct(module.affine_forward, module.affine_backward)
    check.assert_correct(check.from_cs231n(module.affine_forward, module.affine_backward,
                                           "affine"))
    with pytest.raises(TypeError):
        check.assert_correct(42)


def test_reports_show_as_html_tables(tmp_path):
    result = check.check_file(write(tmp_path / "bad_affine.py",
                                    AFFINE.format(suffix="", scale=" * 2")))
    page = result._repr_html_()
    assert page.startswith('<table class="jaxcnn-check">') and "scaled x2" in page
    assert "<td>w</td>" in page and "<td>affine</td>" in page
    layer_page = result.layers[0]._repr_html_()
    assert "<table" in layer_page and "affine" in layer_page


def test_status_and_aliases_of_a_file_report():
    layer = check.from_cs231n(lambda x: (x, x), lambda d, c: d, "relu", "relu")
    assert {"relu", "relu_forward", "relu_backward"} <= api.aliases(layer)
    empty = api.FileReport(["x.py"], [])
    assert empty.status == 2 and not empty.ok


def test_assert_correct_on_a_pair_knows_the_catalogue_and_unknown_names(tmp_path):
    """A forward/backward pair got only the six old kinds from its name: a batchnorm pair
    (a catalogue kind, as `jaxcnn check` finds it in a file) or a swish pair (no
    reference: its own forward's finite differences) raised "cannot tell the kind"."""
    import importlib.util

    path = write(tmp_path / "pairs.py", """\
        import numpy as np

        def batchnorm_forward(x, gamma, beta, bn_param):
            mu, var = x.mean(0), x.var(0)
            xhat = (x - mu) / np.sqrt(var + bn_param.get("eps", 1e-5))
            return gamma * xhat + beta, (xhat, gamma, var + bn_param.get("eps", 1e-5))

        def batchnorm_backward(dout, cache):
            xhat, gamma, ve = cache
            n = dout.shape[0]
            dxhat = dout * gamma
            dx = (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (n * np.sqrt(ve))
            return dx, (dout * xhat).sum(0), dout.sum(0)

        def swish_forward(x):
            s = 1 / (1 + np.exp(-x))
            return x * s, (x, s)

        def swish_backward(dout, cache):
            x, s = cache
            return -dout * (s + x * s * (1 - s))            # a sign too many
        """)
    spec = importlib.util.spec_from_file_location("pairs", path)
    pairs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pairs)
    report = check.assert_correct(pairs.batchnorm_forward, pairs.batchnorm_backward)
    assert report.ok and {c.quantity for c in report.checks} == {"x", "gamma", "beta"}
    with pytest.raises(AssertionError, match="sign-flipped"):
        check.assert_correct(pairs.swish_forward, pairs.swish_backward)
