"""model.py: layer shapes and dtypes, each layer against the report's literal formula
(NumPy loops), the initialisation, normalisation and the loss."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rel_err

from jaxcnn import backprop, model

RNG = np.random.default_rng(20240601)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (28, 28))


def _params(num_filters=8, num_classes=10, seed=0):
    return model.init_params(jax.random.key(seed), num_filters, num_classes)


# ---------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize("num_filters,num_classes", [(8, 10), (1, 2)])
def test_layer_shapes_and_dtypes_float32(num_filters, num_classes):
    params = _params(num_filters, num_classes)
    image = jnp.asarray(_image(), jnp.float32)
    conv = model.conv3x3(image, params.filters)
    assert conv.shape == (26, 26, num_filters) and conv.dtype == jnp.float32
    for ties in model.TIE_RULES:
        pooled = model.maxpool2(conv, ties)
        assert pooled.shape == (13, 13, num_filters) and pooled.dtype == jnp.float32
    out = model.dense(pooled, params.weights, params.biases)
    assert out.shape == (num_classes,) and out.dtype == jnp.float32
    assert model.logits(params, image).shape == (num_classes,)
    probs = model.forward(params, image)
    assert probs.shape == (num_classes,) and probs.dtype == jnp.float32
    assert np.all(np.asarray(probs) > 0)
    assert float(jnp.sum(probs)) == pytest.approx(1.0, abs=1e-6)
    pred = model.predict(params, image)
    assert pred.shape == () and jnp.issubdtype(pred.dtype, jnp.integer)
    assert int(pred) == int(np.argmax(np.asarray(probs)))
    loss = model.loss(params, image, 0)
    assert loss.shape == () and loss.dtype == jnp.float32


def test_layer_dtypes_float64(x64):
    params = _params()
    assert all(leaf.dtype == jnp.float64 for leaf in params)
    image = jnp.asarray(_image())
    assert image.dtype == jnp.float64
    conv = model.conv3x3(image, params.filters)
    assert conv.dtype == jnp.float64
    assert model.maxpool2(conv).dtype == jnp.float64
    probs = model.forward(params, image)
    assert probs.dtype == jnp.float64
    assert float(jnp.sum(probs)) == pytest.approx(1.0, abs=1e-14)
    assert model.loss(params, image, 3).dtype == jnp.float64


def test_forward_is_softmax_of_logits_and_predict_is_argmax(x64):
    params = _params(seed=3)
    params = params._replace(biases=jnp.asarray(RNG.normal(size=10)))
    for seed in range(3):
        image = jnp.asarray(_image(seed))
        t = np.asarray(model.logits(params, image))
        p = np.exp(t - t.max())
        p /= p.sum()
        assert rel_err(model.forward(params, image), p) <= 1e-14
        assert int(model.predict(params, image)) == int(np.argmax(t))


def test_vmap_over_a_batch(x64):
    params = _params()
    images = jnp.asarray(np.stack([_image(s) for s in range(3)]))
    batched = jax.vmap(model.logits, (None, 0))(params, images)
    assert batched.shape == (3, 10)
    for b in range(3):
        assert rel_err(batched[b], model.logits(params, images[b])) <= 1e-14


# ---------------------------------------------------------------- layers vs literal formulas


def _conv_loops(image: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """The report's out(i,j) = sum_{x,y} image(i+x, j+y) * filter(x, y), per filter."""
    f = filters.shape[0]
    out = np.zeros((26, 26, f))
    for k in range(f):
        for i in range(26):
            for j in range(26):
                total = 0.0
                for x in range(3):
                    for y in range(3):
                        total += image[i + x, j + y] * filters[k, x, y]
                out[i, j, k] = total
    return out


def test_conv3x3_is_the_reports_formula(x64):
    image = _image(1)
    filters = RNG.normal(size=(3, 3, 3))  # asymmetric filters: a flip or transpose shows
    got = model.conv3x3(jnp.asarray(image), jnp.asarray(filters))
    assert rel_err(got, _conv_loops(image, filters)) <= 1e-13


def test_conv3x3_is_valid_cross_correlation(x64):
    """Independent second reference: lax.conv_general_dilated (no kernel flip)."""
    image, filters = jnp.asarray(_image(2)), jnp.asarray(RNG.normal(size=(5, 3, 3)))
    want = jax.lax.conv_general_dilated(image[None, None], filters[:, None], (1, 1), "VALID")
    assert rel_err(model.conv3x3(image, filters), want[0].transpose(1, 2, 0)) <= 1e-13


def test_im2col_layout():
    image = np.arange(28 * 28, dtype=np.float32).reshape(28, 28)
    cols = np.asarray(model.im2col(jnp.asarray(image)))
    assert cols.shape == (26, 26, 9)
    for x in range(3):
        for y in range(3):
            np.testing.assert_array_equal(cols[:, :, 3 * x + y], image[x:x + 26, y:y + 26])


def test_pool_windows_layout_and_inverse():
    x = np.arange(26 * 26 * 3, dtype=np.float32).reshape(26, 26, 3)
    windows = np.asarray(model.pool_windows(jnp.asarray(x)))
    assert windows.shape == (13, 13, 3, 4)
    for i in range(13):
        for j in range(13):
            for a in range(2):
                for c in range(2):
                    np.testing.assert_array_equal(windows[i, j, :, 2 * a + c],
                                                  x[2 * i + a, 2 * j + c, :])
    np.testing.assert_array_equal(model.unpool_windows(jnp.asarray(windows)), x)


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_maxpool2_value_is_the_window_max(ties):
    x = RNG.normal(size=(26, 26, 4)).astype(np.float32)
    x[:6, :6] = 1.0  # tied windows too: the value must not depend on the rule
    want = np.zeros((13, 13, 4), np.float32)
    for i in range(13):
        for j in range(13):
            want[i, j] = x[2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(0, 1))
    np.testing.assert_array_equal(model.maxpool2(jnp.asarray(x), ties), want)


def test_dense_flatten_order_is_h_w_f(x64):
    f, c = 3, 4  # F != C != 13, so any other flatten order gives other numbers
    x, w, b = RNG.normal(size=(13, 13, f)), RNG.normal(size=(169 * f, c)), RNG.normal(size=c)
    want = b.copy()
    for k in range(c):
        for h in range(13):
            for ww in range(13):
                for ff in range(f):
                    want[k] += x[h, ww, ff] * w[(h * 13 + ww) * f + ff, k]
    got = model.dense(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    assert rel_err(got, want) <= 1e-13


def test_logits_is_the_composition_of_the_literal_layers(x64):
    f, c = 2, 3
    image, filters = _image(4), RNG.normal(size=(f, 3, 3))
    w, b = RNG.normal(size=(169 * f, c)), RNG.normal(size=c)
    conv = _conv_loops(image, filters)
    pooled = conv.reshape(13, 2, 13, 2, f).max(axis=(1, 3))
    want = pooled.reshape(-1) @ w + b  # C-order reshape of (H, W, F): (H, W, F) flatten
    got = model.logits(model.Params(*map(jnp.asarray, (filters, w, b))), jnp.asarray(image))
    assert rel_err(got, want) <= 1e-13


# ---------------------------------------------------------------- init, normalize, loss


def test_init_params_shapes_dtype_and_zero_biases():
    p = model.init_params(jax.random.key(0))
    assert isinstance(p, model.Params)
    assert p.filters.shape == (8, 3, 3) and p.weights.shape == (1352, 10)
    assert p.biases.shape == (10,)
    assert all(leaf.dtype == jnp.float32 for leaf in p)
    np.testing.assert_array_equal(p.biases, 0)
    q = model.init_params(jax.random.key(0), 5, 7)
    assert q.filters.shape == (5, 3, 3) and q.weights.shape == (169 * 5, 7)
    assert q.biases.shape == (7,)
    r = model.init_params(jax.random.key(0), dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in r)


def test_init_params_float64_under_x64(x64):
    p = model.init_params(jax.random.key(0))
    assert all(leaf.dtype == jnp.float64 for leaf in p)


def test_init_params_statistics():
    """filters ~ N(0,1)/9 and weights ~ N(0,1)/(13*13*F)."""
    for num_filters in (8, 64):
        p = model.init_params(jax.random.key(1), num_filters)
        filters = np.asarray(p.filters, np.float64) * 9
        weights = np.asarray(p.weights, np.float64) * (169 * num_filters)
        n = filters.size  # 72 or 576 samples: std error of the std is 1/sqrt(2n)
        assert abs(filters.mean()) < 5 / np.sqrt(n)
        assert abs(filters.std() - 1) < 5 / np.sqrt(2 * n)
        assert abs(weights.mean()) < 0.05
        assert abs(weights.std() - 1) < 0.05
        # roughly normal: about 68% within one standard deviation
        assert abs(np.mean(np.abs(weights) < 1) - 0.6827) < 0.02


def test_init_params_deterministic_per_key():
    a, b = model.init_params(jax.random.key(5)), model.init_params(jax.random.key(5))
    c = model.init_params(jax.random.key(6))
    for la, lb in zip(a, b, strict=True):
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a.filters, c.filters)
    assert not np.array_equal(a.weights, c.weights)


@pytest.mark.parametrize("num_filters,num_classes", [(0, 10), (8, 1), (-1, 5)])
def test_init_params_rejects_bad_sizes(num_filters, num_classes):
    with pytest.raises(ValueError):
        model.init_params(jax.random.key(0), num_filters, num_classes)


def test_normalize():
    pixels = np.array([[0, 51, 255]], np.uint8)
    out = model.normalize(pixels)
    assert out.dtype == jnp.float32
    assert float(out[0, 0]) == -0.5 and float(out[0, 2]) == 0.5
    assert float(out[0, 1]) == pytest.approx(51 / 255 - 0.5, abs=1e-7)
    all_pixels = np.asarray(model.normalize(np.arange(256, dtype=np.uint8)))
    assert np.all(np.diff(all_pixels) > 0)
    assert all_pixels.min() == -0.5 and all_pixels.max() == 0.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalize_gives_the_same_bits_in_every_context(dtype):
    """Eager x / 255 - 0.5 divided, XLA under jit multiplied by a rounded 1/255 (158 of
    the 256 float32 values differed, 255 became 0.50000006): training normalised under
    jit and evaluate eagerly, so evaluate's test loss differed from training's. Now every
    context gives the correctly rounded value."""
    from fractions import Fraction

    pixels = np.arange(256, dtype=np.uint8)
    with jax.enable_x64(dtype == "float64"):
        eager = np.asarray(model.normalize(pixels, dtype))
        jitted = np.asarray(jax.jit(model.normalize, static_argnums=1)(pixels, dtype))
        inside = np.asarray(jax.jit(lambda p: model.normalize(p, dtype) * 1)(pixels))
    exact = [Fraction(x, 255) - Fraction(1, 2) for x in range(256)]
    assert eager.dtype == dtype
    for got in (jitted, inside):
        np.testing.assert_array_equal(got, eager)
    for value, want in zip(eager, exact, strict=True):  # nearest: no neighbour is closer
        for other in (np.nextafter(value, value.dtype.type(-1)),
                      np.nextafter(value, value.dtype.type(1))):
            assert abs(Fraction(float(value)) - want) < abs(Fraction(float(other)) - want)
    assert eager[0] == -0.5 and eager[255] == 0.5


def test_normalize_float64_is_exact_formula(x64):
    pixels = np.arange(256, dtype=np.uint8)
    out = model.normalize(pixels)
    assert out.dtype == jnp.float64
    assert out[0] == -0.5 and out[255] == 0.5
    np.testing.assert_allclose(out, pixels / 255.0 - 0.5, rtol=0, atol=2e-16)


def test_loss_is_minus_log_probability(x64):
    params = _params(seed=2)._replace(biases=jnp.asarray(RNG.normal(size=10)))
    image = jnp.asarray(_image(5))
    t = np.asarray(model.logits(params, image))
    log_p = t - t.max() - np.log(np.sum(np.exp(t - t.max())))
    for label in range(10):
        assert float(model.loss(params, image, label)) == pytest.approx(-log_p[label], rel=1e-13)
        assert float(model.cross_entropy(jnp.asarray(t), label)) == pytest.approx(-log_p[label],
                                                                                 rel=1e-13)


def test_loss_is_finite_for_huge_logits():
    params = _params(seed=4)
    params = params._replace(weights=params.weights * 1e6)  # logits in the thousands
    image = jnp.asarray(_image(6), jnp.float32)
    t = np.asarray(model.logits(params, image), np.float64)
    assert np.ptp(t) > 1000  # exp would overflow in float32 without the max shift
    for label in range(10):
        loss = float(model.loss(params, image, label))
        want = np.max(t) - t[label]  # -log p_c = logsumexp(t) - t_c, and logsumexp ~ max
        assert np.isfinite(loss) and loss == pytest.approx(want, rel=1e-4, abs=1e-3)
        grads = jax.grad(model.loss)(params, image, label)
        assert all(np.all(np.isfinite(leaf)) for leaf in grads)


def test_cross_entropy_huge_logits():
    t = jnp.array([1.0, 2.0, -3.0]) * 1000
    np.testing.assert_allclose(jax.vmap(model.cross_entropy, (None, 0))(t, jnp.arange(3)),
                               [1000.0, 0.0, 5000.0])


def test_cross_entropy_of_a_label_out_of_range_is_nan_not_another_class():
    t = jnp.array([0.5, -1.0, 2.0])
    for label in (3, 10, -4):
        assert np.isnan(float(model.cross_entropy(t, label)))
    assert np.isfinite(float(model.cross_entropy(t, 2)))


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_jitted_layers_give_the_eager_numbers_bit_for_bit(x64, ties):
    """The layers are jax.jit functions (one dispatch each for eager callers); compiled,
    they compute exactly what their operations compute one by one, gradients too, with
    jaxlib 0.10 (jaxlib 0.9, the lower bound, rounds a few numbers differently in their
    last bits: within 1e-13 relative)."""
    import jaxlib

    exact = tuple(int(v) for v in jaxlib.__version__.split(".")[:2]) >= (0, 10)
    params = _params(seed=7)._replace(biases=jnp.asarray(RNG.normal(size=10)))
    image = jnp.asarray(_image(3))
    label = 4
    jitted = model.loss(params, image, label, ties), jax.grad(model.loss)(
        params, image, label, ties)
    with jax.disable_jit():
        eager = model.loss(params, image, label, ties), jax.grad(model.loss)(
            params, image, label, ties)
    for a, b in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(eager),
                    strict=True):
        if exact:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        else:
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-16)


def test_invalid_tie_rule_raises():
    x = jnp.zeros((26, 26, 2))
    with pytest.raises(ValueError, match="tie rule"):
        model.maxpool2(x, "random")
    with pytest.raises(ValueError, match="tie rule"):
        model.window_max(jnp.zeros((3, 4)), "max")
    with pytest.raises(ValueError, match="tie rule"):
        model.loss(_params(), jnp.zeros((28, 28)), 0, ties="Report")
    with pytest.raises(ValueError, match="tie rule"):
        backprop.maxpool2_backward(jnp.zeros((13, 13, 2)), x, "all")
    with pytest.raises(ValueError, match="tie rule"):
        backprop.grads(_params(), jnp.zeros((28, 28)), 0, ties="")


def test_default_dtype_is_float32_outside_x64():
    """Runs after the x64 tests above: the switch must not have leaked."""
    if os.environ.get("JAX_ENABLE_X64", "").lower() in ("1", "true"):
        pytest.skip("x64 enabled globally by the environment")
    assert jnp.zeros(1).dtype == jnp.float32
    assert model.default_float() == jnp.float32
    assert model.init_params(jax.random.key(0)).filters.dtype == jnp.float32
