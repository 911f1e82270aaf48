"""The TFDS sources (``mnist``, ``fashion_mnist``, ``tfds:NAME``), all offline.

Reading needs tensorflow-datasets only (extra ``tfds``); preparing needs TensorFlow too
(extra ``tfds-prepare``). Tests skip with a reason when what they need is not installed.
The reading tests also run once in a subprocess in which TensorFlow cannot be imported
(hidden from the import system), to show that reading never needs it. No test touches
the network: downloads are patched to fail at once, GCS is off.
"""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from idx_helpers import snapshot

from jaxcnn import data
from jaxcnn.data import tfds_source
from jaxcnn.data.idx import encode_idx
from jaxcnn.errors import DataError

SKIP = "needs the tfds extra: pip install 'jaxcnn[tfds]'"
SKIP_PREPARE = "needs the tfds-prepare extra: pip install 'jaxcnn[tfds-prepare]'"
ROOT = Path(__file__).resolve().parent.parent
# Run first in a subprocess: TensorFlow becomes impossible to import, as if not installed
# (find_spec says None, so TFDS and etils take their TensorFlow-free paths).
HIDE_TENSORFLOW = """
import sys
class _Hide:
    def __init__(self, inner): self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        return self.inner.find_spec(name, path, target)
    def __getattr__(self, attr): return getattr(self.inner, attr)
sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
"""


@pytest.fixture
def tfds():
    """tensorflow-datasets (reading and mocking need nothing more)."""
    return pytest.importorskip("tensorflow_datasets", reason=SKIP)


@pytest.fixture
def tfds_prepare(tfds):
    pytest.importorskip("tensorflow", reason=SKIP_PREPARE)  # TFDS prepares with it
    return tfds


def _without_tensorflow(code: str, env_dir: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python whose TensorFlow is hidden; TFDS_DATA_DIR=env_dir."""
    import os

    env = dict(os.environ, TFDS_DATA_DIR=str(env_dir), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", HIDE_TENSORFLOW + code], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty TFDS data directory (not created), used through $TFDS_DATA_DIR."""
    path = tmp_path / "tfds"
    monkeypatch.setenv("TFDS_DATA_DIR", str(path))
    return path


@pytest.fixture
def no_network(tfds):
    """Make any TFDS download or GCS lookup fail at once instead of hanging."""
    boom = AssertionError("test tried to use the network")
    with mock.patch("tensorflow_datasets.core.download.downloader._Downloader.download",
                    side_effect=boom), \
            mock.patch("tensorflow_datasets.core.utils.gcs_utils.exists", return_value=False):
        yield


@pytest.mark.parametrize("blocked", [("tensorflow_datasets",), ("PIL",),
                                     ("tensorflow_datasets", "PIL")])
def test_missing_packages_name_the_extra(monkeypatch, blocked):
    for module in blocked:
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(DataError, match=r"need .*not installed; run pip install 'jaxcnn\[tfds\]'"
                       ) as info:
        data.load("mnist", download=True)
    for module in blocked:
        assert {"PIL": "pillow"}.get(module, module) in str(info.value)


def test_preparing_without_tensorflow_names_the_prepare_extra(tfds, tmp_path):
    code = ("import jaxcnn.data as d\n"
            "try:\n    d.load('tfds:kmnist', download=True)\n"
            "except d.DataError as e:\n    print('ERROR', e)\n"
            "print('tensorflow' in sys.modules)")
    out = _without_tensorflow(code, tmp_path / "tfds")
    assert out.returncode == 0, out.stderr[-2000:]
    assert ("ERROR preparing TFDS dataset 'kmnist' needs TensorFlow, once (reading it later "
            "does not), and it is not installed; run pip install 'jaxcnn[tfds-prepare]'"
            in out.stdout)
    assert out.stdout.split()[-1] == "False"


def test_broken_tensorflow_datasets_names_the_extra(monkeypatch):
    """Installed but failing to import (e.g. upstream issue #11212: importlib_resources)."""
    monkeypatch.setattr(tfds_source, "_require_installed", lambda: None)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match=r"not installed or broken .* pip install 'jaxcnn\[tfds"):
        data.load("mnist", download=True)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("trace", [False, True], ids=["absent", "empty-dir"])
def test_not_prepared_fails_fast_without_writing(tfds, data_dir, name, trace):
    """Absent: decided before importing TFDS. Empty dir: TFDS's builder.is_prepared() says no."""
    if trace:
        (data_dir / name).mkdir(parents=True)
    before = snapshot(data_dir)
    start = time.perf_counter()
    with pytest.raises(DataError, match=f"TFDS dataset '{name}' is not prepared in") as info:
        data.load(name)
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    for hint in ("--download", "--data mnist-embedded", "--data idx:DIR", "manual_dir",
                 "dataset-fashion-mnist"):
        assert hint in message
    assert "\n" not in message
    assert snapshot(data_dir) == before
    assert data_dir.exists() == trace


def test_absent_dataset_fails_without_importing_tfds(tfds, data_dir):
    code = "\n".join([
        "import sys, jaxcnn.data as d",
        "try:\n    d.load('mnist')",
        "except d.DataError as e:\n    print('not prepared' in str(e))",
        "print('tensorflow_datasets' in sys.modules)",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split() == ["True", "False"]


def test_download_without_network_fails_fast(tfds_prepare, data_dir, no_network, monkeypatch):
    monkeypatch.setattr(tfds_source, "unreachable_reason", lambda url: "simulated: offline")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"cannot download TFDS dataset 'mnist': no network "
                                        r"\(simulated: offline\); use --data mnist-embedded"):
        data.load("mnist", download=True)
    assert time.perf_counter() - start < 2.0
    assert not data_dir.exists()


def test_unreachable_reason(monkeypatch):
    monkeypatch.setattr(urllib.request, "getproxies", lambda: {})
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert tfds_source.unreachable_reason(f"http://127.0.0.1:{port}/x.gz") is None
    start = time.perf_counter()
    reason = tfds_source.unreachable_reason(f"http://127.0.0.1:{port}/x.gz", timeout=1.0)
    assert reason and "cannot connect to 127.0.0.1" in reason
    assert time.perf_counter() - start < 1.5


def test_unreachable_reason_probes_the_proxy(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        proxy = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setattr(urllib.request, "getproxies", lambda: {"https": proxy})
        assert tfds_source.unreachable_reason("https://no-such-host.invalid/x.gz") is None


def _fill_manual_dir(manual: Path, valid: bool) -> None:
    """The four MNIST .gz names in TFDS's manual_dir: junk, or valid IDX data gzipped anew
    (a re-compressed copy: right content, other checksums)."""
    manual.mkdir(parents=True)
    for stem, array in (("train-images-idx3-ubyte", _digits(20)[0]),
                        ("train-labels-idx1-ubyte", _digits(20)[1]),
                        ("t10k-images-idx3-ubyte", _digits(10)[0]),
                        ("t10k-labels-idx1-ubyte", _digits(10)[1])):
        payload = encode_idx(array) if valid else b"not the real file"
        (manual / f"{stem}.gz").write_bytes(gzip.compress(payload))


def _no_tfds_output(captured) -> None:
    """Neither TFDS's stdout lines nor its progress bars reached the terminal."""
    assert captured.out == ""
    for noise in ("Downloading and preparing", "Dl Completed", "Dl Size", "Extraction", "%|"):
        assert noise not in captured.err


def test_files_in_manual_dir_with_wrong_checksums(tfds, data_dir, no_network, capfd):
    """Every wrong file is named with its expected and actual size and checksum, before
    TFDS starts (no progress bars), in one line."""
    manual = data_dir / "downloads" / "manual"
    _fill_manual_dir(manual, valid=False)
    with pytest.raises(DataError, match="manual_dir .* does not hold the original mnist files"
                       ) as info:
        data.load("mnist")
    message = str(info.value)
    assert "\n" not in message
    assert message.count("expected") >= 4 and "sha256 8d422c7b0a1c" in message  # t10k-images
    assert "t10k-images-idx3-ubyte.gz is 37 bytes" in message
    assert "not valid IDX files either" in message and "replace them" in message
    _no_tfds_output(capfd.readouterr())


def test_recompressed_manual_files_suggest_idx(tfds, data_dir, no_network, capfd):
    manual = data_dir / "downloads" / "manual"
    _fill_manual_dir(manual, valid=True)
    with pytest.raises(DataError, match=f"valid IDX data .*--data idx:{manual}$"):
        data.load("mnist")
    assert data.load(f"idx:{manual}").train_images.shape == (20, 28, 28)
    _no_tfds_output(capfd.readouterr())


@pytest.mark.usefixtures("tfds_prepare")
def test_tfds_preparation_is_silent_and_keeps_the_detail(tfds, data_dir, no_network,
                                                         monkeypatch, capfd):
    """A real download_and_prepare that fails (cached downloads hold junk): TFDS prints
    "Downloading and preparing ..." on stdout and ~20 progress-bar lines on stderr
    unless silenced, and the global progress-bar switch is restored afterwards."""
    from tensorflow_datasets.core.download import resource
    from tensorflow_datasets.core.utils import tqdm_utils

    downloads = data_dir / "downloads"
    downloads.mkdir(parents=True)
    for url, info in tfds.builder("mnist", data_dir=str(data_dir)).url_infos.items():
        path = downloads / resource.get_dl_fname(url, info.checksum)
        path.write_bytes(gzip.compress(b"junk"))
        path.with_name(path.name + ".INFO").write_text(
            json.dumps({"urls": [url], "dataset_names": ["mnist"]}))
    monkeypatch.setattr(tfds_source, "unreachable_reason", lambda url: None)  # "online"
    active = tqdm_utils._active
    with pytest.raises(DataError, match=r"preparing TFDS dataset 'mnist' .* failed \(ValueError: "
                                        r"cannot reshape array of size 0"):
        data.load("mnist", download=True)
    assert tqdm_utils._active == active
    _no_tfds_output(capfd.readouterr())


def test_one_line_keeps_tfds_multiline_detail():
    exc = RuntimeError("Artifact https://x/t10k.gz, downloaded to /m/t10k.gz, has wrong "
                       "checksum:\n* Expected: UrlInfo(size=1.57 MiB, checksum='8d42')\n"
                       "* Got: UrlInfo(size=37 bytes, checksum='ab4b')\n"
                       "To debug, see: https://www.tensorflow.org/datasets/overview")
    line = tfds_source._one_line(exc)
    assert "\n" not in line and "To debug" not in line
    assert "* Expected: UrlInfo(size=1.57 MiB, checksum='8d42')" in line
    assert "* Got: UrlInfo(size=37 bytes" in line


MOCKED = [  # source, first class name, number of classes (from the label feature)
    ("mnist", "0", 10), ("fashion_mnist", "T-shirt/top", 10), ("tfds:kmnist", "o", 10),
    ("tfds:emnist/balanced", "0", 47), ("tfds:emnist/letters", "0", 37),
]


@pytest.mark.parametrize(("source", "first_class", "classes"), MOCKED)
def test_mock_data(tfds, data_dir, source, first_class, classes):
    (data_dir / source.removeprefix("tfds:")).mkdir(parents=True)  # "prepared": mocked records
    with tfds.testing.mock_data(num_examples=12), \
            mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True):
        ds = data.load(source, train_size=5)
        assert ds.train_images.shape == (5, 28, 28) and ds.test_images.shape == (12, 28, 28)
        assert ds.train_images.dtype == np.uint8
        assert ds.train_labels.dtype == ds.test_labels.dtype == np.int32
        assert ds.train_labels.shape == (5,)
        assert 0 <= ds.test_labels.min() and ds.test_labels.max() < classes
        assert ds.class_names[0] == first_class and ds.num_classes == classes
        assert ds.source == source
        assert "array_record, without TensorFlow" in ds.notes[0]
        with pytest.raises(DataError, match="--test-size 13 is more than the 12 test images"):
            data.load(source, test_size=13)


def test_mock_data_reads_without_tensorflow(tfds, tmp_path):
    """The same reads in a Python where TensorFlow cannot be imported at all."""
    for name in ("mnist", "kmnist", "emnist/letters"):
        (tmp_path / "tfds" / name).mkdir(parents=True)
    code = "\n".join([
        "from unittest import mock",
        "import tensorflow_datasets as tfds",
        "import jaxcnn.data as d",
        "with tfds.testing.mock_data(num_examples=7), mock.patch.object(",
        "        tfds.core.DatasetBuilder, 'is_prepared', return_value=True):",
        "    for source in ('mnist', 'tfds:kmnist', 'tfds:emnist/letters'):",
        "        ds = d.load(source, train_size=3)",
        "        print(source, ds.train_images.shape, ds.test_images.shape, ds.num_classes)",
        "print('tensorflow' in sys.modules)",
    ])
    out = _without_tensorflow(code, tmp_path / "tfds")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == [
        "mnist (3, 28, 28) (7, 28, 28) 10", "tfds:kmnist (3, 28, 28) (7, 28, 28) 10",
        "tfds:emnist/letters (3, 28, 28) (7, 28, 28) 37", "False"]


@pytest.mark.parametrize(("source", "pattern"), [
    ("tfds:cifar10", r"'cifar10' has uint8 images of shape \(32, 32, 3\) \(colour\); this "
                     r"network needs 28x28 grayscale images, \(28, 28, 1\) uint8"),
    ("tfds:imdb_reviews", r"'imdb_reviews' is not an image data set \(its input 'text' is "
                          r"Text\)"),
    ("tfds:no_such_dataset", r"cannot open 'no_such_dataset' \(DatasetNotFoundError: Dataset "
                             r"no_such_dataset not found.\); check the name"),
    ("tfds:emnist/nope", "emnist's configs are byclass, bymerge, balanced, letters, digits, "
                         "mnist"),
    ("tfds:", "tfds: needs a tensorflow-datasets name"),
])
def test_other_tfds_datasets_are_refused_before_any_download(tfds, data_dir, no_network,
                                                             source, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        data.load(source, download=True)
    assert "\n" not in str(info.value)
    assert not data_dir.exists()


def test_tfrecord_data_is_read_through_tensorflow_when_installed(tfds_prepare, data_dir):
    """A data set prepared earlier as tfrecord: no random access (as_data_source raises
    NotImplementedError), so TensorFlow's as_dataset reads it."""
    (data_dir / "mnist").mkdir(parents=True)

    def no_random_access(self, *args, **kwargs):
        raise NotImplementedError("Random access data source for file format tfrecord")

    builder_cls = tfds_prepare.core.DatasetBuilder
    with tfds_prepare.testing.mock_data(num_examples=6), \
            mock.patch.object(builder_cls, "is_prepared", return_value=True), \
            mock.patch.object(builder_cls, "as_data_source", no_random_access):
        ds = data.load("mnist")
    assert ds.train_images.shape == (6, 28, 28) and ds.train_labels.dtype == np.int32
    assert "tfrecord, with TensorFlow" in ds.notes[0]


# --- end to end: the real `mnist` builder prepares offline from a seeded download cache ---

def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 28, 28) whose row 2+label is lit, and uint8 labels cycling 0..9."""
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), np.uint8)
    images[np.arange(n), 2 + labels, 3:20] = 255
    return images, labels


def _seed_download_cache(tfds, data_dir) -> None:
    """Put valid generated 60,000/10,000 IDX .gz files where TFDS caches MNIST's downloads.

    TFDS names a cached download ``get_dl_fname(url, registered_sha256)`` under
    ``<data_dir>/downloads`` and trusts it when a ``.INFO`` file sits beside it.
    """
    from tensorflow_datasets.core.download import resource

    train, test = _digits(60_000), _digits(10_000)
    arrays = {"train-images-idx3-ubyte.gz": train[0], "train-labels-idx1-ubyte.gz": train[1],
              "t10k-images-idx3-ubyte.gz": test[0], "t10k-labels-idx1-ubyte.gz": test[1]}
    downloads = data_dir / "downloads"
    downloads.mkdir(parents=True)
    url_infos = tfds.builder("mnist", data_dir=str(data_dir)).url_infos
    assert sorted(info.filename for info in url_infos.values()) == sorted(arrays)
    for url, info in url_infos.items():
        path = downloads / resource.get_dl_fname(url, info.checksum)
        path.write_bytes(gzip.compress(encode_idx(arrays[info.filename]), compresslevel=1))
        path.with_name(path.name + ".INFO").write_text(
            json.dumps({"urls": [url], "dataset_names": ["mnist"]}))


@pytest.mark.slow
@pytest.mark.usefixtures("tfds_prepare")
def test_mnist_builder_prepares_offline_from_seeded_cache(tfds, data_dir, no_network,
                                                           monkeypatch, capfd):
    _seed_download_cache(tfds, data_dir)
    monkeypatch.setattr(tfds_source, "unreachable_reason", lambda url: None)  # "online"
    ds = data.load("mnist", download=True)
    _no_tfds_output(capfd.readouterr())  # nor "Dataset mnist downloaded and prepared ..."
    assert ds.train_images.shape == (60_000, 28, 28) and ds.test_images.shape == (10_000, 28, 28)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert np.all(np.bincount(ds.train_labels, minlength=10) == 6_000)
    assert np.all(np.bincount(ds.test_labels, minlength=10) == 1_000)
    rows = np.arange(len(ds.train_labels))
    assert np.all(ds.train_images[rows, 2 + ds.train_labels, 10] == 255)  # labels match images
    assert ds.train_images.sum() == 60_000 * 17 * 255

    # Prepared now: a plain load (no --download) reads it, and sizes slice in TFDS.
    before = snapshot(data_dir)
    small = data.load("mnist", train_size=1_000, test_size=100)
    assert small.train_images.shape == (1_000, 28, 28) and small.test_labels.shape == (100,)
    np.testing.assert_array_equal(small.train_labels, ds.train_labels[:1_000])
    with pytest.raises(DataError, match="--train-size 60,001 is more than the 60,000"):
        data.load("mnist", train_size=60_001)
    assert snapshot(data_dir) == before
    assert "array_record, without TensorFlow" in small.notes[0]

    # Without TensorFlow: the array_record data reads the same; a copy whose metadata says
    # tfrecord gets one line on how to re-prepare.
    code = ("import jaxcnn.data as d\n"
            "ds = d.load('mnist', train_size=500, test_size=10)\n"
            "print(ds.train_labels[:500].tolist() == {labels})\n"
            "print('tensorflow' in sys.modules)")
    out = _without_tensorflow(code.format(labels=ds.train_labels[:500].tolist()), data_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True", "False"]
    old_dir = data_dir.parent / "tfrecord-era"
    shutil.copytree(data_dir / "mnist", old_dir / "mnist")
    info_file = next((old_dir / "mnist").glob("*/dataset_info.json"))
    info = json.loads(info_file.read_text())
    info["fileFormat"] = "tfrecord"
    info_file.write_text(json.dumps(info))
    out = _without_tensorflow("import jaxcnn.data as d\ntry:\n    d.load('mnist')\n"
                              "except d.DataError as e:\n    print(e)", old_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "was prepared as tfrecord, which only TensorFlow reads; re-prepare it as " \
           "array_record (delete that folder, then run `jaxcnn data --data mnist --download`" \
        in out.stdout
