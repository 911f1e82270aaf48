"""Max-pool ties: the three rules on hand-built windows, on inputs with a flat background
(where conv outputs are bit-identical, as over the MNIST background), and the
window_max / window_max_backward pair on any window axis.

* "first" must equal autodiff of ``lax.reduce_window`` max, exactly;
* "split" must equal autodiff of ``jnp.max`` (model.maxpool2's default), exactly;
* "report" gives every tied maximum the full gradient: k tied maxima -> k times "split".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rel_err, tree_rel_err

from jaxcnn import backprop, model


def pool_reduce_window(x):
    """The 2x2 max-pool as lax.reduce_window (its autodiff picks the first maximum)."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (2, 2, 1), (2, 2, 1), "VALID")


def vjp(fun, x, g):
    return jax.vjp(fun, x)[1](g)[0]


# ---------------------------------------------------------------- a hand-built case
#
# Channel 0, a (4, 4) pool input, four windows with 1, 2, 3 and 4 tied maxima:
#     5  1 | 4  4          upstream g = 1.5  2.0
#     2  3 | 0  1                       6.0  8.0
#     -----+-----
#     7  2 | -1 -1
#     7  7 | -1 -1
# Channel 1 is channel 0 (and its g) rotated by 180 degrees: "report" and "split" rotate
# with it, "first" does not (it follows row-major order inside each window).

X0 = np.array([[5, 1, 4, 4], [2, 3, 0, 1], [7, 2, -1, -1], [7, 7, -1, -1]], np.float64)
G0 = np.array([[1.5, 2.0], [6.0, 8.0]])
COUNT0 = np.array([[1, 2], [3, 4]])  # tied maxima per window
REPORT0 = np.array([[1.5, 0, 2, 2], [0, 0, 0, 0], [6, 0, 8, 8], [6, 6, 8, 8]])
SPLIT0 = np.array([[1.5, 0, 1, 1], [0, 0, 0, 0], [2, 0, 2, 2], [2, 2, 2, 2]])
FIRST0 = np.array([[1.5, 0, 2, 0], [0, 0, 0, 0], [6, 0, 8, 0], [0, 0, 0, 0]])
FIRST1 = np.array([[8, 0, 6, 0], [0, 0, 0, 0], [0, 0, 0, 0], [2, 0, 0, 1.5]])


def _rot(a):
    return np.rot90(a, 2)


def hand_case(dtype):
    x = np.stack([X0, _rot(X0)], axis=-1).astype(dtype)
    g = np.stack([G0, _rot(G0)], axis=-1).astype(dtype)
    want = {"report": np.stack([REPORT0, _rot(REPORT0)], -1),
            "split": np.stack([SPLIT0, _rot(SPLIT0)], -1),
            "first": np.stack([FIRST0, FIRST1], -1)}
    return jnp.asarray(x), jnp.asarray(g), want


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_hand_case_backprop_and_autodiff(x64, dtype, ties):
    x, g, want = hand_case(dtype)
    pooled0 = np.array([[5, 4], [7, -1]])
    np.testing.assert_array_equal(model.maxpool2(x, ties),
                                  np.stack([pooled0, _rot(pooled0)], -1))
    np.testing.assert_array_equal(backprop.maxpool2_backward(g, x, ties), want[ties])
    np.testing.assert_array_equal(vjp(lambda v: model.maxpool2(v, ties), x, g), want[ties])


def test_hand_case_references(x64):
    x, g, want = hand_case("float64")
    np.testing.assert_array_equal(vjp(pool_reduce_window, x, g), want["first"])
    jnp_max_pool = lambda v: jnp.max(v.reshape(2, 2, 2, 2, 2), axis=(1, 3))  # noqa: E731
    np.testing.assert_array_equal(vjp(jnp_max_pool, x, g), want["split"])


def test_hand_case_report_is_count_times_split():
    """The expected tables above are consistent with the rules' definitions."""
    count = np.kron(COUNT0, np.ones((2, 2)))
    np.testing.assert_array_equal(REPORT0, count * SPLIT0)
    # every rule routes only to window maxima; "split" and "first" pass on exactly g
    win = lambda a: a.reshape(2, 2, 2, 2).sum(axis=(1, 3))  # noqa: E731
    np.testing.assert_array_equal(win(SPLIT0), G0)
    np.testing.assert_array_equal(win(FIRST0), G0)
    np.testing.assert_array_equal(win(REPORT0), COUNT0 * G0)


# ---------------------------------------------------------------- flat background


def flat_background_image(seed: int) -> jnp.ndarray:
    """An MNIST-like image: -0.5 everywhere except a random 'stroke' block in the middle."""
    key = jax.random.key(seed)
    blob = jax.random.uniform(key, (10, 12), jnp.float64, -0.5, 0.5)
    return jnp.full((28, 28), -0.5, jnp.float64).at[9:19, 8:20].set(blob)


def _window_counts(conv: np.ndarray) -> np.ndarray:
    """Tied maxima per 2x2 window, spread back over the window's four pixels (NumPy)."""
    h, w, f = conv.shape
    windows = conv.reshape(h // 2, 2, w // 2, 2, f)
    is_max = windows == windows.max(axis=(1, 3), keepdims=True)
    counts = is_max.sum(axis=(1, 3), keepdims=True)
    return np.broadcast_to(counts, windows.shape).reshape(h, w, f)


@pytest.fixture
def tied(x64):
    params = model.init_params(jax.random.key(0))
    image = flat_background_image(1)
    conv = model.conv3x3(image, params.filters)
    g = jax.random.normal(jax.random.key(2), (13, 13, 8), jnp.float64)
    counts = _window_counts(np.asarray(conv))
    assert np.mean(counts[::2, ::2] == 4) > 0.5  # most windows are flat background
    assert np.any(counts[::2, ::2] == 1)  # and some are not
    return params, image, conv, g, counts


def test_flat_background_first_is_reduce_window_autodiff(tied):
    _, _, conv, g, _ = tied
    np.testing.assert_array_equal(backprop.maxpool2_backward(g, conv, "first"),
                                  vjp(pool_reduce_window, conv, g))


def test_flat_background_split_is_jnp_max_autodiff(tied):
    _, _, conv, g, _ = tied
    np.testing.assert_array_equal(backprop.maxpool2_backward(g, conv, "split"),
                                  vjp(model.maxpool2, conv, g))
    np.testing.assert_array_equal(vjp(lambda v: model.maxpool2(v, "split"), conv, g),
                                  vjp(model.maxpool2, conv, g))


@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_flat_background_model_autodiff_is_backprop(tied, ties):
    _, _, conv, g, _ = tied
    np.testing.assert_array_equal(vjp(lambda v: model.maxpool2(v, ties), conv, g),
                                  backprop.maxpool2_backward(g, conv, ties))


def test_flat_background_report_differs_by_the_tie_count(tied):
    _, _, conv, g, counts = tied
    report = np.asarray(backprop.maxpool2_backward(g, conv, "report"))
    split = np.asarray(backprop.maxpool2_backward(g, conv, "split"))
    assert not np.array_equal(report, split)
    assert rel_err(report, counts * split) <= 1e-15
    assert rel_err(report - split, (counts - 1) * split) <= 1e-15
    # the excess is exactly (k - 1) * g per window with k tied maxima
    excess = (report - split).reshape(13, 2, 13, 2, 8).sum(axis=(1, 3))
    k = counts[::2, ::2]
    assert rel_err(excess, (k - 1) * np.asarray(g)) <= 1e-15


def test_flat_background_whole_network(tied):
    """grads(ties) == jax.grad(loss(ties)) for every rule; the report rule's filter
    gradient is wrong, its dense gradients are not (the pool sits below them)."""
    params, image, _, _, _ = tied
    hand = {}
    for ties in model.TIE_RULES:
        _, hand[ties] = backprop.grads(params, image, 3, ties)
        assert tree_rel_err(hand[ties], jax.grad(model.loss)(params, image, 3, ties)) <= 1e-12
    assert rel_err(hand["first"].weights, hand["split"].weights) == 0
    assert rel_err(hand["report"].biases, hand["split"].biases) == 0
    assert rel_err(hand["report"].filters, hand["split"].filters) > 1e-3
    # The tied pixels of a flat region sit on identical 3x3 patches, so the two valid
    # subgradients route g to the same patch values: same filter gradient.
    assert rel_err(hand["first"].filters, hand["split"].filters) <= 1e-12


# ---------------------------------------------------------------- window_max on any axis


def _reference_backward(g, windows, ties, axis):
    """NumPy: route g to the window maxima along ``axis`` by each rule's definition."""
    w = np.moveaxis(windows, axis, -1)
    is_max = w == w.max(axis=-1, keepdims=True)
    if ties == "report":
        share = is_max.astype(float)
    elif ties == "split":
        share = is_max / is_max.sum(axis=-1, keepdims=True)
    else:
        share = np.zeros_like(w)
        np.put_along_axis(share, np.argmax(w, axis=-1)[..., None], 1.0, axis=-1)
    return np.moveaxis(share * np.asarray(g)[..., None], -1, axis)


@pytest.mark.parametrize("axis", [0, 2, -1, -3])
@pytest.mark.parametrize("ties", model.TIE_RULES)
def test_window_max_any_axis(x64, ties, axis):
    rng = np.random.default_rng(abs(axis))
    shape = [3, 5, 2]
    shape.insert(axis % 4, 4)
    windows = jnp.asarray(rng.integers(0, 3, size=shape).astype(np.float64))  # many ties
    g = jnp.asarray(rng.normal(size=np.delete(shape, axis % 4)))
    np.testing.assert_array_equal(model.window_max(windows, ties, axis=axis),
                                  np.max(windows, axis=axis))
    want = _reference_backward(g, np.asarray(windows), ties, axis % 4)
    assert rel_err(backprop.window_max_backward(g, windows, ties, axis=axis), want) <= 1e-15
    assert rel_err(vjp(lambda w: model.window_max(w, ties, axis=axis), windows, g), want) <= 1e-15
