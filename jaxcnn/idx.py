"""Read and validate IDX files, the format MNIST and Fashion-MNIST ship in (NumPy only).

An IDX file is big-endian: two zero bytes, a type code (``0x08`` = unsigned byte, the
only one MNIST uses), the number of dimensions ``d``, then ``d`` uint32 sizes, then
``prod(sizes)`` payload bytes. Images are ``d = 3`` (magic ``0x00000803``, shape
(N, 28, 28)); labels are ``d = 1`` (magic ``0x00000801``, shape (N,)). Files may be
gzipped (detected from the content, not the name).

A data directory holds the four standard files, each plain or ``.gz``::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

(The variant spelling ``train-images.idx3-ubyte`` is accepted too.) Every problem
raises ``DataError`` with one message naming the file, what is wrong and what to do.
Nothing is ever written.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from jaxcnn.errors import DataError

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
UBYTE = 0x08
# split -> (images stem, labels stem)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FIX_CORRUPT = "re-download or regenerate this file"


def _kind(ndim: int) -> str:
    return "images" if ndim == 3 else "labels"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic ``1f 8b``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror}); check the path and "
                        "its permissions") from exc
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc}); {FIX_CORRUPT}, "
                        "or gunzip it yourself to see what is wrong") from exc


def parse_idx(data: bytes, ndim: int, path: Path | str = "<bytes>") -> np.ndarray:
    """Decode IDX ``data`` holding an unsigned-byte array of ``ndim`` dimensions.

    Returns a uint8 array whose shape is the header's sizes. ``path`` only names the
    file in error messages.
    """
    kind = _kind(ndim)
    header_len = 4 + 4 * ndim
    expected_magic = (UBYTE << 8) | ndim
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header; "
                        f"the file is truncated or empty: {FIX_CORRUPT}")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08X}, expected 0x{expected_magic:08X} "
            f"for IDX {kind}; this is not an IDX {kind} file (swapped or mis-named file?)")
    if len(data) < header_len:
        raise DataError(f"{path}: {len(data)} bytes, too short for the {header_len}-byte IDX "
                        f"{kind} header; the file is truncated: {FIX_CORRUPT}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(data) - header_len
    if payload != expected:
        state = "is truncated" if payload < expected else "has trailing data"
        raise DataError(
            f"{path}: header count does not match the payload: the header says shape "
            f"{shape} = {expected:,} bytes but {payload:,} follow (the file {state}); "
            f"{FIX_CORRUPT}")
    # copy: a writable array that owns its memory, like every other source's
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def read_idx(path: Path | str, ndim: int) -> np.ndarray:
    """Read one IDX file (plain or gzipped) of ``ndim`` dimensions as uint8, validated."""
    path = Path(path)
    return parse_idx(_read_bytes(path), ndim, path)


def find_file(directory: Path, stem: str) -> Path:
    """The file for ``stem`` in ``directory``: ``stem``, ``stem.gz`` or the dotted variant."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    present = sorted(p.name for p in directory.iterdir())[:8]
    raise DataError(
        f"idx:{directory}: no {stem}[.gz] in this directory (it holds: "
        f"{', '.join(present) or 'nothing'}); it needs the four standard MNIST IDX files "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte (plain or .gz)")


def check_split(images: np.ndarray, labels: np.ndarray, images_path: Path,
                labels_path: Path) -> None:
    """Raise ``DataError`` unless images are (N, 28, 28), N >= 1, labels (N,) in 0..9."""
    if images.shape[1:] != IMAGE_SHAPE:
        h, w = images.shape[1:]
        raise DataError(f"{images_path}: images are {h}x{w}, but this network needs 28x28; "
                        "use an MNIST-format data set (28x28 grayscale)")
    if len(images) == 0:
        raise DataError(f"{images_path}: the split is empty (0 images); "
                        f"{FIX_CORRUPT} with the real data")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images):,} images but {labels_path} holds "
            f"{len(labels):,} labels; the two files must come from the same data set and split")
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DataError(
            f"{labels_path}: labels must be 0-9, found {int(labels[bad[0]])} at index "
            f"{int(bad[0])} ({bad.size:,} of {labels.size:,} out of range); {FIX_CORRUPT}")


def read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int32 (N,) of ``split`` ('train'/'test')."""
    images_stem, labels_stem = SPLIT_FILES[split]
    images_path = find_file(directory, images_stem)
    labels_path = find_file(directory, labels_stem)
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    check_split(images, labels, images_path, labels_path)
    return images, labels.astype(np.int32)


def read_idx_dir(directory: Path | str) -> dict[str, np.ndarray]:
    """All four arrays of an IDX directory, validated.

    Returns ``train_images``/``test_images`` uint8 (N, 28, 28) and
    ``train_labels``/``test_labels`` int32 (N,).
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise DataError(
            f"idx:{directory}: {what}; give the folder holding the four MNIST IDX files "
            "(e.g. `apt-get install dataset-fashion-mnist`, then "
            "--data idx:/usr/share/datasets/fashion-mnist), or use --data mnist-embedded")
    out = {}
    for split in SPLIT_FILES:
        out[f"{split}_images"], out[f"{split}_labels"] = read_split(directory, split)
    return out


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array (header + payload): the inverse of ``parse_idx``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()
