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
from jaxcnn.check.catalogue.base import Spec, batch_of_one, wrong
from jaxcnn.check.catalogue.dense import dense_sets
from jaxcnn.check.layer import InputSet, Reference


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
                          alternates), _loss_sets, ("y",))


SPECS = {"cross_entropy": cross_entropy_spec, "softmax_loss": softmax_loss_spec,
         "softmax_loss_sum": lambda: softmax_loss_spec("sum"),
         "dense_cross_entropy": dense_cross_entropy_spec}
