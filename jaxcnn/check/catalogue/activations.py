"""Activations: softmax, ReLU, sigmoid, tanh, with their classic wrong derivatives."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import as_np, compiled
from jaxcnn.check.catalogue.base import Spec, module_name, wrong
from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference


def logit_sets(seed: int, with_label: bool) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    c = 10
    static = lambda y: (y,) if with_label else ()  # noqa: E731
    y = int(rng.integers(c))
    sets = [InputSet("random", "random logits (10,)", (rng.standard_normal(c),), static(y),
                     label=y)]
    tied = np.zeros(c)
    tied[[2, 5]] = 3.0
    sets.append(InputSet("flat", "two tied top logits", (tied,), static(5), label=5))
    for size in (86.5, 100.0):
        gap = np.zeros(c)
        gap[[0, 1]] = size
        for dtype in ("float64", "float32"):
            sets.append(InputSet(
                "large-gap", f"logits [{size:g}, {size:g}, 0, ...], label 9, {dtype}", (gap,),
                static(9), label=9, dtype=dtype,
                note=f"confident and wrong: e^-{size:g} is below float32's smallest normal "
                     "(1.2e-38) once multiplied by a probability"))
    return sets


def softmax_spec() -> Spec:
    def alternates(args, static, cotangent):
        t, g = as_np(args[0]), as_np(cotangent)  # (C,), or a batch: over the last axis
        e = np.exp(t - t.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        return [wrong("no diagonal term", (-p * np.sum(p * g, axis=-1, keepdims=True),),
                      "the Jacobian's diagonal term p_i (delta_ij) is missing: -p (p . g) "
                      "where p * g - p (p . g) belongs"),
                wrong("Jacobian's diagonal only", (p * g - p * p * g,),
                      "only the diagonal of the Jacobian p_i (1 - p_i) is used, elementwise "
                      "as for a sigmoid: the off-diagonal terms -p_i p_j are missing")]

    reference = Reference("jax.nn.softmax", lambda args, static: jax.nn.softmax(args[0]),
                          alternates)
    return Spec("softmax", ("logits",), {"logits": ("class",)}, reference,
                functools.partial(logit_sets, with_label=False))


def _elementwise_sets(seed: int, zeros: bool) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    sets = []
    for shape in ((4, 6), (3, 4, 5)):  # a batch of vectors, and of 2-d samples
        away = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)
        sets.append(InputSet("random", f"random x {shape}, no zeros", (away,)))
        if zeros:
            boundary = away.copy()
            boundary[rng.random(shape) < 0.3] = 0.0
            sets.append(InputSet("boundary", f"x {shape} with exact zeros (ReLU's kink)",
                                 (boundary,), note="at x = 0 any value in [0, 1] times dout "
                                                   "is a subgradient"))
    return sets


def _relu_kinks(s: InputSet) -> Kinks:
    x = np.asarray(s.args[0])
    zeros = x == 0
    return Kinks((zeros,), {"entries": int(x.size), "zeros": int(zeros.sum())},
                 f"{int(zeros.sum())} of {x.size} inputs exactly 0")


def relu_spec() -> Spec:
    def alternates(args, static, cotangent):
        x = as_np(args[0])
        g = as_np(cotangent)
        return [Alternate(name, (g * slope,), True, "correct", note) for name, slope, note in (
            ("0 at 0", (x > 0).astype(float), "derivative 0 at x = 0 (x > 0 mask)"),
            ("1 at 0", (x >= 0).astype(float), "derivative 1 at x = 0 (x >= 0 mask)"),
            ("1/2 at 0", np.where(x == 0, 0.5, (x > 0).astype(float)),
             "derivative 1/2 at x = 0 (autodiff of jnp.maximum)"))] + [
            wrong("no mask", (g,), "dout passed through unmasked: the derivative of the "
                                   "identity, not of max(x, 0)"),
            wrong("mask of x < 0", (g * (x < 0),), "the mask is inverted: x < 0 where x > 0 "
                                                   "belongs")]

    def subgradient(args, static, cotangent, i, hand, tol):
        x, g = as_np(args[0]), as_np(cotangent)
        if hand.shape != x.shape:
            return None
        atol = tol * max(float(np.max(np.abs(g), initial=0.0)), 1e-300)
        exact = np.where(x > 0, g, 0.0)
        at_zero = x == 0
        if np.max(np.abs(np.where(at_zero, 0.0, hand - exact)), initial=0.0) > atol:
            return None
        slope_ok = (hand * g >= -atol) & (np.abs(hand) <= np.abs(g) + atol)
        return "other slope in [0, 1] at 0" if np.all(slope_ok | ~at_zero) else None

    reference = Reference("max(x, 0)", lambda args, static: jnp.maximum(args[0], 0.0),
                          alternates, _relu_kinks, subgradient)
    return Spec("relu", ("x",), {"x": None}, reference,
                functools.partial(_elementwise_sets, zeros=True))


def _no_derivative(g) -> Alternate:
    return wrong("no derivative", (g,), "dout passed through unchanged: the activation's "
                                        "derivative is never multiplied in")


def elementwise_spec(kind: str) -> Spec:
    fun = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[kind]

    def alternates(args, static, cotangent):
        x, g = as_np(args[0]), as_np(cotangent)
        if kind == "sigmoid":
            out = 1 / (1 + np.exp(-x))
            return [wrong("s(1 - s) at the input", (g * x * (1 - x),),
                          "the derivative s * (1 - s) evaluated at the input x instead of the "
                          "output s = sigmoid(x) (cache the output)"),
                    wrong("1 - s", (g * (1 - out),), "a factor s missing: dout * (1 - s) "
                                                     "where dout * s * (1 - s) belongs"),
                    wrong("s", (g * out,), "a factor (1 - s) missing: dout * s where "
                                           "dout * s * (1 - s) belongs"),
                    _no_derivative(g)]
        out = np.tanh(x)
        return [wrong("1 - t^2 at the input", (g * (1 - x * x),),
                      "the derivative 1 - t^2 evaluated at the input x instead of the output "
                      "t = tanh(x) (cache the output)"),
                wrong("1 - t", (g * (1 - out),), "1 - t where 1 - t^2 belongs"),
                _no_derivative(g)]

    return Spec(kind, ("x",), {"x": None},
                Reference(f"jax.nn.{kind}" if kind == "sigmoid" else "jnp.tanh",
                          lambda args, static: fun(args[0]), alternates),
                functools.partial(_elementwise_sets, zeros=False))


SPECS = {"softmax": softmax_spec, "relu": relu_spec,
         "sigmoid": lambda: elementwise_spec("sigmoid"),
         "tanh": lambda: elementwise_spec("tanh")}


# ------------------------------------------------------------------ more activations

def _slope_subgradient(low: float, negative=None):
    """A subgradient test for a kink at 0 whose one-sided slopes are ``low`` and 1: the
    hand must equal the reference off 0, and be dout times a slope in [low, 1] at 0.
    ``negative(x)``: the derivative for x < 0 (default ``low``; ELU's alpha e^x)."""
    def subgradient(args, static, cotangent, i, hand, tol):
        x, g = as_np(args[0]), as_np(cotangent)
        if hand.shape != x.shape:
            return None
        atol = tol * max(float(np.max(np.abs(g), initial=0.0)), 1e-300)
        exact = np.where(x > 0, g, g * (low if negative is None else negative(x)))
        at_zero = x == 0
        if np.max(np.abs(np.where(at_zero, 0.0, hand - exact)), initial=0.0) > atol:
            return None
        lo, hi = np.minimum(low * g, g), np.maximum(low * g, g)
        ok = (hand >= lo - atol) & (hand <= hi + atol)
        return f"other slope in [{low:g}, 1] at 0" if np.all(ok | ~at_zero) else None
    return subgradient


def _kink_alternates(low: float, g, x, negative=None) -> list[Alternate]:
    """The two one-sided derivatives at 0 as valid rules; ``negative(x)``: the derivative
    for x < 0 (default ``low``)."""
    below = low if negative is None else negative(x)
    return [Alternate(f"{low:g} at 0", (g * np.where(x > 0, 1.0, below),), True, "correct",
                      f"derivative {low:g} at x = 0 (x > 0 test)"),
            Alternate("1 at 0", (g * np.where(x >= 0, 1.0, below),), True, "correct",
                      "derivative 1 at x = 0 (x >= 0 test)")]


def leaky_relu_spec(alpha: float | None = None) -> Spec:
    """max(x, alpha x); ``alpha`` None: no slope argument, 0.01 (PyTorch's default);
    else a static slope argument (kind ``leaky_relu_alpha``, checked with 0.2)."""
    slope = 0.01 if alpha is None else alpha

    def a(static):
        return float(static[0]) if static else slope

    def alternates(args, static, cotangent):
        x, g, al = as_np(args[0]), as_np(cotangent), a(static)
        return _kink_alternates(al, g, x) + [
            wrong("no leak", (g * (x > 0),), "the negative side gets no gradient: ReLU's "
                                             f"mask where slope {al:g} belongs"),
            wrong("leak on the wrong side", (g * np.where(x > 0, al, 1.0),),
                  f"slope {al:g} for x > 0 and 1 for x < 0: the two sides swapped")]

    def subgradient(args, static, cotangent, i, hand, tol):
        return _slope_subgradient(a(static))(args, static, cotangent, i, hand, tol)

    kind = "leaky_relu" if alpha is None else "leaky_relu_alpha"
    sets = functools.partial(_elementwise_sets, zeros=True)
    if alpha is not None:
        def sets(seed):
            return [s._replace(static=(alpha,)) for s in _elementwise_sets(seed, True)]
    return Spec(kind, ("x",), {"x": None},
                Reference(f"max(x, {slope:g} x)", lambda args, static: jnp.where(
                    args[0] > 0, args[0], a(static) * args[0]), alternates, _relu_kinks,
                          subgradient), sets, ("alpha",) if alpha is not None else (),
                names={"cs231n": r"leaky_?relu|lrelu",
                       "module": module_name(r"leaky_?relu|lrelu")} if alpha is None else None,
                layouts=("leaky_relu", "leaky_relu_alpha") if alpha is None else ())


def _elu_negative(alpha: float):
    """ELU's derivative for x < 0: alpha e^x (alpha at x = 0)."""
    return lambda x: alpha * np.exp(np.minimum(x, 0.0))


def elu_spec(alpha: float | None = None) -> Spec:
    """x for x > 0, alpha (e^x - 1) else; ``alpha`` None: no argument, 1.0; else a static
    argument (kind ``elu_alpha``, checked with 0.5: a kink at 0)."""
    default = 1.0 if alpha is None else alpha

    def a(static):
        return float(static[0]) if static else default

    def alternates(args, static, cotangent):
        x, g, al = as_np(args[0]), as_np(cotangent), a(static)
        out = np.where(x > 0, x, al * np.expm1(np.minimum(x, 0)))
        return _kink_alternates(al, g, x, _elu_negative(al)) * (al != 1.0) + [
            wrong("alpha e^out", (g * np.where(x > 0, 1.0, al * np.exp(out)),),
                  "the derivative alpha e^x evaluated at the output instead of the input "
                  "(or out + alpha with out taken as x)"),
            wrong("out for x < 0", (g * np.where(x > 0, 1.0, out),),
                  "out where out + alpha belongs for x < 0")]

    def subgradient(args, static, cotangent, i, hand, tol):
        al = a(static)
        return _slope_subgradient(al, _elu_negative(al))(args, static, cotangent, i, hand,
                                                         tol)

    kind = "elu" if alpha is None else "elu_alpha"
    if alpha is None:
        sets = functools.partial(_elementwise_sets, zeros=True)
    else:
        def sets(seed):
            return [s._replace(static=(alpha,)) for s in _elementwise_sets(seed, True)]
    return Spec(kind, ("x",), {"x": None},
                Reference(f"x > 0 ? x : {default:g} (e^x - 1)", lambda args, static: jnp.where(
                    args[0] > 0, args[0], a(static) * jnp.expm1(jnp.where(args[0] > 0, 0.0,
                                                                          args[0]))),
                    alternates, _relu_kinks, subgradient), sets,
                ("alpha",) if alpha is not None else (),
                names={"cs231n": r"elu", "module": module_name(r"elu")} if alpha is None else None,
                layouts=("elu", "elu_alpha") if alpha is None else ())


def _wide_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18])
    return [InputSet("random", "random x (4, 6) in [-4, 4]", (rng.uniform(-4, 4, (4, 6)),)),
            InputSet("random", "random x (3, 4, 5)", (2 * rng.standard_normal((3, 4, 5)),))]


def gelu_spec(form: str = "erf") -> Spec:
    """GELU (Hendrycks & Gimpel 2016): x Phi(x) (``form="erf"``, kind ``gelu``) or the
    tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (kind
    ``gelu_tanh``)."""
    approximate = form == "tanh"

    def alternates(args, static, cotangent):
        x, g = as_np(args[0]), as_np(cotangent)
        if approximate:
            phi = 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
        else:
            phi = as_np(compiled(jax.scipy.stats.norm.cdf, x))  # one program, kept
        return [wrong("Phi(x) only", (g * phi,), "only the first term of the product rule: "
                                                 "Phi(x) without x Phi'(x)")]

    kind = "gelu_tanh" if approximate else "gelu"
    return Spec(kind, ("x",), {"x": None},
                Reference(f"jax.nn.gelu(approximate={approximate})",
                          lambda args, static: jax.nn.gelu(args[0], approximate=approximate),
                          alternates), _wide_sets,
                names={"cs231n": r"gelu(_tanh|_erf|_approx(imate)?|_exact)?",
                       "module": module_name(r"gelu(_?(tanh|erf|approx(imate)?|exact))?")}
                if not approximate else None,
                layouts=("gelu", "gelu_tanh") if not approximate else ())


def softplus_spec() -> Spec:
    def alternates(args, static, cotangent):
        x, g = as_np(args[0]), as_np(cotangent)
        out = np.logaddexp(0, x)
        return [wrong("sigmoid at the output", (g / (1 + np.exp(-out)),),
                      "sigmoid evaluated at the output log(1 + e^x) instead of the input"),
                wrong("e^x", (g * np.exp(x),), "e^x where e^x / (1 + e^x) belongs")]

    return Spec("softplus", ("x",), {"x": None},
                Reference("log(1 + e^x)", lambda args, static: jax.nn.softplus(args[0]),
                          alternates), _wide_sets, names={"cs231n": r"soft_?plus",
                                                     "module": module_name(r"soft_?plus")})


def _log_softmax_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18])
    gap = np.zeros((2, 10))
    gap[:, :2] = 100.0
    return [InputSet("random", "random x (4, 10)", (rng.standard_normal((4, 10)),)),
            InputSet("random", "random x (3, 7)", (3 * rng.standard_normal((3, 7)),)),
            *(InputSet("large-gap", f"x (2, 10), two top entries 100 above the rest, {dtype}",
                       (gap,), dtype=dtype, note="e^-100 underflows float32: log(softmax) "
                                                 "gives -inf, x - logsumexp does not")
              for dtype in ("float64", "float32")),
            InputSet("batch-of-one", "random x (1, 5): a batch of one",
                     (rng.standard_normal((1, 5)),))]


def log_softmax_spec() -> Spec:
    def alternates(args, static, cotangent):
        x, g = as_np(args[0]), as_np(cotangent)
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        return [wrong("sum of dout left out", (g - p,),
                      "dout - softmax(x), as if dout summed to 1 over the classes: "
                      "dout - softmax(x) * sum(dout) belongs"),
                wrong("softmax's backward", (p * g - p * (p * g).sum(axis=-1, keepdims=True),),
                      "the softmax's backward used for the log-softmax")]

    return Spec("log_softmax", ("x",), {"x": ("sample", "class")},
                Reference("jax.nn.log_softmax over the last axis",
                          lambda args, static: jax.nn.log_softmax(args[0], axis=-1),
                          alternates), _log_softmax_sets, names={"cs231n": r"log_?softmax"})


SPECS.update({
    "leaky_relu": leaky_relu_spec, "leaky_relu_alpha": lambda: leaky_relu_spec(0.2),
    "elu": elu_spec, "elu_alpha": lambda: elu_spec(0.5),
    "gelu": gelu_spec, "gelu_tanh": lambda: gelu_spec("tanh"),
    "softplus": softplus_spec, "log_softmax": log_softmax_spec,
})
