"""fast.py: the compute layout is a pure reordering of model.py / backprop.py.

Parameters round-trip exactly, ``patches`` has the layout its docstring states, and the
batched logits and gradients (hand-derived and autodiff, every tie rule, on a batch with
tied pool windows) equal the per-image functions to 1e-12 in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rel_err, tree_rel_err

from jaxcnn import backprop, fast, model

TOL = 1e-12


def _params(num_filters=8, num_classes=10, seed=0):
    p = model.init_params(jax.random.key(seed), num_filters, num_classes)
    return p._replace(biases=0.3 * jax.random.normal(jax.random.key(seed + 1), p.biases.shape,
                                                     p.biases.dtype))


def _batch(size=4, seed=0):
    """Images with ties: a flat -0.5 background (MNIST-like) around a random block, and one
    fully random image; labels cycle through the classes."""
    keys = jax.random.split(jax.random.key(seed), size)
    images = []
    for b, key in enumerate(keys):
        if b == size - 1:
            images.append(jax.random.uniform(key, (28, 28), jnp.float64, -0.5, 0.5))
        else:
            blob = jax.random.uniform(key, (8 + b, 10), jnp.float64, -0.5, 0.5)
            images.append(jnp.full((28, 28), -0.5).at[6 + b:14 + 2 * b, 9:19].set(blob))
    return jnp.stack(images), jnp.arange(size) % 3


def _tie_share(params, images):
    conv = jax.vmap(lambda x: model.conv3x3(x, params.filters))(images)
    w = np.asarray(jax.vmap(model.pool_windows)(conv))
    return np.mean(np.sum(w == w.max(axis=-1, keepdims=True), axis=-1) > 1)


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("num_filters,num_classes", [(8, 10), (3, 4)])
def test_to_fast_from_fast_round_trip_is_exact(num_filters, num_classes):
    params = _params(num_filters, num_classes)
    fp = fast.to_fast(params)
    assert isinstance(fp, fast.FastParams)
    assert fp.filters.shape == (num_filters, 9)
    assert fp.weights.shape == (num_classes, num_filters * 169)
    assert fp.biases.shape == (num_classes,)
    back = fast.from_fast(fp)
    assert isinstance(back, model.Params)
    for got, want in zip(back, params, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    arbitrary = fast.FastParams(*(jnp.asarray(np.random.default_rng(1).normal(size=leaf.shape),
                                              jnp.float32) for leaf in fp))
    for got, want in zip(fast.to_fast(fast.from_fast(arbitrary)), arbitrary, strict=True):
        np.testing.assert_array_equal(got, want)


def test_fast_params_layout_is_the_docstrings():
    """filters [f, 3x + y] = filter f at (x, y); weights [c, f*169 + p] = W[p*F + f, c]."""
    f, c = 3, 4
    params = _params(f, c)
    fp = fast.to_fast(params)
    filters, weights = np.asarray(params.filters), np.asarray(params.weights)
    for k in range(f):
        for x in range(3):
            for y in range(3):
                assert fp.filters[k, 3 * x + y] == filters[k, x, y]
    p_idx, f_idx, c_idx = np.meshgrid(np.arange(169), np.arange(f), np.arange(c), indexing="ij")
    np.testing.assert_array_equal(np.asarray(fp.weights)[c_idx, f_idx * 169 + p_idx],
                                  weights[p_idx * f + f_idx, c_idx])
    np.testing.assert_array_equal(fp.biases, params.biases)


@pytest.mark.parametrize("batch", [1, 2])  # one image and a batch take different code paths
def test_patches_layout_is_the_docstrings(batch):
    """Column b*676 + 169*w + p is the patch under conv pixel (2i+a, 2j+c) of image b,
    with p = 13*i + j and w = 2*a + c; row 3x + y holds image[b, 2i+a+x, 2j+c+y]."""
    images = np.random.default_rng(0).normal(size=(batch, 28, 28)).astype(np.float32)
    cols = np.asarray(fast.patches(jnp.asarray(images)))
    assert cols.shape == (9, batch * 676)
    for b in range(batch):
        for a in range(2):
            for c in range(2):
                for i in range(13):
                    for j in range(13):
                        column = b * 676 + 169 * (2 * a + c) + 13 * i + j
                        patch = images[b, 2 * i + a:2 * i + a + 3, 2 * j + c:2 * j + c + 3]
                        np.testing.assert_array_equal(cols[:, column], patch.reshape(9))


def test_phase_patches_layout_is_the_docstrings():
    """Row 4u + v, column b*169 + p (p = 13i + j) is pixel (2i + u, 2j + v) of image b."""
    images = np.random.default_rng(2).normal(size=(2, 28, 28)).astype(np.float32)
    cols = np.asarray(fast.phase_patches(jnp.asarray(images)))
    assert cols.shape == (16, 2 * 169)
    b, u, v, i, j = np.meshgrid(np.arange(2), np.arange(4), np.arange(4), np.arange(13),
                                np.arange(13), indexing="ij")
    np.testing.assert_array_equal(cols[4 * u + v, b * 169 + 13 * i + j],
                                  images[b, 2 * i + u, 2 * j + v])


def test_window_filters_times_phase_patches_is_the_conv(x64):
    """Row w*F + f of window_filters @ phase_patches, column b*169 + 13i + j, is conv
    pixel (2i + a, 2j + c) of filter f on image b (w = 2a + c), as model.conv3x3."""
    params = _params(3, 4)
    images, _ = _batch()
    conv = np.asarray(fast.window_filters(fast.to_fast(params).filters)
                      @ fast.phase_patches(images)).reshape(2, 2, 3, 4, 13, 13)
    want = np.asarray(jax.vmap(lambda x: model.conv3x3(x, params.filters))(images))
    want = want.reshape(4, 13, 2, 13, 2, 3).transpose(2, 4, 5, 0, 1, 3)  # (a, c, f, b, i, j)
    assert rel_err(conv, want) <= TOL


def test_window_filters_backward_is_its_vjp(x64):
    filters = fast.to_fast(_params(3, 4)).filters
    d_window = jax.random.normal(jax.random.key(3), (12, 16), jnp.float64)
    _, vjp = jax.vjp(fast.window_filters, filters)
    (want,) = vjp(d_window)
    got = fast.window_filters_backward(d_window)
    assert got.shape == (3, 9)
    assert rel_err(got, want) <= TOL


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("ties,num_filters,num_classes",
                         [("split", 8, 10), ("first", 3, 4), ("report", 1, 2)])
def test_logits_equal_vmapped_model_logits(x64, ties, num_filters, num_classes):
    params = _params(num_filters, num_classes)
    images, _ = _batch()
    got = fast.logits(fast.to_fast(params), images, ties)
    want = jax.vmap(model.logits, (None, 0))(params, images)
    assert got.shape == (4, num_classes)
    assert rel_err(got, want) <= TOL


def test_loss_is_the_batch_mean_and_aux(x64):
    params = _params()
    images, labels = _batch()
    mean, (losses, logits) = fast.loss(fast.to_fast(params), images, labels)
    want = jax.vmap(model.loss, (None, 0, 0))(params, images, labels)
    assert rel_err(losses, want) <= TOL
    assert float(mean) == pytest.approx(float(np.mean(want)), rel=TOL)
    assert rel_err(logits, jax.vmap(model.logits, (None, 0))(params, images)) <= TOL


# ---------------------------------------------------------------- gradients


@pytest.fixture
def batch_with_ties(x64):
    params = _params(5, 7)
    images, labels = _batch()
    assert _tie_share(params, images) > 0.3
    return params, images, labels


def _mean_over_batch(fn, params, images, labels):
    per_image = jax.vmap(fn, (None, 0, 0))(params, images, labels)
    return jax.tree.map(lambda leaf: jnp.mean(leaf, axis=0), per_image)


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_manual_grads_are_batch_mean_of_backprop_grads(batch_with_ties, ties):
    params, images, labels = batch_with_ties
    (losses, logits), got = fast.manual_grads(fast.to_fast(params), images, labels, ties)
    want = _mean_over_batch(lambda p, x, y: backprop.grads(p, x, y, ties)[1],
                            params, images, labels)
    assert tree_rel_err(fast.from_fast(got), want) <= TOL
    assert rel_err(losses, jax.vmap(model.loss, (None, 0, 0))(params, images, labels)) <= TOL
    assert rel_err(logits, jax.vmap(model.logits, (None, 0))(params, images)) <= TOL


# an odd batch in one part of even slices and of a padded one; two parts (fast.BATCH_PARTS)
# each in even slices, each in padded ones
@pytest.mark.parametrize("slice_size,batch", [(2, 3), (2, 5), (2, 8), (2, 6)])
def test_manual_grads_in_slices_are_the_batch_mean(x64, monkeypatch, slice_size, batch):
    """A part above fast.BATCH_SLICE runs in lax.scan slices (the last one padded with
    images that must not count): still the batch mean of the report's gradients."""
    monkeypatch.setattr(fast, "BATCH_SLICE", slice_size)
    monkeypatch.setattr(fast, "PARTS_FROM", 2)
    params = _params(5, 7)
    images, labels = _batch(batch)
    for ties in model.TIE_RULES:
        (losses, logits), got = fast.manual_grads(fast.to_fast(params), images, labels, ties)
        want = _mean_over_batch(lambda p, x, y, t=ties: backprop.grads(p, x, y, t)[1],
                                params, images, labels)
        assert tree_rel_err(fast.from_fast(got), want) <= TOL
        assert losses.shape == (batch,) and logits.shape == (batch, 7)
        assert rel_err(losses, jax.vmap(model.loss, (None, 0, 0))(params, images, labels)) <= TOL
        assert rel_err(logits, jax.vmap(model.logits, (None, 0))(params, images)) <= TOL


def test_an_even_batch_is_the_sum_of_its_parts(monkeypatch):
    """An even batch from fast.PARTS_FROM images is fast.BATCH_PARTS parts whose gradients
    are added (what a batch split over two devices computes, one part each): the same
    numbers bit for bit, float32."""
    assert [fast.batch_parts(b) for b in (1, 2, 32, 63, 64, 65, 66, 128, 1024)] == [
        1, 1, 1, 1, 2, 1, 2, 2, 2]
    monkeypatch.setattr(fast, "PARTS_FROM", 2)
    params = fast.to_fast(_params())
    images, labels = _batch(8, seed=3)
    images = images.astype(np.float32)
    params = jax.tree.map(lambda a: a.astype(np.float32), params)
    for ties in model.TIE_RULES:
        whole = jax.jit(fast.manual_grads, static_argnums=3)(params, images, labels, ties)
        part = jax.jit(fast.manual_grads_part, static_argnums=(3, 4))
        (l0, g0), (l1, g1) = (part(params, images[s], labels[s], ties, 8)
                              for s in (slice(0, 4), slice(4, 8)))
        summed = jax.tree.map(jnp.add, g0, g1)
        for got, want in zip(jax.tree.leaves(whole[1]), jax.tree.leaves(summed), strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        np.testing.assert_array_equal(np.asarray(whole[0][0]),
                                      np.concatenate([np.asarray(l0[0]), np.asarray(l1[0])]))


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_manual_grads_of_one_image_equal_backprop_grads(batch_with_ties, ties):
    """One image takes its own code path (windows last, matrix-vector products): the
    report's gradients of each image, tied windows included, to 1e-12 in float64."""
    params, images, labels = batch_with_ties
    for b in range(images.shape[0]):
        (losses, logits), got = fast.manual_grads(fast.to_fast(params), images[b:b + 1],
                                                  labels[b:b + 1], ties)
        loss, want = backprop.grads(params, images[b], labels[b], ties)
        assert tree_rel_err(fast.from_fast(got), want) <= TOL
        assert losses.shape == (1,) and logits.shape == (1, 7)
        assert rel_err(losses[0], loss) <= TOL
        assert rel_err(logits[0], model.logits(params, images[b])) <= TOL


def test_image_patches_layout_is_the_docstrings():
    """Column 4*p + w is the patch under conv pixel (2i+a, 2j+c), p = 13*i + j, w = 2*a + c."""
    image = np.random.default_rng(1).normal(size=(28, 28)).astype(np.float32)
    cols = np.asarray(fast.image_patches(jnp.asarray(image)))
    assert cols.shape == (9, 676)
    for a in range(2):
        for c in range(2):
            for i in range(13):
                for j in range(13):
                    patch = image[2 * i + a:2 * i + a + 3, 2 * j + c:2 * j + c + 3]
                    np.testing.assert_array_equal(cols[:, 4 * (13 * i + j) + 2 * a + c],
                                                  patch.reshape(9))


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_autodiff_grads_are_batch_mean_of_jax_grad(batch_with_ties, ties):
    params, images, labels = batch_with_ties
    (losses, _), got = fast.autodiff_grads(fast.to_fast(params), images, labels, ties)
    want = _mean_over_batch(lambda p, x, y: jax.grad(model.loss)(p, x, y, ties),
                            params, images, labels)
    assert tree_rel_err(fast.from_fast(got), want) <= TOL
    assert rel_err(losses, jax.vmap(model.loss, (None, 0, 0))(params, images, labels)) <= TOL


def test_manual_and_autodiff_agree_except_report_filters(batch_with_ties):
    params, images, labels = batch_with_ties
    fp = fast.to_fast(params)
    assert set(fast.GRADIENTS) == {"manual", "autodiff"}
    manual = {t: fast.GRADIENTS["manual"](fp, images, labels, t)[1] for t in model.TIE_RULES}
    auto = fast.GRADIENTS["autodiff"](fp, images, labels)[1]  # default: "split"
    assert tree_rel_err(manual["split"], auto) <= TOL
    assert tree_rel_err(manual["first"], auto) <= TOL  # ties over flat background: see test_ties
    assert rel_err(manual["report"].weights, auto.weights) <= TOL
    assert rel_err(manual["report"].filters, auto.filters) > 1e-3
    default = fast.manual_grads(fp, images, labels)[1]
    assert tree_rel_err(default, manual["report"]) == 0


def test_grads_jit_and_single_image(x64):
    params = _params(2, 3)
    images, labels = _batch(1, seed=5)
    fp = fast.to_fast(params)
    _, got = jax.jit(fast.manual_grads, static_argnums=3)(fp, images, labels, "split")
    want = jax.grad(model.loss)(params, images[0], labels[0])
    assert tree_rel_err(fast.from_fast(got), want) <= TOL
