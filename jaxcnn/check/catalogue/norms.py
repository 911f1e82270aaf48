"""Normalisation layers in train mode, CS231n's signatures: ``batchnorm`` (and its
``batchnorm_backward_alt``), ``spatial_batchnorm``, ``layernorm``, ``spatial_groupnorm``.

Every reference is the textbook definition (Ioffe & Szegedy 2015; Ba et al. 2016; Wu &
He 2018): ``gamma * (x - mean) / sqrt(var + eps) + beta`` with the *biased* variance
(divided by the number of values M, not M - 1) and ``eps`` inside the square root
(``eps`` from the param dict, default 1e-5, as the assignment's). The statistics are
taken over:

=================  ==========================  ===================  ====================
kind               x                           gamma, beta          statistics over
=================  ==========================  ===================  ====================
batchnorm          (N, D)                      (D,)                 the batch axis N
spatial_batchnorm  (N, C, H, W)                (C,)                 N, H, W per channel
layernorm          (N, D)                      (D,)                 the feature axis D
spatial_groupnorm  (N, C, H, W); static G      (1, C, 1, 1)         C/G channels, H, W
=================  ==========================  ===================  ====================

``bn_param``'s running mean and variance are updated in place by the forward, as the
assignment's does (the adapter hands it a copy: that is not an input mutation).

Alternates (known wrong backwards, kind ``wrong-derivative``): the batch statistics
treated as constants (``dx = dout * gamma / sqrt(var + eps)``); the unbiased variance's
derivative (``2 (x - mean) / (M - 1)`` where ``/ M`` belongs); the statistics'
gradient taken over the other axis (layer norm's backward summing over the batch, batch
norm's over the features); gamma left out of dx; dgamma from x where x_hat belongs; the
count of only some of the statistic's axes (N where N H W belongs).
Inputs: N != D everywhere, batches of several samples (a mean over the wrong axis only
shows with N > 1; never two values per statistic, where the normalised output is +-1
whatever x), and a batch of one for layer and group norm.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import as_np, bind, compiled, vjps
from jaxcnn.check.catalogue.base import Spec, module_name, wrong
from jaxcnn.check.layer import Alternate, InputSet, Reference

EPS = 1e-5  # CS231n's default: bn_param.get("eps", 1e-5)


def _eps(param) -> float:
    return float(param.get("eps", EPS)) if isinstance(param, dict) else EPS


def normalise(x, axes: tuple, eps: float, rule: str = "exact"):
    """(x - mean) / sqrt(var + eps) over ``axes`` (biased variance).

    rule: "exact"; "constants" (same value, mean and variance without gradient);
    "unbiased" (same value, the variance's gradient that of sum / (M - 1)).
    """
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=axes, keepdims=True)
    if rule == "constants":
        mu, var = jax.lax.stop_gradient(mu), jax.lax.stop_gradient(var)
    elif rule == "unbiased":
        m = np.prod([x.shape[a] for a in axes])
        unbiased = jnp.sum((x - mu) ** 2, axis=axes, keepdims=True) / (m - 1)
        var = jax.lax.stop_gradient(var) + unbiased - jax.lax.stop_gradient(unbiased)
    return (x - mu) / jnp.sqrt(var + eps)


def _groups(x, g: int):
    n, c, h, w = x.shape
    return x.reshape(n, g, c // g, h, w)


def _forward(kind: str, rule: str = "exact"):
    """The reference forward of ``kind`` under ``rule`` (see ``normalise``)."""
    def forward(args, static):
        x, gamma, beta = args
        if kind == "batchnorm":
            return gamma * normalise(x, (0,), _eps(static[0]), rule) + beta
        if kind == "layernorm":
            return gamma * normalise(x, (1,), _eps(static[0]), rule) + beta
        if kind == "spatial_batchnorm":
            xhat = normalise(x, (0, 2, 3), _eps(static[0]), rule)
            return gamma[None, :, None, None] * xhat + beta[None, :, None, None]
        g = int(static[0])
        xhat = normalise(_groups(x, g), (2, 3, 4), _eps(static[1]), rule).reshape(x.shape)
        return gamma * xhat + beta
    return forward


OTHER_AXIS = {"batchnorm": ("over the features", 1, "the feature axis D"),
              "layernorm": ("over the batch", 0, "the batch axis N")}


def _other_axis(kind, args, static, cotangent) -> list[Alternate]:
    """The compact backward ``dx = ivar / M (M dxhat - sum dxhat - xhat sum(dxhat xhat))``
    with its sums over the other axis of a 2-d norm (layer norm's over the batch, as
    batch norm's; batch norm's over the features, as layer norm's)."""
    if kind not in OTHER_AXIS:
        return []
    name, axis, text = OTHER_AXIS[kind]
    x, gamma = as_np(args[0]), as_np(args[1])
    own = 1 - axis
    mu = x.mean(axis=own, keepdims=True)
    ivar = 1 / np.sqrt(((x - mu) ** 2).mean(axis=own, keepdims=True) + _eps(static[0]))
    xhat = (x - mu) * ivar
    dxhat = as_np(cotangent) * gamma
    m = x.shape[axis]
    dx = ivar / m * (m * dxhat - dxhat.sum(axis=axis, keepdims=True)
                     - xhat * (dxhat * xhat).sum(axis=axis, keepdims=True))
    return [Alternate(f"statistics' gradient {name}", (dx, None, None), False,
                      "wrong-derivative",
                      f"the mean's and variance's part of dx is summed over {text} "
                      f"(divided by {m}): the other norm's backward, with this norm's "
                      "statistics")]


def _alternates(kind: str):
    def alternates(args, static, cotangent):
        out = []
        rules = (("constants", "the batch mean and variance are treated as constants: "
                               "dx = dout * gamma / sqrt(var + eps), without the terms "
                               "through the mean and the variance"),
                 ("unbiased", "the variance's derivative is the unbiased one, "
                              "2 (x - mean) / (M - 1), where the forward's biased variance "
                              "gives 2 (x - mean) / M"))
        exact = _forward(kind)

        def without_gamma(x, gamma, beta):  # gamma = 1 (its gradient is not used)
            return exact((x, jnp.ones_like(gamma), beta), static)

        # one program for the three (each its own program: most of a norm's check)
        *by_rule, no_gamma = vjps([bind(_forward(kind, rule), static) for rule, _ in rules]
                                  + [without_gamma], args, cotangent)
        for (rule, note), grads in zip(rules, by_rule, strict=True):
            out.append(Alternate(f"statistics {rule}" if rule == "constants" else
                                 "unbiased variance", (grads[0], None, None), False,
                                 "wrong-derivative", note))
        no_gamma = no_gamma[0]
        out.append(wrong("gamma left out of dx", (no_gamma, None, None),
                         "dx is computed from dout where dout * gamma (the gradient of the "
                         "normalised x) belongs"))
        return out + _with_x(kind, args, static, cotangent) + _terms_left_out(
            kind, args, static, cotangent) + _other_axis(
            kind, args, static, cotangent) + _wrong_count(kind, args, static, cotangent)
    return alternates


def _wrong_count(kind, args, static, cotangent) -> list[Alternate]:
    """The compact backward ``dx = ivar / m (m dxhat - sum dxhat - xhat sum(dxhat xhat))``
    with m the count of only some of the statistic's axes (N where N H W belongs for a
    spatial batch norm, H W where C/G H W belongs for a group norm)."""
    x, gamma, dout = as_np(args[0]), as_np(args[1]), as_np(cotangent)
    if kind in ("batchnorm", "layernorm"):
        return []
    if kind == "spatial_batchnorm":
        v, axes, dxhat = x, (0, 2, 3), dout * gamma[None, :, None, None]
    else:
        v, axes, dxhat = _groups(x, int(static[0])), (2, 3, 4), None
        dxhat = (dout * gamma).reshape(v.shape)
    mu = v.mean(axis=axes, keepdims=True)
    ivar = 1 / np.sqrt(((v - mu) ** 2).mean(axis=axes, keepdims=True) + _eps(static[-1]))
    xhat = (v - mu) * ivar
    s1 = dxhat.sum(axis=axes, keepdims=True)
    s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
    sizes = [v.shape[a] for a in axes]
    total = int(np.prod(sizes))
    counts = sorted({int(np.prod([sizes[k] for k in keep])) for r in range(1, len(sizes))
                     for keep in itertools.combinations(range(len(sizes)), r)} - {total})
    return [wrong(f"count {m} for {total}", ((ivar / m * (m * dxhat - s1 - xhat * s2)).reshape(
        x.shape), None, None), f"the backward divides by {m} values per statistic where the "
        f"forward's mean and variance are over {total}: the count of only some of the "
        "statistic's axes (N where N H W belongs, H W where C/G H W belongs)")
        for m in counts]


def _statistics_view(kind, args, static, cotangent):
    """(v, axes, dxhat, xhat, ivar): ``x`` (and dout * gamma) shaped so that every
    statistic is over ``axes`` (a group norm's groups apart), its normalised input and
    1 / sqrt(var + eps)."""
    x, gamma, dout = as_np(args[0]), as_np(args[1]), as_np(cotangent)
    if kind == "spatial_groupnorm":
        v, axes = _groups(x, int(static[0])), (2, 3, 4)
        dxhat = (dout * gamma).reshape(v.shape)
    elif kind == "spatial_batchnorm":
        v, axes, dxhat = x, (0, 2, 3), dout * gamma[None, :, None, None]
    else:
        v, axes, dxhat = x, ((0,) if kind == "batchnorm" else (1,)), dout * gamma
    mu = v.mean(axis=axes, keepdims=True)
    ivar = 1 / np.sqrt(((v - mu) ** 2).mean(axis=axes, keepdims=True) + _eps(static[-1]))
    return v, axes, dxhat, (v - mu) * ivar, ivar


def _terms_left_out(kind, args, static, cotangent) -> list[Alternate]:
    """The compact backward ``dx = ivar / M (M dxhat - sum dxhat - xhat sum(dxhat
    xhat))`` (Ioffe & Szegedy 2015, eq. of their section 3, summed) with one of its two
    terms left out (the mean's, ``- sum dxhat``; the variance's, ``- xhat sum(dxhat
    xhat)``), and with gamma taken out of the sums (``gamma ivar / M (M dout - sum dout
    - ...)``: right only when gamma is the same for every value a statistic averages)."""
    x = as_np(args[0])
    v, axes, dxhat, xhat, ivar = _statistics_view(kind, args, static, cotangent)
    m = int(np.prod([v.shape[a] for a in axes]))
    s1 = dxhat.sum(axis=axes, keepdims=True)
    s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
    out = [wrong("the mean's term left out", ((ivar / m * (m * dxhat - xhat * s2)).reshape(
        x.shape), None, None), "dx lacks the term through the mean, - sum(dxhat) / M (the "
        "mean of the normalised input's gradient): dx = (dxhat - xhat mean(dxhat xhat)) / "
        "sqrt(var + eps)"),
           wrong("the variance's term left out", ((ivar / m * (m * dxhat - s1)).reshape(
               x.shape), None, None), "dx lacks the term through the variance, - xhat "
               "mean(dxhat xhat): dx = (dxhat - mean(dxhat)) / sqrt(var + eps)")]
    gamma, dout = as_np(args[1]), as_np(cotangent)
    if np.ptp(gamma) > 0 and kind in ("batchnorm", "layernorm"):
        d = dout
        outside = gamma * ivar / m * (m * d - d.sum(axis=axes, keepdims=True) - xhat * (
            d * xhat).sum(axis=axes, keepdims=True))
        out.append(wrong("gamma outside the sums", (outside, None, None),
                         "gamma is multiplied in after the sums (gamma / sqrt(var + eps) (dout "
                         "- mean(dout) - xhat mean(dout xhat))) where the sums are over dout * "
                         "gamma: right only when gamma is the same for every value a "
                         "statistic averages"))
    return out


def _with_x(kind, args, static, cotangent) -> list[Alternate]:
    """dgamma = sum(dout * x) where sum(dout * xhat) belongs (the input for the
    normalised input)."""
    x, gamma, dout = as_np(args[0]), as_np(args[1]), as_np(cotangent)
    axes = (0,) if x.ndim == 2 else (0, 2, 3)  # all but the feature / channel axis
    dgamma = (dout * x).sum(axis=axes).reshape(gamma.shape)
    return [wrong("x for x_hat in dgamma", (None, dgamma, None),
                  "dgamma = sum(dout * x), the input where the normalised input x_hat "
                  "belongs")]


WRONG_FORWARDS = (("the unbiased variance",
                   "divided by M - 1 where the biased variance, divided by M, belongs"),
                  ("eps outside the square root",
                   "sqrt(var) + eps where sqrt(var + eps) belongs"))


def _wrong_forwards(kind: str):
    """The known wrong forwards of ``kind`` (``WRONG_FORWARDS``), ``(name, out, note)``:
    both outputs one compiled program (``autodiff.compiled``; eager, one program per
    primitive and shape)."""
    def outputs(static, x, gamma, beta):
        axes = {"batchnorm": (0,), "layernorm": (1,), "spatial_batchnorm": (0, 2, 3)}.get(kind)
        eps = _eps(static[-1])
        if axes is None:
            v, axes = _groups(x, int(static[0])), (2, 3, 4)
        else:
            v = x
        g = gamma[None, :, None, None] if kind == "spatial_batchnorm" else gamma
        b = beta[None, :, None, None] if kind == "spatial_batchnorm" else beta
        m = int(np.prod([v.shape[a] for a in axes]))
        mu = jnp.mean(v, axis=axes, keepdims=True)
        var = jnp.mean((v - mu) ** 2, axis=axes, keepdims=True)
        return [g * xhat.reshape(x.shape) + b
                for xhat in ((v - mu) / jnp.sqrt(var * m / (m - 1) + eps),
                             (v - mu) / (jnp.sqrt(var) + eps))]

    def wrong_forwards(args, static):
        outs = compiled(functools.partial(outputs, static),
                        *(np.asarray(a, np.float64) for a in args))
        return [(name, as_np(out), note)
                for (name, note), out in zip(WRONG_FORWARDS, outs, strict=True)]
    return wrong_forwards


def _params(rng, shape):
    return 1 + 0.5 * rng.standard_normal(shape), 0.5 * rng.standard_normal(shape)


def _sets_2d(kind: str):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 18])
        param = {"mode": "train"} if kind == "batchnorm" else {}
        # (never two values per statistic: the normalised output is then +-1 whatever x,
        # and dx is rounding noise)
        shapes = [((4, 3), "random", "N != D"), ((5, 7), "random", "not square")]
        if kind == "layernorm":
            shapes += [((2, 6), "random", "a batch of two"),
                       ((1, 5), "batch-of-one", "a batch of one (N = 1)")]
        else:
            shapes.append(((3, 4), "random", "a batch of three"))
        sets = []
        for shape, family, what in shapes:
            x = 2 + 3 * rng.standard_normal(shape)
            sets.append(InputSet(family, f"random x {shape}: {what}",
                                 (x, *_params(rng, shape[1])), (dict(param),),
                                 note="a mean over the wrong axis shows only when N > 1 "
                                      "and N != D"))
        return sets
    return input_sets


def _spatial_bn_sets(seed):
    rng = np.random.default_rng([seed, 18])
    sets = []
    for shape, family in (((2, 3, 4, 5), "random"), ((3, 2, 3, 2), "random"),
                          ((1, 3, 2, 4), "batch-of-one")):
        x = 1 + 2 * rng.standard_normal(shape)
        sets.append(InputSet(family, f"random x {shape}", (x, *_params(rng, shape[1])),
                             ({"mode": "train"},),
                             note="statistics over N, H and W per channel"))
    return sets


def _groupnorm_sets(seed):
    rng = np.random.default_rng([seed, 18])
    sets = []
    for shape, g, family in (((2, 6, 3, 4), 2, "random"), ((2, 6, 2, 3), 3, "random"),
                             ((1, 4, 3, 2), 4, "batch-of-one"), ((2, 4, 2, 3), 1, "random")):
        x = 1 + 2 * rng.standard_normal(shape)
        gamma, beta = _params(rng, (1, shape[1], 1, 1))
        sets.append(InputSet(family, f"random x {shape}, G = {g}", (x, gamma, beta),
                             (g, {}), note=f"{shape[1] // g} channels per group"))
    return sets


AXES = {"batchnorm": {"x": ("sample", "feature"), "gamma": ("feature",),
                      "beta": ("feature",), "out": ("sample", "feature")},
        "layernorm": {"x": ("sample", "feature"), "gamma": ("feature",),
                      "beta": ("feature",), "out": ("sample", "feature")},
        "spatial_batchnorm": {"x": ("sample", "channel", "row", "column"),
                              "gamma": ("channel",), "beta": ("channel",),
                              "out": ("sample", "channel", "row", "column")},
        "spatial_groupnorm": {"x": ("sample", "channel", "row", "column"),
                              "gamma": ("1", "channel", "1", "1"),
                              "beta": ("1", "channel", "1", "1"),
                              "out": ("sample", "channel", "row", "column")}}
NAMES = {"batchnorm": r"batch_?norm(ali[sz]ation)?|bn",
         "spatial_batchnorm": r"spatial_batch_?norm(ali[sz]ation)?|spatial_bn",
         "layernorm": r"layer_?norm(ali[sz]ation)?|ln",
         "spatial_groupnorm": r"(spatial_)?group_?norm(ali[sz]ation)?|(spatial_)?gn"}
MODULE_NAMES = {"batchnorm": module_name(r"batch_?norm(ali[sz]ation)?|bn"),
                "spatial_batchnorm": module_name(
                    r"(spatial_?)?batch_?norm(ali[sz]ation)?|(spatial_)?bn"),
                "layernorm": module_name(r"layer_?norm(ali[sz]ation)?|ln"),
                "spatial_groupnorm": module_name(
                    r"(spatial_?)?group_?norm(ali[sz]ation)?|gn")}
TEXT = {"batchnorm": "over the batch", "layernorm": "over the features",
        "spatial_batchnorm": "over N, H, W per channel",
        "spatial_groupnorm": "over each group of C/G channels and H, W"}


def norm_spec(kind: str) -> Spec:
    sets = {"batchnorm": _sets_2d("batchnorm"), "layernorm": _sets_2d("layernorm"),
            "spatial_batchnorm": _spatial_bn_sets,
            "spatial_groupnorm": _groupnorm_sets}[kind]
    static = ("G", "gn_param") if kind == "spatial_groupnorm" else (
        "ln_param" if kind == "layernorm" else "bn_param",)
    reference = Reference(f"gamma * (x - mean) / sqrt(var + eps) + beta, {TEXT[kind]} "
                          "(biased variance, train mode)", _forward(kind), _alternates(kind),
                          wrong_forwards=_wrong_forwards(kind))
    return Spec(kind, ("x", "gamma", "beta"), AXES[kind], reference, sets, static,
                names={"cs231n": NAMES[kind],
                       **({"module": MODULE_NAMES[kind]} if kind in MODULE_NAMES else {})})


SPECS = {kind: (lambda k=kind: norm_spec(k)) for kind in
         ("batchnorm", "spatial_batchnorm", "layernorm", "spatial_groupnorm")}
