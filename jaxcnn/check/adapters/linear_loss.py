"""A linear classifier's loss with its gradient: CS231n assignment 1's loss functions.

The form of ``linear_svm.py`` and ``softmax.py``::

    def svm_loss_naive(W, X, y, reg):      # W (D, C), X (N, D), y (N,) ints, reg a float
        ...
        return loss, dW                    # dW: W's shape

(also ``svm_loss_vectorized``, ``softmax_loss_naive``, ``softmax_loss_vectorized``, and the
2015 form with ``W`` (C, D) and ``X`` (D, N), found by which one runs).

How the engine sees it (``from_linear_loss``): ``W`` is the one differentiable argument,
``X``, ``y`` and ``reg`` are static, the output is the loss. The exact reference is the
multiclass SVM (hinge) loss or the softmax loss of the scores ``X W`` (from the
function's name; the one its loss value reproduces where the name says neither), a mean
over the samples or a sum (the one its value reproduces), plus ``c * reg * sum(W ** 2)``
with ``c`` read from the user's own loss: its change from ``reg`` 0 to 1, over
``sum(W ** 2)`` (1 for CS231n's ``reg * np.sum(W * W)``, 0.5 for ``0.5 * reg * ...``).
Input sets: random (``reg`` 0), regularized (``reg`` 0.25), for the SVM integer inputs
with margins of exactly 0 (any slope in [0, 1] there is a subgradient: ``margin > 0`` and
``margin >= 0`` on the raw margins are both right), for the softmax scores near 750
(``X``'s last feature 1, the bias trick, with a bias of 750: an ``exp`` without the
maximum subtracted overflows), and a batch of one.

Named mistakes (``wrong-derivative`` with the rule): the regularization's gradient left
out, halved, doubled, divided by N, or present where the loss has none; the data term
not divided by N; the SVM's label column not given ``-(number of positive margins) x_i``,
the label's own margin counted, or every margin counted (``margins >= 0`` tested after
``np.maximum(0, ...)``); the softmax's one-hot not subtracted or added.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys

import numpy as np

from jaxcnn.check.layer import Alternate, InputSet, Kinks, Layer, Reference

D, C, N = 5, 4, 6
REG = 0.25
W_NAMES = re.compile(r"^(w|W|weights?|theta|Theta|W_?\w*)$")
X_NAMES = re.compile(r"^(x|X|x_?batch|X_?batch|x_?train|X_?train|data|inputs?)$")
Y_NAMES = re.compile(r"^(y|Y|y_?batch|y_?train|labels?|targets?)$")
REG_NAMES = re.compile(r"^(reg|lambda_?|lam|reg_?strength|regularization|l2_?reg|alpha)$")
SVM = re.compile(r"svm|hinge")
SOFTMAX = re.compile(r"softmax|cross_?entropy|logistic")


def _names(fn) -> list[str]:
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


def is_linear_loss(name: str, fn) -> bool:
    """Whether ``fn`` (called ``name``) is a linear classifier's loss ``(W, X, y, reg)``:
    its first four arguments named so, its name naming a loss (``svm``, ``hinge``,
    ``softmax``, ``cross_entropy`` or ``loss``)."""
    p = _names(fn)
    lowered = name.lower()
    named = SVM.search(lowered) or SOFTMAX.search(lowered) or "loss" in lowered
    return (len(p) >= 4 and W_NAMES.match(p[0]) is not None and X_NAMES.match(p[1]) is not None
            and Y_NAMES.match(p[2]) is not None and REG_NAMES.match(p[3]) is not None
            and bool(named))


# ------------------------------------------------------------------ the losses, in NumPy

def _svm_value(scores, y, mean: bool) -> float:
    m = scores - scores[np.arange(len(y)), y][:, None] + 1
    m[np.arange(len(y)), y] = 0
    total = float(np.maximum(m, 0).sum())
    return total / len(y) if mean else total


def _softmax_value(scores, y, mean: bool) -> float:
    z = scores - scores.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    total = -float(logp[np.arange(len(y)), y].sum())
    return total / len(y) if mean else total


VALUES = {"svm": _svm_value, "softmax": _softmax_value}


class _Form:
    """How the user's function is called and what its loss is: ``transposed`` (W (C, D),
    X (D, N)), ``loss`` ("svm" or "softmax"), ``mean``, ``c`` (the regularization's
    coefficient in ``c * reg * sum(W ** 2)``)."""

    def __init__(self, transposed: bool, loss: str, mean: bool, c: float):
        self.transposed, self.loss, self.mean, self.c = transposed, loss, mean, c

    def scores(self, W, X):
        return (W @ X).T if self.transposed else X @ W

    def to_w(self, dscores, X):
        """dL/dW from dL/dscores (N, C)."""
        return dscores.T @ X.T if self.transposed else X.T @ dscores

    def shapes(self, d=D, c=C, n=N):
        return ((c, d), (d, n)) if self.transposed else ((d, c), (n, d))


def _call(fn, W, X, y, reg):
    with contextlib.redirect_stdout(sys.stderr):
        return fn(np.array(W, copy=True), np.array(X, copy=True), np.array(y, copy=True), reg)


def _pair(result):
    """(loss as a float64 0-d array, dW) of a ``(loss, dW)`` result; TypeError else."""
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        got = (f"a {type(result).__name__} of {len(result)}" if isinstance(result, (tuple, list))
               else f"a {type(result).__name__}")
        raise TypeError(f"it must return (loss, dW); it returned {got}")
    value = np.asarray(result[0], dtype=np.float64)
    if value.size != 1:
        raise TypeError(f"its loss has shape {value.shape}; a number belongs")
    return value.reshape(()), result[1]


def _probe(fn, rng, transposed: bool):
    (ws, xs) = _Form(transposed, "svm", True, 1.0).shapes()
    W, X = rng.standard_normal(ws) / np.sqrt(D), rng.standard_normal(xs)
    y = np.arange(N) % C
    value, dW = _pair(_call(fn, W, X, y, 0.0))
    if np.shape(dW) != W.shape:
        raise _WrongShape(f"its dW has shape {np.shape(dW)} for W {W.shape}",
                          (W, X, y, float(value)))
    return W, X, y, float(value)


class _WrongShape(TypeError):
    """The loss ran on a layout, but its dW's shape is not W's: that layout is used when
    the other refuses (the check then says ``wrong-shape``). ``run``: what ``_probe``
    returns."""

    def __init__(self, message, run):
        super().__init__(message)
        self.run = run


def identify(fn, name: str) -> tuple[_Form, list[str]]:
    """(the form of ``fn``'s loss, notes on how it was read). Raises ValueError saying
    what it raised on both layouts. A layout it runs on with a dW of the wrong shape
    is used when the other refuses: its rows say ``wrong-shape``."""
    rng = np.random.default_rng(0)
    errors, shaped = [], None
    for transposed in (False, True):
        try:
            W, X, y, value = _probe(fn, rng, transposed)
            break
        except Exception as exc:  # the user's code: either layout may refuse
            if isinstance(exc, _WrongShape) and shaped is None:
                shaped = (transposed, exc.run)
            errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    else:
        if shaped is None:
            raise ValueError(f"it runs neither as W (D, C), X (N, D) ({errors[0]}) nor as "
                             f"W (C, D), X (D, N) ({errors[1]})")
        transposed, (W, X, y, value) = shaped
    form = _Form(transposed, "svm", True, 1.0)
    lowered = name.lower()
    named = (["svm"] if SVM.search(lowered) else []) + (
        ["softmax"] if SOFTMAX.search(lowered) else [])
    order = named + [k for k in ("svm", "softmax") if k not in named]
    scores = form.scores(W, X)
    fits = [(k, mean) for k in order for mean in (True, False)
            if abs(VALUES[k](scores.copy(), y, mean) - value) <= 1e-8 * max(1.0, abs(value))]
    notes = []
    if fits:
        form.loss, form.mean = fits[0]
    else:
        form.loss = order[0]
        notes.append(f"its loss at reg 0 is neither the {order[0]} loss's mean nor its sum "
                     "over the samples")
    form.c, reg_note = _reg_coefficient(fn, W, X, y)
    notes.append(reg_note)
    if transposed:
        notes.append("called as W (C, D), X (D, N) (the 2015 form): it refuses W (D, C)")
    return form, notes


def _reg_coefficient(fn, W, X, y) -> tuple[float, str]:
    """(c, what to say) for the loss's term ``c * reg * sum(W ** 2)``, read from the loss's
    change from reg 0 to reg 1 at W and at 2 W (a quadratic changes 4 times as much)."""
    def change(w):
        return (float(_pair(_call(fn, w, X, y, 1.0))[0])
                - float(_pair(_call(fn, w, X, y, 0.0))[0]))

    try:
        d1, d2 = change(W), change(2 * W)
    except Exception as exc:
        return 1.0, f"its loss raised with reg 1 ({type(exc).__name__}): reg * sum(W ** 2) assumed"
    norm = float(np.sum(W * W))
    c = d1 / norm
    if abs(d2 - 4 * d1) > 1e-8 * max(abs(d2), 1e-12):
        return 1.0, ("its loss's regularization is not c * reg * sum(W ** 2) (it changes "
                     "otherwise with W): reg * sum(W ** 2) assumed")
    for known, text in ((1.0, "reg * sum(W ** 2), gradient 2 * reg * W"),
                        (0.5, "0.5 * reg * sum(W ** 2), gradient reg * W"),
                        (0.0, "no regularization term in its loss")):
        if abs(c - known) <= 1e-8:
            return known, f"regularization read from its loss: {text}"
    return c, f"regularization read from its loss: {c:.6g} * reg * sum(W ** 2)"


# ------------------------------------------------------------------ the reference

def reference(form: _Form) -> Reference:
    """The exact oracle of ``form``: the loss of ``scores = X W`` plus the L2 term, with
    the SVM's valid slopes at a margin of 0 and the usual mistakes as alternates."""
    import jax
    import jax.numpy as jnp

    def forward(args, static):
        X, y, reg = static
        W = args[0]
        s = (W @ jnp.asarray(X)).T if form.transposed else jnp.asarray(X) @ W
        y = jnp.asarray(y)
        rows = jnp.arange(s.shape[0])
        if form.loss == "svm":
            m = s - s[rows, y][:, None] + 1
            total = jnp.sum(jnp.where(jax.nn.one_hot(y, s.shape[1]) > 0, 0.0,
                                      jnp.maximum(0.0, m)))
        else:
            total = -jnp.sum(jax.nn.log_softmax(s, axis=1)[rows, y])
        data = total / s.shape[0] if form.mean else total
        return data + form.c * reg * jnp.sum(W * W)

    def parts(args, static, ct):
        """(ct, the data term's dL/dscores by rule, the reg term's gradient, N)."""
        X, y, reg = static
        W = np.asarray(args[0], np.float64)
        g = float(np.asarray(ct))
        return g, W, np.asarray(X, np.float64), np.asarray(y), float(reg)

    def alternates(args, static, ct):
        g, W, X, y, reg = parts(args, static, ct)
        s = form.scores(W, X)
        n = len(y)
        per = 1.0 / n if form.mean else 1.0
        R = g * 2 * form.c * reg * W

        def dw(dscores, reg_grad=R, scale=per):
            return (g * scale * form.to_w(dscores, X) + reg_grad,)

        out = []
        if form.loss == "svm":
            m = _margins(s, y)
            off = np.arange(s.shape[1])[None, :] != y[:, None]
            if ((m == 0) & off).any():
                out += [Alternate(rule, dw(_from_slopes(((test(m)) & off).astype(float), y)),
                                  True, "correct", note) for rule, test, note in (
                    ("0 at 0", lambda v: v > 0, "slope 0 at a margin of 0 (margin > 0)"),
                    ("1 at 0", lambda v: v >= 0, "slope 1 at a margin of 0 (margin >= 0)"))]
            right = _from_slopes(((m > 0) & off).astype(float), y)
            every = _from_slopes(off.astype(float), y)
            out += [_wrong("every margin counted", dw(every),
                           "every other class gets slope 1, whatever its margin: `margins "
                           ">= 0` tested after np.maximum(0, ...), which makes every margin "
                           ">= 0 (`>= 0` is a valid subgradient only on the raw margins, at "
                           "a margin of exactly 0)"),
                    _wrong("label column not subtracted", dw(((m > 0) & off).astype(float)),
                           "dW[:, y_i] is not given -(number of positive margins) * x_i: "
                           "only the other classes' columns get gradient"),
                    _wrong("label counted among the margins",
                           dw(right - np.eye(s.shape[1])[y]),
                           "the label's own margin (always 1) is counted as positive: the "
                           "j == y_i case is not skipped")]
        else:
            z = s - s.max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            right = p - np.eye(s.shape[1])[y]
            out += [_wrong("one-hot not subtracted", dw(p),
                           "softmax(scores) where softmax(scores) - onehot(y) belongs: the 1 "
                           "at the label is not subtracted (dW[:, y_i] -= x_i left out)"),
                    _wrong("one-hot added", dw(p + np.eye(s.shape[1])[y]),
                           "the one-hot is added where it must be subtracted")]
        if form.mean:
            out.append(_wrong("data term not divided by N", dw(right, scale=1.0),
                              f"the data term's gradient is summed over the N = {n} samples "
                              "where the loss averages them (dW /= num_train left out)"))
        if reg != 0 and form.c != 0:
            out += [
                _wrong("regularization left out", dw(right, reg_grad=0 * R),
                       "the regularization term's gradient is left out (the loss has "
                       f"{_term(form.c)}; its gradient {_grad(form.c)} belongs in dW too)"),
                _wrong("regularization halved", dw(right, reg_grad=R / 2),
                       f"half the regularization's gradient: the loss has {_term(form.c)}, "
                       f"whose gradient is {_grad(form.c)}"),
                _wrong("regularization doubled", dw(right, reg_grad=2 * R),
                       f"twice the regularization's gradient: the loss has {_term(form.c)}, "
                       f"whose gradient is {_grad(form.c)}"),
                _wrong("regularization divided by N", dw(right, reg_grad=R / n),
                       f"the regularization's gradient divided by N = {n} with the data "
                       "term's (dW /= num_train after dW += ...): only the data term is a "
                       "mean"),
                _wrong("regularization sign-flipped", dw(right, reg_grad=-R),
                       "the regularization's gradient is subtracted where it is added")]
        elif reg != 0:
            for k, text in ((2.0, "2 * reg * W"), (1.0, "reg * W")):
                out.append(_wrong(f"{text} without a regularization term",
                                  dw(right, reg_grad=g * k * reg * W),
                                  f"dW has {text}, but the loss has no regularization term: "
                                  "reg * np.sum(W * W) is missing from the loss"))
        return out

    def kinks(s: InputSet):
        if form.loss != "svm":
            return None
        X, y, _ = s.static
        sc = form.scores(np.asarray(s.args[0], np.float64), np.asarray(X, np.float64))
        m = _margins(sc, np.asarray(y))
        at = (m == 0) & (np.arange(sc.shape[1])[None, :] != np.asarray(y)[:, None])
        cols = np.zeros(sc.shape[1], bool)
        for i, j in zip(*np.nonzero(at), strict=True):
            cols[j] = cols[y[i]] = True
        mask = (np.broadcast_to(cols[:, None], s.args[0].shape) if form.transposed
                else np.broadcast_to(cols[None, :], s.args[0].shape))
        count = int(at.sum())
        if count == 0:
            return None
        return Kinks((np.array(mask),), {"margins_at_zero": count},
                     f"{count} margins of exactly 0")

    def subgradient(args, static, ct, i, hand, tol):
        """Whether ``hand`` is the gradient for some slope in [0, 1] at each margin of 0:
        the slopes solved by least squares, then checked in range and the fit exact."""
        if form.loss != "svm":
            return None
        g, W, X, y, reg = parts(args, static, ct)
        if hand.shape != W.shape or g == 0:
            return None
        s = form.scores(W, X)
        m = _margins(s, y)
        off = np.arange(s.shape[1])[None, :] != y[:, None]
        at = list(zip(*np.nonzero((m == 0) & off), strict=True))
        if not at:
            return None
        per = g * (1.0 / len(y) if form.mean else 1.0)
        base = per * form.to_w(_from_slopes(((m > 0) & off).astype(float), y), X) \
            + g * 2 * form.c * reg * W
        columns = []
        for r, j in at:
            one = np.zeros_like(s)
            one[r, j], one[r, y[r]] = 1.0, -1.0
            columns.append((per * form.to_w(one, X)).reshape(-1))
        A = np.stack(columns, axis=1)
        t, *_ = np.linalg.lstsq(A, (hand - base).reshape(-1), rcond=None)
        fit = base + (A @ t).reshape(W.shape)
        top = max(float(np.abs(base).max()), 1e-300)
        if (np.all(t > -1e-6) and np.all(t < 1 + 1e-6)
                and float(np.abs(fit - hand).max()) <= tol * top):
            return "other slope in [0, 1] at a margin of 0"
        return None

    loss = "multiclass SVM" if form.loss == "svm" else "softmax"
    how = "mean" if form.mean else "sum"
    return Reference(f"{how} over samples of the {loss} loss of X W + {_term(form.c)}",
                     forward, alternates, kinks, subgradient)


def _margins(s, y):
    return s - s[np.arange(len(y)), y][:, None] + 1


def _from_slopes(slopes, y):
    d = slopes.copy()
    d[np.arange(len(y)), y] = -slopes.sum(axis=1)
    return d


def _wrong(name, grads, note) -> Alternate:
    return Alternate(name, grads, False, "wrong-derivative", note)


def _term(c: float) -> str:
    return "reg * sum(W ** 2)" if c == 1 else "no regularization" if c == 0 else \
        f"{c:g} * reg * sum(W ** 2)"


def _grad(c: float) -> str:
    return "2 * reg * W" if c == 1 else "reg * W" if c == 0.5 else f"{2 * c:g} * reg * W"


# ------------------------------------------------------------------ inputs

def _input_sets(form: _Form):
    def input_sets(seed):
        r = np.random.default_rng([seed, 231])
        ws, xs = form.shapes()
        sets = []
        for family, reg in (("random", 0.0), ("regularized", REG)):
            W, X = r.standard_normal(ws) / np.sqrt(D), r.standard_normal(xs)
            y = r.permutation(np.arange(N) % C)
            sets.append(InputSet(family, f"random W {ws}, X {xs}, labels {y.tolist()}, "
                                         f"reg {reg:g}", (W,), (X, y, reg)))
        if form.loss == "svm":
            W, X, y = _tied(seed, form)
            sets.append(InputSet("boundary", f"integer W {ws}, X {xs} with margins of exactly "
                                             "0, reg 0.1", (W,), (X, y, 0.1),
                                 note="a margin of exactly 0 is the hinge's kink: any slope "
                                      "in [0, 1] there is a subgradient"))
        else:
            W, X = r.standard_normal(ws) / np.sqrt(D), r.standard_normal(xs)
            if form.transposed:  # the bias trick: a row of ones in X, the bias 750 in W
                X[-1, :], W[:, -1] = 1.0, 750.0
            else:
                X[:, -1], W[-1, :] = 1.0, 750.0
            y = r.permutation(np.arange(N) % C)
            sets.append(InputSet("large-gap", f"W {ws}, X {xs} with scores near 750 (X's "
                                              "last feature 1, W's bias 750)", (W,),
                                 (X, y, 0.0),
                                 note="exp(750) overflows: the maximum score must be "
                                      "subtracted before exp (the softmax is unchanged)"))
        ws1, xs1 = form.shapes(n=1)
        sets.append(InputSet("batch-of-one", f"random W {ws1}, X {xs1}: a batch of one (N = 1)",
                             (r.standard_normal(ws1) / np.sqrt(D),),
                             (r.standard_normal(xs1), np.array([2]), REG)))
        return sets
    return input_sets


def _tied(seed: int, form: _Form):
    """Integer W, X, labels whose scores have margins of exactly 0 (and positive ones)."""
    r = np.random.default_rng([seed, 232])
    ws, xs = form.shapes()
    while True:
        W = r.integers(-2, 3, ws).astype(np.float64)
        X = r.integers(-1, 2, xs).astype(np.float64)
        y = r.permutation(np.arange(N) % C)
        m = _margins(form.scores(W, X), y)
        off = np.arange(C)[None, :] != y[:, None]
        if 2 <= ((m == 0) & off).sum() <= 6 and ((m > 0) & off).sum() >= 3:
            return W, X, y


# ------------------------------------------------------------------ the layer

def from_linear_loss(fn, name: str | None = None, file: str | None = None) -> Layer:
    """A ``Layer`` for ``fn(W, X, y, reg) -> (loss, dW)`` (see the module docstring): W is
    the differentiable argument, ``(X, y, reg)`` the static ones. Raises ValueError when
    it runs on neither layout (saying what it raised)."""
    name = name or fn.__name__
    form, notes = identify(fn, name)

    def forward(args, static):
        X, y, reg = static
        return _pair(_call(fn, args[0], X, y, reg))[0]

    def vjp(args, static):
        X, y, reg = static
        value, dW = _pair(_call(fn, args[0], X, y, reg))
        return value, lambda ct: (None if dW is None else float(np.asarray(ct)) * np.asarray(dW),)

    def raw(args, static):
        X, y, reg = static
        value, dW = _pair(fn(args[0], X, y, reg))
        return value, lambda ct: (None if dW is None else float(np.asarray(ct)) * np.asarray(dW),)

    kind = "svm_loss" if form.loss == "svm" else "softmax_loss"
    axes = ("class", "feature") if form.transposed else ("feature", "class")
    return Layer(name, kind, "cs231n", ("W",), forward, vjp, reference(form), _input_sets(form),
                 axis_names={"W": axes, "out": ()}, file=file, raw=raw, sources=(fn, fn),
                 static_names=("X", "y", "reg"),
                 notes=tuple(n for n in notes if n))


def is_linear_classifier(cls) -> bool:
    """A class whose ``loss(X_batch, y_batch, reg)`` works on ``self.W`` (CS231n's
    ``LinearSVM`` and ``Softmax`` in ``linear_classifier.py``): a constructor that needs
    no argument and sets ``W``, and no ``params`` dict."""
    loss = getattr(cls, "loss", None)
    p = _names(loss) if inspect.isfunction(loss) else []
    if not (len(p) >= 4 and X_NAMES.match(p[1]) and Y_NAMES.match(p[2])
            and REG_NAMES.match(p[3])):
        return False
    try:
        with contextlib.redirect_stdout(sys.stderr):
            obj = cls()
    except Exception:
        return False
    return hasattr(obj, "W") and not isinstance(getattr(obj, "params", None), dict)


def from_linear_classifier(cls, name: str | None = None, file: str | None = None) -> Layer:
    """A ``Layer`` for a class with ``loss(X_batch, y_batch, reg) -> (loss, dW)`` on
    ``self.W`` (``is_linear_classifier``): ``from_linear_loss`` of ``W -> a fresh
    instance with that W, its loss``. Raises ValueError as ``from_linear_loss`` does."""
    import copy

    name = name or cls.__name__
    with contextlib.redirect_stdout(sys.stderr):
        template = cls()

    def loss(W, X, y, reg):
        o = copy.deepcopy(template)
        o.W = W
        return o.loss(X, y, reg)

    layer = from_linear_loss(loss, name, file)
    return layer._replace(sources=(), notes=(*layer.notes, "its loss(X, y, reg) with "
                                             "self.W set to the W checked"))


__all__ = ["from_linear_classifier", "from_linear_loss", "identify", "is_linear_classifier",
           "is_linear_loss", "reference"]
