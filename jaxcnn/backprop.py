"""The report's hand-derived backward pass, written in JAX, layer by layer.

Mirrors ``model.py``: each ``*_backward`` receives dL/d(its layer's output) and
returns the gradients of that layer, exactly as the report derives them (section 2.1,
steps (1)-(4); the numbering below follows ``docs/report.md``). ``grads``
chains them in the report's order softmax -> pool -> conv.

Nothing here calls ``jax.grad``; the tests compare every function with autodiff and
finite differences. All functions are pure and work under ``jax.jit`` and ``jax.vmap``.

Each step is one ``jax.jit`` function (``grads``, which chains them, is not: its steps
are). Inside a jitted training step that changes nothing (XLA inlines them), and a
caller that runs them eagerly (``jaxcnn verify``) dispatches one program per step
instead of one per operation: with ``model``'s jitted layers, ``verify``'s eager
operations fell from 7,737 to 2,820 and its CPU time by another fifth. (Compiled, the
dense step's products round differently in the last bit: ``verify``'s relative errors
against the float64 oracle moved between 1e-16 and 6e-16; no verdict changed. ``grads``
jitted whole compiled more than it saved.)
"""

from __future__ import annotations

import functools

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
    ``e^{t_c} (S - e^{t_c}) / S^2`` for k = c (``docs/report.md``, step 2). Two
    evaluation choices, neither of which changes the formulas' value:

    * The logits are shifted by their maximum first. That multiplies every e^t by the
      same factor, so the ratios are unchanged, but e^t cannot overflow.
    * ``S - e^{t_c}`` is evaluated as the sum of the *other* exponentials, which is the
      same number without the cancellation of a subtraction: when class c dominates
      (p_c near 1), ``S - e^{t_c}`` computed as a difference keeps only the rounding
      error of S (absolute ~eps, relative error up to 100 % of the true 1 - p_c).
    """
    e = jnp.exp(logits - jnp.max(logits))
    is_c = jnp.arange(logits.shape[0]) == c
    e_c = e[c]
    s_rest = jnp.sum(jnp.where(is_c, 0, e))  # S - e^{t_c}, without cancellation
    s = e_c + s_rest
    off_diagonal = -e_c * e / s**2
    diagonal = e_c * s_rest / s**2
    return jnp.where(is_c, diagonal, off_diagonal)


def softmax_jacobian(logits: jax.Array) -> jax.Array:
    """The softmax Jacobian ``J[c, k] = d out_c / d t_k`` (C, C) from the report's formulas."""
    return jax.vmap(softmax_jacobian_row, in_axes=(None, 0))(logits, jnp.arange(logits.shape[0]))


@jax.jit
def logits_backward(logits: jax.Array, label: jax.Array) -> jax.Array:
    """Steps (1)-(2): dL/dt (C,) for logits t (C,), chained as the report does.

    Same dtype as ``logits`` (float32 or float64). Source: ``docs/report.md`` steps 1-2.
    Only out_c has a non-zero upstream gradient (step 1), so
    ``dL/dt_k = dL/dout_c * d out_c / dt_k = -1/p_c * J[c, k]``, one row of the
    report's softmax Jacobian (``softmax_jacobian_row``). (That this equals the textbook
    ``p - onehot`` is proved in the tests, not used here.)

    Where the report's product is inaccurate, the algebraically identical form is used.
    Cancelling ``e^{t_c}`` between ``-1/p_c = -S/e^{t_c}`` and ``J[c, k]`` gives
    ``e^{t_k}/S`` (k != c) and ``-(S - e^{t_c})/S`` (k = c). The report's product is
    accurate (a few ulps) exactly when ``J[c, k]`` is a normal floating-point number:
    then every factor (e^{t_c}, e^{t_c} e^{t_k}, p_c >= |J[c, k]|) is normal too and
    ``1/p_c`` is finite. It is inaccurate when the label's probability is tiny (a
    confident wrong prediction, logit gap above about 80 in float32, 700 in float64):
    ``J[c, k]`` becomes subnormal, which XLA flushes to zero on CPU (the whole row
    read 0 instead of 0.5), and once e^{t_c} or p_c underflows the product is
    ``-inf * 0 = NaN``. So each entry k uses the report's product where
    ``|J[c, k]| >= finfo(dtype).tiny`` and the cancelled form elsewhere (where the true
    entry is below ``tiny`` it is 0 either way).
    """
    e = jnp.exp(logits - jnp.max(logits))
    is_c = jnp.arange(logits.shape[0]) == label
    s_rest = jnp.sum(jnp.where(is_c, 0, e))  # S - e^{t_c}, as in softmax_jacobian_row
    s = e[label] + s_rest
    d_out = loss_output_gradient(e / s, label)  # step (1): -1/p_c at the label
    row = softmax_jacobian_row(logits, label)  # step (2)
    report_chain = d_out[label] * row
    cancelled = jnp.where(is_c, -s_rest / s, e / s)
    accurate = jnp.abs(row) >= jnp.finfo(row.dtype).tiny
    return jnp.where(accurate, report_chain, cancelled)


@jax.jit
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


@functools.partial(jax.jit, static_argnames=("ties", "axis"))
def window_max_backward(d_out: jax.Array, windows: jax.Array, ties: str = "report",
                        axis: int = -1, maxima: jax.Array | None = None) -> jax.Array:
    """Step (3) for any layout: route dL/d(max) back to the windows (window axis ``axis``).

    Only elements that hold their window's maximum receive gradient; ties decide how:
    ``"report"`` every tied maximum gets the full upstream gradient (report / blog code);
    ``"first"`` only the first maximum in row-major window order (``lax.reduce_window``);
    ``"split"`` the tied maxima share it equally (``jnp.max``).
    ``maxima``: the window maxima (``windows`` without ``axis``) when the forward pass
    already has them (``fast``), the same numbers bit for bit (a maximum is exact), so
    the windows are not reduced a second time. Raises ``ValueError`` for another rule.
    """
    if maxima is None:
        is_max = windows == jnp.max(windows, axis=axis, keepdims=True)
    else:
        is_max = windows == jnp.expand_dims(maxima, axis)
    if ties == "report":
        share = is_max.astype(windows.dtype)
    elif ties == "first":
        share = (is_max & (jnp.cumsum(is_max, axis=axis) == 1)).astype(windows.dtype)
    elif ties == "split":
        share = is_max / jnp.sum(is_max, axis=axis, keepdims=True).astype(windows.dtype)
    else:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {model.TIE_RULES}")
    return share * jnp.expand_dims(d_out, axis)


@functools.partial(jax.jit, static_argnames="ties")
def maxpool2_backward(d_out: jax.Array, x: jax.Array, ties: str = "report") -> jax.Array:
    """Step (3): route dL/d(pool output) (13, 13, F) back to the pool input x (26, 26, F).

    The gradient goes only to pixels holding their 2x2 window's maximum; ``ties`` as in
    ``window_max_backward``.
    """
    windows = model.pool_windows(x)  # (13, 13, F, 4)
    return model.unpool_windows(window_max_backward(d_out, windows, ties))


@jax.jit
def conv3x3_backward(d_out: jax.Array, image: jax.Array) -> jax.Array:
    """Step (4): ``dL/dfilter(x, y) = sum_{i,j} dL/dout(i, j) * image(i+x, j+y)``, per filter.

    d_out (26, 26, F), image (28, 28) -> d_filters (F, 3, 3).
    """
    patches = model.im2col(image)  # (26, 26, 9)
    d_filters = jnp.einsum("ijk,ijf->fk", patches, d_out)
    return d_filters.reshape(d_out.shape[-1], 3, 3)


@jax.jit
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
