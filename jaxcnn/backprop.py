"""The report's hand-derived backward pass, written in JAX, layer by layer.

Mirrors ``model.py``: each ``*_backward`` receives dL/d(its layer's output) and
returns the gradients of that layer, exactly as the report derives them (section 2.1,
steps (1)-(4); the numbering below follows ``docs/report.md``). ``grads``
chains them in the report's order softmax -> pool -> conv.

Nothing here calls ``jax.grad``; the tests compare every function with autodiff and
finite differences. All functions are pure and work under ``jax.jit`` and ``jax.vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcnn import model
from jaxcnn.model import Params


def loss_output_gradient(probabilities: jax.Array, label: jax.Array) -> jax.Array:
    """Step (1): dL/dout_i = -1/p_c for i = c (the label), 0 otherwise. (C,) -> (C,)."""
    c = probabilities.shape[0]
    return jnp.where(jnp.arange(c) == label, -1 / probabilities[label], 0)


def softmax_jacobian_row(logits: jax.Array, c: jax.Array) -> jax.Array:
    """Step (2): d out_c / d t_k for all k, as the report writes it. (C,) -> (C,).

    With ``S = sum_i e^{t_i}``:  ``-e^{t_c} e^{t_k} / S^2`` for k != c and
    ``e^{t_c} (S - e^{t_c}) / S^2`` for k = c. The logits are shifted by their maximum
    first: that multiplies every e^t by the same factor, so these ratios are unchanged
    but e^t cannot overflow.
    """
    e = jnp.exp(logits - jnp.max(logits))
    s = jnp.sum(e)
    e_c = e[c]
    off_diagonal = -e_c * e / s**2
    diagonal = e_c * (s - e_c) / s**2
    return jnp.where(jnp.arange(logits.shape[0]) == c, diagonal, off_diagonal)


def softmax_jacobian(logits: jax.Array) -> jax.Array:
    """The softmax Jacobian ``J[c, k] = d out_c / d t_k`` (C, C) from the report's formulas."""
    return jax.vmap(softmax_jacobian_row, in_axes=(None, 0))(logits, jnp.arange(logits.shape[0]))


def logits_backward(logits: jax.Array, label: jax.Array) -> jax.Array:
    """Steps (1)-(2): dL/dt (C,) for logits t (C,), chained as the report does.

    Only out_c has a non-zero upstream gradient (step 1), so
    ``dL/dt = dL/dout_c * d out_c / dt``, one row of the report's softmax Jacobian.
    (That this equals the textbook ``p - onehot`` is proved in the tests, not used here.)

    Underflow guard: when the label's logit is so far below the largest that
    ``e^{t_c}`` underflows (a gap above ~87 in float32, ~745 in float64), the report's
    product is ``-1/0 * 0``. Only there, and only for that image, the product's exact
    limit ``e^{t_k}/S`` (k != c), ``-(S - e^{t_c})/S`` (k = c) is used instead, found by
    cancelling ``e^{t_c}`` between the two factors.
    """
    e = jnp.exp(logits - jnp.max(logits))
    s = jnp.sum(e)
    d_out = loss_output_gradient(e / s, label)
    report_chain = d_out[label] * softmax_jacobian_row(logits, label)
    limit = jnp.where(jnp.arange(logits.shape[0]) == label, -(s - e[label]) / s, e / s)
    return jnp.where(e[label] > 0, report_chain, limit)


def softmax_backward(
    logits: jax.Array, label: jax.Array, inputs: jax.Array, weights: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Step (2): gradients of the dense + softmax layer, as the report chains them.

    logits (C,) are ``t = W . input + b``; inputs is the pooled (13, 13, F) tensor.
    With ``dL/dt`` from ``logits_backward``:
    ``dL/dW = input (x) dL/dt`` (13*13*F, C), ``dL/db = dL/dt`` (C,),
    ``dL/dinput = W . dL/dt`` reshaped to (13, 13, F).
    Returns ``(dL/dW, dL/db, dL/dinput)``.
    """
    d_t = logits_backward(logits, label)
    d_weights = jnp.outer(inputs.reshape(-1), d_t)
    d_inputs = (weights @ d_t).reshape(inputs.shape)
    return d_weights, d_t, d_inputs


def window_max_backward(d_out: jax.Array, windows: jax.Array, ties: str = "report",
                        axis: int = -1) -> jax.Array:
    """Step (3) for any layout: route dL/d(max) back to the windows (window axis ``axis``).

    Only elements that hold their window's maximum receive gradient; ties decide how:
    ``"report"`` every tied maximum gets the full upstream gradient (report / blog code);
    ``"first"`` only the first maximum in row-major window order (``lax.reduce_window``);
    ``"split"`` the tied maxima share it equally (``jnp.max``).
    """
    is_max = windows == jnp.max(windows, axis=axis, keepdims=True)
    if ties == "report":
        share = is_max.astype(windows.dtype)
    elif ties == "first":
        share = (is_max & (jnp.cumsum(is_max, axis=axis) == 1)).astype(windows.dtype)
    elif ties == "split":
        share = is_max / jnp.sum(is_max, axis=axis, keepdims=True).astype(windows.dtype)
    else:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {model.TIE_RULES}")
    return share * jnp.expand_dims(d_out, axis)


def maxpool2_backward(d_out: jax.Array, x: jax.Array, ties: str = "report") -> jax.Array:
    """Step (3): route dL/d(pool output) (13, 13, F) back to the pool input x (26, 26, F).

    The gradient goes only to pixels holding their 2x2 window's maximum; ``ties`` as in
    ``window_max_backward``.
    """
    windows = model.pool_windows(x)  # (13, 13, F, 4)
    return model.unpool_windows(window_max_backward(d_out, windows, ties))


def conv3x3_backward(d_out: jax.Array, image: jax.Array) -> jax.Array:
    """Step (4): ``dL/dfilter(x, y) = sum_{i,j} dL/dout(i, j) * image(i+x, j+y)``, per filter.

    d_out (26, 26, F), image (28, 28) -> d_filters (F, 3, 3).
    """
    patches = model.im2col(image)  # (26, 26, 9)
    d_filters = jnp.einsum("ijk,ijf->fk", patches, d_out)
    return d_filters.reshape(d_out.shape[-1], 3, 3)


def conv3x3_input_backward(d_out: jax.Array, filters: jax.Array) -> jax.Array:
    """The input gradient the report leaves out (the conv is its first layer).

    ``dL/dimage(i+x, j+y) += dL/dout(i, j) * filter(x, y)``, a full convolution:
    d_out (26, 26, F), filters (F, 3, 3) -> d_image (28, 28).
    """
    h, w, f = d_out.shape
    per_offset = d_out @ filters.reshape(f, 9)  # (26, 26, 9): contribution of offset (x, y)
    d_image = jnp.zeros((h + 2, w + 2), d_out.dtype)
    for x in range(3):
        for y in range(3):
            d_image = d_image.at[x:x + h, y:y + w].add(per_offset[..., 3 * x + y])
    return d_image


def grads(params: Params, image: jax.Array, label: jax.Array, ties: str = "report"
          ) -> tuple[jax.Array, Params]:
    """The whole hand-derived backward pass for one normalised image (28, 28) and its label.

    Forward with ``model``'s layers, then softmax -> pool -> conv as in the report.
    Returns ``(loss, Params of gradients)``; ``ties`` picks the max-pool rule
    (default: the report's).
    """
    conv_out = model.conv3x3(image, params.filters)
    pooled = model.maxpool2(conv_out)
    logits = model.dense(pooled, params.weights, params.biases)
    loss = model.cross_entropy(logits, label)
    d_weights, d_biases, d_pooled = softmax_backward(logits, label, pooled, params.weights)
    d_conv = maxpool2_backward(d_pooled, conv_out, ties)
    d_filters = conv3x3_backward(d_conv, image)
    return loss, Params(d_filters, d_weights, d_biases)
