"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1), batched, one head.

Signatures (CS231n style; the course's transformer assignment uses torch autograd, so
these are the common hand-written NumPy ones)::

    attention_forward(q, k, v) -> (out, cache)             # kind "attention"
    attention_forward(q, k, v, mask) -> (out, cache)       # kind "attention_masked"
    causal_attention_forward(q, k, v) -> (out, cache)      # kind "causal_attention"
    *_backward(dout, cache) -> (dq, dk, dv)

q: (N, Tq, d), k: (N, Tk, d), v: (N, Tk, dv); ``mask``: (Tq, Tk) bool, True where a
query may attend (static); causal: key j <= query i (Tq = Tk). out = softmax(q k^T /
sqrt(d) + masked -inf) v, (N, Tq, dv). A masked score is set to -1e30 (exp gives 0, as
with -inf or -1e9 in float64).

Alternates (``wrong-derivative``): the softmax's Jacobian left out (dS = dP, as if the
scores were the weights); only its diagonal (dS = P * dP); its sum over the queries
(axis -2) where the softmax normalised over the keys; the scale 1/sqrt(d) left out of
the backward, or 1/d there (applied twice); and for a mask: the mask applied in the
forward but not in the backward (the weights recomputed without it).
Shapes: N, Tq, Tk, d and dv all differ.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.base import Spec, wrong
from jaxcnn.check.layer import InputSet, Reference

MASKED = -1e30


def attention(q, k, v, mask=None):
    s = q @ jnp.swapaxes(k, -1, -2) / jnp.sqrt(q.shape[-1])
    if mask is not None:
        s = jnp.where(mask, s, MASKED)
    return jax.nn.softmax(s, axis=-1) @ v


def causal(t: int) -> np.ndarray:
    return np.tril(np.ones((t, t), bool))


def _mask(kind: str, static, q, k):
    if kind == "attention_masked":
        return np.asarray(static[0], bool)
    if kind == "causal_attention":
        return causal(q.shape[1]) if q.shape[1] == k.shape[1] else np.tril(
            np.ones((q.shape[1], k.shape[1]), bool), k.shape[1] - q.shape[1])
    return None


def _np_grads(q, k, v, dout, mask, rule):
    """(dq, dk, dv) by hand in NumPy, with ``rule`` for dS from dP: "exact", "no
    Jacobian" (dS = dP), "diagonal" (dS = P dP), "other axis" (the softmax's sum taken
    over the queries, axis -2); ``mask`` None: unmasked weights."""
    scale = 1 / np.sqrt(q.shape[-1])
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = np.where(mask, s, MASKED)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    if rule == "no Jacobian":
        ds = dp
    elif rule == "diagonal":
        ds = p * dp
    elif rule == "other axis":
        ds = p * (dp - (p * dp).sum(axis=-2, keepdims=True))
    else:
        ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv


def _alternates(kind: str):
    def alternates(args, static, cotangent):
        q, k, v = (as_np(a) for a in args)
        dout = as_np(cotangent)
        mask = _mask(kind, static, q, k)
        out = [wrong("softmax Jacobian left out", _np_grads(q, k, v, dout, mask,
                                                            "no Jacobian")[:2] + (None,),
                     "the softmax's Jacobian is left out: dS = dP, as if the attention "
                     "weights were the scores themselves"),
               wrong("softmax Jacobian's diagonal only", _np_grads(q, k, v, dout, mask,
                                                                   "diagonal")[:2] + (None,),
                     "only the diagonal of the softmax's Jacobian is used: dS = P * dP, "
                     "without - P * sum(P * dP)")]
        dq, dk, _ = _np_grads(q, k, v, dout, mask, "exact")
        root = np.sqrt(q.shape[-1])
        out += [wrong("1/sqrt(d) left out of the backward", (dq * root, dk * root, None),
                      f"the scores' scale 1/sqrt(d) = 1/sqrt({q.shape[-1]}) is left out of "
                      "the backward (dq = dS @ k, dk = dS^T @ q, without * scale)"),
                wrong("1/d where 1/sqrt(d) belongs", (dq / root, dk / root, None),
                      "the backward scales by 1/d (the scale applied twice) where the "
                      "forward's 1/sqrt(d) belongs"),
                wrong("softmax Jacobian summed over the queries",
                      _np_grads(q, k, v, dout, mask, "other axis")[:2] + (None,),
                      "the softmax's Jacobian sums P * dP over the queries (axis -2) where "
                      "the softmax normalised over the keys (axis -1)")]
        if mask is not None and not mask.all():
            out.append(wrong("mask left out of the backward",
                             _np_grads(q, k, v, dout, None, "exact"),
                             "the mask is applied in the forward but not in the backward: "
                             "the weights are recomputed there without it, so masked keys "
                             "get gradient"))
        return out
    return alternates


def _sets(kind: str):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 18])

        def qkv(n, tq, tk, d, dv):
            return (rng.standard_normal((n, tq, d)), rng.standard_normal((n, tk, d)),
                    rng.standard_normal((n, tk, dv)))

        if kind == "attention":
            return [InputSet("random", "q (2, 3, 5), k (2, 4, 5), v (2, 4, 2)",
                             qkv(2, 3, 4, 5, 2), note="Tq != Tk, d != dv"),
                    InputSet("batch-of-one", "q (1, 4, 3), k (1, 2, 3), v (1, 2, 5)",
                             qkv(1, 4, 2, 3, 5))]
        if kind == "causal_attention":
            return [InputSet("random", "q, k (2, 4, 3), v (2, 4, 5), causal",
                             qkv(2, 4, 4, 3, 5)),
                    InputSet("batch-of-one", "q, k (1, 3, 2), v (1, 3, 4), causal",
                             qkv(1, 3, 3, 2, 4))]
        ragged = np.array([[1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1]], bool)
        return [InputSet("random", "q, k (2, 4, 3), v (2, 4, 5), causal mask",
                         qkv(2, 4, 4, 3, 5), (causal(4),)),
                InputSet("random", "q (2, 3, 5), k (2, 4, 5), v (2, 4, 2), a ragged mask",
                         qkv(2, 3, 4, 5, 2), (ragged,))]
    return input_sets


AXES = {"q": ("sample", "query", "feature"), "k": ("sample", "key", "feature"),
        "v": ("sample", "key", "value"), "out": ("sample", "query", "value")}


def attention_spec(kind: str = "attention") -> Spec:
    def forward(args, static):
        q, k, v = args
        return attention(q, k, v, _mask(kind, static, q, k))

    text = {"attention": "", "attention_masked": " (masked)",
            "causal_attention": " (causal)"}[kind]
    names = {"attention": {"cs231n": r"(scaled_)?(dot_product_)?(self_)?attention"},
             "attention_masked": None,
             "causal_attention": {"cs231n": r"(causal|masked)_(self_)?attention"}}[kind]
    return Spec(kind, ("q", "k", "v"), AXES,
                Reference(f"softmax(q k^T / sqrt(d)){text} v", forward, _alternates(kind)),
                _sets(kind), ("mask",) if kind == "attention_masked" else (), names=names,
                layouts={"attention": ("attention", "attention_masked"),
                         "causal_attention": ("causal_attention", "attention_masked")
                         }.get(kind, ()))


SPECS = {"attention": attention_spec,
         "attention_masked": lambda: attention_spec("attention_masked"),
         "causal_attention": lambda: attention_spec("causal_attention")}
