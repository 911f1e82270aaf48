"""The loader: the embedded MNIST subset, its canonical split, size limits, the CLI."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.cli import data as data_cli
from jaxcnn.errors import DataError, JaxcnnError

ROOT = Path(__file__).resolve().parent.parent
# sha256 over the four arrays' bytes: changes only if someone changes the canonical split.
EMBEDDED_DIGEST = "486f8646a6792dbd22d03dfb617f957e4dd71be60557239aecf068d8e17aec70"


@pytest.fixture(scope="module")
def embedded() -> data.Dataset:
    return data.load()


def _digest(ds: data.Dataset) -> str:
    h = hashlib.sha256()
    for a in (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels):
        h.update(a.tobytes())
    return h.hexdigest()


def test_embedded_shapes_and_dtypes(embedded):
    assert embedded.source == "mnist-embedded" == data.DEFAULT_SOURCE
    assert embedded.train_images.shape == (4000, 28, 28)
    assert embedded.test_images.shape == (1000, 28, 28)
    assert embedded.train_images.dtype == embedded.test_images.dtype == np.uint8
    assert embedded.train_labels.shape == (4000,) and embedded.test_labels.shape == (1000,)
    assert embedded.train_labels.dtype == embedded.test_labels.dtype == np.int32
    assert embedded.class_names == tuple("0123456789") and embedded.num_classes == 10
    assert embedded.train_images.max() == 255 and embedded.train_images.min() == 0


def test_embedded_is_stratified_400_100(embedded):
    assert np.all(np.bincount(embedded.train_labels, minlength=10) == 400)
    assert np.all(np.bincount(embedded.test_labels, minlength=10) == 100)


def test_embedded_is_shuffled_so_first_n_is_balanced(embedded):
    assert np.any(np.diff(embedded.train_labels) < 0)  # never the sorted order
    assert np.any(np.diff(embedded.test_labels) < 0)
    first = np.bincount(embedded.train_labels[:1000], minlength=10)
    assert first.min() >= 70 and first.max() <= 130, first
    assert len(np.unique(embedded.train_labels[:100])) == 10


def test_embedded_has_no_overlap_between_train_and_test(embedded):
    train = {img.tobytes() for img in embedded.train_images}
    test = {img.tobytes() for img in embedded.test_images}
    assert len(train) == 4000 and len(test) == 1000
    assert not train & test


def test_embedded_is_deterministic(embedded):
    again = data.load()
    assert _digest(again) == _digest(embedded) == EMBEDDED_DIGEST
    np.testing.assert_array_equal(again.train_labels[:20], embedded.train_labels[:20])


def test_embedded_matches_the_documented_split(embedded):
    """The npz equals what scripts/make_embedded_mnist.py's documented recipe gives."""
    spec = importlib.util.spec_from_file_location(
        "make_embedded_mnist", ROOT / "scripts" / "make_embedded_mnist.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    sorted_labels = np.repeat(np.arange(10), 500)  # the CSV is sorted, 500 per class
    train_rows, test_rows = script.canonical_split(sorted_labels)
    with np.load(ROOT / "jaxcnn" / "_data" / "mnist_embedded.npz") as npz:
        np.testing.assert_array_equal(npz["train_rows"], train_rows)
        np.testing.assert_array_equal(npz["test_rows"], test_rows)
        assert int(npz["split_seed"]) == script.SPLIT_SEED == 0
    np.testing.assert_array_equal(embedded.train_labels, sorted_labels[train_rows])
    np.testing.assert_array_equal(embedded.test_labels, sorted_labels[test_rows])


@pytest.mark.parametrize(("train_size", "test_size"),
                         [(1, 1), (1000, 1000), (4000, 1000), (np.int64(7), None)])
def test_sizes_take_the_first_n(embedded, train_size, test_size):
    ds = data.load(train_size=train_size, test_size=test_size)
    assert ds.train_images.shape == (train_size, 28, 28)
    assert ds.test_labels.shape == (test_size or 1000,)
    np.testing.assert_array_equal(ds.train_images, embedded.train_images[:train_size])
    np.testing.assert_array_equal(ds.test_labels, embedded.test_labels[:test_size])


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"train_size": 4001}, "--train-size 4,001 is more than the 4,000 train "
                           "images that mnist-embedded holds; give --train-size 4,000 or less"),
    ({"test_size": 1001}, "--test-size 1,001 is more than the 1,000 test images"),
    ({"train_size": 0}, "train_size must be a whole number of at least 1, got 0"),
    ({"test_size": -5}, "test_size must be a whole number of at least 1, got -5"),
    ({"train_size": 2.5}, "train_size must be a whole number"),
    ({"test_size": True}, "test_size must be a whole number"),
])
def test_bad_sizes(kwargs, pattern):
    with pytest.raises(DataError, match=pattern):
        data.load(**kwargs)


def test_unknown_source():
    with pytest.raises(DataError, match="unknown data source 'mnist_embedded'; the sources "
                                        "are mnist-embedded, mnist, fashion_mnist, "
                                        "tfds:NAME, idx:PATH"):
        data.load("mnist_embedded")


def test_data_error_is_a_jaxcnn_error():
    assert issubclass(DataError, JaxcnnError)


def _arrays(n=3, dtype=np.uint8, shape=(28, 28), labels=None):
    images = np.zeros((n, *shape), dtype)
    return images, np.zeros(n, np.int32) if labels is None else labels


@pytest.mark.parametrize(("train", "pattern"), [
    (_arrays(dtype=np.float32), "images are float32 .* expected uint8"),
    (_arrays(shape=(28, 27)), r"expected uint8 \(N, 28, 28\)"),
    (_arrays(labels=np.zeros(3, np.int64)), "labels are int64"),
    (_arrays(labels=np.zeros(2, np.int32)), r"expected int32 \(3,\)"),
    (_arrays(n=0), "the split is empty"),
    (_arrays(labels=np.array([0, 10, 1], np.int32)), "labels must be 0-9, found 0..10"),
    (_arrays(labels=np.array([0, -1, 1], np.int32)), "labels must be 0-9"),
])
def test_dataset_checks_its_arrays(train, pattern):
    with pytest.raises(DataError, match=pattern):
        data.Dataset("x", *train, *_arrays(), class_names=data.DIGIT_NAMES)


def test_dataset_is_frozen(embedded):
    with pytest.raises(AttributeError):
        embedded.source = "other"


def test_data_arguments():
    parser = argparse.ArgumentParser()
    data.add_data_arguments(parser)
    assert vars(parser.parse_args([])) == {"data": "mnist-embedded", "download": False}
    args = parser.parse_args(["--data", "idx:/x", "--download"])
    assert args.data == "idx:/x" and args.download


def test_import_does_not_pull_in_tensorflow():
    code = "import sys, jaxcnn.data, jaxcnn.cli.data; " \
           "print(any(m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'jax') " \
           "for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# --- `jaxcnn data` -----------------------------------------------------------------------

def _parse(argv):
    parser = argparse.ArgumentParser()
    data_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_data_cli_summary(capsys):
    assert data_cli.run(_parse([])) == 0
    out = capsys.readouterr().out
    assert "source: mnist-embedded" in out
    assert "total    4,000    1,000" in out
    assert out.count("    400      100") == 10
    assert "range 0..255" in out


def test_data_cli_fashion_names(tmp_path, capsys):
    from idx_helpers import write_idx_dir

    write_idx_dir(tmp_path / "fashion", n_train=20, n_test=10)
    data_cli.run(_parse(["--data", f"idx:{tmp_path / 'fashion'}"]))
    out = capsys.readouterr().out
    assert "9 Ankle boot" in out
    assert re.search(r"^total +20 +10$", out, re.MULTILINE)


def test_data_cli_bad_source_raises_data_error():
    with pytest.raises(DataError):
        data_cli.run(_parse(["--data", "idx:/no/such/dir"]))


def _cli_available() -> str | None:
    """None if `python -m jaxcnn` can build its parser, else why not (other modules pending)."""
    from jaxcnn import cli

    for module, _ in cli.COMMANDS.values():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"`jaxcnn` CLI not wired yet: {exc}"
    return None


@pytest.mark.parametrize(("argv", "code", "needle"), [
    (["data"], 0, "total    4,000    1,000"),
    (["data", "--data", "idx:/no/such/dir"], 2,
     "jaxcnn data: error: idx:/no/such/dir: does not exist"),
    (["data", "--data", "nonsense"], 2, "jaxcnn data: error: unknown data source 'nonsense'"),
])
def test_cli_subprocess(argv, code, needle):
    reason = _cli_available()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run([sys.executable, "-m", "jaxcnn", *argv], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert needle in (proc.stdout if code == 0 else proc.stderr)
    assert "Traceback" not in proc.stderr


def test_the_readmes_per_class_counts_of_the_first_images_are_true():
    """Issue 22 (10): the README said the first N embedded images "are class-balanced";
    the first 1,000 training images hold 80-108 per class. It now gives the ranges, and
    this keeps them true."""
    from pathlib import Path

    import numpy as np

    from jaxcnn import data

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    ds = data.load("mnist-embedded", train_size=4000, test_size=1000)
    for split, n, text in [("train", 100, "the first 100 training images hold {}-{} per class"),
                           ("train", 1000, "the first 1,000 {}-{}"),
                           ("train", 3000, "3,000 (the report's protocol) {}-{}"),
                           ("test", 800, "the first 800 test images {}-{}")]:
        counts = np.bincount(getattr(ds, f"{split}_labels")[:n], minlength=10)
        assert text.format(counts.min(), counts.max()) in " ".join(readme.split())
