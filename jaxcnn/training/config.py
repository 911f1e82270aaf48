"""Training configuration: one frozen dataclass, validated once, saved with every run.

The defaults reproduce the report: embedded MNIST, the first 3,000 training images,
800 test images, one epoch, one image per step, plain SGD at learning rate 0.005, the
report's hand-derived gradients with the report's max-pool tie rule, no shuffling.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
from dataclasses import dataclass

from jaxcnn.errors import ConfigError
from jaxcnn.model import TIE_RULES

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "cosine", "warmup-cosine")
MAX_SHIFT = 4  # --shift: at most 4 pixels, a seventh of the 28-pixel image
GRADIENTS = ("manual", "autodiff")
DEFAULT_LR = {"sgd": 0.005, "momentum": 0.005, "adam": 0.001}
# Settings that may change when a run is resumed: only the optimizer's. ``epochs`` keeps
# the result bit-identical to an uninterrupted run; the others change the numbers.
RESUME_CHANGEABLE = ("epochs", "optimizer", "lr", "momentum", "freeze_conv")
# Fields added after the first checkpoints were written. A checkpoint without them was
# trained with their defaults (the behaviour before they existed), and a config that has
# them at their defaults hashes as it did before they existed, so those checkpoints load.
ADDED_FIELDS = {"schedule": "constant", "weight_decay": 0.0, "shift": 0, "validation": 0}
MAX_SEED = 2**31  # seeds must stay below: jax.random.key aliases larger ones (2**32 -> 0)
# Training computes in float32: a learning rate outside its normal range becomes 0 (no
# learning at all, silently) or inf there, and a momentum within 3e-8 of 1 becomes 1.
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32
FLOAT32_MAX = 3.4028234663852886e38

# field -> (type(s) accepted, flag named in messages, (low, high) inclusive or None)
_INT = (int,)
_FIELDS = {
    "data": (str, "--data", None),
    "train_size": (_INT, "--train-size", (1, 10**9)),
    "test_size": (_INT, "--test-size", (1, 10**9)),
    "epochs": (_INT, "--epochs", (1, 10**6)),
    "shuffle": (bool, "--shuffle", None),
    "optimizer": (str, "--optimizer", None),
    "lr": ((int, float), "--lr", None),
    "momentum": ((int, float), "--momentum", None),
    "batch_size": (_INT, "--batch-size", (1, 10**6)),
    "grad": (str, "--grad", None),
    "ties": (str, "--ties", None),
    "seed": (_INT, "--seed", (0, MAX_SEED - 1)),
    "seeds": (_INT, "--seeds", (1, 4096)),
    "log_every": (_INT, "--log-every", (1, 10**9)),
    "num_filters": (_INT, "--filters", (1, 4096)),
    "freeze_conv": (bool, "--freeze-conv", None),
    "schedule": (str, "--schedule", None),
    "weight_decay": ((int, float), "--weight-decay", None),
    "shift": (_INT, "--shift", (0, MAX_SHIFT)),
    "validation": (_INT, "--validation", (0, 10**9)),
}
_OPTIONAL = {"train_size", "test_size", "lr"}


def _float32(value: float) -> float:
    """``value`` rounded to float32 (as training computes it)."""
    return struct.unpack("f", struct.pack("f", value))[0]


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
    schedule: str = "constant"  # learning rate over the run's steps (optax schedules)
    weight_decay: float = 0.0  # decoupled weight decay (adamw; sgd/momentum: + wd * param)
    shift: int = 0  # augmentation: shift each training image by up to N pixels each way
    validation: int = 0  # hold out the last N of the training images, scored at the end

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    def validate(self) -> TrainConfig:
        """Raise ``ConfigError`` naming the bad setting; return self when all is well.

        Checks every field's type (``bool`` is not accepted as a number) and range, then
        the choices and combinations.
        """
        for name, (types, flag, bounds) in _FIELDS.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                        else (types,)):
                raise ConfigError(f"{flag} must be a number, got {value!r}")
            if not isinstance(value, types):
                raise ConfigError(f"{flag} has the wrong type: {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{flag} must be a finite number, got {value!r}")
            if bounds is not None and value < bounds[0]:
                raise ConfigError(f"{flag} must be at least {bounds[0]:,}, got {value!r}")
            if bounds is not None and value > bounds[1]:
                raise ConfigError(f"{flag} must be at most {bounds[1]:,}, got {value!r}")
        if not self.data:
            raise ConfigError("--data must name a data source")
        if self.seed + self.seeds > MAX_SEED:
            raise ConfigError(f"--seed + --seeds must stay below {MAX_SEED:,}")
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
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (0 <= self.weight_decay <= 1, "--weight-decay must be in [0, 1]"),
            (self.train_size is None or self.train_size >= 1, "--train-size must be >= 1"),
            (self.test_size is None or self.test_size >= 1, "--test-size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        lr = self.learning_rate
        if not FLOAT32_TINY <= lr <= FLOAT32_MAX:
            raise ConfigError(f"--lr {lr:g} is outside float32's normal range "
                              f"({FLOAT32_TINY:.3g} to {FLOAT32_MAX:.3g}), in which training "
                              "computes: it would "
                              + ("underflow to 0 there" if lr < 1 else "overflow to inf there"))
        if 0 < self.weight_decay < FLOAT32_TINY:
            raise ConfigError(f"--weight-decay {self.weight_decay:g} underflows to 0 in "
                              "float32, in which training computes; give 0 or at least "
                              f"{FLOAT32_TINY:.3g}")
        if (self.train_size is not None and self.validation
                and self.validation >= self.train_size):
            raise ConfigError(f"--validation {self.validation:,} leaves no training image of "
                              f"--train-size {self.train_size:,}; give a --validation below "
                              "--train-size")
        if self.optimizer == "momentum" and _float32(self.momentum) >= 1:
            raise ConfigError(f"--momentum {self.momentum!r} is 1 in float32, in which "
                              "training computes; give at most 0.9999999")
        return self

    @property
    def train_images(self) -> int | None:
        """Images trained on: ``train_size`` less the ``validation`` held out (None: all
        the data holds, less ``validation``)."""
        return None if self.train_size is None else self.train_size - self.validation

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"learning_rate": self.learning_rate}

    def digest(self) -> str:
        """The config hash: sha256 (first 16 hex digits) of ``to_dict()`` as canonical
        JSON, leaving out the ``ADDED_FIELDS`` at their defaults (so a config from before
        they existed keeps its hash). Equal configs give equal hashes, in any process."""
        values = {k: v for k, v in self.to_dict().items()
                  if not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
        text = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict, strict: bool = False) -> TrainConfig:
        """The validated config of ``to_dict()``'s output. ``strict`` (for files): every
        key must be present (``ADDED_FIELDS`` may be missing: their defaults) and
        ``learning_rate`` must agree. Raises ``ConfigError``."""
        if not isinstance(values, dict):
            raise ConfigError(f"a configuration must be a mapping, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names - {"learning_rate"}
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        missing = (names | {"learning_rate"}) - set(values) - set(ADDED_FIELDS)
        if strict and missing:
            raise ConfigError(f"missing configuration keys: {', '.join(sorted(missing))}")
        config = cls(**{k: v for k, v in values.items() if k in names}).validate()
        if strict and values["learning_rate"] != config.learning_rate:
            raise ConfigError(f"learning_rate {values['learning_rate']!r} disagrees with lr "
                              f"{config.lr!r} and optimizer {config.optimizer!r}")
        return config
