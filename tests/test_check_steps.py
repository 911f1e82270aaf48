"""The first wrong step of a backward (``jaxcnn.check.steps``): the right line and name
for one-line bugs planted in staged backward passes, and none on the correct versions."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from jaxcnn.check import (
    check_layer,
    find_layers,
    from_blog,
    from_cs231n,
    from_cs231n_loss,
    load_file,
)
from jaxcnn.check.layer import InputSet, Layer

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "staged_backward.py"
_count = itertools.count()


def _module(path: Path, old: str | None = None, new: str | None = None, tmp: Path | None = None):
    """``path`` as a fresh module, with the line holding ``old`` replaced by ``new``.
    Returns (module, the line number of the replaced line or None)."""
    source = path.read_text()
    line = None
    if old is not None:
        assert source.count(old) == 1, old
        line = source[:source.index(old)].count("\n") + 1
        source = source.replace(old, new)
    target = tmp / f"mutant_{next(_count)}.py"
    target.write_text(source)
    spec = importlib.util.spec_from_file_location(target.stem, target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, line


def _numeric_layer(name, forward, backward, arg_names, args, static, outputs=1):
    """A CS231n pair with no catalogue reference (finite differences only), on one input
    set. ``outputs`` > 1: the forward returns several arrays before its cache; the layer's
    output is their concatenation along the last axis."""
    def split(ct, shapes):
        cuts = np.cumsum([s[-1] for s in shapes])[:-1]
        return np.split(ct, cuts, axis=-1)

    def fwd(a, st):
        result = forward(*(v.copy() for v in a), *st)
        return np.concatenate(result[:outputs], axis=-1) if outputs > 1 else result[0]

    def vjp(a, st):
        result = forward(*(v.copy() for v in a), *st)
        outs, cache = result[:outputs], result[outputs]
        out = np.concatenate(outs, axis=-1) if outputs > 1 else outs[0]
        shapes = [o.shape for o in outs]
        return out, lambda ct: backward(*(split(ct, shapes) if outputs > 1 else [ct.copy()]),
                                        cache)

    sets = [InputSet("random", "random", tuple(args), tuple(static))]
    return Layer(name, name, "cs231n", tuple(arg_names), fwd, vjp, None, lambda seed: sets,
                 sources=(forward, backward))


def _rng():
    return np.random.default_rng(3)


def _batchnorm(m):
    r = _rng()
    return _numeric_layer("batchnorm", m.batchnorm_forward, m.batchnorm_backward,
                          ("x", "gamma", "beta"),
                          (r.standard_normal((4, 5)), r.standard_normal(5), r.standard_normal(5)),
                          ({},))


def _layernorm(m):
    r = _rng()
    return _numeric_layer("layernorm", m.layernorm_forward, m.layernorm_backward,
                          ("x", "gamma", "beta"),
                          (r.standard_normal((3, 5)), r.standard_normal(5), r.standard_normal(5)),
                          ({},))


def _lstm(m):
    r = _rng()
    n, d, h = 3, 4, 2
    args = (r.standard_normal((n, d)), r.standard_normal((n, h)), r.standard_normal((n, h)),
            r.standard_normal((d, 4 * h)) / 2, r.standard_normal((h, 4 * h)) / 2,
            r.standard_normal(4 * h))
    return _numeric_layer("lstm_step", m.lstm_step_forward, m.lstm_step_backward,
                          ("x", "prev_h", "prev_c", "Wx", "Wh", "b"), args, (), outputs=2)


def _network(m):
    r = _rng()
    x, y = r.standard_normal((3, 5)), (r.random((1, 5)) > 0.5).astype(float)
    args = (r.standard_normal((4, 3)), r.standard_normal((4, 1)), r.standard_normal((1, 4)),
            r.standard_normal((1, 1)))
    names = ("W1", "b1", "W2", "b2")

    def forward(*a):
        return m.forward_propagation(x, y, dict(zip(names, a, strict=True)))

    def backward(ct, cache):
        g = m.backward_propagation(x, y, cache)
        return tuple(ct * g["d" + n] for n in names)

    layer = _numeric_layer("network", forward, backward, names, args, ())
    return layer._replace(sources=(m.forward_propagation, m.backward_propagation))


def _conv(m):
    return from_cs231n(m.conv_forward_naive, m.conv_backward_naive, "conv")


def _loss(m):
    return from_cs231n_loss(m.softmax_loss, "softmax_loss")


CASES = [  # (layer, old line, new line, name, kind)
    (_batchnorm, "dsqrtvar = -1. / (sqrtvar ** 2) * divar",
     "dsqrtvar = 1. / (sqrtvar ** 2) * divar", "dsqrtvar", "sign-flipped"),
    (_batchnorm, "    dx = dx1 + dx2\n", "    dx = dx1\n", "dx", "missing-accumulation"),
    (_batchnorm, "divar = np.sum(dxhat * xmu, axis=0)", "divar = np.mean(dxhat * xmu, axis=0)",
     "divar", "scaled"),
    (_batchnorm, "dxhat = dgammax * gamma", "dxhat = dgammax * gamma[::-1]", "dxhat", None),
    (_layernorm, "dxhat = dout * gamma", "dxhat = dout * gamma * 2", "dxhat", "scaled"),
    (_layernorm, "dgamma = np.sum(dout * xhat, axis=0)", "dgamma = np.sum(dout * xhat, axis=1)",
     "dgamma", "wrong-shape"),
    (_conv, "dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, :H, :W]", "dx", None),
    (_lstm, "da = np.hstack((di * i * (1 - i), df * f * (1 - f),",
     "da = np.hstack((df * f * (1 - f), di * i * (1 - i),", "da", None),
    (_loss, "dlogprobs[np.arange(n), y] = -1.0 / n", "dlogprobs[np.arange(n), y] = -1.0",
     "dlogprobs", "scaled"),
    (_loss, "dcounts_sum = (-counts_sum ** -2) * dcounts_sum_inv",
     "dcounts_sum = (counts_sum ** -2) * dcounts_sum_inv", "dcounts_sum", "sign-flipped"),
    (_network, "dZ1 = np.multiply(dA1, np.int64(A1 > 0))",
     "dZ1 = np.multiply(dA1, np.int64(Z1 < 0))", "dZ1", None),
    (_network, "db1 = 1. / m * np.sum(dZ1, axis=1, keepdims=True)",
     "db1 = np.sum(dZ1, axis=1, keepdims=True)", "db1", "scaled"),
]


@pytest.mark.parametrize("make, old, new, name, kind", CASES,
                         ids=[f"{c[0].__name__[1:]}-{c[3]}" for c in CASES])
def test_the_first_wrong_line_is_named(tmp_path, make, old, new, name, kind):
    module, line = _module(FIXTURE, old, new, tmp_path)
    report = check_layer(make(module))
    assert not report.ok
    first = report.first_wrong_step
    assert first is not None, report.notes
    assert (first.name, first.line) == (name, line), first.text()
    if kind is not None:
        assert first.kind == kind, first.text()
    assert first.file.endswith(".py") and new.strip().split("\n")[0][:20] in first.code
    wrong = [c for c in report.checks if not c.ok]
    assert wrong and all(c.first_wrong_intermediate["line"] == line for c in wrong)
    assert all(c.first_wrong_intermediate is None for c in report.checks if c.ok)


@pytest.mark.parametrize("make", [_batchnorm, _layernorm, _conv, _lstm, _network, _loss])
def test_a_correct_backward_gets_no_first_wrong_step(tmp_path, make):
    module, _ = _module(FIXTURE, tmp=tmp_path)
    report = check_layer(make(module))
    assert report.ok, [(c.quantity, c.kind) for c in report.checks]
    assert report.first_wrong_step is None


def test_everything_before_the_first_wrong_step_is_listed_right(tmp_path):
    module, line = _module(FIXTURE, "dsqrtvar = -1. / (sqrtvar ** 2) * divar",
                           "dsqrtvar = 1. / (sqrtvar ** 2) * divar", tmp_path)
    first = check_layer(_batchnorm(module)).first_wrong_step
    assert first.right_before == ("dbeta", "dgammax", "dgamma", "dxhat", "divar", "dxmu1")
    assert first.expected == "dL/dsqrtvar"
    assert "first wrong step: line" in first.text() and "sign-flipped" in first.text()


def test_the_reports_pool_is_pinned_to_its_equality_mask():
    from jaxcnn import reference

    report = check_layer(from_blog(reference.MaxPool2(), "maxpool2"))
    first = report.first_wrong_step
    source = Path(reference.__file__).read_text().splitlines()
    assert first.kind == "tie-overcount"
    assert first.name == "d_L_d_input"
    assert "d_L_d_out[i, j, f2]" in source[first.line - 1]
    assert first.under is not None and "==" in first.under


def test_the_reports_softmax_with_s_for_s_squared(tmp_path):
    from jaxcnn import reference

    old = "d_out_d_t = -t_exp[i] * t_exp / (S**2)"
    module, line = _module(Path(reference.__file__), old, "d_out_d_t = -t_exp[i] * t_exp / S",
                           tmp_path)
    rng = np.random.default_rng(0)
    layer = from_blog(module.Softmax.from_params(rng.standard_normal((12, 10)) / 12,
                                                 np.zeros(10)), "dense_softmax")
    report = check_layer(layer)
    first = report.first_wrong_step
    assert (first.name, first.line) == ("d_out_d_t", line), first.text()
    # the correct softmax has none
    assert check_layer(from_blog(reference.Softmax.from_params(
        rng.standard_normal((12, 10)) / 12, np.zeros(10)), "dense_softmax")).first_wrong_step \
        is None


def test_the_users_function_is_left_as_it_was(tmp_path):
    module, _ = _module(FIXTURE, "dsqrtvar = -1. / (sqrtvar ** 2) * divar",
                        "dsqrtvar = 1. / (sqrtvar ** 2) * divar", tmp_path)
    code = module.batchnorm_backward.__code__, module.batchnorm_forward.__code__
    names = set(vars(module))
    check_layer(_batchnorm(module))
    assert (module.batchnorm_backward.__code__, module.batchnorm_forward.__code__) == code
    assert set(vars(module)) == names


def test_no_source_no_analysis_and_a_note():
    namespace: dict = {}
    exec("import numpy as np\n"  # noqa: S102 - a function without a source file
         "def relu_forward(x):\n    return np.maximum(x, 0), x\n"
         "def relu_backward(dout, x):\n    return dout * (x < 0)\n", namespace)
    report = check_layer(from_cs231n(namespace["relu_forward"], namespace["relu_backward"],
                                     "relu"))
    assert not report.ok and report.first_wrong_step is None
    assert any("first wrong step not analysed" in n for n in report.notes)


@pytest.mark.parametrize("bug", [False, True])
def test_a_jax_custom_vjp_backward_is_analysed_too(tmp_path, bug):
    from jaxcnn.check import from_custom_vjp

    old = "          - xhat * jnp.sum(dxhat * xhat, axis=1, keepdims=True)) / (D * std)"
    new = old.replace("- xhat", "+ xhat")
    module, line = _module(ROOT / "tests" / "fixtures" / "staged_jax.py",
                           old if bug else None, new if bug else None, tmp_path)
    r = _rng()
    layer = from_custom_vjp(module.layernorm, arg_names=("x", "gamma", "beta"),
                            inputs=[(r.standard_normal((3, 5)), r.standard_normal(5),
                                     r.standard_normal(5))])
    report = check_layer(layer)
    if not bug:
        assert report.ok and report.first_wrong_step is None
        return
    first = report.first_wrong_step
    assert first.name == "dx" and first.line == line - 1, first.text()  # the statement's start
    assert first.right_before == ("dbeta", "dgamma", "dxhat")


def test_a_one_path_input_at_ties_keeps_its_named_kind(tmp_path):
    """The README's JAX max pool (tie-overcount): its `return` line was named as the first
    wrong step but as `missing-accumulation` ("holds only the part of dL/dx through line
    11; the rest is missing"), because `x.shape` counted as a second path. One term of a
    sum over paths needs two paths that carry gradient; the row's kind stands."""
    from jaxcnn.check import from_custom_vjp

    path = ROOT / "experiments" / "check_fixtures" / "jax_ex.py"
    module, _ = _module(path, tmp=tmp_path)
    report = check_layer(from_custom_vjp(module.maxpool, kind="maxpool2"))
    first = report.first_wrong_step
    assert report.checks[0].kind == "tie-overcount"
    assert first is not None and first.kind == "tie-overcount", first.text()
    assert "return" in path.read_text().splitlines()[first.line - 1]


def _file_reports(path: Path) -> dict:
    found = find_layers(load_file(path), str(path))
    return {layer.name: check_layer(layer) for layer in found.layers}


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text().splitlines()
    return next(k for k, line in enumerate(lines, 1) if text in line)


@pytest.fixture(scope="module")
def in_place():
    return _file_reports(ROOT / "tests" / "fixtures" / "in_place_grads.py")


def test_a_gradient_built_in_place_is_judged_at_its_last_write(in_place):
    """``dW[:, j] += X[i]`` in a loop, then ``dW /= n``, then ``dW += reg * W``: the
    loop's partial sums are not dL/dW, and the first wrong step was the loop's right line
    20 ("unclassified against dL/dW"). A write is judged by its contribution to the final
    value, the other writes taken as right."""
    path = ROOT / "tests" / "fixtures" / "in_place_grads.py"
    loop = {_line_of(path, "dW[:, j] += X[i]"), _line_of(path, "dW[:, y[i]] -= X[i]")}
    for name, (code, kind, scale_) in {
            "svm_loss_reg_sign": ("dW -= 2 * reg * W", "sign-flipped", -1.0),
            "svm_loss_reg_half": ("dW += reg * W", "scaled", 0.5)}.items():
        first = in_place[name].first_wrong_step
        assert first is not None and first.code == code, first.text()
        assert (first.name, first.kind, first.last_write) == ("dW", kind, False)
        assert abs(first.scale - scale_) < 1e-9 and first.line not in loop
    # a term left out: no write is wrong; the last write is named, with what is wrong
    first = in_place["svm_loss_no_reg_grad"].first_wrong_step
    assert first.line not in loop and first.code == "dW /= n" and first.last_write
    assert "dW is wrong after its last write" in first.text()
    assert first.to_json()["last_write"] is True


@pytest.fixture(scope="module")
def in_loop():
    return _file_reports(ROOT / "tests" / "fixtures" / "in_loop_grads.py")


@pytest.mark.parametrize("name, code, kind, scale_", [
    ("svm_loss_loop_sign", "dW[:, y[i]] += X[i]", "sign-flipped", -1.0),
    ("svm_loss_loop_double", "dW[:, j] += 2 * X[i]", "scaled", 2.0)])
def test_a_wrong_write_inside_a_loop_is_named_by_its_share(in_loop, name, code, kind, scale_):
    """The kind: a line that runs many times in a loop and builds a gradient in place.
    Each line is judged by the sum of what its runs added (the other lines taken as
    right), so the loop's wrong line is named with its kind, not "dW is wrong after its
    last write" with every line of the loop as a suspect."""
    first = in_loop[name].first_wrong_step
    assert first is not None and first.code == code, first.text()
    assert (first.name, first.kind, first.last_write) == ("dW", kind, False)
    assert abs(first.scale - scale_) < 1e-9
    assert first.under == "if margin > 0:"
    assert "times it ran" in first.note and "last write" not in first.text()


def test_a_term_added_twice_is_named_at_its_second_line(in_loop):
    """``dW += 2 * reg * W`` written twice: neither line is scaled or sign-flipped, the
    second one is a term that does not belong (before: "a term is missing")."""
    first = in_loop["softmax_loss_reg_twice"].first_wrong_step
    assert first is not None and first.code == "dW += 2 * reg * W", first.text()
    path = ROOT / "tests" / "fixtures" / "in_loop_grads.py"
    lines = [k for k, line in enumerate(path.read_text().splitlines(), 1)
             if line.strip() == "dW += 2 * reg * W"]
    twice = [k for k in lines if k > _line_of(path, "def softmax_loss_reg_twice")][:2]
    assert first.line == twice[1] and not first.last_write
    assert "does not belong" in first.text() and "missing" not in first.text()


def test_a_right_loop_gets_no_first_wrong_step(in_loop):
    report = in_loop["svm_loss_loop_right"]
    assert report.first_wrong_step is None
    assert report.ok and report.checks, report


def test_a_sum_gradient_returned_for_a_mean_loss_is_named_at_the_return():
    """The loss is a mean, its gradient is left the sum over samples, and nothing after
    the return divides it: ``dx[np.arange(n), y] -= 1`` is a right step of the sum's
    gradient (a sum whose mean is taken later is no mistake), the return is where the
    mean is never taken."""
    path = ROOT / "tests" / "fixtures" / "mean_loss_sum_grad.py"
    first = _file_reports(path)["softmax_loss"].first_wrong_step
    assert first is not None and first.line == _line_of(path, "    return "), first.text()
    assert (first.kind, first.scale) == ("scaled", 4.0)
    assert "mean is never taken" in first.note


def test_partial_values_of_a_variable_written_again_are_not_judged(tmp_path):
    """The kind: a state of a variable that a later ``+=`` / ``/=`` continues is a partial
    value. A sum over paths split into ``dx = ...; dx += ...`` with one term wrong is
    pinned to that term; right states before it are not listed as right."""
    source = (
        "import numpy as np\n"
        "def affine_relu_forward(x, w):\n"
        "    a = x @ w\n"
        "    out = a * a + a\n"
        "    return out, (x, w, a)\n"
        "def affine_relu_backward(dout, cache):\n"
        "    x, w, a = cache\n"
        "    da = 2 * a * dout\n"
        "    da += -dout\n"  # the term of `+ a` sign-flipped
        "    dx = da @ w.T\n"
        "    dw = x.T @ da\n"
        "    return dx, dw\n")
    path = tmp_path / "two_terms.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = _rng()
    layer = _numeric_layer("two_terms", module.affine_relu_forward, module.affine_relu_backward,
                           ("x", "w"), (r.standard_normal((3, 4)), r.standard_normal((4, 2))),
                           ())
    first = check_layer(layer).first_wrong_step
    assert first is not None and (first.name, first.line) == ("da", 9), first.text()
    assert first.kind == "sign-flipped" and "da" not in first.right_before


def test_a_name_that_misleads_is_not_judged_by_its_name(tmp_path):
    """``dout`` holding dL/dimage (Numpy-CNN's convolutionBackward): the shape of an
    argument, not of ``out``; it is not a wrong step "of another shape", and the real
    one (a bias gradient of shape (1, M) for a (M,) bias) is named."""
    source = (
        "import numpy as np\n"
        "def lin_forward(image, w, b):\n"
        "    out = image @ w + b\n"
        "    return out, (image, w, b)\n"
        "def lin_backward(grad, cache):\n"
        "    image, w, b = cache\n"
        "    dout = grad @ w.T\n"  # dL/dimage, under another name
        "    dw = image.T @ grad\n"
        "    db = grad.sum(axis=0, keepdims=True)\n"  # (1, M) for b (M,)
        "    return dout, dw, db\n")
    path = tmp_path / "misnamed.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = _rng()
    layer = _numeric_layer("lin", module.lin_forward, module.lin_backward,
                           ("image", "w", "b"), (r.standard_normal((3, 5)),
                                                 r.standard_normal((5, 2)),
                                                 r.standard_normal(2)), ())
    first = check_layer(layer).first_wrong_step
    assert first is not None and first.name == "db" and first.line == 9, first.text()
    assert first.kind == "wrong-shape"


def test_a_term_added_before_a_scaling_is_named_where_it_is_added():
    """``dW = X.T @ ds + 2 * reg * W; dW /= len(y)``: the scaling is right, so the first
    state is the whole sum up to 1/n, and its line is the wrong one (the regularization
    divided by n), with the oracle's kind."""
    path = ROOT / "tests" / "fixtures" / "dialects" / "linear_loss_bugs.py"
    found = find_layers(load_file(path), str(path))
    layer = next(x for x in found.layers if x.name == "svm_loss_reg_over_n")
    first = check_layer(layer).first_wrong_step
    assert first is not None and first.code == "dW = X.T @ ds + 2 * reg * W", first.text()
    assert first.kind == "wrong-derivative" and not first.last_write


def test_a_factor_is_named_where_it_enters_not_at_the_mean(in_place):
    """``dW = 2 * X.T.dot(p); dW /= n``: the division by the sample count is the mean, not
    the suspect; ``dW *= 2`` after right writes is."""
    first = in_place["softmax_loss_doubled"].first_wrong_step
    assert first.code == "dW = 2 * X.T.dot(p)" and first.kind == "scaled", first.text()
    assert abs(first.scale - 2) < 1e-9
    first = in_place["softmax_loss_scaled_at_the_end"].first_wrong_step
    assert first.code == "dW *= 2" and first.kind == "scaled", first.text()
    assert abs(first.scale - 2) < 1e-9


KINDS = ROOT / "tests" / "fixtures" / "steps_kinds"


@pytest.mark.parametrize("name, layer, code, kind", [
    # a model's local dW1 is its data term: never judged against the regularized dL/dW1
    ("model_local_grads.py", "TwoLayerNet", "grads['W1'] = dW1", "wrong-derivative"),
    # h reassigned layer after layer: dh names no single pass of it
    ("model_loop_names.py", "FullyConnectedNet",
     "grads['b%d' % i] = da.sum(axis=0) * (2 if i == 1 else 1)", "scaled"),
    # np.add.at(dW, ...) is an in-place add, judged by its share
    ("ufunc_at.py", "softmax_loss_naive", "np.add.at(dW, (slice(None), y[i]), X[i])",
     "sign-flipped"),
    # dropout_param['p'] (a config dict's entry) is no gradient
    ("dropout_config.py", "dropout", "return dout", "wrong-derivative"),
])
def test_the_first_wrong_step_is_the_slip_not_a_right_line(name, layer, code, kind):
    """Kinds of false first wrong steps found on ordinary code (each named a right line
    before): see tests/fixtures/steps_kinds/README.md."""
    reports = _file_reports(KINDS / name)
    report = next(r for n, r in reports.items() if n.startswith(layer))
    first = report.first_wrong_step
    assert first is not None and first.code == code and first.kind == kind, (
        first and first.text())


def test_a_sum_of_several_fills_that_is_negated_is_sign_flipped(tmp_path):
    source = (ROOT / "tests" / "fixtures" / "in_loop_grads.py").read_text()
    start = source.index("def svm_loss_loop_right")
    body = source[start:].replace("svm_loss_loop_right", "svm_loss_both_signs")
    body = body.replace("dW[:, j] += X[i]", "dW[:, j] -= X[i]").replace(
        "dW[:, y[i]] -= X[i]", "dW[:, y[i]] += X[i]")
    path = tmp_path / "both.py"
    path.write_text("import numpy as np\n\n\n" + body)
    first = _file_reports(path)["svm_loss_both_signs"].first_wrong_step
    assert first is not None and first.kind == "sign-flipped", first.text()


EPS_LOSS = '''
import numpy as np


def softmax_loss(x, y):
    n = x.shape[0]
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.sum(np.log(p[np.arange(n), y] + 1e-7)) / n
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx
'''


def test_a_missing_mean_is_named_though_the_log_has_an_epsilon(tmp_path):
    """``log(p + 1e-7)`` moves the factor n of a sum's gradient by ~1e-5 against the true
    gradient of that loss: still a sample count, so the missing 1/N is said."""
    path = tmp_path / "eps_loss.py"
    path.write_text(EPS_LOSS)
    first = _file_reports(path)["softmax_loss"].first_wrong_step
    assert first is not None and first.kind == "scaled", first
    assert "sample count" in first.note or "mean is never taken" in first.note, first.note


def test_a_sequence_layers_state_attribute_is_no_forward_quantity_to_pair_with():
    """The kind: an attribute the forward reassigns in its loop (``self.h``, the last
    hidden state), paired by name with ``self.dh`` (the gradient of the initial state h0):
    a right line was the first wrong step whatever the slip (here ``grad / T``)."""
    reports = _file_reports(KINDS / "time_rnn_state.py")
    report = next(r for n, r in reports.items() if n.startswith("TimeRNN"))
    assert not report.ok
    first = report.first_wrong_step
    assert first is None or first.code != "self.dh = dh", first.text()


def test_a_wrong_window_index_is_named_where_it_differs_from_the_forward():
    """The first wrong step of a windowed backward was the `+=` line that writes the
    window, with no word on `vert_start = h` (the forward's `h * stride`), the line to
    fix. The lines computing its indices are named, and where the forward computes the
    same name or slice differently, the forward's line beside it."""
    path = ROOT / "tests" / "fixtures" / "dialects" / "window_index.py"
    source = path.read_text().splitlines()
    layers = {layer.name: layer for layer in find_layers(load_file(path), str(path), [])
              .layers}
    pool = check_layer(layers["pool_forward (max)"])
    first = pool.first_wrong_step
    assert first is not None and "dA_prev[i, vert_start:vert_end" in first.code
    ((line, code, other),) = first.window
    assert code == "vert_start = h  # BUG: the forward's h * stride"
    assert source[line - 1].strip() == code
    forward_line = next(i for i, t in enumerate(source, 1) if "vert_start = h * stride" in t)
    assert other == f"the forward's line {forward_line} `vert_start = h * stride`"
    assert "look there first" in first.text()
    settings = ROOT / "tests" / "fixtures" / "dialects" / "conv_settings.py"
    conv = check_layer(next(x for x in find_layers(load_file(settings), str(settings), [])
                            .layers if x.name == "ConvNoStride (stride=2, padding=1)"))
    (line, code, other), = conv.first_wrong_step.window
    assert code == "i:i + k" and "`i * s:i * s + k`" in other
