"""Convolutions: the report's conv3x3 (with and without biases), CS231n's ``conv``
(NCHW with ``conv_param``, or channels last), and JAX layouts without a config dict."""

from __future__ import annotations

import functools
import itertools

import jax
import numpy as np

from jaxcnn import model
from jaxcnn.check.autodiff import as_np, vjp
from jaxcnn.check.catalogue.base import Spec, batch_of_one, default_static, digits, module_name
from jaxcnn.check.layer import Alternate, InputSet, Reference


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


def conv3x3_overwrite(args, static, cotangent) -> list[Alternate]:
    """dL/dimage of the report's conv written with ``=`` (overlapping 3x3 windows)."""
    image, filters = as_np(args[0]), as_np(args[1])
    d_out = as_np(cotangent)
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
                          conv3x3_overwrite)
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
                for a in conv3x3_overwrite(args[:2], static, cotangent)]

    reference = Reference("jaxcnn.model.conv3x3 + biases",
                          lambda args, static: model.conv3x3(args[0], args[1]) + args[2],
                          alternates)
    return Spec("conv3x3_bias", ("input", "filters", "biases"),
                dict(base.axis_names, biases=("filter",)), reference, with_bias)


def conv_nchw(x, w, b, conv_param):
    s, p = int(conv_param["stride"]), int(conv_param["pad"])
    out = jax.lax.conv_general_dilated(x, w, (s, s), [(p, p), (p, p)],
                                       dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out + b[None, :, None, None]


def _conv_overwrite(args, static, cotangent) -> list[Alternate]:
    """dx computed with ``=`` where overlapping windows must add (three loop orders)."""
    x, w, _ = (as_np(a) for a in args)
    s, p = int(static[0]["stride"]), int(static[0]["pad"])
    f_count, _, hh, ww = w.shape
    if s >= hh and s >= ww:
        return []
    n_count = x.shape[0]
    dout = as_np(cotangent)
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
    x, w, b = (as_np(a) for a in args)
    dout = as_np(cotangent)
    one = {"stride": 1, "pad": p}
    full = np.zeros((x.shape[0], w.shape[0], x.shape[2] + 2 * p - w.shape[2] + 1,
                     x.shape[3] + 2 * p - w.shape[3] + 1))
    full[:, :, :dout.shape[2], :dout.shape[3]] = dout
    grads = vjp(lambda *a: conv_nchw(*a, one), (x, w, b), full)
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
    return sets + batch_of_one(seed, (1, 2, 4, 5), ((3, 2, 3, 3), (3,)),
                                ", stride 1, pad 1", ({"stride": 1, "pad": 1},))


def conv_spec() -> Spec:
    reference = Reference("lax.conv_general_dilated (NCHW, cross-correlation) + b",
                          lambda args, static: conv_nchw(*args, static[0]),
                          lambda args, static, ct: (_conv_overwrite(args, static, ct)
                                                    + _conv_unstrided(args, static, ct)))
    return Spec("conv", ("x", "w", "b"),
                {"x": ("sample", "channel", "row", "column"),
                 "w": ("filter", "channel", "row", "column"), "b": ("filter",),
                 "out": ("sample", "filter", "row", "column")},
                reference, _conv_sets, ("conv_param",),
                names={"module": module_name(MODULE_CONV)},
                layouts=("conv", "conv_nhwc_param"))


# module-style conv classes (ConvLayer2D, Conv2D, Convolution): with their stride and
# padding, channels first or last (adapters.module_catalogue)
MODULE_CONV = r"conv(olution(al)?)?(_?layer)?(_?2d)?"


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
        for a in base.reference.alternates(tuple(as_np(v) for v in to_nchw(args)), static,
                                           np.transpose(as_np(cotangent), (0, 3, 1, 2))):
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


SPECS = {
    "conv3x3": conv3x3_spec, "conv3x3_bias": conv3x3_bias_spec, "conv": conv_spec,
    # JAX code without a config dict: NCHW conv (stride 1, no padding)
    "conv_nchw": lambda: default_static(conv_spec(), "conv_nchw", ({"stride": 1, "pad": 0},)),
    "conv_nchw_nobias": lambda: default_static(conv_spec(), "conv_nchw_nobias",
                                               ({"stride": 1, "pad": 0},), ("x", "w")),
    "conv_nhwc": conv_nhwc_spec, "conv_nhwc_nobias": lambda: conv_nhwc_spec(bias=False),
    # CS231n code with a conv_param dict, channels last
    "conv_nhwc_param": conv_nhwc_param_spec,
}
