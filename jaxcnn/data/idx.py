"""Read and validate IDX files, the format of MNIST and its family (NumPy only).

The IDX format (Y. LeCun, http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"):
big-endian; two zero bytes, a type byte, a rank byte ``d``, then ``d`` uint32 sizes,
then the ``prod(sizes)`` values. The type bytes are ``0x08`` unsigned byte, ``0x09``
signed byte, ``0x0B`` short (int16), ``0x0C`` int (int32), ``0x0D`` float (float32) and
``0x0E`` double (float64). ``parse_idx`` reads any of them at any rank.

What jaxcnn needs from them:

* images: unsigned bytes of rank 3, shape (N, 28, 28) (magic ``0x00000803``); rows of
  784 pixels (N, 784) and (N, 28, 28, 1) are reshaped;
* labels: any integer type, rank 1 (N,) — MNIST's ``0x00000801`` — or rank 2 (N, K) with
  the class in column 0, as QMNIST ships its labels (``0x00000C02``, int32, K = 8).

Files may be compressed (gzip, bzip2, xz, lzma, zlib) or wrapped in a one-file zip or
tar, detected from the content, not the name (``jaxcnn.data.filetype``). Bytes that are not
IDX at all (an HTML error page, an image, a NumPy file, ...) are named as what they are.
Every problem raises ``DataError`` with one message naming the file, what is wrong and
what to do. Nothing is ever written.

Finding the four files in a folder or archive: ``jaxcnn.data.idx_layout``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxcnn.data import common, filetype
from jaxcnn.errors import DataError

IMAGE_SHAPE = (28, 28)
UBYTE = 0x08
# type byte -> big-endian NumPy dtype, as the IDX format defines them
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
INTEGER_TYPES = (0x08, 0x09, 0x0B, 0x0C)
# split -> (images stem, labels stem): MNIST's names
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FIX_CORRUPT = "re-download or regenerate this file"


def type_name(code: int) -> str:
    """``"int (int32), type 0x0C"`` for a type byte."""
    return f"{filetype.IDX_TYPES.get(code, 'unknown')}, type 0x{code:02X}"


def header(data: bytes) -> tuple[int, tuple[int, ...]] | None:
    """``(type byte, shape)`` of IDX ``data``, or None when it has no complete IDX header."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_DTYPES:
        return None
    rank = data[3]
    if len(data) < 4 + 4 * rank:
        return None
    return data[2], tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big")
                          for i in range(rank))


def parse_idx(data: bytes, ndim: int | None = None, path: Path | str = "<bytes>"
              ) -> np.ndarray:
    """Decode IDX ``data`` of any type and rank (rank ``ndim`` when given).

    Returns a native-endian array of the header's type (uint8, int8, int16, int32,
    float32 or float64) and shape. ``path`` only names the file in error messages.
    """
    if data and len(data) < 4 and not data.strip(b"\x00"):
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header; "
                        f"the file is truncated: {FIX_CORRUPT}")
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{path}: this is {filetype.describe(data)}")
    magic = int.from_bytes(data[:4], "big")
    if data[2] not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type byte 0x{data[2]:02X} (magic 0x{magic:08X}; "
                        f"the IDX types are {known}); the file is damaged: {FIX_CORRUPT}")
    rank = data[3]
    if ndim is not None and rank != ndim:
        raise DataError(f"{path}: IDX rank {rank} (magic 0x{magic:08X}), expected rank {ndim}")
    header_len = 4 + 4 * rank
    if len(data) < header_len:
        raise DataError(f"{path}: {len(data)} bytes, too short for the {header_len}-byte IDX "
                        f"header of rank {rank}; the file is truncated: {FIX_CORRUPT}")
    _, shape = header(data)
    dtype = IDX_DTYPES[data[2]]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_len
    if payload != expected:
        state = "is truncated" if payload < expected else "has trailing data"
        raise DataError(
            f"{path}: header count does not match the payload: the header says shape "
            f"{shape} of {dtype.itemsize}-byte values = {expected:,} bytes but {payload:,} "
            f"follow (the file {state}); {FIX_CORRUPT}")
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a native, writable copy


def load_bytes(raw: bytes, path: Path | str) -> tuple[bytes, list[filetype.Layer]]:
    """``raw`` with its compression / one-file-archive layers removed (``filetype.unwrap``)."""
    try:
        return filetype.unwrap(raw)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}; {FIX_CORRUPT}, or unpack it yourself to see what "
                        "is wrong") from exc


def read_path(path: Path) -> bytes:
    """The bytes of file ``path``; ``DataError`` when it cannot be read."""
    try:
        return common.read_regular(path)
    except common.NotRegularFile as exc:
        raise DataError(f"{path}: is {exc.what}, not a regular file; jaxcnn reads data only "
                        "from regular files, whose reading ends: save the data into a file "
                        "and point idx: at it") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror}); check the path and "
                        "its permissions") from exc


def read_idx(path: Path | str, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (plain, compressed or a one-file archive), validated."""
    path = Path(path)
    return parse_idx(load_bytes(read_path(path), path)[0], ndim, path)


def _shape_words(code: int, shape: tuple[int, ...]) -> str:
    return f"{filetype.IDX_TYPES[code]} values of shape {shape}"


def images_from_bytes(data: bytes, path: Path | str) -> tuple[np.ndarray, str | None]:
    """IDX images: uint8 (N, 28, 28), and a note when they were stored in another but
    unambiguous shape, (N, 784) rows or (N, 28, 28, 1); ``DataError`` naming the type or
    shape found otherwise."""
    found = header(data)
    if found is not None and (found[0] != UBYTE or len(found[1]) != 3):
        code, shape = found
        pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        if code == UBYTE and (shape[1:] == (pixels,) or shape[1:] == (*IMAGE_SHAPE, 1)):
            images = parse_idx(data, None, path)
            return (images.reshape(len(images), *IMAGE_SHAPE),
                    f"images: stored as {shape}, read as (N, 28, 28)")
        if len(shape) in (1, 2) and code in INTEGER_TYPES:
            raise DataError(
                f"{path}: this holds {_shape_words(code, shape)}, like IDX labels, where "
                "images (unsigned bytes of shape (N, 28, 28)) belong: swapped or mis-named "
                "file?")
        if code != UBYTE:
            raise DataError(
                f"{path}: the images are IDX {type_name(code)}, shape {shape}; jaxcnn reads "
                "images of unsigned bytes (type 0x08, pixels 0-255) only: convert them to "
                "uint8 0-255 and write them as IDX type 0x08")
        raise DataError(f"{path}: images of rank {len(shape)} (shape {shape}); jaxcnn needs "
                        "rank 3, shape (N, 28, 28)")
    images = parse_idx(data, 3, path)
    if images.shape[1:] != IMAGE_SHAPE:
        h, w = images.shape[1:]
        raise DataError(f"{path}: images are {h}x{w}, but this network needs 28x28; "
                        "use an MNIST-format data set (28x28 grayscale)")
    return images, None


def labels_from_bytes(data: bytes, path: Path | str) -> tuple[np.ndarray, str | None]:
    """IDX labels: int64 (N,) and a note when they came from column 0 of a table.

    Accepts any integer IDX type, rank 1 (N,) or rank 2 (N, K) with the class in
    column 0 (QMNIST); ``DataError`` for float types and other ranks.
    """
    found = header(data)
    if found is not None:
        code, shape = found
        if code == UBYTE and len(shape) == 3:
            raise DataError(f"{path}: this holds images ({_shape_words(code, shape)}) where "
                            "labels belong: swapped or mis-named file?")
        if code not in INTEGER_TYPES:
            raise DataError(
                f"{path}: the labels are IDX {type_name(code)}; class labels must be "
                "integers (IDX types 0x08, 0x09, 0x0B or 0x0C)")
        if len(shape) not in (1, 2):
            raise DataError(f"{path}: labels of rank {len(shape)} (shape {shape}); jaxcnn "
                            "reads labels of rank 1 (N,) or a rank-2 table (N, K) whose "
                            "column 0 is the class (QMNIST)")
    array = parse_idx(data, None, path)
    note = None
    if array.ndim == 2:
        if array.shape[1] == 0:
            raise DataError(f"{path}: a label table with no columns, shape {array.shape}; "
                            f"{FIX_CORRUPT}")
        note = (f"labels: column 0 of an {array.shape} {type_name(data[2])} table "
                "(QMNIST layout)")
        array = array[:, 0]
    return array.astype(np.int64), note


def check_split(images: np.ndarray, labels: np.ndarray, images_path, labels_path) -> None:
    """Raise ``DataError`` unless there are N >= 1 images, N labels, all >= 0."""
    if len(images) == 0:
        raise DataError(f"{images_path}: the split is empty (0 images); "
                        f"{FIX_CORRUPT} with the real data")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images):,} images but {labels_path} holds "
            f"{len(labels):,} labels; the two files must come from the same data set and split")
    bad = np.flatnonzero(labels < 0)
    if bad.size:
        raise DataError(f"{labels_path}: labels must be 0 or more, found {int(labels[bad[0]])} "
                        f"at index {int(bad[0])} ({bad.size:,} of {labels.size:,}); "
                        f"{FIX_CORRUPT}")


def check_labels_in(labels: np.ndarray, declared: Callable[[np.ndarray], np.ndarray],
                    what: str, labels_path) -> None:
    """Raise ``DataError`` naming the first label for which ``declared(labels)`` is False."""
    bad = np.flatnonzero(~declared(labels))
    if bad.size:
        raise DataError(
            f"{labels_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is not one of "
            f"{what} ({bad.size:,} of {labels.size:,} labels are not); {FIX_CORRUPT}, or fix "
            "the class list")


def read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int32 (N,) of ``split`` ('train'/'test') from
    the standard names in ``directory``, labels checked to lie in 0-9 (MNIST)."""
    images_stem, labels_stem = SPLIT_FILES[split]
    images_path = find_file(directory, images_stem)
    labels_path = find_file(directory, labels_stem)
    images, _ = images_from_bytes(load_bytes(read_path(images_path), images_path)[0],
                                  images_path)
    labels, _ = labels_from_bytes(load_bytes(read_path(labels_path), labels_path)[0],
                                  labels_path)
    check_split(images, labels, images_path, labels_path)
    check_labels_in(labels, lambda x: x < 10, "the ten digits 0-9", labels_path)
    return images, labels.astype(np.int32)


def find_file(directory: Path, stem: str) -> Path:
    """The file for ``stem`` in ``directory``: ``stem``, ``stem.gz`` or the dotted variant."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory}: no {stem}[.gz] in this directory")


def read_idx_dir(directory: Path | str) -> dict[str, np.ndarray]:
    """All four arrays of a folder holding MNIST's four standard names, labels 0-9.

    Returns ``train_images``/``test_images`` uint8 (N, 28, 28) and
    ``train_labels``/``test_labels`` int32 (N,). (``jaxcnn.data.idx_layout`` finds the files
    under other names and layouts, with any class set.)
    """
    directory = Path(directory).expanduser()
    out = {}
    for split in SPLIT_FILES:
        out[f"{split}_images"], out[f"{split}_labels"] = read_split(directory, split)
    return out


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes (header + big-endian payload) of an array whose dtype IDX has (uint8,
    int8, int16, int32, float32, float64): the inverse of ``parse_idx``."""
    array = np.asarray(array)
    code = next((c for c, d in IDX_DTYPES.items() if array.dtype.newbyteorder(">") == d), None)
    if code is None:
        raise ValueError(f"IDX has no type for {array.dtype}")
    dtype = IDX_DTYPES[code]
    header_bytes = bytes([0, 0, code, array.ndim])
    header_bytes += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header_bytes + np.ascontiguousarray(array, dtype=dtype).tobytes()
