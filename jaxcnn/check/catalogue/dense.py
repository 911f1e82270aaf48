"""Dense layers: the report's softmax layer (``dense``, ``dense_softmax``) and CS231n's
``affine``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import model
from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.base import Spec, batch_of_one, digits
from jaxcnn.check.layer import InputSet, Reference


def pooled_features(rng, count: int) -> list[tuple[str, np.ndarray, int]]:
    """(name, pooled (13, 13, 8), label) from real digits through a random conv + pool."""
    filters = rng.standard_normal((8, 3, 3)) / 9
    images, labels = digits(count)
    out = []
    for i in range(count):
        pooled = model.maxpool2(model.conv3x3(jnp.asarray(images[i]), jnp.asarray(filters)))
        out.append((f"pooled conv of MNIST digit {i} (label {labels[i]})", as_np(pooled),
                    int(labels[i])))
    return out


def dense_sets(seed: int, float32_gap: bool, label_static: bool = False) -> list[InputSet]:
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
    for name, pooled, label in pooled_features(rng, 1):
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
                functools.partial(dense_sets, float32_gap=float32_gap))


def dense_spec(float32_gap: bool = True) -> Spec:
    reference = Reference("jaxcnn.model.dense", lambda args, static: model.dense(*args))
    return Spec("dense", ("input", "weights", "biases"),
                {"input": ("row", "column", "filter"), "weights": ("input", "class"),
                 "biases": ("class",), "out": ("class",)}, reference,
                functools.partial(dense_sets, float32_gap=float32_gap))


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
    return sets + batch_of_one(seed, (1, 2, 3, 4), ((24, 5), (5,)), "")


def affine_spec() -> Spec:
    def forward(args, static):
        x, w, b = args
        return x.reshape(x.shape[0], -1) @ w + b

    return Spec("affine", ("x", "w", "b"),
                {"x": ("sample", "d1", "d2", "d3"), "w": ("input", "output"),
                 "b": ("output",), "out": ("sample", "output")},
                Reference("x.reshape(N, -1) @ w + b", forward), _affine_sets)


SPECS = {"dense_softmax": dense_softmax_spec, "dense": dense_spec, "affine": affine_spec}
