"""The IDX reader: valid files (plain and gzipped) and every bad-input case."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idx_helpers import make_split, snapshot, write_idx, write_idx_dir

from jaxcnn import data
from jaxcnn.data import idx
from jaxcnn.errors import DataError, JaxcnnError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_encode_parse_roundtrip(shape, seed):
    array = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    out = idx.parse_idx(idx.encode_idx(array), array.ndim)
    assert out.dtype == np.uint8 and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_reads_a_generated_directory(tmp_path, gz):
    paths = write_idx_dir(tmp_path, n_train=30, n_test=12, gz=gz)
    assert all(p.name.endswith(".gz") == gz for p in paths.values())
    arrays = idx.read_idx_dir(tmp_path)
    images, labels = make_split(30, seed=1)
    np.testing.assert_array_equal(arrays["train_images"], images)
    np.testing.assert_array_equal(arrays["train_labels"], labels)
    assert arrays["train_images"].dtype == np.uint8
    assert arrays["train_labels"].dtype == np.int32
    assert arrays["test_images"].shape == (12, 28, 28)
    assert arrays["test_labels"].shape == (12,)


def test_gzip_is_detected_from_content_and_dotted_names_work(tmp_path):
    write_idx_dir(tmp_path, gz=True)
    for p in tmp_path.iterdir():  # e.g. train-images.idx3-ubyte, gzipped but no .gz suffix
        p.rename(tmp_path / p.name.removesuffix(".gz").replace("-idx", ".idx"))
    ds = data.load(f"idx:{tmp_path}")
    assert ds.train_images.shape == (50, 28, 28) and ds.test_labels.shape == (20,)


def test_load_idx_dataset_and_class_names(tmp_path):
    write_idx_dir(tmp_path / "digits")
    write_idx_dir(tmp_path / "my-Fashion-data")
    digits = data.load(f"idx:{tmp_path / 'digits'}", train_size=10, test_size=5)
    assert digits.class_names == data.DIGIT_NAMES and digits.num_classes == 10
    assert digits.train_images.shape == (10, 28, 28) and digits.test_labels.shape == (5,)
    assert digits.source == f"idx:{tmp_path / 'digits'}"
    fashion = data.load(f"idx:{tmp_path / 'my-Fashion-data'}")
    assert fashion.class_names == data.FASHION_NAMES


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_debian_fashion_mnist():
    ds = data.load(f"idx:{FASHION_DIR}")
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert ds.class_names[0] == "T-shirt/top"
    assert np.all(np.bincount(ds.train_labels) == 6000)


# --- the bad-input catalogue -------------------------------------------------------------
# Each case breaks a valid generated directory; loading it must raise ONE DataError whose
# message names the file and matches `pattern`, within 2 s, writing nothing.

def _edit(path: Path, change) -> None:
    """Apply ``change(bytes) -> bytes`` to the IDX content of ``path``, keeping it gzipped."""
    raw = path.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    out = change(gzip.decompress(raw) if gz else raw)
    path.write_bytes(gzip.compress(out) if gz else out)


def _replace(path: Path, array: np.ndarray) -> None:
    """Overwrite IDX file ``path`` with ``array``, keeping it gzipped if it was."""
    _edit(path, lambda _: idx.encode_idx(array))


def _set_bytes(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value):]


def corrupt_gzip(p):
    raw = p["train_images"].read_bytes()
    p["train_images"].write_bytes(raw[:10] + bytes(200) + raw[210:])


def truncated_gzip(p):
    raw = p["train_images"].read_bytes()
    p["train_images"].write_bytes(raw[: len(raw) // 2])


def truncated_payload(p):
    _edit(p["train_images"], lambda raw: raw[:-100])


def trailing_data(p):
    _edit(p["test_labels"], lambda raw: raw + b"\x00\x01")


def header_only_fragment(p):
    _edit(p["train_labels"], lambda raw: raw[:2])


def wrong_magic(p):
    _edit(p["train_images"], lambda raw: _set_bytes(raw, 0, (0x1803).to_bytes(4, "big")))


def swapped_files(p):  # a labels file where the images should be
    p["test_images"].write_bytes(p["test_labels"].read_bytes())


def header_count_too_big(p):
    _edit(p["train_labels"], lambda raw: _set_bytes(raw, 4, (10**6).to_bytes(4, "big")))


def not_28x28(p):
    images, _ = make_split(50, size=32)
    _replace(p["train_images"], images)


def label_out_of_range(p):
    _, labels = make_split(20)
    labels[7] = 10
    _replace(p["test_labels"], labels)


def count_mismatch(p):
    _, labels = make_split(49)
    _replace(p["train_labels"], labels)


def empty_split(p):
    _replace(p["test_images"], np.zeros((0, 28, 28), np.uint8))
    _replace(p["test_labels"], np.zeros((0,), np.uint8))


def missing_file(p):
    p["test_labels"].unlink()


CATALOGUE = [
    # (case, which file the message must name, pattern)
    (corrupt_gzip, "train_images", "corrupt or truncated gzip"),
    (truncated_gzip, "train_images", "corrupt or truncated gzip"),
    (truncated_payload, "train_images", r"header count does not match the payload.*truncated"),
    (trailing_data, "test_labels", "header count does not match the payload.*trailing"),
    (header_only_fragment, "train_labels", "too short for an IDX header"),
    (wrong_magic, "train_images", "unknown IDX type byte 0x18 .magic 0x00001803"),
    (swapped_files, "test_images", r"holds unsigned byte values of shape \(20,\), like IDX "
                                   "labels, where images .* swapped or mis-named file"),
    (header_count_too_big, "train_labels", "header count does not match the payload"),
    (not_28x28, "train_images", "images are 32x32, but this network needs 28x28"),
    (label_out_of_range, "test_labels", "label 10 at index 7 is not one of the training "
                                        "labels' classes 0-9"),
    (count_mismatch, "train_labels", "50 images but .* holds 49 labels"),
    (empty_split, "test_images", "the split is empty"),
    (missing_file, None, "no test labels file next to .*t10k-images-idx3-ubyte"),
]


GZIP_ONLY = (corrupt_gzip, truncated_gzip)
BAD_INPUTS = [
    pytest.param(case, role, pattern, gz, id=f"{case.__name__}-{'gz' if gz else 'plain'}")
    for case, role, pattern in CATALOGUE
    for gz in (False, True)
    if gz or case not in GZIP_ONLY
]


@pytest.mark.parametrize(("case", "role", "pattern", "gz"), BAD_INPUTS)
def test_bad_input(tmp_path, case, role, pattern, gz):
    paths = write_idx_dir(tmp_path, gz=gz)
    case(paths)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=pattern) as info:
        data.load(f"idx:{tmp_path}")
    message = str(info.value)
    assert "\n" not in message
    assert str(paths[role] if role else tmp_path) in message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("make", "pattern"), [
    (lambda tmp: tmp / "nope", "does not exist"),
    (lambda tmp: write_idx(tmp / "file", np.zeros(3, np.uint8)), "is not a directory"),
])
def test_bad_directory(tmp_path, make, pattern):
    target = make(tmp_path)
    with pytest.raises(DataError, match=pattern) as info:
        data.load(f"idx:{target}")
    assert str(target) in str(info.value) and "dataset-fashion-mnist" in str(info.value)
    assert not (tmp_path / "nope").exists()


def test_empty_idx_spelling():
    with pytest.raises(DataError, match="idx: needs a directory"):
        data.load("idx:")


def test_train_size_larger_than_idx_split(tmp_path):
    write_idx_dir(tmp_path, n_train=50)
    with pytest.raises(DataError, match="--train-size 51 is more than the 50 train images"):
        data.load(f"idx:{tmp_path}", train_size=51)


def test_unreadable_file_is_a_data_error(tmp_path):
    paths = write_idx_dir(tmp_path)
    paths["train_images"].unlink()
    paths["train_images"].mkdir()  # a directory where a file should be: cannot be read
    with pytest.raises(JaxcnnError):
        data.load(f"idx:{tmp_path}")


def test_read_idx_reads_gz_without_suffix(tmp_path):
    target = tmp_path / "labels"
    target.write_bytes(gzip.compress(idx.encode_idx(np.arange(10, dtype=np.uint8))))
    np.testing.assert_array_equal(idx.read_idx(target, 1), np.arange(10))


def _fifo(path: Path) -> Path:
    import os

    os.mkfifo(path)
    return path


@pytest.mark.parametrize("where", ["root", "in-folder", "symlink-to-device"])
def test_data_that_is_not_a_regular_file_is_refused_at_once(tmp_path, where):
    """Issue 22 (3): `mkfifo f; jaxcnn data --data idx:f` waited forever, and so did a FIFO
    inside an IDX folder; /dev/zero would be read without end. Paths that are not
    regular files are refused in one line, without waiting for a writer."""
    import os

    if where == "root":
        spec, says = str(_fifo(tmp_path / "f")), "is a FIFO (named pipe), not a regular file"
    else:
        paths = write_idx_dir(tmp_path / "d")
        paths["test_labels"].unlink()
        if where == "in-folder":
            _fifo(paths["test_labels"])
            says = "is a FIFO (named pipe), not a regular file"
        else:
            os.symlink("/dev/zero", paths["test_labels"])
            says = "is a character device, not a regular file"
        spec = str(tmp_path / "d")
    with pytest.raises(DataError, match=re.escape(says)):
        data.load(f"idx:{spec}")  # a blocking read would hang the test here


def test_a_metrics_csv_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    from jaxcnn.errors import OutputError
    from jaxcnn.training import outputs

    with pytest.raises(OutputError, match="FIFO"):
        list(outputs.windows(_fifo(tmp_path / "metrics.csv"), "0" * 32, 1))


def test_a_checkpoint_that_is_a_fifo_is_named_as_one_and_never_opened(tmp_path):
    from jaxcnn.errors import CheckpointError
    from jaxcnn.training import checkpoint

    _fifo(tmp_path / checkpoint.FILE_NAME)
    with pytest.raises(CheckpointError, match=re.escape("is not a file (a FIFO (named pipe))")):
        checkpoint.load(tmp_path)


def test_decompression_is_bounded_by_what_the_idx_header_announces(tmp_path):
    """Issue 22 (3): reads are bounded by what the header announces. A gzip of a 3-image
    IDX header followed by 100 MB of zeros (100 KB compressed) is read only up to its
    announced size (plus what counts the trailing data), never whole."""
    from jaxcnn.data import filetype

    head = idx.encode_idx(np.zeros((3, 28, 28), np.uint8))
    bomb = gzip.compress(head + bytes(100 << 20), compresslevel=1)
    inner = filetype.decompress("gzip", bomb)
    assert inner[:len(head)] == head and len(inner) == filetype.SMALL_BYTES
    with pytest.raises(DataError, match="has trailing data"):
        idx.parse_idx(inner, 3)
    # no IDX header inside: at most MAX_BYTES, then refused
    text = gzip.compress(b"x" * 5000)
    assert filetype.decompress("gzip", text) == b"x" * 5000
    huge = idx.encode_idx(np.zeros((1, 1), np.uint8))[:4] + (1 << 31).to_bytes(4, "big") * 2
    with pytest.raises(ValueError, match="announces"):
        filetype.decompress("gzip", gzip.compress(huge))


def test_deeply_nested_json_text_is_described_not_a_recursion_error():
    """Issue 22 (6), another member: a text file of 5,000 '[' given as idx: data."""
    from jaxcnn.data import filetype

    assert filetype.describe(b"[" * 5000).startswith("JSON-like text")
