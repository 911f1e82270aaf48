"""The catalogue: reference layers (the exact oracle), their inputs and their kinks.

Each ``Spec`` names a layer kind, its differentiable arguments, a JAX reference
forward (differentiated by ``jax.vjp`` in float64), the input sets that expose each kind
of mistake, and the alternates that explain a disagreement. The references are jaxcnn's
own layers where the report defines them (``model.conv3x3``, ``model.maxpool2``,
``model.dense`` + softmax) and the textbook definitions of CS231n's layers otherwise:

====================  =============================================  ===================
kind                  arguments (shapes of the default inputs)       reference
====================  =============================================  ===================
conv3x3               input (28, 28), filters (F, 3, 3)              model.conv3x3
maxpool2              input (26, 26, F)                              model.maxpool2
dense_softmax         input (13, 13, F), weights (13*13*F, C),       softmax(model.dense)
                      biases (C,) -> probabilities
dense                 same -> logits                                 model.dense
softmax               logits (C,)                                    jax.nn.softmax
cross_entropy         logits (C,); static label                      model.cross_entropy
affine                x (N, d1, ..., dk), w (D, M), b (M,)           x.reshape(N, D) @ w + b
relu                  x (any)                                        max(x, 0)
sigmoid, tanh         x (any)                                        jax.nn.sigmoid, tanh
conv                  x (N, C, H, W), w (F, C, HH, WW), b (F,);      lax.conv_general_dilated
                      static conv_param {"stride", "pad"}            (cross-correlation)
max_pool              x (N, C, H, W); static pool_param              window max
                      {"pool_height", "pool_width", "stride"}
softmax_loss          x (N, C); static y (N,)                        mean cross-entropy
softmax_loss_sum      the same, summed over samples                  sum cross-entropy
conv3x3_bias          conv3x3 with biases (F,)                       model.conv3x3 + biases
dense_cross_entropy   input, weights, biases; static label -> loss   the report's softmax
                                                                     layer with its loss
report_network        image, filters, weights, biases; static label  model.loss
conv_nchw(_nobias)    conv without a config dict: stride 1, pad 0    as conv
conv_nhwc(_nobias)    x (N, H, W, C), w (HH, WW, C, F)[, b]          NHWC/HWIO conv
conv_nhwc_param       conv, channels last (NHWC / HWIO), conv_param  as conv
conv+relu+max_pool    a CS231n sandwich: the parts composed (also     the parts' references
                      affine+relu, conv+relu)
max_pool_nchw         max_pool without a config dict: 2x2, stride 2  as max_pool
====================  =============================================  ===================

Input families: ``random`` (tie-free), ``digits`` (real MNIST from the embedded subset:
its flat -0.5 background makes pool windows tie), ``flat`` (every window tied),
``boundary`` (exact zeros at ReLU's kink), ``overlap`` and ``strided`` (windows that
overlap: the ``=`` vs ``+=`` bug only shows there), ``large-gap`` (confident wrong
logits: a float32 softmax chain underflows there), ``batch-of-one`` (N = 1 for the batched
CS231n kinds: affine, conv, softmax_loss); some random inputs are not square, so that
swapped row and column indices show.

Each reference may also carry alternates (other valid tie rules, and known wrong
formulas: the report's overcount, overwriting windows, wrong derivatives, the stride left
out), a subgradient test (any convex combination at ties and zeros), and its kinks.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import model
from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference

TIE_NOTES = {
    "split": "tied maxima share the upstream gradient equally (autodiff of jnp.max)",
    "first": "the first maximum in row-major window order takes it (np.argmax, "
             "lax.reduce_window)",
    "last": "the last maximum in row-major window order takes it",
}
MAX_POSITION_NOTE = ("the gradient goes to the maximum's position in its window with row and "
                     "column read in the other order: the flat argmax unravelled with the "
                     "window's shape swapped (unravel_index(k, (pw, ph)), or divmod's parts "
                     "exchanged)")
OVERCOUNT_NOTE = ("every tied maximum receives the FULL upstream gradient (the report's and "
                  "blog's `==` mask): a window with k tied maxima passes back k times its "
                  "gradient; not a subgradient")


class Spec(NamedTuple):
    """One layer kind of the catalogue (see the module docstring).

    axis_names: per argument name, the names of its axes; key "out" names the output's.
    """

    kind: str
    arg_names: tuple[str, ...]
    axis_names: dict
    reference: Reference
    input_sets: Callable[[int], list[InputSet]]
    static_names: tuple[str, ...] = ()


# ------------------------------------------------------------------ shared pieces

@functools.lru_cache(maxsize=4)
def _digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` embedded MNIST test digits, normalised float64, and labels.

    Cached on ``count``: this is data, not code under check.
    """
    from jaxcnn import data

    ds = data.load("mnist-embedded", train_size=1, test_size=count)
    images = ds.test_images.astype(np.float64) / 255 - 0.5
    images.flags.writeable = False
    return images, np.asarray(ds.test_labels)


def digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Writable copies of ``_digits(count)``."""
    images, labels = _digits(count)
    return images.copy(), labels.copy()


def _np(x) -> np.ndarray:
    return np.array(x, dtype=np.float64, copy=True)


def vjp(fun: Callable, args: tuple, cotangent) -> tuple:
    """``jax.vjp`` of ``fun(*args)`` at float64 ``args``, as float64 NumPy arrays.

    Eager on purpose: the hand code runs eagerly too, and an eager reference sees the
    same ties (a jit-compiled forward may round identical patches differently).
    """
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    out, pullback = jax.vjp(fun, *args)
    grads = pullback(jnp.asarray(cotangent, out.dtype))
    return tuple(_np(g) for g in grads)


def bind(forward: Callable, static: tuple) -> Callable:
    """``f(*args) = forward(args, static)``: a function of the differentiable arrays."""
    def bound(*args):
        return forward(args, static)
    return bound


def vjp_many(fun: Callable, args: tuple, cotangents) -> tuple:
    """``jax.vjp`` of ``fun`` for a stack of cotangents (K, *out): one linearisation,
    the pullback vmapped. Returns per argument a (K, *arg) float64 NumPy array."""
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    out, pullback = jax.vjp(fun, *args)
    grads = jax.vmap(pullback)(jnp.asarray(cotangents, out.dtype))
    return tuple(_np(g) for g in grads)


def _tie_rule_max(windows, rule: str):
    """Max over the last axis with the tie rule that autodiff will use."""
    if rule == "last":
        return model.window_max(windows[..., ::-1], "first")
    return model.window_max(windows, rule)


def _window_ties(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_max (..., K) bool, number of maxima per window (...))."""
    is_max = windows == windows.max(axis=-1, keepdims=True)
    return is_max, is_max.sum(axis=-1)


def window_subgradient(windows: np.ndarray, hand_windows: np.ndarray, g: np.ndarray,
                       tol: float, denominator: float) -> bool:
    """Whether each window's hand gradient (..., K) is a valid subgradient of its max:
    zero off the maxima, and on the tied maxima a convex combination of the window's
    upstream gradient ``g`` (...): same sign as g, summing to g."""
    atol = tol * max(denominator, 1e-300)
    is_max = windows == windows.max(axis=-1, keepdims=True)
    off = np.where(is_max, 0.0, hand_windows)
    if np.max(np.abs(off), initial=0.0) > atol:
        return False
    on = np.where(is_max, hand_windows, 0.0)
    if np.min(on * g[..., None], initial=0.0) < -atol * np.max(np.abs(g), initial=1.0):
        return False
    return float(np.max(np.abs(on.sum(axis=-1) - g), initial=0.0)) <= atol


def wrong(name: str, grads: tuple, note: str) -> Alternate:
    """A known wrong formula for a layer's derivative (kind ``wrong-derivative``)."""
    return Alternate(name, grads, False, "wrong-derivative", note)


def _tie_alternates(window_fn: Callable, args: tuple, cotangent) -> list[Alternate]:
    """The three subgradient tie rules (valid) and the report's overcount (wrong)."""
    x = args[0]
    out = [Alternate(rule, vjp(lambda v, r=rule: _tie_rule_max(window_fn(v), r), (x,),
                               cotangent), True, "correct", TIE_NOTES[rule])
           for rule in ("split", "first", "last")]
    report = vjp(lambda v: model.window_max(window_fn(v), "report"), (x,), cotangent)
    out.append(Alternate("report", report, False, "tie-overcount", OVERCOUNT_NOTE))
    return out


# ------------------------------------------------------------------ the report's layers

def _conv3x3_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((8, 3, 3)) / 9
    images, labels = digits(2)
    sets = [InputSet("random", "random image (tie-free)",
                     (rng.uniform(-0.5, 0.5, (28, 28)), filters)),
            InputSet("random", "random image (20, 24): not square",
                     (rng.uniform(-0.5, 0.5, (20, 24)), filters),
                     note="rows and columns differ: swapped indices show")]
    sets += [InputSet("digits", f"MNIST digit {i} (label {labels[i]})", (images[i], filters))
             for i in range(len(images))]
    return sets


def _conv3x3_overwrite(args, static, cotangent) -> list[Alternate]:
    """dL/dimage of the report's conv written with ``=`` (overlapping 3x3 windows)."""
    image, filters = _np(args[0]), _np(args[1])
    d_out = _np(cotangent)
    h, w, f_count = d_out.shape
    out = []
    for order in ("i j, sum over f", "i j f", "f i j"):
        d = np.zeros(image.shape)
        if order == "i j, sum over f":
            for i, j in itertools.product(range(h), range(w)):
                d[i:i + 3, j:j + 3] = np.einsum("f,fxy->xy", d_out[i, j], filters)
        else:
            loops = (itertools.product(range(h), range(w), range(f_count)) if order == "i j f"
                     else ((i, j, f) for f in range(f_count) for i in range(h)
                           for j in range(w)))
            for i, j, f in loops:
                d[i:i + 3, j:j + 3] = d_out[i, j, f] * filters[f]
        out.append(Alternate(f"overwrite ({order})", (d, None), False, "missing-accumulation",
                             "overlapping 3x3 windows overwrite dL/dimage instead of adding to "
                             f"it (`=` where `+=` belongs; loop order {order})"))
    return out


def conv3x3_spec() -> Spec:
    reference = Reference("jaxcnn.model.conv3x3",
                          lambda args, static: model.conv3x3(args[0], args[1]),
                          _conv3x3_overwrite)
    return Spec("conv3x3", ("input", "filters"),
                {"input": ("row", "column"), "filters": ("filter", "x", "y"),
                 "out": ("row", "column", "filter")},
                reference, _conv3x3_sets)


def conv3x3_bias_spec() -> Spec:
    """The report's conv with a bias per filter: (28, 28), (F, 3, 3), (F,) -> (26, 26, F)."""
    base = conv3x3_spec()

    def with_bias(seed):
        rng = np.random.default_rng(seed + 1)
        return [s._replace(args=(*s.args, 0.1 * rng.standard_normal(s.args[1].shape[0])))
                for s in base.input_sets(seed)]

    def alternates(args, static, cotangent):
        return [a._replace(grads=(*a.grads, None))
                for a in _conv3x3_overwrite(args[:2], static, cotangent)]

    reference = Reference("jaxcnn.model.conv3x3 + biases",
                          lambda args, static: model.conv3x3(args[0], args[1]) + args[2],
                          alternates)
    return Spec("conv3x3_bias", ("input", "filters", "biases"),
                dict(base.axis_names, biases=("filter",)), reference, with_bias)


def report_pool_kinks(s: InputSet) -> Kinks:
    x = np.asarray(s.args[0])
    windows = np.asarray(model.pool_windows(x))  # (H, W, F, 4)
    is_max, count = _window_ties(windows)
    tied = count > 1
    mask = np.asarray(model.unpool_windows(is_max & tied[..., None]))
    stats = {"windows": int(tied.size), "tied_windows": int(tied.sum())}
    summary = f"{stats['tied_windows']} of {stats['windows']} pool windows tied"
    if s.provenance and "image" in s.provenance:
        # A tie is structural when the tied conv pixels sit on identical 3x3 patches:
        # they then move together for any filter, and the loss stays differentiable.
        patches = np.asarray(model.pool_windows(np.asarray(model.im2col(
            jnp.asarray(s.provenance["image"])))))  # (H, W, 9, 4)
        same = np.all(patches[..., :, None] == patches[..., None, :], axis=-3)  # (H, W, 4, 4)
        pair_ok = same[:, :, None] | ~(is_max[..., :, None] & is_max[..., None, :])
        structural = tied & np.all(pair_ok, axis=(-1, -2))
        stats["structural_ties"] = int(structural.sum())
        summary += (f" ({stats['structural_ties']} structural: identical conv patches, no "
                    "kink for the filters)")
    return Kinks((mask,), stats, summary)


def _maxpool2_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((8, 3, 3)) / 9
    images, labels = digits(2)
    sets = [InputSet("random", "random (26, 26, 8) (tie-free)",
                     (rng.uniform(-1, 1, (26, 26, 8)),)),
            InputSet("random", "random (20, 24, 8): not square",
                     (rng.uniform(-1, 1, (20, 24, 8)),),
                     note="rows and columns differ: swapped indices show")]
    for i in range(len(images)):
        conv = _np(model.conv3x3(jnp.asarray(images[i]), jnp.asarray(filters)))
        sets.append(InputSet("digits", f"conv of MNIST digit {i} (label {labels[i]})", (conv,),
                             note="tie-rich: the flat background gives bit-identical conv "
                                  "outputs", provenance={"image": images[i],
                                                         "filters": filters}))
    blank = np.full((28, 28), -0.5)
    sets.append(InputSet("flat", "conv of a blank image (every window tied)",
                         (_np(model.conv3x3(jnp.asarray(blank), jnp.asarray(filters))),),
                         provenance={"image": blank, "filters": filters}))
    return sets


def _maxpool2_swapped(x, cotangent) -> Alternate:
    """The report's pool with each window's first maximum sent to its transposed position
    in the 2x2 window (row and column exchanged)."""
    windows = np.asarray(model.pool_windows(_np(x)))  # (H, W, F, 4), row-major window order
    first = np.eye(4)[np.argmax(windows, axis=-1)]
    swapped = first[..., [0, 2, 1, 3]] * _np(cotangent)[..., None]
    return Alternate("max position swapped", (_np(model.unpool_windows(swapped)),), False,
                     "transposed", MAX_POSITION_NOTE)


def maxpool2_spec() -> Spec:
    def alternates(args, static, cotangent):
        return _tie_alternates(model.pool_windows, args, cotangent) + [
            _maxpool2_swapped(args[0], cotangent)]

    def subgradient(args, static, cotangent, i, hand, tol):
        x = _np(args[0])
        if hand.shape != x.shape:
            return None
        ok = window_subgradient(np.asarray(model.pool_windows(x)),
                                np.asarray(model.pool_windows(hand)), _np(cotangent), tol,
                                float(np.max(np.abs(cotangent), initial=0.0)))
        return "other subgradient" if ok else None

    reference = Reference("jaxcnn.model.maxpool2",
                          lambda args, static: model.maxpool2(args[0], "split"),
                          alternates, report_pool_kinks, subgradient)
    return Spec("maxpool2", ("input",),
                {"input": ("row", "column", "filter"), "out": ("row", "column", "filter")},
                reference, _maxpool2_sets)


def _pooled_features(rng, count: int) -> list[tuple[str, np.ndarray, int]]:
    """(name, pooled (13, 13, 8), label) from real digits through a random conv + pool."""
    filters = rng.standard_normal((8, 3, 3)) / 9
    images, labels = digits(count)
    out = []
    for i in range(count):
        pooled = model.maxpool2(model.conv3x3(jnp.asarray(images[i]), jnp.asarray(filters)))
        out.append((f"pooled conv of MNIST digit {i} (label {labels[i]})", _np(pooled),
                    int(labels[i])))
    return out


def _dense_sets(seed: int, float32_gap: bool, label_static: bool = False) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    c, d = 10, 13 * 13 * 8
    weights = rng.standard_normal((d, c)) / d
    biases = 0.1 * rng.standard_normal(c)
    x = rng.uniform(-0.5, 0.5, (13, 13, 8))

    def static(label):
        return (label,) if label_static else ()

    label = int(rng.integers(c))
    sets = [InputSet("random", "random features (13, 13, 8)", (x, weights, biases),
                     static(label), label=label)]
    for name, pooled, label in _pooled_features(rng, 1):
        sets.append(InputSet("digits", name, (pooled, weights, biases), static(label),
                             label=label))
    # Confident and wrong: two tied top logits far above the label's.
    for size in (86.5, 100.0):
        gap = np.zeros(c)
        gap[[0, 1]] = size
        note = (f"two tied top logits {size:g} above the label's (p_label ~ e^-{size:g}, "
                "below float32's smallest normal once multiplied by a probability)")
        dtypes = ("float64", "float32") if float32_gap else ("float64",)
        for dtype in dtypes:
            sets.append(InputSet("large-gap", f"logit gap {size:g}, {dtype}",
                                 (x, weights, biases + gap), static(9), label=9, dtype=dtype,
                                 note=note))
    return sets


def dense_softmax_spec(float32_gap: bool = False) -> Spec:
    def forward(args, static):
        x, w, b = args
        return jax.nn.softmax(model.dense(x, w, b))

    reference = Reference("softmax(jaxcnn.model.dense)", forward)
    return Spec("dense_softmax", ("input", "weights", "biases"),
                {"input": ("row", "column", "filter"), "weights": ("input", "class"),
                 "biases": ("class",), "out": ("class",)}, reference,
                functools.partial(_dense_sets, float32_gap=float32_gap))


def dense_spec(float32_gap: bool = True) -> Spec:
    reference = Reference("jaxcnn.model.dense", lambda args, static: model.dense(*args))
    return Spec("dense", ("input", "weights", "biases"),
                {"input": ("row", "column", "filter"), "weights": ("input", "class"),
                 "biases": ("class",), "out": ("class",)}, reference,
                functools.partial(_dense_sets, float32_gap=float32_gap))


def dense_cross_entropy_spec() -> Spec:
    """The report's softmax layer with its loss: steps (1)-(2), dL/d(input, W, b)."""
    def forward(args, static):
        return model.cross_entropy(model.dense(*args), static[0])

    reference = Reference("jaxcnn.model.cross_entropy(jaxcnn.model.dense)", forward)
    return Spec("dense_cross_entropy", ("input", "weights", "biases"),
                {"input": ("row", "column", "filter"), "weights": ("input", "class"),
                 "biases": ("class",), "out": ()}, reference,
                functools.partial(_dense_sets, float32_gap=True, label_static=True), ("label",))


def _network_sets(seed: int, count: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((8, 3, 3)) / 9
    weights = rng.standard_normal((13 * 13 * 8, 10)) / (13 * 13 * 8)
    biases = np.zeros(10)
    sets = []
    for k in range(count):
        label = int(rng.integers(10))
        sets.append(InputSet("random", f"random image {k} (tie-free)",
                             (rng.uniform(-0.5, 0.5, (28, 28)), filters, weights, biases),
                             (label,), label=label))
    images, labels = digits(count)
    for k in range(count):
        sets.append(InputSet("digits", f"MNIST digit {k} (label {labels[k]})",
                             (images[k], filters, weights, biases), (int(labels[k]),),
                             label=int(labels[k])))
    gap = np.zeros(10)
    gap[[0, 1]] = 86.5
    sets.append(InputSet("large-gap", "MNIST digit 0, logit gap 86.5, label 9",
                         (images[0], filters, weights, biases + gap), (9,), label=9,
                         note="confident and wrong"))
    return sets


def _network_kinks(s: InputSet) -> Kinks:
    image, filters = s.args[0], s.args[1]
    conv = _np(model.conv3x3(jnp.asarray(image), jnp.asarray(filters)))
    pool = report_pool_kinks(InputSet(s.family, s.name, (conv,),
                                       provenance={"image": image, "filters": filters}))
    return Kinks((None,) * 4, pool.stats, pool.summary)


def report_network_spec(count: int = 2) -> Spec:
    """The whole network, loss of one image: dL/d(image, filters, weights, biases).

    Inputs: ``count`` random images, ``count`` real digits, one confident wrong digit.
    Alternates: autodiff with each tie rule ("first", "split" valid; the report's rule is
    tie-overcount). On real digits the tied pool inputs sit on identical conv patches
    (structural ties), so the filter gradient is unique and every valid rule agrees.
    """
    def loss_with(rule):
        def forward(image, filters, weights, biases, label):
            return model.loss(model.Params(filters, weights, biases), image, label, rule)
        return forward

    def alternates(args, static, cotangent):
        out = []
        for rule, valid, kind, note in (
                ("first", True, "correct", TIE_NOTES["first"]),
                ("report", False, "tie-overcount", OVERCOUNT_NOTE + " (in the max-pool layer)")):
            fun = loss_with(rule)
            out.append(Alternate(rule, vjp(lambda *a, f=fun: f(*a, static[0]), args, cotangent),
                                 valid, kind, note))
        return out

    reference = Reference("jax.grad of jaxcnn.model.loss",
                          lambda args, static: loss_with("split")(*args, static[0]),
                          alternates, _network_kinks)
    return Spec("report_network", ("image", "filters", "weights", "biases"),
                {"image": ("row", "column"), "filters": ("filter", "x", "y"),
                 "weights": ("input", "class"), "biases": ("class",), "out": ()},
                reference, functools.partial(_network_sets, count=count), ("label",))


def _logit_sets(seed: int, with_label: bool) -> list[InputSet]:
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
        t, g = _np(args[0]), _np(cotangent)
        e = np.exp(t - t.max())
        p = e / e.sum()
        return [wrong("no diagonal term", (-p * np.dot(p, g),),
                      "the Jacobian's diagonal term p_i (delta_ij) is missing: -p (p . g) "
                      "where p * g - p (p . g) belongs"),
                wrong("Jacobian transposed the wrong way", (p * g - p * p * g,),
                      "only the diagonal of the Jacobian p_i (1 - p_i) is used")]

    reference = Reference("jax.nn.softmax", lambda args, static: jax.nn.softmax(args[0]),
                          alternates)
    return Spec("softmax", ("logits",), {"logits": ("class",)}, reference,
                functools.partial(_logit_sets, with_label=False))


def cross_entropy_spec() -> Spec:
    reference = Reference("jaxcnn.model.cross_entropy",
                          lambda args, static: model.cross_entropy(args[0], static[0]))
    return Spec("cross_entropy", ("logits",), {"logits": ("class",)}, reference,
                functools.partial(_logit_sets, with_label=True), ("label",))


# ------------------------------------------------------------------ CS231n's layers

def _affine_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    sets = [InputSet("random", "random x (4, 6)", (rng.standard_normal((4, 6)),
                                                   rng.standard_normal((6, 5)) / 3,
                                                   rng.standard_normal(5)))]
    x = rng.standard_normal((3, 2, 3, 4))
    sets.append(InputSet("random", "random x (3, 2, 3, 4)",
                         (x, rng.standard_normal((24, 5)) / 5, rng.standard_normal(5)),
                         note="a batch of 3-d samples: flattened to (3, 24)"))
    images, _ = digits(3)
    crops = images[:, None, 10:16, 10:16].copy()
    sets.append(InputSet("digits", "MNIST crops x (3, 1, 6, 6)",
                         (crops, rng.standard_normal((36, 5)) / 6, rng.standard_normal(5))))
    return sets + _batch_of_one(seed, (1, 2, 3, 4), ((24, 5), (5,)), "")


def _batch_of_one(seed: int, x_shape: tuple, param_shapes: tuple, what: str,
                  static: tuple = ()) -> list[InputSet]:
    """One input set holding a batch of ONE sample (N = 1): a squeeze, or code that
    assumes N > 1, shows there. Its own generator, so the other sets keep their values.
    Give it the ranks and settings of another set of the kind: a forward that runs on it
    but refuses that batch of N > 1 is then a bug (code that assumes N = 1), not a
    limitation."""
    rng = np.random.default_rng(seed + 7)
    args = (rng.standard_normal(x_shape),
            *(rng.standard_normal(shape) / np.sqrt(shape[0]) for shape in param_shapes))
    return [InputSet("batch-of-one", f"random x {x_shape}{what}: a batch of one (N = 1)",
                     args, static, note="N = 1: a squeeze or an N > 1 assumption shows")]


def affine_spec() -> Spec:
    def forward(args, static):
        x, w, b = args
        return x.reshape(x.shape[0], -1) @ w + b

    return Spec("affine", ("x", "w", "b"),
                {"x": ("sample", "d1", "d2", "d3"), "w": ("input", "output"),
                 "b": ("output",), "out": ("sample", "output")},
                Reference("x.reshape(N, -1) @ w + b", forward), _affine_sets)


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
        x = _np(args[0])
        g = _np(cotangent)
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
        x, g = _np(args[0]), _np(cotangent)
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


def elementwise_spec(kind: str) -> Spec:
    fun = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[kind]

    def alternates(args, static, cotangent):
        x, g = _np(args[0]), _np(cotangent)
        if kind == "sigmoid":
            out = 1 / (1 + np.exp(-x))
            return [wrong("s(1 - s) at the input", (g * x * (1 - x),),
                          "the derivative s * (1 - s) evaluated at the input x instead of the "
                          "output s = sigmoid(x) (cache the output)"),
                    wrong("1 - s", (g * (1 - out),), "a factor s missing: dout * (1 - s) "
                                                     "where dout * s * (1 - s) belongs"),
                    wrong("s", (g * out,), "a factor (1 - s) missing: dout * s where "
                                           "dout * s * (1 - s) belongs")]
        out = np.tanh(x)
        return [wrong("1 - t^2 at the input", (g * (1 - x * x),),
                      "the derivative 1 - t^2 evaluated at the input x instead of the output "
                      "t = tanh(x) (cache the output)"),
                wrong("1 - t", (g * (1 - out),), "1 - t where 1 - t^2 belongs")]

    return Spec(kind, ("x",), {"x": None},
                Reference(f"jax.nn.{kind}" if kind == "sigmoid" else "jnp.tanh",
                          lambda args, static: fun(args[0]), alternates),
                functools.partial(_elementwise_sets, zeros=False))


def _conv_nchw(x, w, b, conv_param):
    s, p = int(conv_param["stride"]), int(conv_param["pad"])
    out = jax.lax.conv_general_dilated(x, w, (s, s), [(p, p), (p, p)],
                                       dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out + b[None, :, None, None]


def _conv_overwrite(args, static, cotangent) -> list[Alternate]:
    """dx computed with ``=`` where overlapping windows must add (three loop orders)."""
    x, w, _ = (_np(a) for a in args)
    s, p = int(static[0]["stride"]), int(static[0]["pad"])
    f_count, _, hh, ww = w.shape
    if s >= hh and s >= ww:
        return []
    n_count = x.shape[0]
    dout = _np(cotangent)
    ho, wo = dout.shape[2], dout.shape[3]
    shape = (n_count, x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p)
    variants = {}
    for order in ("n f i j", "n i j f", "n i j, sum over f"):
        dx = np.zeros(shape)
        for n in range(n_count):
            if order == "n f i j":
                loops = [(f, i, j) for f in range(f_count) for i in range(ho) for j in range(wo)]
            else:
                loops = [(f, i, j) for i in range(ho) for j in range(wo) for f in range(f_count)]
            if order.endswith("sum over f"):
                for i, j in itertools.product(range(ho), range(wo)):
                    dx[n, :, i * s:i * s + hh, j * s:j * s + ww] = np.einsum(
                        "f,fchw->chw", dout[n, :, i, j], w)
            else:
                for f, i, j in loops:
                    dx[n, :, i * s:i * s + hh, j * s:j * s + ww] = w[f] * dout[n, f, i, j]
        variants[order] = dx[:, :, p:p + x.shape[2], p:p + x.shape[3]]
    return [Alternate(f"overwrite ({order})", (dx, None, None), False, "missing-accumulation",
                      "overlapping windows overwrite dx instead of adding to it (`=` where "
                      f"`+=` belongs; loop order {order})")
            for order, dx in variants.items()]


def _conv_unstrided(args, static, cotangent) -> list[Alternate]:
    """The backward of a strided conv that leaves the stride out of its window index:
    output (i, j) is taken to come from the window at rows i:i+HH, columns j:j+WW."""
    s, p = int(static[0]["stride"]), int(static[0]["pad"])
    if s == 1:
        return []
    x, w, b = (_np(a) for a in args)
    dout = _np(cotangent)
    one = {"stride": 1, "pad": p}
    full = np.zeros((x.shape[0], w.shape[0], x.shape[2] + 2 * p - w.shape[2] + 1,
                     x.shape[3] + 2 * p - w.shape[3] + 1))
    full[:, :, :dout.shape[2], :dout.shape[3]] = dout
    grads = vjp(lambda *a: _conv_nchw(*a, one), (x, w, b), full)
    return [Alternate("stride left out", (grads[0], grads[1], None), False, "wrong-window",
                      f"the backward reads window (i, j) at rows i:i+HH, columns j:j+WW: the "
                      f"stride {s} is left out of its index")]


def _nhwc_sets(seed: int, bias: bool) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    images, _ = digits(2)
    sets = []
    for name, x, c in (("random x (2, 6, 6, 3)", rng.standard_normal((2, 6, 6, 3)), 3),
                       ("random x (2, 5, 7, 3): not square", rng.standard_normal((2, 5, 7, 3)),
                        3),
                       ("MNIST crops x (2, 10, 10, 1)", images[:, 6:16, 6:16, None].copy(), 1)):
        w = rng.standard_normal((3, 3, c, 4)) / 3
        args = (x, w, rng.standard_normal(4)) if bias else (x, w)
        sets.append(InputSet("digits" if "MNIST" in name else "random", name, args))
    return sets


def conv_nhwc_spec(bias: bool = True) -> Spec:
    """JAX's NHWC / HWIO layout (flax's): stride 1, no padding, cross-correlation."""
    def forward(args, static):
        out = jax.lax.conv_general_dilated(args[0], args[1], (1, 1), "VALID",
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return out + args[2] if bias else out

    names = ("x", "w", "b") if bias else ("x", "w")
    return Spec("conv_nhwc" if bias else "conv_nhwc_nobias", names,
                {"x": ("sample", "row", "column", "channel"),
                 "w": ("row", "column", "channel", "filter"), "b": ("filter",),
                 "out": ("sample", "row", "column", "filter")},
                Reference("lax.conv_general_dilated (NHWC, HWIO)", forward),
                functools.partial(_nhwc_sets, bias=bias))


def _conv_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)

    def params(c):
        return rng.standard_normal((4, c, 3, 3)) / 3, rng.standard_normal(4)

    sets = [InputSet("random", "random x (2, 3, 6, 6), stride 1, pad 0",
                     (rng.standard_normal((2, 3, 6, 6)), *params(3)),
                     ({"stride": 1, "pad": 0},), note="3x3 windows at stride 1 overlap"),
            InputSet("random", "random x (2, 3, 5, 5), stride 1, pad 1",
                     (rng.standard_normal((2, 3, 5, 5)), *params(3)), ({"stride": 1, "pad": 1},),
                     note="3x3 windows at stride 1 overlap"),
            InputSet("random", "random x (2, 3, 5, 7), stride 1, pad 1: not square",
                     (rng.standard_normal((2, 3, 5, 7)), *params(3)), ({"stride": 1, "pad": 1},),
                     note="rows and columns differ: swapped indices show"),
            InputSet("strided", "random x (2, 3, 7, 7), stride 2, pad 1",
                     (rng.standard_normal((2, 3, 7, 7)), *params(3)), ({"stride": 2, "pad": 1},))]
    images, _ = digits(2)
    sets.append(InputSet("digits", "MNIST crops x (2, 1, 10, 10), stride 1, pad 0",
                         (images[:, None, 6:16, 6:16].copy(), *params(1)),
                         ({"stride": 1, "pad": 0},)))
    return sets + _batch_of_one(seed, (1, 2, 4, 5), ((3, 2, 3, 3), (3,)),
                                ", stride 1, pad 1", ({"stride": 1, "pad": 1},))


def conv_spec() -> Spec:
    reference = Reference("lax.conv_general_dilated (NCHW, cross-correlation) + b",
                          lambda args, static: _conv_nchw(*args, static[0]),
                          lambda args, static, ct: (_conv_overwrite(args, static, ct)
                                                    + _conv_unstrided(args, static, ct)))
    return Spec("conv", ("x", "w", "b"),
                {"x": ("sample", "channel", "row", "column"),
                 "w": ("filter", "channel", "row", "column"), "b": ("filter",),
                 "out": ("sample", "filter", "row", "column")},
                reference, _conv_sets, ("conv_param",))


def conv_nhwc_param_spec() -> Spec:
    """CS231n's conv with a ``conv_param`` dict, channels last: x (N, H, W, C), w (HH, WW,
    C, F) (TensorFlow's NHWC / HWIO), b (F,). The inputs and alternates are the NCHW
    conv's, transposed."""
    base = conv_spec()

    def to_nchw(args):
        x, w, b = args
        return (np.transpose(x, (0, 3, 1, 2)), np.transpose(w, (3, 2, 0, 1)), b)

    def forward(args, static):
        x, w, b = args
        st, p = int(static[0]["stride"]), int(static[0]["pad"])
        out = jax.lax.conv_general_dilated(x, w, (st, st), [(p, p), (p, p)],
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return out + b

    def alternates(args, static, cotangent):
        out = []
        for a in base.reference.alternates(tuple(_np(v) for v in to_nchw(args)), static,
                                           np.transpose(_np(cotangent), (0, 3, 1, 2))):
            g = list(a.grads)
            g[0] = None if g[0] is None else np.transpose(g[0], (0, 2, 3, 1))
            g[1] = None if g[1] is None else np.transpose(g[1], (2, 3, 1, 0))
            out.append(a._replace(grads=tuple(g)))
        return out

    def input_sets(seed):
        return [i._replace(args=(np.transpose(i.args[0], (0, 2, 3, 1)),
                                 np.transpose(i.args[1], (2, 3, 1, 0)), i.args[2]),
                           name=i.name.replace("x (", "x NCHW (") + ", given channels last")
                for i in base.input_sets(seed)]

    return Spec("conv_nhwc_param", ("x", "w", "b"),
                {"x": ("sample", "row", "column", "channel"),
                 "w": ("row", "column", "channel", "filter"), "b": ("filter",),
                 "out": ("sample", "row", "column", "filter")},
                Reference("lax.conv_general_dilated (NHWC, HWIO, cross-correlation) + b",
                          forward, alternates), input_sets, ("conv_param",))


def _pool_geometry(pool_param) -> tuple[int, int, int]:
    return (int(pool_param["pool_height"]), int(pool_param["pool_width"]),
            int(pool_param["stride"]))


def _pool_index(shape, pool_param) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (Ho, Wo, ph, pw) of every window of an (N, C, H, W) input."""
    ph, pw, s = _pool_geometry(pool_param)
    ho, wo = 1 + (shape[2] - ph) // s, 1 + (shape[3] - pw) // s
    rows = np.arange(ho)[:, None] * s + np.arange(ph)[None, :]
    cols = np.arange(wo)[:, None] * s + np.arange(pw)[None, :]
    return rows[:, None, :, None], cols[None, :, None, :]


def _nchw_windows(pool_param):
    def windows(x):
        r, c = _pool_index(x.shape, pool_param)
        win = x[:, :, r, c]  # (N, C, Ho, Wo, ph, pw)
        return win.reshape(*win.shape[:4], -1)
    return windows


def _pool_overwrite(x: np.ndarray, pool_param, cotangent) -> list[Alternate]:
    """dx of overlapping windows written with ``=`` (whole window, or at the maxima)."""
    ph, pw, s = _pool_geometry(pool_param)
    if s >= ph and s >= pw:
        return []
    dout = _np(cotangent)
    out = []
    for mode, rule in itertools.product(("window", "maxima"), ("all", "first")):
        dx = np.zeros_like(x)
        for n, ch in itertools.product(range(x.shape[0]), range(x.shape[1])):
            for i, j in itertools.product(range(dout.shape[2]), range(dout.shape[3])):
                win = x[n, ch, i * s:i * s + ph, j * s:j * s + pw]
                mask = win == win.max()
                if rule == "first":
                    first = np.zeros(win.size, bool)
                    first[np.argmax(win)] = True
                    mask = first.reshape(win.shape)
                view = dx[n, ch, i * s:i * s + ph, j * s:j * s + pw]
                if mode == "window":
                    view[...] = mask * dout[n, ch, i, j]
                else:
                    view[mask] = dout[n, ch, i, j]
        what = ("each window's slice is assigned (zeros included)" if mode == "window"
                else "each window's maximum is assigned")
        out.append(Alternate(f"overwrite ({mode}, {rule})", (dx,), False,
                             "missing-accumulation",
                             f"overlapping windows overwrite dx instead of adding to it: {what} "
                             "with `=` where `+=` belongs"))
    return out


def _pool_wrong(x: np.ndarray, pool_param, cotangent) -> list[Alternate]:
    """Known wrong pool backwards: an average pool's, a min pool's, windows read at the
    wrong positions (the stride left out of the backward's window index)."""
    ph, pw, s = _pool_geometry(pool_param)
    dout = _np(cotangent)
    average, minimum, unstrided = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    swapped, swap_fits = np.zeros_like(x), True
    for n, ch in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for i, j in itertools.product(range(dout.shape[2]), range(dout.shape[3])):
            g = dout[n, ch, i, j]
            win = x[n, ch, i * s:i * s + ph, j * s:j * s + pw]
            average[n, ch, i * s:i * s + ph, j * s:j * s + pw] += g / win.size
            a, b = np.unravel_index(np.argmin(win), win.shape)
            minimum[n, ch, i * s + a, j * s + b] += g
            if ph == pw:  # (b, a) for (a, b)
                b, a = np.unravel_index(np.argmax(win), win.shape)
            else:  # unravelled with the window's shape swapped
                a, b = np.unravel_index(np.argmax(win), (pw, ph))
            swap_fits = swap_fits and a < ph and b < pw
            if swap_fits:
                swapped[n, ch, i * s + a, j * s + b] += g
            if i + ph <= x.shape[2] and j + pw <= x.shape[3]:
                near = x[n, ch, i:i + ph, j:j + pw]
                a, b = np.unravel_index(np.argmax(near), near.shape)
                unstrided[n, ch, i + a, j + b] += g
    out = [wrong("average pool", (average,), "each window's gradient spread evenly over the "
                                             "window: the derivative of an average pool"),
           wrong("min pool", (minimum,), "the gradient goes to each window's minimum "
                                         "(argmin where argmax belongs)")]
    if swap_fits:
        out.append(Alternate("max position swapped", (swapped,), False, "transposed",
                             MAX_POSITION_NOTE))
    if s > 1:
        out.append(Alternate("stride left out", (unstrided,), False, "wrong-window",
                             f"the backward reads window (i, j) at rows i:i+{ph}, columns "
                             f"j:j+{pw}: the stride {s} is left out of its index"))
    return out


def _nchw_pool_kinks(s: InputSet) -> Kinks:
    x = np.asarray(s.args[0])
    pool_param = s.static[0]
    r, c = _pool_index(x.shape, pool_param)
    win = x[:, :, r, c]
    flat = win.reshape(*win.shape[:4], -1)
    is_max, count = _window_ties(flat)
    tied = count > 1
    mask = np.zeros(x.shape, bool)
    hit = (is_max & tied[..., None]).reshape(win.shape)
    idx = np.nonzero(hit)
    rr = np.broadcast_to(r, win.shape[2:])[idx[2], idx[3], idx[4], idx[5]]
    cc = np.broadcast_to(c, win.shape[2:])[idx[2], idx[3], idx[4], idx[5]]
    mask[idx[0], idx[1], rr, cc] = True
    per_sample = [int(t) for t in tied.reshape(tied.shape[0], -1).sum(axis=1)]
    stats = {"windows": int(tied.size), "tied_windows": int(tied.sum()),
             "tied_windows_per_sample": per_sample}
    return Kinks((mask,), stats, f"{stats['tied_windows']} of {stats['windows']} windows tied "
                                 f"(per sample: {per_sample})")


def _pool_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    p2 = {"pool_height": 2, "pool_width": 2, "stride": 2}
    images, _ = digits(2)
    return [
        InputSet("random", "random x (2, 3, 6, 6), pool 2x2 stride 2",
                 (rng.standard_normal((2, 3, 6, 6)),), (p2,)),
        InputSet("random", "random x (2, 2, 4, 6), pool 2x2 stride 2: not square",
                 (rng.standard_normal((2, 2, 4, 6)),), (p2,),
                 note="rows and columns differ: swapped indices show"),
        InputSet("overlap", "random x (1, 2, 5, 7), pool 2x3 stride 1",
                 (rng.standard_normal((1, 2, 5, 7)),),
                 ({"pool_height": 2, "pool_width": 3, "stride": 1},),
                 note="a window that is not square, overlapping"),
        InputSet("digits", "MNIST crops x (2, 1, 12, 12), pool 2x2 stride 2",
                 (images[:, None, 4:16, 4:16].copy(),), (p2,),
                 note="tie-rich: flat -0.5 background"),
        InputSet("overlap", "random x (2, 2, 5, 5), pool 2x2 stride 1",
                 (rng.standard_normal((2, 2, 5, 5)),),
                 ({"pool_height": 2, "pool_width": 2, "stride": 1},),
                 note="overlapping windows: `=` instead of `+=` shows here"),
        InputSet("overlap", "random x (1, 2, 7, 7), pool 3x3 stride 2",
                 (rng.standard_normal((1, 2, 7, 7)),),
                 ({"pool_height": 3, "pool_width": 3, "stride": 2},),
                 note="overlapping windows"),
        InputSet("flat", "constant x (1, 2, 4, 4), pool 2x2 stride 2 (every window tied)",
                 (np.full((1, 2, 4, 4), 0.25),), (p2,)),
    ]


def max_pool_spec() -> Spec:
    def forward(args, static):
        return _tie_rule_max(_nchw_windows(static[0])(args[0]), "split")

    def alternates(args, static, cotangent):
        return (_tie_alternates(_nchw_windows(static[0]), args, cotangent)
                + _pool_overwrite(_np(args[0]), static[0], cotangent)
                + _pool_wrong(_np(args[0]), static[0], cotangent))

    def subgradient(args, static, cotangent, i, hand, tol):
        x = _np(args[0])
        ph, pw, stride = _pool_geometry(static[0])
        if hand.shape != x.shape or stride < ph or stride < pw:
            return None  # overlapping windows share inputs: no per-window test
        r, c = _pool_index(x.shape, static[0])
        windows = x[:, :, r, c].reshape(*x.shape[:2], *r.shape[:1], c.shape[1], -1)
        hand_windows = hand[:, :, r, c].reshape(windows.shape)
        covered = np.zeros(x.shape, bool)
        covered[:, :, r, c] = True
        g = _np(cotangent)
        atol = tol * max(float(np.max(np.abs(g), initial=0.0)), 1e-300)
        if np.max(np.abs(np.where(covered, 0.0, hand)), initial=0.0) > atol:
            return None
        ok = window_subgradient(windows, hand_windows, g, tol,
                                float(np.max(np.abs(g), initial=0.0)))
        return "other subgradient" if ok else None

    reference = Reference("max over each window (NCHW)", forward, alternates, _nchw_pool_kinks,
                          subgradient)
    return Spec("max_pool", ("x",), {"x": ("sample", "channel", "row", "column"),
                                   "out": ("sample", "channel", "row", "column")}, reference,
                _pool_sets, ("pool_param",))


def _loss_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    y = rng.integers(10, size=4)
    gap = np.zeros((4, 10))
    gap[:, :2] = 100.0
    return [InputSet("random", "random scores x (4, 10)", (rng.standard_normal((4, 10)),), (y,)),
            InputSet("large-gap", "scores with two tied top classes 100 above the label's",
                     (gap,), (np.full(4, 9),)),
            *(s._replace(static=(np.array([3]),))
              for s in _batch_of_one(seed, (1, 10), (), ""))]


def softmax_loss_spec(reduction: str = "mean") -> Spec:
    """CS231n's softmax loss, the mean over samples (``reduction="mean"``, the assignment's
    definition) or their sum (``"sum"``, kind ``softmax_loss_sum``)."""
    def forward(args, static):
        y = jnp.asarray(static[0])
        logp = jax.nn.log_softmax(args[0], axis=1)
        picked = logp[jnp.arange(args[0].shape[0]), y]
        return -(jnp.mean(picked) if reduction == "mean" else jnp.sum(picked))

    def alternates(args, static, cotangent):
        x, y = _np(args[0]), np.asarray(static[0])
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
                          alternates), _loss_sets, ("y",))


def _default_static(base: Spec, kind: str, default: tuple, arg_names=None) -> Spec:
    """``base`` for code that takes no static arguments: its inputs whose static part is
    ``default``, with the static part dropped (and the arguments cut to ``arg_names``)."""
    n = len(arg_names or base.arg_names)
    ref = base.reference

    def pad(args):  # a missing bias is a zero bias
        return tuple(args) + tuple(np.zeros(np.shape(args[1])[0]) for _ in range(
            len(base.arg_names) - len(args)))

    def forward(args, static):
        return ref.forward(pad(args), default)

    alternates = kinks = subgradient = None
    if ref.alternates is not None:
        def alternates(args, static, cotangent):
            return [a._replace(grads=a.grads[:n]) for a in
                    ref.alternates(pad(args), default, cotangent)]
    if ref.kinks is not None:
        def kinks(s):
            return ref.kinks(s._replace(args=pad(s.args), static=default))
    if ref.subgradient is not None:
        def subgradient(args, static, cotangent, i, hand, tol):
            return ref.subgradient(pad(args), default, cotangent, i, hand, tol)

    def input_sets(seed):
        return [s._replace(args=s.args[:n], static=()) for s in base.input_sets(seed)
                if s.static == default]

    return Spec(kind, tuple(arg_names or base.arg_names), base.axis_names,
                Reference(ref.name + f" with {default[0]}", forward, alternates, kinks,
                          subgradient), input_sets)


# ------------------------------------------------------------------ CS231n sandwiches

POOL_2X2 = {"pool_height": 2, "pool_width": 2, "stride": 2}
SANDWICH_PARTS = ("conv", "affine", "relu", "max_pool")
WIRING_NOTE = ("each part's backward may be right on its own, but the sandwich chains them "
               "wrongly: ")


def _sandwich_run(parts: tuple[str, ...], rule: str = "split"):
    """f(args, static) of the parts in order; a max pool with tie rule ``rule``. ``static``
    holds each part's static arguments in order (conv_param, pool_param)."""
    def forward(args, static):
        k, x = 0, None
        for n, part in enumerate(parts):
            if part == "max_pool":
                x = _tie_rule_max(_nchw_windows(static[k])(x), rule)
                k += 1
            elif part == "conv":
                x = _conv_nchw(*args, static[k]) if n == 0 else None
                k += 1
            elif part == "affine":
                x = args[0].reshape(args[0].shape[0], -1) @ args[1] + args[2]
            elif part == "relu":
                x = jnp.maximum(args[0] if n == 0 else x, 0.0)
        return x
    return forward


def _sandwich_skipped(parts, args, static, cotangent, skip: int) -> tuple:
    """The gradients of the first part when the backward of part ``skip`` is left out
    (the cotangent it receives is passed on unchanged): the hand's wiring hands dout, or
    the wrong intermediate, to the part before it."""
    xs, k = [tuple(jnp.asarray(a, jnp.float64) for a in args)], 0
    funs = []
    for n, part in enumerate(parts):
        if part in ("max_pool", "conv"):
            st, k = static[k], k + 1
        else:
            st = None
        if n == 0:
            funs.append(lambda *a, p=part, st=st: _sandwich_run((p,))(a, (st,) if st else ()))
        else:
            funs.append(lambda v, p=part, st=st: _sandwich_run(("relu",), "split")((v,), ())
                        if p == "relu" else _tie_rule_max(_nchw_windows(st)(v), "first"))
    values = [xs[0]]
    for fun in funs:
        values.append((fun(*values[-1]),))
    ct = jnp.asarray(cotangent, jnp.float64)
    for n in range(len(parts) - 1, -1, -1):
        if n == skip:
            if ct.shape != values[n][0].shape:
                return ()
            continue
        _, pullback = jax.vjp(funs[n], *values[n])
        grads = pullback(ct)
        if n == 0:
            return tuple(_np(g) for g in grads)
        ct = grads[0]
    return ()


def sandwich_spec(parts: tuple[str, ...]) -> Spec:
    """A CS231n "sandwich" (``layer_utils.py``: ``affine_relu``, ``conv_relu``,
    ``conv_relu_pool``): the catalogue's parts composed in order, with the first part's
    arguments and the static arguments of the parts that take one (conv_param,
    pool_param; a pool is 2x2, stride 2 in the inputs). Alternates: the other tie rules
    of the pool (valid), and each later part's backward left out (``wrong-wiring``)."""
    if not parts or parts[0] not in ("conv", "affine") or any(
            p not in SANDWICH_PARTS for p in parts) or any(p in ("conv", "affine")
                                                          for p in parts[1:]):
        raise ValueError(f"no reference for the sandwich {' + '.join(parts)}: it must start "
                         "with conv or affine, followed by relu / max_pool")
    first = spec(parts[0])

    def input_sets(seed):
        out = []
        for s in first.input_sets(seed):
            if "max_pool" in parts:
                shape = np.shape(first.reference.forward(s.args, s.static))
                if shape[-1] < 2 or shape[-2] < 2:
                    continue
                s = s._replace(static=(*s.static, POOL_2X2),
                               name=s.name + ", then relu and a 2x2 pool, stride 2")
            out.append(s)
        return out

    def alternates(args, static, cotangent):
        out = []
        if "max_pool" in parts:
            for rule in ("first", "last"):
                out.append(Alternate(rule, vjp(bind(_sandwich_run(parts, rule), static), args,
                                               cotangent), True, "correct", TIE_NOTES[rule]))
        for n in range(1, len(parts)):
            grads = _sandwich_skipped(parts, args, static, cotangent, n)
            if grads:
                out.append(Alternate(
                    f"{parts[n]} backward left out", grads, False, "wrong-wiring",
                    WIRING_NOTE + f"the cotangent meant for {parts[n]}_backward goes straight "
                    f"to {parts[n - 1]}_backward: {parts[n]}_backward is left out, or the "
                    "part before it is fed dout instead of its output"))
        return out

    static_names = tuple(n for p in parts for n in spec(p).static_names)
    out_names = spec(parts[-1]).axis_names.get("out", first.axis_names.get("out"))
    return Spec("+".join(parts), first.arg_names, dict(first.axis_names, out=out_names),
                Reference(" -> ".join(parts) + " (the catalogue's parts composed)",
                          _sandwich_run(parts), alternates),
                input_sets, static_names)


SPECS: dict[str, Callable[[], Spec]] = {
    "conv3x3": conv3x3_spec, "conv3x3_bias": conv3x3_bias_spec, "maxpool2": maxpool2_spec,
    "dense_softmax": dense_softmax_spec,
    "dense": dense_spec, "softmax": softmax_spec, "cross_entropy": cross_entropy_spec,
    "affine": affine_spec, "relu": relu_spec, "sigmoid": lambda: elementwise_spec("sigmoid"),
    "tanh": lambda: elementwise_spec("tanh"), "conv": conv_spec, "max_pool": max_pool_spec,
    "softmax_loss": softmax_loss_spec, "dense_cross_entropy": dense_cross_entropy_spec,
    "softmax_loss_sum": lambda: softmax_loss_spec("sum"),
    "report_network": report_network_spec,
    # JAX code without a config dict: NCHW conv (stride 1, no padding) and 2x2 pool
    "conv_nchw": lambda: _default_static(conv_spec(), "conv_nchw",
                                         ({"stride": 1, "pad": 0},)),
    "conv_nchw_nobias": lambda: _default_static(conv_spec(), "conv_nchw_nobias",
                                                ({"stride": 1, "pad": 0},), ("x", "w")),
    "conv_nhwc": conv_nhwc_spec, "conv_nhwc_nobias": lambda: conv_nhwc_spec(bias=False),
    # CS231n code with a conv_param dict, channels last
    "conv_nhwc_param": conv_nhwc_param_spec,
    "max_pool_nchw": lambda: _default_static(max_pool_spec(), "max_pool_nchw",
                                             ({"pool_height": 2, "pool_width": 2,
                                               "stride": 2},)),
}


def spec(kind: str) -> Spec:
    """The catalogue entry for ``kind`` (a key of ``SPECS``, or parts of ``SANDWICH_PARTS``
    joined by "+", e.g. "conv+relu+max_pool"); ValueError if unknown."""
    if "+" in kind:
        return sandwich_spec(tuple(kind.split("+")))
    try:
        return SPECS[kind]()
    except KeyError:
        raise ValueError(f"unknown layer kind {kind!r}; known: {', '.join(SPECS)}") from None
