"""The same network and gradients in a memory layout a CPU runs fast: what training runs.

``model.py`` and ``backprop.py`` keep the report's layout, one image at a time:
conv output (26, 26, F), dense weights (13*13*F, C). That layout is slow on a CPU,
because its innermost axis (8 filters, 10 classes) is too short to vectorise
(measured: 2.5x slower per SGD step). Here the identical math runs on a batch of B
images, channels first:

* ``patches(images)`` lays the 3x3 patches out as (9, B*676), column
  ``b*676 + 169*w + p`` being the patch under conv pixel ``(2i+a, 2j+c)`` of image b,
  with pool cell ``p = 13*i + j`` and window slot ``w = 2*a + c``;
* filters (F, 9) times patches gives the conv output (F, B, 4, 169): axis 2 holds the
  pool windows, so ``model.window_max`` pools it with the same tie rules;
* one image (the report's per-image SGD, ``manual_grads`` with B = 1) is laid out with
  the windows last instead (``image_patches``: column ``4*p + w``, conv output
  (F*169, 4)), so that its window maximum is already the flat (F*169,) feature vector.
  With the windows on axis 2, XLA copied the pooled (F, 169) into the dense layer's
  operand element by element: measured 1.4x slower for a group of 8 seeds, the same
  for one seed. (Batches and evaluation keep axis 2: windows last made them 5-22 %
  slower.)
* the dense weights are stored transposed and reordered as (C, F*169), so the pooled
  features of one image flatten without a copy.

``to_fast`` / ``from_fast`` convert ``Params`` exactly (pure reorderings). Gradients
are batch means. ``manual_grads`` chains the report's hand-derived steps from
``backprop`` (logits_backward, window_max_backward, the conv's ``sum dL/dout * image``);
``autodiff_grads`` is ``jax.grad`` of ``loss``. The tests check both against
``backprop.grads`` and ``jax.grad(model.loss)`` to 1e-12 in float64.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import backprop, model
from jaxcnn.model import CONV_SIZE, IMAGE_SIZE, POOL_SIZE, Params

CELLS = POOL_SIZE * POOL_SIZE  # 169 pool cells per filter
PIXELS = CONV_SIZE * CONV_SIZE  # 676 conv pixels per filter


class FastParams(NamedTuple):
    """Parameters in the compute layout.

    filters: (F, 9)         entry [f, 3x + y] = filter f at (x, y)
    weights: (C, F*169)     entry [c, f*169 + p] = Params.weights[p*F + f, c]
    biases:  (C,)
    """

    filters: jax.Array
    weights: jax.Array
    biases: jax.Array


def to_fast(params: Params) -> FastParams:
    """``Params`` (report layout) -> ``FastParams``; exact, a reordering."""
    f, c = params.filters.shape[0], params.biases.shape[0]
    weights = params.weights.reshape(CELLS, f, c).transpose(2, 1, 0).reshape(c, f * CELLS)
    return FastParams(params.filters.reshape(f, 9), weights, params.biases)


def from_fast(fast: FastParams) -> Params:
    """``FastParams`` -> ``Params`` (report layout); exact, a reordering."""
    f, c = fast.filters.shape[0], fast.biases.shape[0]
    weights = fast.weights.reshape(c, f, CELLS).transpose(2, 1, 0).reshape(CELLS * f, c)
    return Params(fast.filters.reshape(f, 3, 3), weights, fast.biases)


@functools.lru_cache(maxsize=16)
def _patch_index(batch: int) -> np.ndarray:
    """Flat pixel indices (9, batch*676) into ``images.reshape(-1)`` for ``patches``.

    Entry ``[3x + y, b*676 + 169*(2a + c) + 13i + j]`` is pixel
    ``(2i + a + x, 2j + c + y)`` of image b: the layout of the module docstring.
    """
    x, y = np.divmod(np.arange(9), 3)
    a, c = np.divmod(np.arange(4), 2)
    i, j = np.divmod(np.arange(CELLS), POOL_SIZE)
    rows = 2 * i[None, None, :] + a[None, :, None] + x[:, None, None]  # (9, 4, 169)
    cols = 2 * j[None, None, :] + c[None, :, None] + y[:, None, None]
    one_image = (rows * IMAGE_SIZE + cols).reshape(9, PIXELS)
    offsets = np.arange(batch) * IMAGE_SIZE * IMAGE_SIZE
    index = (one_image[:, None, :] + offsets[None, :, None]).reshape(9, batch * PIXELS)
    index.flags.writeable = False
    return index.astype(np.int32)


@functools.lru_cache(maxsize=1)
def _image_patch_index() -> np.ndarray:
    """Flat pixel indices (9, 676) into a (28, 28) image for ``image_patches``: entry
    ``[3x + y, 4*(13i + j) + 2a + c]`` is pixel ``(2i + a + x, 2j + c + y)``."""
    x, y = np.divmod(np.arange(9), 3)
    a, c = np.divmod(np.arange(4), 2)
    i, j = np.divmod(np.arange(CELLS), POOL_SIZE)
    rows = 2 * i[None, :, None] + a[None, None, :] + x[:, None, None]  # (9, 169, 4)
    cols = 2 * j[None, :, None] + c[None, None, :] + y[:, None, None]
    index = (rows * IMAGE_SIZE + cols).reshape(9, PIXELS).astype(np.int32)
    index.flags.writeable = False
    return index


def image_patches(image: jax.Array) -> jax.Array:
    """One normalised image (28, 28) -> patches (9, 676), pool windows last: column
    ``4*p + w`` is the patch under conv pixel ``(2i+a, 2j+c)``, ``p = 13*i + j``,
    ``w = 2*a + c`` (one gather through a constant index table)."""
    return image.reshape(-1)[_image_patch_index()]


def patches(images: jax.Array) -> jax.Array:
    """Normalised images (B, 28, 28) -> patches (9, B*676), pool windows innermost.

    Two spellings of the same layout, picked by speed (measured in a training chunk on
    this project's CPU): one image, the report's per-image SGD, is one gather through a
    constant index table (52k vs 38k steps/s); a batch is 36 strided slices, stacked
    (a gather is 10-25% slower from 4 images up).
    """
    b = images.shape[0]
    if b == 1:
        return images.reshape(-1)[_patch_index(1)]
    rows = []
    for x in range(3):
        for y in range(3):
            slots = [images[:, a + x:a + x + CONV_SIZE:2, c + y:c + y + CONV_SIZE:2]
                     for a in range(2) for c in range(2)]  # each (B, 13, 13)
            rows.append(jnp.stack(slots, axis=1).reshape(b * PIXELS))
    return jnp.stack(rows)


def _conv_windows(fast: FastParams, cols: jax.Array, batch: int) -> jax.Array:
    """Conv output (F, B, 4, 169) from patches (9, B*676): the report's ``sum image * filter``."""
    return (fast.filters @ cols).reshape(-1, batch, 4, CELLS)


def _dense(fast: FastParams, features: jax.Array) -> jax.Array:
    """Logits (B, C) of features (B, F*169): ``t = W . input + b``.

    Written as (C, K) @ (K, B) so that one image is a matrix-vector product (measured
    1.3x faster per SGD step than the (B, K) @ (K, C) spelling on CPU).
    """
    return (fast.weights @ features.T).T + fast.biases


def _flatten(pooled: jax.Array) -> jax.Array:
    """(F, B, 169) -> (B, F*169), the column order of ``FastParams.weights``."""
    f, b, _ = pooled.shape
    return pooled.transpose(1, 0, 2).reshape(b, f * CELLS)


def logits(fast: FastParams, images: jax.Array, ties: str = "split") -> jax.Array:
    """Normalised images (B, 28, 28) -> logits (B, C)."""
    conv = _conv_windows(fast, patches(images), images.shape[0])
    return _dense(fast, _flatten(model.window_max(conv, ties, axis=2)))


def loss(fast: FastParams, images: jax.Array, labels: jax.Array, ties: str = "split"
         ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Mean cross-entropy over the batch, and ``(losses (B,), logits (B, C))`` as aux."""
    batch_logits = logits(fast, images, ties)
    losses = jax.vmap(model.cross_entropy)(batch_logits, labels)
    return jnp.mean(losses), (losses, batch_logits)


def autodiff_grads(fast: FastParams, images: jax.Array, labels: jax.Array, ties: str = "split"):
    """``jax.grad`` of the mean loss: ``((losses (B,), logits (B, C)), FastParams)``."""
    (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(fast, images, labels, ties)
    return aux, grads


def manual_grads(fast: FastParams, images: jax.Array, labels: jax.Array, ties: str = "report"):
    """The report's hand-derived gradients, batch-mean: ``((losses, logits), FastParams)``.

    Same chain as ``backprop.grads`` (softmax -> pool -> conv), batched and re-laid out.
    One image (B = 1, the report's per-image SGD) takes ``_manual_grads_image``.
    """
    if images.shape[0] == 1:
        return _manual_grads_image(fast, images, labels, ties)
    batch = images.shape[0]
    cols = patches(images)
    conv = _conv_windows(fast, cols, batch)  # (F, B, 4, 169)
    pooled = jnp.max(conv, axis=2)  # (F, B, 169)
    features = _flatten(pooled)  # (B, F*169)
    batch_logits = _dense(fast, features)
    losses = jax.vmap(model.cross_entropy)(batch_logits, labels)
    # Steps (1)-(2): dL/dt per image, from the report's softmax Jacobian; mean over the batch.
    d_t = jax.vmap(backprop.logits_backward)(batch_logits, labels) / batch  # (B, C)
    d_weights = d_t.T @ features  # input (x) dL/dt, summed over the batch
    d_biases = jnp.sum(d_t, axis=0)
    d_pooled = (d_t @ fast.weights).reshape(batch, -1, CELLS).transpose(1, 0, 2)  # W . dL/dt
    # Step (3): the tie rule routes dL/dpool to the window maxima.
    d_conv = backprop.window_max_backward(d_pooled, conv, ties, axis=2,
                                          maxima=pooled)  # (F, B, 4, 169)
    # Step (4): dL/dfilter(x, y) = sum over pixels of dL/dout * image(i+x, j+y).
    d_filters = d_conv.reshape(d_conv.shape[0], -1) @ cols.T
    return (losses, batch_logits), FastParams(d_filters, d_weights, d_biases)


def _manual_grads_image(fast: FastParams, images: jax.Array, labels: jax.Array, ties: str):
    """``manual_grads`` for one image, (1, 28, 28) and (1,): the same steps on vectors.

    Patches with the windows last (``image_patches``), so the window maximum is the
    (F*169,) feature vector itself and the dense layer a matrix-vector product. The
    softmax steps keep the batch axis of one, so that a vmapped group of seeds
    (``train.seed_group_size``) computes every seed's numbers bit for bit as this
    one-seed program does (tested; without that axis XLA rounded one seed of a group
    differently).
    """
    cols = image_patches(images[0])  # (9, 676)
    conv = (fast.filters @ cols).reshape(-1, 4)  # (F*169, 4): windows last
    pooled = jnp.max(conv, axis=-1)  # (F*169,), the features
    logits = fast.weights @ pooled + fast.biases  # (C,)
    losses = jax.vmap(model.cross_entropy)(logits[None], labels)
    # Steps (1)-(2): dL/dt from the report's softmax Jacobian.
    d_t = jax.vmap(backprop.logits_backward)(logits[None], labels)[0]  # (C,)
    d_weights = d_t[:, None] * pooled[None, :]  # dL/dt (x) input
    d_pooled = d_t @ fast.weights  # W . dL/dt, (F*169,)
    # Step (3): the tie rule routes dL/dpool to the window maxima.
    d_conv = backprop.window_max_backward(d_pooled, conv, ties, maxima=pooled)  # (F*169, 4)
    # Step (4): dL/dfilter(x, y) = sum over pixels of dL/dout * image(i+x, j+y).
    d_filters = d_conv.reshape(fast.filters.shape[0], -1) @ cols.T
    return (losses, logits[None]), FastParams(d_filters, d_weights, d_t)


GRADIENTS = {"manual": manual_grads, "autodiff": autodiff_grads}
