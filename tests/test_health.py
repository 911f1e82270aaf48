"""Divergence in every form (issue 10, sections 1 and 2): finite explosions, non-finite
values after the last per-image check, non-finite test results; healthy runs never stop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.errors import DivergenceError
from jaxcnn.training import health, train
from jaxcnn.training.config import TrainConfig

CONFIG = TrainConfig()


def chunk(losses, finite=True, recent=None):
    losses = np.asarray(losses, np.float32).reshape(1, -1, 1)
    return health.check_chunk(losses, np.array([finite]), 101, CONFIG, 10, recent)[0]


def test_the_limits_are_100_and_10_uniform_guesses():
    assert health.loss_limit(10) == pytest.approx(100 * math.log(10))
    assert health.run_limit(10) == pytest.approx(10 * math.log(10))


def test_healthy_extremes_pass():
    """The largest losses measured in the experiments' healthy runs: one image of 49.3
    (a window of one image, --log-every 1) and a 100-step mean of 2.29."""
    np.testing.assert_allclose(chunk([49.3]), [49.3], rtol=1e-6)
    np.testing.assert_allclose(chunk(np.full(100, 2.29)), [2.29], rtol=1e-6)
    np.testing.assert_allclose(chunk([1e-5, 49.3, 0.0]), [(1e-5 + 49.3) / 3], rtol=1e-6)


@pytest.mark.parametrize(("losses", "finite", "message"), [
    ([1.0, np.nan], True, r"the loss became nan at step 102"),
    ([np.inf, 1.0], True, r"the loss became inf at step 101"),
    ([1.0, 2.0], False, r"parameters became NaN or infinite during steps 101-102"),
    ([463.0] * 100, True, r"mean loss of steps 101-200 reached 463, above 230"),
    ([3e38, 3e38], True, r"mean loss of steps 101-102 reached 3e\+38"),  # float32 sum: inf
])
def test_divergence_of_every_kind_names_the_step_and_a_smaller_lr(losses, finite, message):
    with pytest.raises(DivergenceError, match=message) as info:
        chunk(losses, finite)
    assert "try a smaller one, e.g. --lr 0.0005" in str(info.value)


def test_a_run_stuck_far_above_a_uniform_guess_is_caught_whatever_the_log_every():
    """Rule 4 over 100 consecutive images, carried from chunk to chunk: 100 one-image
    windows of loss 30 (each below rule 3's 230) are caught at the 100th."""
    recent = None
    for i in range(99):
        losses = np.full((1, 1, 1), 30.0, np.float32)
        _, recent = health.check_chunk(losses, np.array([True]), i + 1, CONFIG, 10, recent)
    assert recent.losses.shape == (1, 99)
    with pytest.raises(DivergenceError, match=r"100 consecutive images up to step 100 "
                                              r"reached 30, above 23"):
        health.check_chunk(np.full((1, 1, 1), 30.0, np.float32), np.array([True]), 100,
                           CONFIG, 10, recent)
    with pytest.raises(DivergenceError, match="up to step 160 reached 30"):  # batch 4
        health.check_chunk(np.full((1, 50, 4), 30.0, np.float32), np.array([True]), 136,
                           CONFIG, 10)


def test_the_seed_is_named_with_several_seeds():
    config = TrainConfig(seed=5, seeds=3)
    losses = np.ones((3, 2, 1), np.float32)
    losses[2, 1, 0] = 500.0
    with pytest.raises(DivergenceError, match=r"\(seed 7\)"):
        health.check_chunk(losses, np.ones(3, bool), 1, config, 10)


def test_non_finite_test_results_are_refused():
    health.check_test(np.array([0.4]), np.array([0.9]), CONFIG)
    with pytest.raises(DivergenceError, match="the test loss is nan"):
        health.check_test(np.array([np.nan]), np.array([0.1]), CONFIG)


@pytest.fixture(scope="module")
def digits():
    return data.load("mnist-embedded", train_size=500, test_size=100)


def test_a_finite_explosion_stops_at_its_first_window(digits):
    """Issue 10 (1): lr 0.04 on 500 images went 463 -> 1.5e8 -> ... -> test loss 3e32."""
    with pytest.raises(DivergenceError, match=r"mean loss of steps 1-100 reached 46\d"):
        train.train(TrainConfig(lr=0.04, train_size=500, test_size=100), digits)


def test_a_bounded_but_insane_run_is_caught(digits):
    """--freeze-conv --lr 5: the convex softmax layer cannot explode, but its 100-step
    means stayed at 45 -> 14 and it ended with test loss 38 and exit 0."""
    with pytest.raises(DivergenceError, match=r"100 consecutive images up to step 100"):
        train.train(TrainConfig(lr=5.0, freeze_conv=True, train_size=500, test_size=100),
                    digits)


def test_nan_after_the_last_per_image_check_is_caught(digits):
    """Issue 10 (2): lr 0.5 on 20 images printed `Test Loss: nan` with exit 0."""
    with pytest.raises(DivergenceError, match="training diverged"):
        train.train(TrainConfig(lr=0.5, train_size=20, test_size=100), digits)


def test_the_state_is_checked_after_the_chunk_not_only_the_losses(digits):
    """An image's loss is computed before its step: a last step that breaks the
    parameters (here through an infinite momentum trace) is only visible in the state."""
    import jax

    config = TrainConfig(optimizer="momentum", train_size=1, test_size=100, log_every=1)
    state = train.init_state(config, 10)
    broken = state._replace(opt_state=jax.tree.map(lambda a: a + np.inf, state.opt_state))
    with pytest.raises(DivergenceError, match="parameters became NaN or infinite during "
                                              "step 1"):
        train.train(config, digits, resume=(broken, 0, 0))
