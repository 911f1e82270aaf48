"""What ``jaxcnn.data`` and the sources it reads (``idx``, ``tfds_source``) share.

Data flows one way: ``data`` imports the sources, the sources import this module, each
other and ``errors``, and nothing here imports any other part of jaxcnn.
"""

from __future__ import annotations

import numbers

from jaxcnn.errors import DataError

DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def check_size(n: int | None, split: str) -> None:
    """Raise ``DataError`` unless ``n`` (a requested ``{split}_size``) is None or an int >= 1."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
        raise DataError(f"{split}_size must be a whole number of at least 1, got {n!r}")


def check_available(n: int | None, available: int, split: str, source: str) -> None:
    """Raise ``DataError`` when ``n`` examples of ``split`` are asked but only ``available``."""
    if n is not None and n > available:
        raise DataError(
            f"--{split}-size {n:,} is more than the {available:,} {split} "
            f"images that {source} holds; give --{split}-size {available:,} or less, or a "
            "larger source (--data mnist, fashion_mnist or idx:DIR hold 60,000 / 10,000)")
