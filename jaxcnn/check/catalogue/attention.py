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

Self-attention modules (kinds ``self_attention``, ``self_attention_packed``; matched by
``adapters.module_catalogue``): x (N, T, D), q = x Wq + bq (likewise k, v, or the three
packed in one (D, 3D) weight), H heads of D / H features, an optional causal mask, then
the output projection Wo, bo (missing: the identity, no bias). Their slips (the same
values, only the VJP changed, written with ``stop_gradient`` so that each is an ordinary
compiled program): the softmax's Jacobian left out, its diagonal only, summed over the
queries; the scale left out of the backward or applied twice; the mask left out of the
backward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.base import Spec, module_name, wrong
from jaxcnn.check.layer import InputSet, Reference

MASKED = -1e30


def attention(q, k, v, mask=None):
    s = q @ jnp.swapaxes(k, -1, -2) / jnp.sqrt(q.shape[-1])
    if mask is not None:
        s = jnp.where(mask, s, MASKED)
    return jax.nn.softmax(s, axis=-1) @ v


def causal(t: int) -> np.ndarray:
    """(t, t) bool, True where key j <= query i."""
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


# ------------------------------------------------ self-attention modules (projections)

def _softmax_with(s, rule: str, mask):
    """softmax over the last axis of the scores ``s`` (masked where ``mask`` is False),
    whose VJP follows ``rule``: "exact"; "no Jacobian" (dS = dP), "diagonal" (dS = P dP),
    "other axis" (the Jacobian's sum over axis -2), "mask" (the weights recomputed
    without the mask in the backward). The same values every rule: each slip is written
    with ``stop_gradient`` (no custom rule, so its program is compiled and kept)."""
    sg = jax.lax.stop_gradient
    p = jax.nn.softmax(s if mask is None else jnp.where(mask, s, MASKED), axis=-1)
    if rule == "exact":
        return p
    if rule == "mask":
        unmasked = jax.nn.softmax(s, axis=-1)
        return sg(p) + unmasked - sg(unmasked)
    moved = s - sg(s)  # 0, with the identity as its derivative
    if mask is not None:
        moved = jnp.where(mask, moved, 0.0)
    if rule == "no Jacobian":
        return sg(p) + moved
    if rule == "diagonal":
        return sg(p) + sg(p) * moved
    # "other axis": p (dp - sum over the queries of p dp)
    return sg(p) + sg(p) * moved - sg(p) * jnp.sum(sg(p) * moved, axis=-2, keepdims=True)


def _scaled(raw, scale: float, backward_scale: float):
    """``raw * scale`` whose VJP multiplies by ``backward_scale``."""
    sg = jax.lax.stop_gradient
    return sg(raw * scale) + backward_scale * (raw - sg(raw))


SELF_SLIPS = {  # rule -> (name, note)
    "no Jacobian": ("softmax Jacobian left out",
                    "the softmax's Jacobian is left out: dS = dP, as if the attention weights "
                    "were the scores themselves"),
    "diagonal": ("softmax Jacobian's diagonal only",
                 "only the diagonal of the softmax's Jacobian is used: dS = P * dP, without "
                 "- P * sum(P * dP)"),
    "other axis": ("softmax Jacobian summed over the queries",
                   "the softmax's Jacobian sums P * dP over the queries (axis -2) where the "
                   "softmax normalised over the keys (axis -1)"),
    "no scale": ("1/sqrt(d) left out of the backward",
                 "the scores' scale 1/sqrt(d_head) is left out of the backward (dq = dS @ k, "
                 "dk = dS^T @ q, without * scale)"),
    "scale twice": ("1/d where 1/sqrt(d) belongs",
                    "the backward scales by 1/d_head (the scale applied twice) where the "
                    "forward's 1/sqrt(d_head) belongs"),
    "mask": ("mask left out of the backward",
             "the causal mask is applied in the forward but not in the backward: the weights "
             "are recomputed there without it, so future keys get gradient"),
}


def self_attention(x, wq, wk, wv, wo, bq, bk, bv, bo, heads: int = 1,
                   is_causal: bool = False, transposed: bool = False, rule: str = "exact"):
    """Multi-head self-attention (Vaswani et al. 2017, eq. 1 and section 3.2.2) of x
    (N, T, D): q = x Wq + bq (likewise k, v), split into ``heads`` heads of D / heads
    features, softmax(q k^T / sqrt(D / heads)) v per head (keys j <= i where
    ``is_causal``), heads joined, then @ Wo + bo. Weights (D, D) used as ``x @ W``, or
    stored (out, in) and used as ``x @ W.T`` (``transposed``, PyTorch's ``Linear``).
    ``rule``: the backward of a known slip (``SELF_SLIPS``), values unchanged.
    Raises ValueError when ``heads`` does not divide the projections' width."""
    def lin(a, w, b):
        return a @ (w.T if transposed else w) + b

    q, k, v = lin(x, wq, bq), lin(x, wk, bk), lin(x, wv, bv)
    n, t, width = q.shape
    if width % heads:
        raise ValueError(f"{heads} heads do not divide the width {width}")

    def split(a):
        return a.reshape(n, t, heads, -1).transpose(0, 2, 1, 3)

    qh, kh, vh = split(q), split(k), split(v)
    dh = qh.shape[-1]
    root = float(np.sqrt(dh))
    back = {"no scale": 1.0, "scale twice": 1 / dh}.get(rule, 1 / root)
    raw = qh @ jnp.swapaxes(kh, -1, -2)
    s = raw / root if rule not in ("no scale", "scale twice") else _scaled(raw, 1 / root,
                                                                           back)
    mask = causal(t) if is_causal else None
    p = _softmax_with(s, rule if rule in ("no Jacobian", "diagonal", "other axis", "mask")
                      else "exact", mask)
    out = (p @ vh).transpose(0, 2, 1, 3).reshape(n, t, -1)
    return lin(out, wo, bo)


def packed_self_attention(x, wqkv, wo, bqkv, bo, heads: int = 1, is_causal: bool = False,
                          transposed: bool = False, rule: str = "exact"):
    """``self_attention`` with the three projections packed in one weight (D, 3D) and bias
    (3D,), columns q, k, v in that order (nanoGPT's ``c_attn``; (3D, D) rows q, k, v
    where ``transposed``, as PyTorch's ``in_proj_weight``)."""
    w = wqkv.T if transposed else wqkv
    d3 = w.shape[1]
    parts = [w[:, i * d3 // 3:(i + 1) * d3 // 3] for i in range(3)]
    biases = [bqkv[i * d3 // 3:(i + 1) * d3 // 3] for i in range(3)]
    wo_ = wo.T if transposed else wo
    return self_attention(x, *parts, wo_, *biases, bo, heads, is_causal, False, rule)


SELF_ARGS = {"self_attention": ("x", "Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo"),
             "self_attention_packed": ("x", "Wqkv", "Wo", "bqkv", "bo")}


def _self_forward(kind: str, rule: str = "exact"):
    fun = self_attention if kind == "self_attention" else packed_self_attention

    def forward(args, static):
        heads, is_causal, transposed = static
        return fun(*args, int(heads), bool(is_causal), bool(transposed), rule)
    return forward


def _self_alternates(kind: str):
    def alternates(args, static, cotangent):
        from jaxcnn.check.autodiff import bind, vjps

        rules = [r for r in SELF_SLIPS if r != "mask" or bool(static[1])]
        grads = vjps([bind(_self_forward(kind, r), static) for r in rules], args, cotangent)
        return [wrong(SELF_SLIPS[r][0], g, SELF_SLIPS[r][1]) for r, g in zip(
            rules, grads, strict=True)]
    return alternates


def _self_sets(kind: str):
    def input_sets(seed):
        rng = np.random.default_rng([seed, 19])
        d = 4
        sets = []
        for n, t, family in ((2, 3, "random"), (1, 5, "batch-of-one")):
            x = rng.standard_normal((n, t, d))
            if kind == "self_attention":
                params = [rng.standard_normal((d, d)) / 2 for _ in range(4)] + [
                    0.3 * rng.standard_normal(d) for _ in range(4)]
            else:
                params = [rng.standard_normal((d, 3 * d)) / 2, rng.standard_normal((d, d)) / 2,
                          0.3 * rng.standard_normal(3 * d), 0.3 * rng.standard_normal(d)]
            sets.append(InputSet(family, f"random x ({n}, {t}, {d})", (x, *params), (2, True,
                                                                                       False)))
        return sets
    return input_sets


def self_attention_spec(kind: str = "self_attention") -> Spec:
    """A self-attention module's reference: x (N, T, D) and its projections' parameters
    (``SELF_ARGS``); static (heads, causal, transposed), read from the module (see
    ``adapters.module_catalogue``). Missing parameters are constants there: no output
    projection (Wo the identity), zero biases."""
    names = {"module": module_name(
        r"((multi|single|one)_?head(ed)?_?)?(causal_?|masked_?)?(self_?)?attention"
        r"(_?(head|block))?|"
        r"(causal_?|masked_?)?self_?attn|mh_?s?a|(single_?)?head|attention_?head|"
        r"scaled_?dot_?product_?attention")} if kind == "self_attention" else None
    return Spec(kind, SELF_ARGS[kind], {"x": ("sample", "time", "feature"),
                                         "out": ("sample", "time", "feature")},
                Reference("multi-head self-attention" + (" (packed q, k, v)" if kind.endswith(
                    "packed") else ""), _self_forward(kind), _self_alternates(kind)),
                _self_sets(kind), ("heads", "causal", "transposed"), names=names,
                layouts=("self_attention", "self_attention_packed")
                if kind == "self_attention" else ())


SPECS.update({"self_attention": self_attention_spec,
              "self_attention_packed": lambda: self_attention_spec("self_attention_packed")})
