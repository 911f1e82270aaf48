"""Helpers for tests that need IDX files: small generated, valid MNIST-format data sets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from jaxcnn.data.idx import SPLIT_FILES, encode_idx


def make_split(n: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, size, size) and labels uint8 (n,) cycling 0..9; row 2+label is lit."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 50, size=(n, size, size), dtype=np.uint8)
    images[np.arange(n), 2 + labels, 3:20] = 255
    return images, labels


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` as an IDX file at ``path`` (+ ".gz" and gzipped when ``gz``)."""
    data = encode_idx(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, compresslevel=1)
    path.write_bytes(data)
    return path


def write_idx_dir(directory: Path, n_train: int = 50, n_test: int = 20,
                  gz: bool = False) -> dict[str, Path]:
    """Write the four standard IDX files into ``directory``; return {role: path}."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = make_split(n, seed)
        images_stem, labels_stem = SPLIT_FILES[split]
        paths[f"{split}_images"] = write_idx(directory / images_stem, images, gz)
        paths[f"{split}_labels"] = write_idx(directory / labels_stem, labels, gz)
    return paths


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of everything under ``directory``."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}
