"""Layers that only move values: ``flatten`` (a CNN's last feature maps into rows) and
``upsample_nearest`` (each pixel repeated s x s times, a decoder's or a GAN generator's
UpSampling2D).

=================  ==================================  ==================================
kind               x -> out                            backward
=================  ==================================  ==================================
flatten            (N, d1, ..., dk) -> (N, d1...dk)    dout reshaped to x's shape
flatten_all        any -> (d1...dk,) (one sample)      the same
upsample_nearest   (N, C, H, W); static scale s ->     each s x s block of dout summed
                   (N, C, s H, s W)
=================  ==================================  ==================================

Alternates: flatten's gradient un-flattened channels last where the forward flattened
channels first (a reshape in Fortran order, axes reversed, the engine names itself:
``transposed``); upsampling's gradient read at one
position of each block (``dout[:, :, ::s, ::s]``: the other s^2 - 1 copies' gradients
lost) or averaged over the block (divided by s^2, an average pool's forward used as the
backward).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.base import Spec, module_name, wrong
from jaxcnn.check.layer import Alternate, InputSet, Reference


def _flatten_sets(kind: str):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 18, 11])
        shapes = ((2, 3, 4, 5), (3, 2, 5), (1, 2, 3, 4)) if kind == "flatten" else (
            (3, 4, 5), (2, 3, 4))
        return [InputSet("batch-of-one" if s[0] == 1 and kind == "flatten" else "random",
                         f"random x {s}" + (": a batch of one (N = 1)"
                                            if s[0] == 1 and kind == "flatten" else ""),
                         (rng.standard_normal(s),), note="no two axes of the same length: "
                                                         "a reshape in another order shows")
                for s in shapes]
    return input_sets


def flatten_spec(kind: str = "flatten") -> Spec:
    """``flatten``: x (N, d1, ..., dk) -> x.reshape(N, -1) (C order); ``flatten_all``:
    x.reshape(-1), one sample (the blog CNN's ``input.flatten()``)."""
    def forward(args, static):
        x = args[0]
        return jnp.reshape(x, (x.shape[0], -1) if kind == "flatten" else (-1,))

    def alternates(args, static, cotangent):
        x, g = as_np(args[0]), as_np(cotangent)
        shape = x.shape
        out: list = []  # a reshape in another order (Fortran's, axes reversed) the engine names
        if kind == "flatten" and x.ndim == 4:
            n, c, h, w = shape
            out.append(wrong("channels last", (np.reshape(g, (n, h, w, c)).transpose(
                0, 3, 1, 2),), "dout un-flattened as (N, H, W, C) and transposed to (N, C, "
                               "H, W), where the forward flattened (N, C, H, W) as it is"))
        return out

    core = r"flatten(_?layer)?" if kind == "flatten" else None
    return Spec(kind, ("x",), {"x": None},
                Reference("x.reshape(N, -1)" if kind == "flatten" else "x.reshape(-1)",
                          forward, alternates), _flatten_sets(kind),
                names={"cs231n": r"flatten", "module": module_name(core)} if core else None,
                layouts=("flatten", "flatten_all") if kind == "flatten" else ())


def _upsample_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18, 13])
    return [InputSet("random", "random x (2, 3, 3, 4), s = 2",
                     (rng.standard_normal((2, 3, 3, 4)),), (2,),
                     note="H != W: rows and columns swapped show"),
            InputSet("random", "random x (1, 2, 2, 3), s = 3: a batch of one",
                     (rng.standard_normal((1, 2, 2, 3)),), (3,)),
            InputSet("random", "random x (3, 2, 2, 2), s = 2",
                     (rng.standard_normal((3, 2, 2, 2)),), (2,))]


def _blocks(g: np.ndarray, s: int) -> np.ndarray:
    """dout (N, C, sH, sW) as its s x s blocks (N, C, H, W, s, s)."""
    n, c, hh, ww = g.shape
    return g.reshape(n, c, hh // s, s, ww // s, s).transpose(0, 1, 2, 4, 3, 5)


def upsample_spec() -> Spec:
    """Nearest-neighbour upsampling by an integer factor s (static): x (N, C, H, W) ->
    (N, C, s H, s W), ``x.repeat(s, axis=2).repeat(s, axis=3)``; dx sums each s x s
    block of dout."""
    def forward(args, static):
        s = int(static[0])
        return jnp.repeat(jnp.repeat(args[0], s, axis=2), s, axis=3)

    def alternates(args, static, cotangent):
        s = int(static[0])
        g = as_np(cotangent)
        blocks = _blocks(g, s)
        return [wrong("one position per block", (np.ascontiguousarray(g[:, :, ::s, ::s]),),
                      f"dx = dout[:, :, ::{s}, ::{s}]: each pixel gets the gradient of one of "
                      f"its {s * s} copies; the sum over its {s} x {s} block belongs"),
                Alternate("mean over each block", (blocks.mean(axis=(-1, -2)),), False,
                          "wrong-derivative",
                          f"dx = the mean of each {s} x {s} block of dout (an average pool): "
                          "the copies' gradients add, they are not averaged")]

    return Spec("upsample_nearest", ("x",), {"x": ("sample", "channel", "row", "column"),
                                              "out": ("sample", "channel", "row", "column")},
                Reference("x repeated s x s (nearest neighbour, NCHW)", forward, alternates),
                _upsample_sets, ("scale",),
                names={"cs231n": r"(nearest_)?up_?sampl(e|ing)(_?2d)?(_nearest)?",
                       "module": module_name(r"(nearest_?)?up_?sampl(e|ing)(_?nearest)?")})


SPECS = {"flatten": flatten_spec, "flatten_all": lambda: flatten_spec("flatten_all"),
         "upsample_nearest": upsample_spec}
