"""Divergence rules: when a training run has stopped being a training run.

Checked on the host between compiled chunks (no sync inside a chunk) and on the final
test result. A run diverged when, for any seed:

1. an image's loss is NaN or infinite;
2. a parameter or optimizer-state value is NaN or infinite after the chunk (the loss of
   an image is computed *before* its step, so this catches the last steps);
3. a log window's mean loss exceeds ``LOSS_LIMIT_FACTOR * ln C``, far above the loss of
   a uniform guess (ln C, 2.30 for 10 classes). A finite explosion (463 -> 1.5e8 ->
   1e17 ...) passes any bound, so it is caught at the first window beyond it;
4. the mean loss of any ``RUN_IMAGES`` consecutive training images exceeds
   ``RUN_LIMIT_FACTOR * ln C``: a run stuck far above a uniform guess without exploding
   (``--freeze-conv --lr 5``: 100-step means of 45 -> 14, test loss 38). Independent of
   ``--log-every``: the last images of a chunk carry over to the next (``Recent``);
   after a resume the rule starts with an empty history;
5. a test loss or accuracy is not finite.

The limits come from measurements (``scripts/divergence_margins.py``, limits off) of
every configuration the experiments train: per-image SGD lr 0.005-0.02, mini-batch SGD
0.05-0.2, momentum 0.01-0.1 and Adam 0.003-0.03 (batch 32), the sweep (3,000 images, 3
seeds), final (4,000, 5 seeds) and size runs (250-2,000 images), the report's 20- and
40-seed runs, embedded MNIST and full Fashion-MNIST: 47 runs. In the 44 that learned
(test accuracy 0.70-0.94), the largest loss of one image was 49.3 (Adam lr 0.03;
per-image SGD at most 16.9), 4.7x below rule 3's 100 x ln C = 230 even with
``--log-every 1``; the largest mean of 100 consecutive images was 3.55 (Adam lr 0.03;
otherwise at most 2.57, the untrained start is 2.30), 6.5x below rule 4's 10 x ln C =
23. The three that diverged (momentum lr 0.1 twice, mini-batch SGD lr 0.2 on 4,000
images) became non-finite or crossed both limits within their first 190 steps, like
per-image SGD lr 0.04 on 500 images (issue 10: 463, then 1.5e8 ... 3.5e31). A rule on
the growth from one log window to the next was rejected: with ``--log-every 1``
consecutive per-image losses of healthy runs differ by factors above 1,000.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from jaxcnn.errors import DivergenceError
from jaxcnn.training.config import TrainConfig

LOSS_LIMIT_FACTOR = 100  # x ln C, any log window (rule 3): 230 for 10 classes
RUN_LIMIT_FACTOR = 10  # x ln C, any RUN_IMAGES consecutive images (rule 4): 23
RUN_IMAGES = 100


def loss_limit(num_classes: int) -> float:
    """The largest mean loss a log window may have: ``LOSS_LIMIT_FACTOR * ln C``."""
    return LOSS_LIMIT_FACTOR * math.log(num_classes)


def run_limit(num_classes: int) -> float:
    """The largest mean loss of ``RUN_IMAGES`` consecutive images: ``RUN_LIMIT_FACTOR *
    ln C``."""
    return RUN_LIMIT_FACTOR * math.log(num_classes)


class Recent(NamedTuple):
    """Rule 4's history between chunks: the last ``RUN_IMAGES - 1`` image losses per
    seed, (S, <= RUN_IMAGES - 1) float32, oldest first."""

    losses: np.ndarray

    @classmethod
    def empty(cls, seeds: int) -> Recent:
        return cls(np.zeros((seeds, 0), np.float32))


def _advice(config: TrainConfig) -> str:
    lr = config.learning_rate
    return (f"The learning rate {lr:g} is too large for {config.optimizer}; try a smaller "
            f"one, e.g. --lr {lr / 10:g}.")


def _seed_note(config: TrainConfig, seed_index: int) -> str:
    return f" (seed {config.seed + seed_index})" if config.seeds > 1 else ""


def check_chunk(losses: np.ndarray, finite: np.ndarray, first_step: int,
                config: TrainConfig, num_classes: int,
                recent: Recent | None = None) -> tuple[np.ndarray, Recent]:
    """Apply rules 1-4 to one chunk; return its mean loss per seed, (S,) float64, and the
    history for the next chunk.

    losses: (S, K, B) per-image losses of steps ``first_step .. first_step+K-1``;
    finite: (S,) bool, the state after the chunk is finite; recent: the previous chunk's
    ``Recent`` (None: the start). Raises ``DivergenceError`` naming the step (or steps)
    and suggesting a smaller ``--lr``.
    """
    is_finite = np.isfinite(losses)
    if not is_finite.all():
        seed_idx, step_idx, _ = np.argwhere(~is_finite)[0]
        bad = losses[seed_idx, step_idx][~is_finite[seed_idx, step_idx]][0]
        raise DivergenceError(
            f"training diverged: the loss became {bad} at step {first_step + step_idx}"
            f"{_seed_note(config, seed_idx)}. {_advice(config)}")
    seeds, k, batch = losses.shape
    last_step = first_step + k - 1
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
    recent = recent if recent is not None else Recent.empty(seeds)
    images = np.concatenate([recent.losses, losses.reshape(seeds, k * batch)], axis=1)
    if images.shape[1] >= RUN_IMAGES:
        sums = np.cumsum(images, axis=1, dtype=np.float64)
        sums = np.concatenate([np.zeros((seeds, 1)), sums], axis=1)
        runs = (sums[:, RUN_IMAGES:] - sums[:, :-RUN_IMAGES]) / RUN_IMAGES
        limit = run_limit(num_classes)
        if np.any(runs > limit):
            seed_idx, start = np.argwhere(runs > limit)[0]
            end = start + RUN_IMAGES - 1 - recent.losses.shape[1]  # index in this chunk
            raise DivergenceError(
                f"training diverged: the mean loss of {RUN_IMAGES} consecutive images up to "
                f"step {first_step + end // batch} reached {runs[seed_idx, start]:.3g}"
                f"{_seed_note(config, seed_idx)}, above {limit:.0f} ({RUN_LIMIT_FACTOR} x ln "
                f"{num_classes}; a uniform guess scores {math.log(num_classes):.2f}). "
                f"{_advice(config)}")
    return mean, Recent(images[:, -(RUN_IMAGES - 1):].copy())


def check_test(loss: np.ndarray, accuracy: np.ndarray, config: TrainConfig) -> None:
    """Rule 5: raise ``DivergenceError`` unless every seed's test loss and accuracy are
    finite. loss, accuracy: (S,)."""
    bad = ~(np.isfinite(loss) & np.isfinite(accuracy))
    if bad.any():
        seed_idx = int(np.argmax(bad))
        raise DivergenceError(
            f"training diverged: the test loss is {loss[seed_idx]}"
            f"{_seed_note(config, seed_idx)}; the trained parameters overflow. "
            f"{_advice(config)}")
