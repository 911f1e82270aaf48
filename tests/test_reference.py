"""The NumPy reference (the report's / blog's algorithm) against jaxcnn, in float64.

The SGD test is the point: starting from the same parameters, a few per-image steps of
the report's original algorithm and of ``jaxcnn.backprop.grads(..., ties="report")``
agree to ~1e-12 on real MNIST digits, whose max-pool windows hold many tied maxima.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import backprop, data, model, reference
from jaxcnn.model import Params

LR = reference.LEARN_RATE
TOL = 1e-12


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    ds = data.load("mnist-embedded", train_size=5, test_size=1)
    return ds.train_images, ds.train_labels


def _params64(seed: int) -> Params:
    with jax.enable_x64(True):
        p = model.init_params(jax.random.key(seed), dtype=jnp.float64)
        return Params(*(np.asarray(a, dtype=np.float64) for a in p))


def _random_images(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, count))


def _assert_close(actual, expected, tol=TOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


def test_layer_shapes():
    rng = np.random.default_rng(0)
    image = rng.uniform(-0.5, 0.5, (28, 28))
    conv, pool, softmax = (reference.Conv3x3(8, rng), reference.MaxPool2(),
                           reference.Softmax(13 * 13 * 8, 10, rng))
    assert conv.filters.shape == (8, 3, 3) and conv.filters.dtype == np.float64
    assert softmax.weights.shape == (1352, 10) and not softmax.biases.any()
    conv_out = conv.forward(image)
    assert conv_out.shape == (26, 26, 8) and conv_out.dtype == np.float64
    pooled = pool.forward(conv_out)
    assert pooled.shape == (13, 13, 8)
    probs = softmax.forward(pooled)
    assert probs.shape == (10,)
    assert np.all(probs > 0) and np.isclose(probs.sum(), 1.0)
    d_pooled = softmax.backprop(np.eye(10)[3] * -1 / probs[3], LR)
    assert d_pooled.shape == (13, 13, 8)
    assert pool.backprop(d_pooled).shape == (26, 26, 8)
    assert conv.backprop(np.ones((26, 26, 8)), LR) is None


def test_conv_forward_matches_model():
    params = _params64(1)
    image = np.random.default_rng(1).uniform(-0.5, 0.5, (28, 28))
    out = reference.Conv3x3.from_filters(params.filters).forward(image)
    with jax.enable_x64(True):
        expected = model.conv3x3(jnp.asarray(image), jnp.asarray(params.filters))
    _assert_close(out, expected)


def test_network_forward_matches_model(digits):
    params = _params64(2)
    net = reference.Network.from_params(*params)
    images, labels = digits
    for image, label in zip(images, labels, strict=True):
        probs, loss, correct = net.forward(image, int(label))
        with jax.enable_x64(True):
            x = model.normalize(image, jnp.float64)
            expected = model.forward(Params(*map(jnp.asarray, params)), x)
            expected_loss = model.loss(Params(*map(jnp.asarray, params)), x, int(label))
        _assert_close(probs, expected)
        assert loss == pytest.approx(float(expected_loss), abs=1e-12)
        assert correct == int(np.argmax(expected) == label)


def _has_ties(filters: np.ndarray, image: np.ndarray) -> bool:
    with jax.enable_x64(True):
        conv = model.conv3x3(model.normalize(image, jnp.float64), jnp.asarray(filters))
        windows = model.pool_windows(conv)
        counts = jnp.sum(windows == jnp.max(windows, axis=-1, keepdims=True), axis=-1)
        return bool(jnp.any(counts > 1))


def _jax_sgd(params: Params, images, labels, ties: str) -> list[tuple[float, Params]]:
    """Per-image SGD with jaxcnn's hand-derived gradients; (loss, params after) per step."""
    steps = []
    with jax.enable_x64(True):
        p = Params(*map(jnp.asarray, params))
        for image, label in zip(images, labels, strict=True):
            loss, g = backprop.grads(p, model.normalize(image, jnp.float64), int(label), ties)
            p = Params(*(a - LR * b for a, b in zip(p, g, strict=True)))
            steps.append((float(loss), Params(*(np.asarray(a) for a in p))))
    return steps


def test_sgd_steps_match_jaxcnn_report_ties(digits):
    params = _params64(3)
    digit_images, digit_labels = digits
    random_images, random_labels = _random_images(3, 3)
    images = np.concatenate([digit_images, random_images])
    labels = np.concatenate([digit_labels, random_labels])
    assert _has_ties(params.filters, digit_images[0])  # the digits exercise the tie rule

    net = reference.Network.from_params(*params)
    expected = _jax_sgd(params, images, labels, ties="report")
    for image, label, (jax_loss, jax_params) in zip(images, labels, expected, strict=True):
        loss, _ = net.train_step(image, int(label), LR)
        assert loss == pytest.approx(jax_loss, abs=1e-12)
        for ours, theirs in zip(net.params(), jax_params, strict=True):
            _assert_close(ours, theirs)

    # The comparison is sensitive to the tie rule: sharing the gradient among tied
    # maxima ("split", jnp.max's autodiff) ends somewhere measurably different.
    split = _jax_sgd(params, images, labels, ties="split")[-1][1]
    assert np.max(np.abs(net.params()[0] - split.filters)) > 1e-6


def test_pool_tie_gives_every_maximum_the_full_gradient():
    x = np.zeros((2, 4, 2))
    x[:, :2, 0] = [[1.0, 3.0], [3.0, -2.0]]  # window (0, 0), filter 0: two tied maxima
    x[:, 2:, 0] = [[0.5, 0.5], [0.5, 0.5]]  # window (0, 1), filter 0: all four tie
    x[:, :2, 1] = [[4.0, 1.0], [2.0, 3.0]]  # window (0, 0), filter 1: a single maximum
    x[:, 2:, 1] = [[-1.0, -3.0], [-2.0, -4.0]]
    pool = reference.MaxPool2()
    np.testing.assert_array_equal(pool.forward(x), [[[3.0, 4.0], [0.5, -1.0]]])
    d_out = np.array([[[2.0, 5.0], [7.0, 11.0]]])
    d_x = pool.backprop(d_out)
    np.testing.assert_array_equal(d_x[:, :, 0], [[0.0, 2.0, 7.0, 7.0], [2.0, 0.0, 7.0, 7.0]])
    np.testing.assert_array_equal(d_x[:, :, 1], [[5.0, 0.0, 11.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


def test_softmax_backprop_formulas_and_update_order():
    rng = np.random.default_rng(4)
    weights, biases = rng.standard_normal((12, 5)), rng.standard_normal(5)
    layer = reference.Softmax.from_params(weights, biases)
    x = rng.standard_normal((3, 4))
    probs = layer.forward(x)
    label = 2
    d_inputs = layer.backprop(np.eye(5)[label] * -1 / probs[label], 0.1)
    d_t = probs - np.eye(5)[label]  # the textbook result the report's formulas reduce to
    np.testing.assert_allclose(d_inputs, (weights @ d_t).reshape(3, 4), atol=1e-14)
    np.testing.assert_allclose(layer.weights, weights - 0.1 * np.outer(x.ravel(), d_t),
                               atol=1e-14)
    np.testing.assert_allclose(layer.biases, biases - 0.1 * d_t, atol=1e-14)
    assert not np.shares_memory(layer.weights, weights)  # the caller's arrays stay put


def test_network_init_train_step_and_params_copies():
    net = reference.Network(rng=0)
    filters, weights, biases = net.params()
    assert filters.shape == (8, 3, 3) and weights.shape == (1352, 10) and biases.shape == (10,)
    np.testing.assert_array_equal(net.params()[0], reference.Network(rng=0).params()[0])
    filters[:] = 0  # a copy: the network is untouched
    assert np.any(net.params()[0] != 0)

    image, label = _random_images(5, 1)
    probs, loss, correct = net.forward(image[0], int(label[0]))
    step_loss, step_correct = net.train_step(image[0].astype(np.float64), int(label[0]))
    assert (step_loss, step_correct) == (loss, correct)
    assert loss == pytest.approx(-np.log(probs[label[0]]))
    assert not np.array_equal(net.params()[1], weights)

    with pytest.raises(ValueError, match="rows"):
        reference.Network.from_params(np.zeros((4, 3, 3)), np.zeros((1352, 10)), np.zeros(10))
