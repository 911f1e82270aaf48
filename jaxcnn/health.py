"""Divergence rules: when a training run has stopped being a training run.

Checked on the host between compiled chunks (no sync inside a chunk) and on the final
test result. A run diverged when, for any seed:

1. an image's loss is NaN or infinite;
2. a parameter or optimizer-state value is NaN or infinite after the chunk (the loss of
   an image is computed *before* its step, so this catches the last steps);
3. a log window's mean loss exceeds ``LOSS_LIMIT_FACTOR * ln C``, far above the loss of
   a uniform guess (ln C, 2.30 for 10 classes). A finite explosion (463 -> 1.5e8 ->
   1e17 ...) passes any bound, so it is caught at the first window beyond it;
4. a test loss or accuracy is not finite.

The limit, 100 x ln C (230 for 10 classes), comes from measurements
(``scripts/divergence_margins.py``, limit off) of every configuration the experiments
train: per-image SGD lr 0.005-0.02, mini-batch SGD 0.05-0.2, momentum 0.01-0.1 and Adam
0.003-0.03 (batch 32), 5-40 seeds, 1-10 epochs, embedded MNIST and full Fashion-MNIST.
In the runs that learned (test accuracy 0.86-0.94), the largest loss of a single image
was 49.3 (Adam lr 0.03; per-image SGD at most 16.9), so even ``--log-every 1`` stays 4.7x
below the limit, and the largest 100-step window mean was 2.29 (the untrained start).
Runs that exploded while finite crossed it in their first window (per-image SGD lr 0.04
on 500 images: 463, then 1.5e8 ... 3.5e31; momentum lr 0.1: 1e33); the others became
non-finite (rules 1 and 2). A rule on the growth from one window to the next was
rejected: with ``--log-every 1`` consecutive per-image losses of healthy runs differ by
factors above 1,000.
"""

from __future__ import annotations

import math

import numpy as np

from jaxcnn.config import TrainConfig
from jaxcnn.errors import DivergenceError

LOSS_LIMIT_FACTOR = 100  # x ln C: 230 for 10 classes


def loss_limit(num_classes: int) -> float:
    """The largest mean loss a log window may have: ``LOSS_LIMIT_FACTOR * ln C``."""
    return LOSS_LIMIT_FACTOR * math.log(num_classes)


def _advice(config: TrainConfig) -> str:
    lr = config.learning_rate
    return (f"The learning rate {lr:g} is too large for {config.optimizer}; try a smaller "
            f"one, e.g. --lr {lr / 10:g}.")


def _seed_note(config: TrainConfig, seed_index: int) -> str:
    return f" (seed {config.seed + seed_index})" if config.seeds > 1 else ""


def check_chunk(losses: np.ndarray, finite: np.ndarray, first_step: int,
                config: TrainConfig, num_classes: int) -> np.ndarray:
    """Apply rules 1-3 to one chunk; return its mean loss per seed, (S,) float64.

    losses: (S, K, B) per-image losses of steps ``first_step .. first_step+K-1``;
    finite: (S,) bool, the state after the chunk is finite. Raises ``DivergenceError``
    naming the step (or steps) and suggesting a smaller ``--lr``.
    """
    is_finite = np.isfinite(losses)
    if not is_finite.all():
        seed_idx, step_idx, _ = np.argwhere(~is_finite)[0]
        bad = losses[seed_idx, step_idx][~is_finite[seed_idx, step_idx]][0]
        raise DivergenceError(
            f"training diverged: the loss became {bad} at step {first_step + step_idx}"
            f"{_seed_note(config, seed_idx)}. {_advice(config)}")
    last_step = first_step + losses.shape[1] - 1
    steps = f"steps {first_step}-{last_step}" if last_step > first_step else f"step {last_step}"
    if not np.all(finite):
        seed_idx = int(np.argmin(finite))
        raise DivergenceError(
            f"training diverged: the parameters became NaN or infinite during {steps}"
            f"{_seed_note(config, seed_idx)}. {_advice(config)}")
    mean = losses.mean(axis=(1, 2), dtype=np.float64)
    limit = loss_limit(num_classes)
    if np.any(mean > limit):
        seed_idx = int(np.argmax(mean))
        raise DivergenceError(
            f"training diverged: the mean loss of {steps} reached {mean[seed_idx]:.3g}"
            f"{_seed_note(config, seed_idx)}, above {limit:.0f} ({LOSS_LIMIT_FACTOR} x ln "
            f"{num_classes}; a uniform guess scores {math.log(num_classes):.2f}). "
            f"{_advice(config)}")
    return mean


def check_test(loss: np.ndarray, accuracy: np.ndarray, config: TrainConfig) -> None:
    """Rule 4: raise ``DivergenceError`` unless every seed's test loss and accuracy are
    finite. loss, accuracy: (S,)."""
    bad = ~(np.isfinite(loss) & np.isfinite(accuracy))
    if bad.any():
        seed_idx = int(np.argmax(bad))
        raise DivergenceError(
            f"training diverged: the test loss is {loss[seed_idx]}"
            f"{_seed_note(config, seed_idx)}; the trained parameters overflow. "
            f"{_advice(config)}")
