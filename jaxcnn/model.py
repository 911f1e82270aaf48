"""The report's network, forward pass only, as pure JAX functions for ONE image.

    image (28, 28) -> conv3x3 -> (26, 26, F) -> maxpool2 -> (13, 13, F) -> dense -> logits (C,)

Batches come from ``jax.vmap`` over these functions. Every function is pure:
parameters are an explicit ``Params`` pytree, randomness an explicit key.

This module is the readable reference, in the report's layout: the conv is im2col
(the 9 pixels under each output position, gathered, times the (F, 9) filter matrix),
the pool a max over each 2x2 window's four values.

The layers (``conv3x3``, ``maxpool2``, ``dense``, ``cross_entropy``) are each one
``jax.jit`` function. Inside a jitted step that costs nothing (XLA inlines them;
training's numbers are unchanged, tested), but a caller that runs them eagerly
(``jaxcnn verify``, the checker's oracles and finite differences) dispatches one program
per layer instead of one per operation: ``jaxcnn verify`` ran 7,737 eager operations,
now 3,959, and its CPU time fell by 12-15 %, with every number bit for bit the same on
jaxlib 0.10 (on jaxlib 0.9, the lower bound, a few round differently in their last
bits, within 1e-13 relative; tested).

Training runs the same math in ``fast.py``, laid out channels-first, which is 2.5x
faster on a CPU (see the README).

Max-pool ties. A 2x2 window often holds several equal maxima (the MNIST background
is exactly -0.5, so conv outputs over it are bit-identical). The forward value does
not depend on how ties are broken, but the gradient does. ``maxpool2(x, ties=...)``
selects which rule ``jax.grad`` implies:

* ``"split"`` (default): ``jnp.max`` over the window; autodiff shares the upstream
  gradient equally among the tied maxima (a valid subgradient).
* ``"first"``: only the first maximum in row-major window order receives it; this
  is what autodiff of ``lax.reduce_window(max)`` does (a valid subgradient).
* ``"report"``: every tied maximum receives the FULL upstream gradient, the rule of
  the report and of the blog code it follows. It is not a subgradient: a window
  with k tied maxima passes back k times the gradient.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

IMAGE_SIZE = 28  # input height and width
CONV_SIZE = IMAGE_SIZE - 2  # 26: valid 3x3 convolution
POOL_SIZE = CONV_SIZE // 2  # 13: 2x2 max-pool, stride 2
TIE_RULES = ("report", "first", "split")


class Params(NamedTuple):
    """The network's parameters, a pytree.

    filters: (F, 3, 3)        conv3x3 filters, no bias
    weights: (13*13*F, C)     dense weights, rows in (H, W, F) flatten order
    biases:  (C,)             dense biases
    """

    filters: jax.Array
    weights: jax.Array
    biases: jax.Array


def default_float() -> jnp.dtype:
    """float64 when ``jax_enable_x64`` is on, float32 otherwise."""
    return jnp.zeros((), dtype=float).dtype


def init_params(key: jax.Array, num_filters: int = 8, num_classes: int = 10, dtype=None) -> Params:
    """The report's initialisation: filters ``randn/9``, weights ``randn/(13*13*F)``, biases 0.

    ``key`` is a ``jax.random`` key. dtype defaults to float32 (float64 under x64).
    """
    if num_filters < 1 or num_classes < 2:
        raise ValueError(f"need num_filters >= 1 and num_classes >= 2, got {num_filters}, "
                         f"{num_classes}")
    dtype = default_float() if dtype is None else dtype
    k_filters, k_weights = jax.random.split(key)
    fan_in = POOL_SIZE * POOL_SIZE * num_filters
    filters = jax.random.normal(k_filters, (num_filters, 3, 3), dtype) / 9
    weights = jax.random.normal(k_weights, (fan_in, num_classes), dtype) / fan_in
    return Params(filters, weights, jnp.zeros((num_classes,), dtype))


def normalize(images: jax.Array, dtype=None) -> jax.Array:
    """uint8 pixels 0..255 -> floats in [-0.5, 0.5]: ``x / 255 - 0.5`` (the report's step 1).

    uint8 pixels are looked up in a table of the correctly rounded values, so that every
    caller gets the same bits: eager, under ``jax.jit`` or inside a larger program, on any
    backend. (``x / 255 - 0.5`` itself is not: eagerly it is a division, under jit XLA
    turns it into a multiply-add with a rounded 1/255, which differs in the last bit for
    158 of the 256 values in float32 and maps 255 to 0.50000006. Training normalised
    under jit and ``jaxcnn evaluate`` eagerly, so evaluate's test loss differed from
    training's.) Other input types use the formula.
    """
    dtype = jnp.dtype(default_float() if dtype is None else dtype)
    images = jnp.asarray(images)
    if images.dtype == jnp.uint8 and dtype in (jnp.float32, jnp.float64):
        return jnp.asarray(_pixel_table(dtype.name))[images]
    return images.astype(dtype) / 255 - 0.5


@functools.cache
def _pixel_table(dtype: str):
    """(256,) numpy array: ``x / 255 - 0.5`` for x = 0..255, rounded once to ``dtype``."""
    from fractions import Fraction

    import numpy as np

    exact = [Fraction(x, 255) - Fraction(1, 2) for x in range(256)]
    if dtype == "float64":  # float() of a Fraction rounds correctly
        return np.array([float(v) for v in exact], np.float64)
    table = np.array([float(v) for v in exact], np.float32)  # may round twice: take the
    for i, v in enumerate(exact):  # nearest of the result and its two neighbours
        f = table[i]
        near = (f, np.nextafter(f, np.float32(-1)), np.nextafter(f, np.float32(1)))
        table[i] = min(near, key=lambda g, v=v: abs(Fraction(float(g)) - v))
    return table


def im2col(image: jax.Array) -> jax.Array:
    """(28, 28) -> (26, 26, 9) patches; entry ``[i, j, 3*x + y] = image[i+x, j+y]``.

    One gather through a constant index table (``_im2col_index``, with ``jnp.take``: one
    dispatch when run eagerly, where indexing ``x[table]`` builds the gather in Python
    every call, 20x slower): the same numbers as nine shifted slices stacked, in one
    operation instead of eleven (what an eager caller, ``jaxcnn verify``'s hand
    functions, pays per operation).
    """
    return jnp.take(image.reshape(-1), _im2col_index(*image.shape), mode="clip")


@functools.lru_cache(maxsize=8)
def _im2col_index(height: int, width: int) -> np.ndarray:
    """Flat indices (H-2, W-2, 9) into an (H, W) image for ``im2col``."""
    i, j = np.ogrid[:height - 2, :width - 2]
    x, y = np.divmod(np.arange(9), 3)
    index = ((i[..., None] + x) * width + j[..., None] + y).astype(np.int32)
    index.flags.writeable = False
    return index


@jax.jit
def conv3x3(image: jax.Array, filters: jax.Array) -> jax.Array:
    """Valid 3x3 cross-correlation, no bias: (28, 28), (F, 3, 3) -> (26, 26, F).

    The report's ``out(i,j) = sum_{x,y} image(i+x, j+y) * filter(x, y)``, per filter.
    """
    return im2col(image) @ filters.reshape(filters.shape[0], 9).T


def pool_windows(x: jax.Array) -> jax.Array:
    """(2H, 2W, F) -> (H, W, F, 4): each 2x2 window in row-major order (0,0),(0,1),(1,0),(1,1)."""
    h, w, f = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, f).transpose(0, 2, 4, 1, 3).reshape(h // 2, w // 2, f, 4)


def unpool_windows(windows: jax.Array) -> jax.Array:
    """Inverse of ``pool_windows``: (H, W, F, 4) -> (2H, 2W, F)."""
    h, w, f, _ = windows.shape
    return windows.reshape(h, w, f, 2, 2).transpose(0, 3, 1, 4, 2).reshape(2 * h, 2 * w, f)


def _window_max_split(windows: jax.Array, axis: int) -> jax.Array:
    return jnp.max(windows, axis=axis)


def _window_max_first(windows: jax.Array, axis: int) -> jax.Array:
    first = jnp.expand_dims(jnp.argmax(windows, axis=axis), axis)  # the first maximum
    return jnp.squeeze(jnp.take_along_axis(windows, first, axis=axis), axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _window_max_report(windows: jax.Array, axis: int) -> jax.Array:
    return jnp.max(windows, axis=axis)


def _window_max_report_fwd(windows, axis):
    y = jnp.max(windows, axis=axis)
    return y, (windows, y)


def _window_max_report_bwd(axis, residuals, g):
    windows, y = residuals
    # Every element equal to its window's maximum receives the full upstream gradient.
    y, g = jnp.expand_dims(y, axis), jnp.expand_dims(g, axis)
    return (jnp.where(windows == y, g, 0).astype(windows.dtype),)


_window_max_report.defvjp(_window_max_report_fwd, _window_max_report_bwd)

_WINDOW_MAX = {"split": _window_max_split, "first": _window_max_first,
               "report": _window_max_report}


def window_max(windows: jax.Array, ties: str = "split", axis: int = -1) -> jax.Array:
    """Maximum over the window axis (size 4, default last), with the tie rule ``jax.grad``
    will use. The value is the same for every rule; see the module docstring."""
    try:
        rule = _WINDOW_MAX[ties]
    except KeyError:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {TIE_RULES}") from None
    return rule(windows, axis % windows.ndim)


@functools.partial(jax.jit, static_argnames="ties")
def maxpool2(x: jax.Array, ties: str = "split") -> jax.Array:
    """2x2 max-pool, stride 2: (26, 26, F) -> (13, 13, F).

    ``ties`` only changes the gradient ``jax.grad`` derives (see the module docstring);
    the value is the same for every rule.
    """
    return window_max(pool_windows(x), ties)


@jax.jit
def dense(x: jax.Array, weights: jax.Array, biases: jax.Array) -> jax.Array:
    """Fully connected layer: (13, 13, F) flattened in (H, W, F) order -> logits (C,).

    The report's ``t = W . input + b``.
    """
    return x.reshape(-1) @ weights + biases


def logits(params: Params, image: jax.Array, ties: str = "split") -> jax.Array:
    """Normalised image (28, 28) -> logits (C,)."""
    pooled = maxpool2(conv3x3(image, params.filters), ties)
    return dense(pooled, params.weights, params.biases)


def forward(params: Params, image: jax.Array) -> jax.Array:
    """Normalised image (28, 28) -> class probabilities (C,), the report's softmax output."""
    return jax.nn.softmax(logits(params, image))


@jax.jit
def cross_entropy(logit_values: jax.Array, label: jax.Array) -> jax.Array:
    """``-log p[label]`` (a scalar) from logits (C,) and an int label, computed stably
    with log-softmax. A label outside ``[0, C)`` gives NaN (``jnp.take``'s fill mode),
    never another class's loss."""
    return -jnp.take(jax.nn.log_softmax(logit_values), label)


def loss(params: Params, image: jax.Array, label: jax.Array, ties: str = "split") -> jax.Array:
    """The report's loss ``L = -ln p_c`` for one normalised image (28, 28) and int label.

    ``ties`` selects the max-pool rule that ``jax.grad(loss)`` uses.
    """
    return cross_entropy(logits(params, image, ties), label)


def predict(params: Params, image: jax.Array) -> jax.Array:
    """The class with the largest probability (int scalar)."""
    return jnp.argmax(logits(params, image))
