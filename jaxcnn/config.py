"""Training configuration: one frozen dataclass, validated once, saved with every run.

The defaults reproduce the report: embedded MNIST, the first 3,000 training images,
800 test images, one epoch, one image per step, plain SGD at learning rate 0.005, the
report's hand-derived gradients with the report's max-pool tie rule, no shuffling.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jaxcnn.errors import ConfigError
from jaxcnn.model import TIE_RULES

OPTIMIZERS = ("sgd", "momentum", "adam")
GRADIENTS = ("manual", "autodiff")
DEFAULT_LR = {"sgd": 0.005, "momentum": 0.005, "adam": 0.001}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run's numbers."""

    data: str = "mnist-embedded"
    train_size: int | None = 3000  # first N training images (None: all)
    test_size: int | None = 800  # first N test images (None: all)
    epochs: int = 1
    shuffle: bool = False  # reshuffle the training images every epoch, from the seed
    optimizer: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    momentum: float = 0.9  # only for optimizer="momentum"
    batch_size: int = 1  # 1: the report's per-image SGD
    grad: str = "manual"  # "manual": the report's derivation; "autodiff": jax.grad
    ties: str = "report"  # max-pool tie rule of the gradient
    seed: int = 0
    seeds: int = 1  # train seeds seed .. seed+seeds-1 at once
    log_every: int = 100  # steps per log line (and per compiled chunk)
    num_filters: int = 8
    freeze_conv: bool = False  # train only the softmax layer (the report's second step)

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    def validate(self) -> TrainConfig:
        """Raise ``ConfigError`` naming the bad setting; return self when all is well."""
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        checks = [
            (self.grad in GRADIENTS, f"--grad must be one of {', '.join(GRADIENTS)}"),
            (self.ties in TIE_RULES, f"--ties must be one of {', '.join(TIE_RULES)}"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.seeds >= 1, "--seeds must be at least 1"),
            (self.log_every >= 1, "--log-every must be at least 1"),
            (self.num_filters >= 1, "--filters must be at least 1"),
            (self.learning_rate > 0, "--lr must be positive"),
            (0 <= self.momentum < 1, "--momentum must be in [0, 1)"),
            (self.train_size is None or self.train_size >= 1, "--train-size must be >= 1"),
            (self.test_size is None or self.test_size >= 1, "--test-size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"learning_rate": self.learning_rate}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names - {"learning_rate"}
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in values.items() if k in names}).validate()
