"""Losses: the report's cross-entropy (alone and with its dense layer) and CS231n's
``softmax_loss`` (a mean over samples, or a sum)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import model
from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.activations import logit_sets
from jaxcnn.check.catalogue.base import Spec, batch_of_one, module_name, wrong
from jaxcnn.check.catalogue.dense import dense_sets
from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference


def dense_cross_entropy_spec() -> Spec:
    """The report's softmax layer with its loss: steps (1)-(2), dL/d(input, W, b)."""
    def forward(args, static):
        return model.cross_entropy(model.dense(*args), static[0])

    reference = Reference("jaxcnn.model.cross_entropy(jaxcnn.model.dense)", forward)
    return Spec("dense_cross_entropy", ("input", "weights", "biases"),
                {"input": ("row", "column", "filter"), "weights": ("input", "class"),
                 "biases": ("class",), "out": ()}, reference,
                functools.partial(dense_sets, float32_gap=True, label_static=True), ("label",))


def cross_entropy_spec() -> Spec:
    reference = Reference("jaxcnn.model.cross_entropy",
                          lambda args, static: model.cross_entropy(args[0], static[0]))
    return Spec("cross_entropy", ("logits",), {"logits": ("class",)}, reference,
                functools.partial(logit_sets, with_label=True), ("label",))


def _loss_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    y = rng.integers(10, size=4)
    gap = np.zeros((4, 10))
    gap[:, :2] = 100.0
    return [InputSet("random", "random scores x (4, 10)", (rng.standard_normal((4, 10)),), (y,)),
            InputSet("large-gap", "scores with two tied top classes 100 above the label's",
                     (gap,), (np.full(4, 9),)),
            *(s._replace(static=(np.array([3]),))
              for s in batch_of_one(seed, (1, 10), (), ""))]


# Names of module-style loss classes (``SoftmaxWithLoss``, ``CrossEntropyLoss``,
# ``Activation_Softmax_Loss_CategoricalCrossentropy``, ``Loss_CategoricalCrossentropy``):
# a cross-entropy may take scores (softmax_loss) or probabilities (cross_entropy_probs),
# the forward says which.
SOFTMAX_CE = (r"(activation_?)?softmax_?(with_?)?(loss|cross_?entropy(_?loss)?|ce)"
              r"(_?(categorical_?)?cross_?entropy)?")
CE = (r"(loss_?)?(categorical_?)?cross_?entropy(_?loss)?|ce_?loss|nll(_?loss)?|"
      r"neg(ative)?_?log_?likelihood(_?loss)?")


# Epsilons written inside a loss's log to keep it finite (``np.log(y + 1e-7)``, Deep
# Learning from Scratch's cross_entropy_error): a forward equal to the loss with one of
# them is the textbook loss (``Reference.variants``), judged by the exact oracle.
LOG_EPSILONS = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-12, 1e-15)


def _log_eps_variants(loss_of_eps):
    """``Reference.variants`` from ``loss_of_eps(args, static, eps) -> float64 loss``
    (NumPy), one per epsilon of ``LOG_EPSILONS``."""
    def variants(args, static):
        return [(f"{eps:g} inside the log", np.asarray(loss_of_eps(args, static, eps)),
                 f"log(p + {eps:g}) keeps the log finite; the gradient is judged against the "
                 "epsilon-free loss's, which the usual backward computes") for eps in
                LOG_EPSILONS]
    return variants


def _reduce(values, reduction: str):
    return values.mean() if reduction == "mean" else values.sum()


def softmax_loss_spec(reduction: str = "mean") -> Spec:
    """CS231n's softmax loss, the mean over samples (``reduction="mean"``, the assignment's
    definition) or their sum (``"sum"``, kind ``softmax_loss_sum``)."""
    def forward(args, static):
        y = jnp.asarray(static[0])
        logp = jax.nn.log_softmax(args[0], axis=1)
        picked = logp[jnp.arange(args[0].shape[0]), y]
        return -(jnp.mean(picked) if reduction == "mean" else jnp.sum(picked))

    def alternates(args, static, cotangent):
        x, y = as_np(args[0]), np.asarray(static[0])
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        g = float(np.asarray(cotangent)) / (len(x) if reduction == "mean" else 1)
        over = " / N" if reduction == "mean" else ""
        return [wrong("one-hot not subtracted", (g * p,),
                      f"softmax(x){over} where (softmax(x) - onehot(y)){over} belongs: the 1 at "
                      "the label is not subtracted"),
                wrong("one-hot added", (g * (p + np.eye(x.shape[1])[y]),),
                      "the one-hot is added where it must be subtracted")]

    kind = "softmax_loss" if reduction == "mean" else "softmax_loss_sum"
    return Spec(kind, ("x",), {"x": ("sample", "class")},
                Reference(f"{reduction} over samples of -log softmax(x)[y]", forward,
                          alternates, variants=_log_eps_variants(
                              lambda args, static, eps: _reduce(-np.log(_softmax_np(as_np(
                                  args[0]))[np.arange(len(args[0])), np.asarray(static[0])]
                                  + eps), reduction))), _loss_sets, ("y",),
                names={"module_loss": module_name(SOFTMAX_CE) + "|" + module_name(CE)}
                if reduction == "mean" else None)


def _softmax_np(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _prob_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18, 7])

    def rows(n, c):  # positive, each row summing to 1, none near 0 or 1
        e = np.exp(0.7 * rng.standard_normal((n, c)))
        return e / e.sum(axis=1, keepdims=True)

    return [InputSet("random", "probabilities x (4, 6), labels y (4,)", (rows(4, 6),),
                     (rng.integers(6, size=4),), note="rows of probabilities: N != C"),
            InputSet("random", "probabilities x (5, 3)", (rows(5, 3),),
                     (rng.integers(3, size=5),)),
            InputSet("batch-of-one", "probabilities x (1, 4): a batch of one", (rows(1, 4),),
                     (np.array([2]),))]


def cross_entropy_probs_spec(reduction: str = "mean") -> Spec:
    """Cross-entropy of probabilities (the layer after a separate softmax): x (N, C) rows
    of probabilities, y (N,) static labels; loss = -mean_n log x[n, y_n] (or the sum over
    samples, kind ``cross_entropy_probs_sum``: the FAU course's CrossEntropyLoss); dx =
    -onehot(y) / (N x). Alternates: the combined softmax-and-loss derivative ``(x -
    onehot) / N`` on a loss that takes probabilities, the log's derivative left out
    (``-onehot / N``)."""
    def forward(args, static):
        y = jnp.asarray(np.asarray(static[0]))
        picked = jnp.log(args[0][jnp.arange(args[0].shape[0]), y])
        return -(jnp.mean(picked) if reduction == "mean" else jnp.sum(picked))

    def alternates(args, static, cotangent):
        x, y = as_np(args[0]), np.asarray(static[0])
        g = float(np.asarray(cotangent)) / (len(x) if reduction == "mean" else 1)
        onehot = np.eye(x.shape[1])[y]
        return [wrong("softmax-with-loss derivative", (g * (x - onehot),),
                      "(p - onehot(y)) / N, the derivative with respect to the scores of a "
                      "softmax followed by this loss, used for a loss whose input is the "
                      "probabilities: -onehot(y) / (N p) belongs"),
                wrong("log's derivative left out", (-g * onehot,),
                      "-onehot(y) / N: the derivative of -log p, -1/p, is missing")]

    kind = "cross_entropy_probs" + ("" if reduction == "mean" else "_sum")
    return Spec(kind, ("x",), {"x": ("sample", "class")},
                Reference(f"{reduction} over samples of -log x[y] (x: probabilities)",
                          forward, alternates, variants=_log_eps_variants(
                              lambda args, static, eps: _reduce(-np.log(as_np(args[0])[
                                  np.arange(len(args[0])), np.asarray(static[0])] + eps),
                                  reduction))), _prob_sets, ("y",),
                names={"module_loss": module_name(CE)} if reduction == "mean" else None,
                layouts=("cross_entropy_probs", "cross_entropy_probs_sum")
                if reduction == "mean" else ())


SPECS = {"cross_entropy": cross_entropy_spec, "softmax_loss": softmax_loss_spec,
         "softmax_loss_sum": lambda: softmax_loss_spec("sum"),
         "dense_cross_entropy": dense_cross_entropy_spec}


# ------------------------------------------------------------------ more losses

def _svm_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18])
    # integer scores: margins x_j - x_y + 1 of exactly 0 (the hinge's kink) in every row
    exact = np.array([[2.0, 1.0, 0.0, 3.0, 2.0], [0.0, 1.0, 1.0, -1.0, 0.0],
                      [4.0, 3.0, 3.0, 1.0, 5.0]])
    return [InputSet("random", "random scores x (4, 6)", (rng.standard_normal((4, 6)),),
                     (rng.integers(6, size=4),)),
            InputSet("boundary", "integer scores x (3, 5) with margins of exactly 0",
                     (exact,), (np.array([0, 1, 4]),),
                     note="a margin of exactly 0 is the hinge's kink: any slope in [0, 1] "
                          "there is a subgradient"),
            InputSet("batch-of-one", "random scores x (1, 7): a batch of one",
                     (rng.standard_normal((1, 7)),), (np.array([2]),))]


def _margins(x, y):
    return x - x[np.arange(len(x)), y][:, None] + 1


def svm_loss_spec(reduction: str = "mean") -> Spec:
    """CS231n's multiclass SVM (hinge) loss: sum over j != y of max(0, x_j - x_y + 1),
    averaged over the samples (``"mean"``; kind ``svm_loss_sum``: summed). Its kink is
    a margin of exactly 0: there any slope in [0, 1] per margin is a subgradient (the
    assignment's ``margins > 0`` takes 0)."""
    def forward(args, static):
        x, y = args[0], jnp.asarray(static[0])
        margins = x - x[jnp.arange(x.shape[0]), y][:, None] + 1
        margins = jnp.where(jax.nn.one_hot(y, x.shape[1]) > 0, 0.0, jnp.maximum(0.0, margins))
        total = jnp.sum(margins)
        return total / x.shape[0] if reduction == "mean" else total

    def per_sample(static, args, cotangent):
        return float(np.asarray(cotangent)) / (len(args[0]) if reduction == "mean" else 1)

    def from_slopes(slopes, y):
        dx = slopes.copy()
        dx[np.arange(len(y)), y] = -slopes.sum(axis=1)
        return dx

    def alternates(args, static, cotangent):
        x, y = as_np(args[0]), np.asarray(static[0])
        m, g = _margins(x, y), per_sample(static, args, cotangent)
        off = np.arange(x.shape[1])[None, :] != y[:, None]
        out = [Alternate(name, (g * from_slopes((test(m) & off).astype(float), y),), True,
                         "correct", note) for name, test, note in (
            ("0 at 0", lambda v: v > 0, "slope 0 at a margin of 0 (margins > 0)"),
            ("1 at 0", lambda v: v >= 0, "slope 1 at a margin of 0 (margins >= 0)"))]
        hinge = (m > 0) & off
        wrong_y = hinge.astype(float)
        return out + [
            wrong("label column not subtracted", (g * wrong_y,),
                  "dx[y] is not given -(number of positive margins): only the other "
                  "classes get gradient"),
            wrong("label counted among the margins", (g * (from_slopes(
                wrong_y, y) - np.eye(x.shape[1])[y]),),
                  "the label's own margin (always 1) is counted as positive")]

    def subgradient(args, static, cotangent, i, hand, tol):
        x, y = as_np(args[0]), np.asarray(static[0])
        if hand.shape != x.shape:
            return None
        g = per_sample(static, args, cotangent)
        if g == 0:
            return None
        m = _margins(x, y)
        off = np.arange(x.shape[1])[None, :] != y[:, None]
        slopes = hand / g
        atol = tol * x.shape[1]  # slopes: the reference's largest entry is C - 1
        kink = (m == 0) & off
        fixed = np.where(m > 0, 1.0, 0.0)
        ok_off = np.where(kink, (slopes > -atol) & (slopes < 1 + atol),
                          np.abs(slopes - fixed) <= atol)
        label = slopes[np.arange(len(y)), y]
        ok_label = np.abs(label + np.where(off, slopes, 0).sum(axis=1)) <= atol * x.shape[1]
        if np.all(ok_off | ~off) and np.all(ok_label) and kink.any():
            return "other slope in [0, 1] at a margin of 0"
        return None

    kind = "svm_loss" if reduction == "mean" else "svm_loss_sum"
    return Spec(kind, ("x",), {"x": ("sample", "class")},
                Reference(f"{reduction} over samples of sum_j max(0, x_j - x_y + 1)", forward,
                          alternates, None, subgradient), _svm_sets, ("y",),
                names={"loss": r"(multiclass_)?(svm|hinge)_loss"}
                if reduction == "mean" else None,
                layouts=("svm_loss", "svm_loss_sum") if reduction == "mean" else ())


def _regression_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18])
    return [InputSet("random", "random x (4, 3), targets y (4, 3)",
                     (rng.standard_normal((4, 3)),), (rng.standard_normal((4, 3)),)),
            InputSet("random", "random x (2, 7)", (rng.standard_normal((2, 7)),),
                     (rng.standard_normal((2, 7)),)),
            InputSet("batch-of-one", "random x (1, 5): a batch of one",
                     (rng.standard_normal((1, 5)),), (rng.standard_normal((1, 5)),))]


MSE_FORMS = {"mse": ("mean((x - y)^2)", 1.0, "all"),
             "mse_half": ("0.5 * mean((x - y)^2)", 0.5, "all"),
             "mse_sample": ("sum((x - y)^2) / N", 1.0, "sample"),
             "mse_half_sample": ("0.5 * sum((x - y)^2) / N", 0.5, "sample"),
             "mse_sum": ("sum((x - y)^2)", 1.0, "sum"),
             "mse_half_sum": ("0.5 * sum((x - y)^2)", 0.5, "sum")}


def mse_spec(kind: str = "mse") -> Spec:
    """Mean squared error ``loss(x, y) -> (loss, dx)``, y static: the mean over every
    entry (``mse``), with a factor 1/2 (``mse_half``), or summed over the features and
    averaged over the N samples (``mse_sample``, ``mse_half_sample``), or summed over
    everything (``mse_sum``, ``mse_half_sum``: Deep Learning from Scratch's
    sum_squared_error): the layout is the one your forward reproduces."""
    text, factor, over = MSE_FORMS[kind]

    def forward(args, static):
        sq = (args[0] - jnp.asarray(static[0])) ** 2
        return factor * (jnp.mean(sq) if over == "all" else jnp.sum(sq) if over == "sum"
                         else jnp.sum(sq) / sq.shape[0])

    return Spec(kind, ("x",), {"x": ("sample", "output")}, Reference(text, forward),
                _regression_sets, ("y",),
                names={"loss": r"mse_loss|mean_squared_error(_loss)?|l2_loss",
                       "module_loss": module_name(
                           r"(loss_?)?(mse|mean_?squared_?error|l2)(_?loss)?")}
                if kind == "mse" else None, layouts=tuple(MSE_FORMS) if kind == "mse" else ())


def _bce_sets(logits: bool):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 18])
        sets = []
        for shape, family in (((4, 3), "random"), ((1, 5), "batch-of-one"), ((6,), "random")):
            x = (2 * rng.standard_normal(shape) if logits else rng.uniform(0.05, 0.95, shape))
            sets.append(InputSet(family, f"{'logits' if logits else 'probabilities'} "
                                         f"x {shape}", (x,),
                                 (rng.integers(2, size=shape).astype(float),)))
        return sets
    return input_sets


def _bce_eps(args, static, eps, logits: bool = False):
    """The binary cross-entropy of probabilities (or of ``logits``: p = sigmoid(x)) with
    ``eps`` inside both logs."""
    p, y = as_np(args[0]), np.asarray(static[0], float)
    p = 1 / (1 + np.exp(-p)) if logits else p
    return -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))


def bce_spec(logits: bool = False, reduction: str = "mean") -> Spec:
    """Binary cross-entropy ``loss(x, y) -> (loss, dx)``, the mean over every entry of
    -(y log p + (1 - y) log(1 - p)), y in {0, 1} static; p = x (probabilities, kind
    ``bce``) or sigmoid(x) (logits, kind ``bce_logits``); ``reduction="sum"``: the sum
    over every entry (kinds ``bce_sum``, ``bce_logits_sum``, layouts of the same code)."""
    def forward(args, static):
        y = jnp.asarray(static[0])
        if logits:
            return _reduce(jax.nn.softplus(args[0]) - y * args[0], reduction)
        p = args[0]
        return -_reduce(y * jnp.log(p) + (1 - y) * jnp.log1p(-p), reduction)

    def alternates(args, static, cotangent):
        x, y = as_np(args[0]), np.asarray(static[0], float)
        g = float(np.asarray(cotangent)) / (x.size if reduction == "mean" else 1)
        if logits:
            p = 1 / (1 + np.exp(-x))
            return [wrong("probabilities' derivative", (g * (p - y) / (p * (1 - p)),),
                          "(p - y) / (p (1 - p)), the derivative with respect to p, where the "
                          "input is the logit: the sigmoid's derivative is missing")]
        return [wrong("logits' derivative", (g * (x - y),),
                      "p - y, the derivative with respect to the logit, where the input is "
                      "the probability p: the division by p (1 - p) is missing")]

    kind = ("bce_logits" if logits else "bce") + ("_sum" if reduction == "sum" else "")
    if reduction == "sum":
        return Spec(kind, ("x",), {"x": None},
                    Reference("sum of -(y log p + (1 - y) log(1 - p))"
                              + (", p = sigmoid(x)" if logits else ", p = x"), forward,
                              alternates, variants=_log_eps_variants(
                                  lambda args, static, eps: _bce_eps(args, static, eps, logits)
                                  * np.size(args[0]))),
                    _bce_sets(logits), ("y",))
    return Spec(kind, ("x",), {"x": None},
                Reference("mean of -(y log p + (1 - y) log(1 - p))"
                          + (", p = sigmoid(x)" if logits else ", p = x"), forward, alternates,
                          variants=_log_eps_variants(
                              lambda args, static, eps: _bce_eps(args, static, eps, logits))),
                _bce_sets(logits), ("y",),
                names={"loss": (r"(binary_cross_entropy|bce|sigmoid_cross_entropy)_with_logits"
                                r"(_loss)?|sigmoid_cross_entropy(_loss)?" if logits else
                                r"binary_cross_?entropy(_loss)?|bce_loss"),
                       "module_loss": module_name(
                           r"sigmoid_?with_?loss|(bce|binary_?cross_?entropy)_?with_?logits"
                           r"(_?loss)?|sigmoid_?(binary_?)?cross_?entropy(_?loss)?" if logits
                           else r"(loss_?)?(bce|binary_?cross_?entropy)(_?loss)?")},
                layouts=("bce_logits", "bce", "bce_logits_sum", "bce_sum") if logits
                else ("bce", "bce_logits", "bce_sum", "bce_logits_sum"))


SPECS.update({"svm_loss": svm_loss_spec, "svm_loss_sum": lambda: svm_loss_spec("sum"),
              **{k: (lambda k=k: mse_spec(k)) for k in MSE_FORMS},
              "bce": bce_spec, "bce_logits": lambda: bce_spec(True),
              "bce_sum": lambda: bce_spec(reduction="sum"),
              "bce_logits_sum": lambda: bce_spec(True, "sum"),
              "cross_entropy_probs": cross_entropy_probs_spec,
              "cross_entropy_probs_sum": lambda: cross_entropy_probs_spec("sum")})


# ------------------------------------------------------------------ mean absolute error

def _mae_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18, 9])
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    tied = x.copy()
    tied[0, 1], tied[2, 0], tied[3, 2] = y[0, 1], y[2, 0], y[3, 2]
    return [InputSet("random", "random x (4, 3), targets y (4, 3)", (x,), (y,)),
            InputSet("boundary", "x (4, 3) equal to y at 3 entries (|x - y|'s kink)",
                     (tied,), (y,), note="at x = y any slope in [-1, 1] / M is a "
                                         "subgradient"),
            InputSet("batch-of-one", "random x (1, 5): a batch of one",
                     (rng.standard_normal((1, 5)),), (rng.standard_normal((1, 5)),))]


def mae_spec() -> Spec:
    """Mean absolute error, the mean over every entry of |x - y| (y static): dx =
    sign(x - y) / M, M = x.size; at x = y any slope in [-1, 1] / M. Alternates: the
    squared error's derivative ``(x - y) / M`` and the mean squared error's
    ``2 (x - y) / M``."""
    def forward(args, static):
        return jnp.mean(jnp.abs(args[0] - jnp.asarray(static[0])))

    def alternates(args, static, cotangent):
        x, y = as_np(args[0]), np.asarray(static[0], float)
        g = float(np.asarray(cotangent)) / x.size
        return [Alternate("0 at x = y", (g * np.sign(x - y),), True, "correct",
                          "slope 0 where x = y (np.sign)"),
                wrong("squared error's derivative", (g * (x - y),),
                      "(x - y) / M, the derivative of a squared error, where sign(x - y) / M "
                      "belongs"),
                wrong("squared error's derivative, x2", (2 * g * (x - y),),
                      "2 (x - y) / M, the derivative of the mean squared error, where "
                      "sign(x - y) / M belongs")]

    def kinks(s: InputSet) -> Kinks:
        at = np.asarray(s.args[0]) == np.asarray(s.static[0])
        return Kinks((at,), {"entries": int(at.size), "ties": int(at.sum())},
                     f"{int(at.sum())} of {at.size} entries with x = y exactly")

    def subgradient(args, static, cotangent, i, hand, tol):
        x, y = as_np(args[0]), np.asarray(static[0], float)
        if hand.shape != x.shape:
            return None
        g = float(np.asarray(cotangent)) / x.size
        atol = tol * max(abs(g), 1e-300)
        at = x == y
        off = np.where(at, 0.0, hand - g * np.sign(x - y))
        ok = np.max(np.abs(off), initial=0.0) <= atol and bool(np.all(
            np.abs(hand[at]) <= abs(g) + atol))
        return "other slope in [-1, 1] at x = y" if ok else None

    return Spec("mae", ("x",), {"x": ("sample", "output")},
                Reference("mean(|x - y|)", forward, alternates, kinks, subgradient),
                _mae_sets, ("y",),
                names={"loss": r"mae_loss|mean_absolute_error(_loss)?|l1_loss",
                       "module_loss": module_name(
                           r"(loss_?)?(mae|mean_?absolute_?error|l1)(_?loss)?")})


SPECS["mae"] = mae_spec
