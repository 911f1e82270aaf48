"""The same network and gradients in a memory layout a CPU runs fast: what training runs.

``model.py`` and ``backprop.py`` keep the report's layout, one image at a time:
conv output (26, 26, F), dense weights (13*13*F, C). That layout is slow on a CPU,
because its innermost axis (8 filters, 10 classes) is too short to vectorise
(measured: 2.5x slower per SGD step). Here the identical math runs on a batch of B
images, channels first:

* a training batch (``manual_grads`` with B > 1) is laid out window-major:
  ``phase_patches(images)`` is (16, B*169), column ``b*169 + p`` holding the 4x4
  pixels ``(2i + u, 2j + v)`` under pool cell ``p = 13*i + j`` of image b, and
  ``window_filters(filters)`` (4F, 16) holds filter f once per pool-window slot
  ``w = 2*a + c`` (row ``w*F + f``, zeros outside that slot's 3x3 patch). Their
  product is the conv output (4, F, B, 169): the window slot leads, so the pool is a
  maximum over the leading axis and the pooled (F, B, 169) feeds one matrix product
  per filter for the dense layer, its weight gradient and dL/dpool, with nothing
  transposed. The filter gradient is the (4F, B*169) x (B*169, 16) product, folded
  back to (F, 9) (``window_filters_backward``). Against the im2col layout below
  (a (9, B*676) patch matrix and a (8, 9) x (9, B*676) product) this reads and writes
  less than half the patches (16 vs 36 numbers per pool cell), gives the products 16
  instead of 9 terms to sum, and drops the (F, B, 169) -> (B, F*169) transpose that
  XLA copied one element at a time (measured in a training chunk, batch 128: 1.6-1.8x
  fewer CPU seconds per image). Batches above ``BATCH_SLICE`` (128) images run in
  ``lax.scan`` slices, which keep a slice's arrays in cache;
* ``patches(images)`` lays the 3x3 patches out as (9, B*676) (im2col), column
  ``b*676 + 169*w + p`` being the patch under conv pixel ``(2i+a, 2j+c)`` of image b,
  with pool cell ``p = 13*i + j`` and window slot ``w = 2*a + c``; filters (F, 9)
  times patches gives the conv output (F, B, 4, 169), axis 2 holding the pool
  windows, so ``model.window_max`` pools it with the same tie rules. ``logits`` (the
  forward pass of evaluation and of ``autodiff_grads``) uses this layout;
* one image (the report's per-image SGD, ``manual_grads`` with B = 1) is laid out with
  the windows last instead (``image_patches``: column ``4*p + w``, conv output
  (F*169, 4)), so that its window maximum is already the flat (F*169,) feature vector.
  With the windows on axis 2, XLA copied the pooled (F, 169) into the dense layer's
  operand element by element: measured 1.4x slower for a group of 8 seeds, the same
  for one seed;
* the dense weights are stored transposed and reordered as (C, F*169), so the pooled
  features of one image flatten without a copy.

``to_fast`` / ``from_fast`` convert ``Params`` exactly (pure reorderings). Gradients
are batch means. ``manual_grads`` chains the report's hand-derived steps from
``backprop`` (logits_backward, window_max_backward, the conv's ``sum dL/dout * image``;
the batch step writes window_max_backward's arithmetic out one window slot at a time,
``_route_to_slots``, the same numbers); ``autodiff_grads`` is ``jax.grad`` of ``loss``.
The tests check both against ``backprop.grads`` and ``jax.grad(model.loss)`` to 1e-12
in float64.
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
WINDOW_SLOTS = ((0, 0), (0, 1), (1, 0), (1, 1))  # slot w = 2a + c: pixel (2i+a, 2j+c)
BATCH_SLICE = 128
"""Most images per pass of a mini-batch step; larger batches run in ``lax.scan`` slices."""


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


@functools.lru_cache(maxsize=1)
def _window_tables() -> tuple[np.ndarray, np.ndarray]:
    """Index tables between the (F, 9) filters and the (4F, 16) window filters.

    ``to_window[w, 4u + v]``: the filter entry ``3x + y`` that multiplies phase pixel
    ``(u, v)`` in window slot ``w = 2a + c`` (``x = u - a``, ``y = v - c``), or 9 (a zero)
    when ``(u, v)`` lies outside that slot's 3x3 patch. ``from_window[w, 3x + y]``: the
    column ``4(a + x) + (c + y)`` that holds filter entry ``(x, y)`` in slot w.
    """
    to_window = np.full((4, 16), 9, np.int32)
    from_window = np.zeros((4, 9), np.int32)
    for w, (a, c) in enumerate(WINDOW_SLOTS):
        for x in range(3):
            for y in range(3):
                to_window[w, 4 * (a + x) + c + y] = 3 * x + y
                from_window[w, 3 * x + y] = 4 * (a + x) + c + y
    to_window.flags.writeable = from_window.flags.writeable = False
    return to_window, from_window


def window_filters(filters: jax.Array) -> jax.Array:
    """Filters (F, 9) -> window filters (4F, 16): row ``w*F + f`` applied to the
    ``phase_patches`` of a pool cell gives conv pixel ``(2i+a, 2j+c)`` of filter f
    (slot ``w = 2a + c``). Entry ``[w*F + f, 4u + v]`` is ``filters[f, 3(u-a) + (v-c)]``,
    or 0 where ``(u - a, v - c)`` is outside the 3x3 filter (7 of 16 per row)."""
    f = filters.shape[0]
    padded = jnp.concatenate([filters, jnp.zeros((f, 1), filters.dtype)], axis=1)
    return padded[:, _window_tables()[0]].transpose(1, 0, 2).reshape(4 * f, 16)


def window_filters_backward(d_window: jax.Array) -> jax.Array:
    """The VJP of ``window_filters``: dL/d(window filters) (4F, 16) -> dL/dfilters (F, 9),
    each filter entry's 4 slots summed in slot order ``((w0 + w1) + w2) + w3``."""
    f = d_window.shape[0] // 4
    d_window = d_window.reshape(4, f, 16)
    from_window = _window_tables()[1]
    parts = [d_window[w][:, from_window[w]] for w in range(4)]
    return ((parts[0] + parts[1]) + parts[2]) + parts[3]


def phase_patches(images: jax.Array) -> jax.Array:
    """Normalised images (B, 28, 28) -> (16, B*169): row ``4u + v``, column ``b*169 + p``
    is pixel ``(2i + u, 2j + v)`` of image b, pool cell ``p = 13i + j``, u, v in 0..3.

    The 4x4 pixels under a pool cell's 2x2 window of 3x3 patches: every conv pixel of
    the window is one row of ``window_filters`` times this column (16 numbers per cell
    instead of the 4 x 9 of ``patches``). 16 strided slices, stacked.
    """
    b = images.shape[0]
    rows = [images[:, u:u + 2 * POOL_SIZE - 1:2, v:v + 2 * POOL_SIZE - 1:2]
            for u in range(4) for v in range(4)]  # each (B, 13, 13)
    return jnp.stack(rows).reshape(16, b * CELLS)


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
    One image (B = 1, the report's per-image SGD) takes ``_manual_grads_image``; a batch
    goes through ``manual_grads_part`` (the window-major layout of the module docstring,
    in ``lax.scan`` slices of at most ``BATCH_SLICE`` images when it is larger), in
    ``batch_parts`` parts whose gradients are added in a ``lax.scan`` (an even batch of
    ``PARTS_FROM`` images or more: two; what a batch split over two devices computes).
    """
    batch = images.shape[0]
    if batch == 1:
        return _manual_grads_image(fast, images, labels, ties)
    parts = batch_parts(batch)
    if parts == 1:
        return manual_grads_part(fast, images, labels, ties, batch)
    size = batch // parts

    def one(total, xy):
        aux, grads = manual_grads_part(fast, xy[0], xy[1], ties, batch)
        return jax.tree.map(jnp.add, total, grads), aux

    grads, (losses, logits) = jax.lax.scan(
        one, _zeros_like(fast, None),
        (images.reshape(parts, size, *images.shape[1:]), labels.reshape(parts, size)))
    return (losses.reshape(batch), logits.reshape(batch, -1)), grads


BATCH_PARTS = 2
"""Parts of an even mini-batch of at least ``PARTS_FROM`` images: their gradients are
computed apart (in a ``lax.scan``) and added, so that a batch split over two devices
(``train.Placement``'s batch axis: each device one part, the parts' sum across them)
computes the one-device step's numbers bit for bit (tested for SGD, momentum and Adam).
That is what lets ``jaxcnn train`` split such a batch over two cores by default.
Measured on the 2-core Intel Xeon, quiet, wall time in a training chunk (median of 5
interleaved rounds): on one device the parts cost 0.84-0.87x at batch 64 and 128,
0.95-0.99x at 256 and 1024 (the price of the bits); split over two devices the step
ran 1.30x (64), 1.39-1.44x (128), 1.55x (256) and 1.73x (1024) the one-part step on one
device. Batch 32 split over two devices gained nothing (0.95x), hence ``PARTS_FROM``."""
PARTS_FROM = 64
"""Smallest batch computed in ``BATCH_PARTS`` parts (smaller ones: one part)."""


def batch_parts(batch: int) -> int:
    """How many equal parts a batch of ``batch`` images is computed in: ``BATCH_PARTS``
    when it divides a batch of at least ``PARTS_FROM`` images, else 1."""
    return BATCH_PARTS if batch >= PARTS_FROM and batch % BATCH_PARTS == 0 else 1


def manual_grads_part(fast: FastParams, images: jax.Array, labels: jax.Array, ties: str,
                      batch: int, axis: str | None = None):
    """``manual_grads`` of one part of a batch of ``batch`` images: its images' sums of
    ``dL/dparam / batch`` (``batch_parts``), in the window-major layout, in ``lax.scan``
    slices of at most ``BATCH_SLICE`` images when the part is larger. ``axis``: the
    ``shard_map`` mesh axis the part's images vary over (a split batch), else None."""
    if images.shape[0] <= BATCH_SLICE:
        return _manual_grads_batch(fast, images, labels, ties, batch)
    return _manual_grads_sliced(fast, images, labels, ties, batch, axis)


def _manual_grads_batch(fast: FastParams, images: jax.Array, labels: jax.Array, ties: str,
                        batch: int, keep: jax.Array | None = None):
    """``manual_grads`` of B images, (B, 28, 28) and (B,), in the window-major layout,
    as sums of ``dL/dparam / batch`` (``batch`` >= B: a slice of a larger batch).
    ``keep`` (B,) bool: images that count (the others get dL/dt = 0: padding).

    Every product is a matrix product over a contiguous axis; nothing of size
    B * 676 is transposed or copied element by element.
    """
    f = fast.filters.shape[0]
    c = fast.biases.shape[0]
    b = images.shape[0]
    cols = phase_patches(images)  # (16, B*169)
    conv = (window_filters(fast.filters) @ cols).reshape(4, f, b, CELLS)  # (4, F, B, 169)
    # the window maximum as three elementwise maxima (one loop fusion; XLA:CPU's reduce over
    # the leading axis of 4 took 2x as long in a batch-128 chunk), the same numbers
    pooled = jnp.maximum(jnp.maximum(jnp.maximum(conv[0], conv[1]), conv[2]), conv[3])
    weights = fast.weights.reshape(c, f, CELLS).transpose(1, 0, 2)  # (F, C, 169)
    batch_logits = _per_filter(pooled, weights, (2, 2)).sum(axis=0) + fast.biases  # (B, C)
    losses = jax.vmap(model.cross_entropy)(batch_logits, labels)
    # Steps (1)-(2): dL/dt per image, from the report's softmax Jacobian; mean over the batch.
    d_t = jax.vmap(backprop.logits_backward)(batch_logits, labels) / batch  # (B, C)
    if keep is not None:
        d_t = jnp.where(keep[:, None], d_t, 0)
    d_t_f = jnp.broadcast_to(d_t, (f, b, c))
    d_weights = _per_filter(d_t_f, pooled, (1, 1))  # input (x) dL/dt, summed: (F, C, 169)
    d_weights = d_weights.transpose(1, 0, 2).reshape(c, f * CELLS)
    d_biases = jnp.sum(d_t, axis=0)
    d_pooled = _per_filter(d_t_f, weights, (2, 1))  # W . dL/dt, (F, B, 169)
    # Step (3): the tie rule routes dL/dpool to the window maxima.
    d_conv = _route_to_slots(d_pooled, conv, pooled, ties)  # (4, F, B, 169)
    # Step (4): dL/dfilter(x, y) = sum over pixels of dL/dout * image(i+x, j+y).
    d_window_filters = jax.lax.dot_general(d_conv.reshape(4 * f, b * CELLS), cols,
                                           (((1,), (1,)), ((), ())))  # (4F, 16)
    d_filters = window_filters_backward(d_window_filters)
    return (losses, batch_logits), FastParams(d_filters, d_weights, d_biases)


def _route_to_slots(d_pooled: jax.Array, conv: jax.Array, pooled: jax.Array, ties: str
                    ) -> jax.Array:
    """``backprop.window_max_backward(d_pooled, conv, ties, axis=0, maxima=pooled)``, the
    same arithmetic written one window slot at a time and stacked: (4, F, B, 169).

    Spelled with ``d_pooled`` broadcast to the 4 slots, XLA:CPU moved that broadcast into
    the YNNPACK fusion of the ``d_pooled`` product, which then wrote (4, F, B, 169) instead
    of (F, B, 169) (measured in a batch-128 chunk: that product 204 -> 55 us per step).
    """
    if ties not in model.TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {model.TIE_RULES}")
    is_max = [conv[w] == pooled for w in range(4)]
    if ties == "report":
        share = [m.astype(conv.dtype) for m in is_max]
    elif ties == "first":  # the first maximum in slot order: cumsum(is_max) == 1
        share, seen = [], jnp.zeros_like(is_max[0])
        for m in is_max:
            share.append((m & ~seen).astype(conv.dtype))
            seen = seen | m
    else:  # "split": is_max / (number of maxima)
        count = sum(m.astype(jnp.int32) for m in is_max)
        share = [m / count.astype(conv.dtype) for m in is_max]
    return jnp.stack([s * d_pooled for s in share])


def _per_filter(a: jax.Array, b: jax.Array, contract: tuple[int, int]) -> jax.Array:
    """One matrix product per filter: leading axis F of both is the batch axis."""
    return jax.lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((0,), (0,))))


def batch_slices(batch: int) -> tuple[int, int]:
    """(slices, images per slice) of ``batch`` images (one part of a mini-batch step,
    ``batch_parts``): one pass up to ``BATCH_SLICE`` images, else the fewest equal slices
    of at most ``BATCH_SLICE`` (the last one padded when they do not divide the part:
    512 -> 4 x 128, 500 -> 4 x 125, 129 -> 2 x 65)."""
    slices = -(-batch // BATCH_SLICE)
    return slices, -(-batch // slices)


def _manual_grads_sliced(fast: FastParams, images: jax.Array, labels: jax.Array, ties: str,
                         batch: int, axis: str | None = None):
    """``manual_grads_part`` of a part larger than ``BATCH_SLICE``: a ``lax.scan`` over
    equal slices of at most ``BATCH_SLICE`` images (padded with images whose dL/dt is 0
    when the part does not divide), summing each slice's ``dL/dparam / batch`` in order,
    so that a slice's arrays stay in cache (measured: batch 1024 in one pass streamed
    65 MB through DRAM per step, 3x slower per image than batch 128)."""
    part = images.shape[0]
    slices, size = batch_slices(part)
    pad = slices * size - part
    keep = jnp.arange(slices * size) < part
    images = jnp.pad(images, ((0, pad), (0, 0), (0, 0))).reshape(slices, size, *images.shape[1:])
    labels = jnp.pad(labels, (0, pad)).reshape(slices, size)

    def one(total, xs):
        x, y, k = xs
        (losses, logits), grads = _manual_grads_batch(fast, x, y, ties, batch,
                                                      k if pad else None)
        return jax.tree.map(jnp.add, total, grads), (losses, logits)

    grads, (losses, logits) = jax.lax.scan(one, _zeros_like(fast, axis), (images, labels,
                                                        keep.reshape(slices, size)))
    return ((losses.reshape(-1)[:part], logits.reshape(-1, logits.shape[-1])[:part]),
            grads)


def _zeros_like(fast: FastParams, axis: str | None) -> FastParams:
    """Zeros shaped like ``fast``: a scan's initial gradient sum. ``axis``: the scan runs
    inside ``shard_map`` over that mesh axis (a split batch, ``train.Placement``), where
    the sums of each device's own images vary over it."""
    zeros = jax.tree.map(jnp.zeros_like, fast)
    return zeros if axis is None else jax.lax.pcast(zeros, (axis,), to="varying")


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
