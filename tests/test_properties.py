"""Property-based: for random filter counts (1-16), classes (2-12), labels and images,
the hand-derived gradients equal autodiff in float64.

Each new (F, C) shape compiles, so example counts are modest. Hypothesis runs its
examples inside one test call, so float64 is switched on with the ``jax.enable_x64``
context manager in the body (a function-scoped fixture would span all examples).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tree_rel_err
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxcnn import backprop, fast, model

TOL = 1e-12
SETTINGS = settings(max_examples=12, deadline=None)

filter_counts = st.integers(1, 16)
class_counts = st.integers(2, 12)
seeds = st.integers(0, 2**31 - 1)
# MNIST-like pixels: mostly background 0, a few stroke values -> many tied pool windows
tie_images = hnp.arrays(np.uint8, (28, 28),
                        elements=st.sampled_from([0, 0, 0, 0, 0, 0, 128, 255]))


def _params(seed, num_filters, num_classes):
    p = model.init_params(jax.random.key(seed), num_filters, num_classes)
    b = 0.5 * jax.random.normal(jax.random.key(seed ^ 1), p.biases.shape, p.biases.dtype)
    return p._replace(biases=b)


@functools.partial(jax.jit, static_argnums=3)
def _hand(params, image, label, ties):
    return backprop.grads(params, image, label, ties)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _both(params, image, label, hand_ties, auto_ties):
    """Hand-derived and autodiff (loss, grads) in one compilation per shape."""
    return (backprop.grads(params, image, label, hand_ties),
            jax.value_and_grad(model.loss)(params, image, label, auto_ties))


def _check(params, image, label, hand_ties, auto_ties):
    (loss, got), (want_loss, want) = _both(params, image, label, hand_ties, auto_ties)
    assert abs(float(loss) - float(want_loss)) <= TOL * max(1.0, abs(float(want_loss)))
    assert tree_rel_err(got, want) <= TOL


@SETTINGS
@given(num_filters=filter_counts, num_classes=class_counts, seed=seeds, data=st.data())
def test_grads_equal_jax_grad_on_tie_free_images(num_filters, num_classes, seed, data):
    label = data.draw(st.integers(0, num_classes - 1), label="label")
    ties = data.draw(st.sampled_from(model.TIE_RULES), label="ties")
    with jax.enable_x64(True):
        params = _params(seed, num_filters, num_classes)
        image = jax.random.uniform(jax.random.key(seed ^ 2), (28, 28), jnp.float64, -0.5, 0.5)
        # tie-free: every rule is the true gradient, so compare against the default "split"
        _check(params, image, label, ties, "split")


@SETTINGS
@given(num_filters=filter_counts, num_classes=class_counts, seed=seeds, pixels=tie_images,
       data=st.data())
def test_grads_equal_jax_grad_of_the_same_rule_with_ties(num_filters, num_classes, seed,
                                                         pixels, data):
    label = data.draw(st.integers(0, num_classes - 1), label="label")
    ties = data.draw(st.sampled_from(model.TIE_RULES), label="ties")
    with jax.enable_x64(True):
        params = _params(seed, num_filters, num_classes)
        _check(params, model.normalize(pixels), label, ties, ties)


_fast_manual = jax.jit(fast.manual_grads, static_argnums=3)


@settings(max_examples=6, deadline=None)
@given(num_filters=filter_counts, num_classes=class_counts, seed=seeds,
       batch=st.integers(1, 3), data=st.data())
def test_fast_grads_equal_batch_mean_with_ties(num_filters, num_classes, seed, batch, data):
    pixels = data.draw(st.lists(tie_images, min_size=batch, max_size=batch), label="images")
    labels = data.draw(st.lists(st.integers(0, num_classes - 1), min_size=batch,
                                max_size=batch), label="labels")
    ties = data.draw(st.sampled_from(model.TIE_RULES), label="ties")
    with jax.enable_x64(True):
        # Exact conv arithmetic: dyadic filters (multiples of 2^-10) and pixels (k/256 - 1/2),
        # so that every sum of products is the same number in any order. The two layouts
        # sum a pixel's 9 products in different orders, and on normalised digits a tied
        # window in one can be 1 ulp apart in the other (a constant image, report rule:
        # 8.6% apart in dL/dfilters); the report rule is discontinuous exactly there.
        params = _params(seed, num_filters, num_classes)
        params = params._replace(filters=jnp.round(params.filters * 1024) / 1024)
        images = jnp.asarray(np.stack(pixels), jnp.float64) / 256 - 0.5
        labels = jnp.asarray(labels)
        _, got = _fast_manual(fast.to_fast(params), images, labels, ties)
        per_image = jax.vmap(_hand, (None, 0, 0, None))(params, images, labels, ties)[1]
        want = jax.tree.map(lambda leaf: jnp.mean(leaf, axis=0), per_image)
        assert tree_rel_err(fast.from_fast(got), want) <= TOL


def test_x64_did_not_leak_from_the_properties():
    if os.environ.get("JAX_ENABLE_X64", "").lower() in ("1", "true"):
        pytest.skip("x64 enabled globally by the environment")
    assert jnp.zeros(1).dtype == jnp.float32
