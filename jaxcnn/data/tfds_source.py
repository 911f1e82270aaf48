"""TFDS sources: ``mnist``, ``fashion_mnist`` and ``tfds:NAME`` (extra ``tfds``).

Any tensorflow-datasets image-classification data set whose images are 28x28x1 uint8
(``tfds:kmnist``, ``tfds:emnist/balanced``, ``tfds:emnist/letters``, ...) can be read;
its class names come from its label feature. Anything else (another image size,
colour) is refused in one line, before anything is downloaded.

Reading needs no TensorFlow: a data set prepared in the ``array_record`` format is read
with ``builder.as_data_source`` (TFDS, pillow, NumPy), in TFDS's fixed record order.
Preparing it (``--download``, or the four original files in TFDS's ``manual_dir``)
runs TFDS's ``download_and_prepare``, which needs TensorFlow (extra ``tfds-prepare``);
jaxcnn prepares as ``array_record``. A data set prepared earlier as ``tfrecord`` is
read through TensorFlow when it is installed; without it, the error says how to
re-prepare.

Nothing here is imported until such a source is asked for. The order of work keeps
failures fast and offline-safe:

1. Without ``download``, if the local TFDS data directory has no trace of the data
   set, fail at once, before importing anything.
2. Import ``tensorflow_datasets`` (about 0.5 s) and check that the data set is of the
   MNIST family. If it is not prepared in the TFDS data directory (``$TFDS_DATA_DIR``,
   else ``~/tensorflow_datasets``), prepare it only when that needs no network (the
   original files are in ``manual_dir``, ``<data_dir>/downloads/manual``, and their
   checksums match) or when ``download=True`` and the download host answers within a
   few seconds. Otherwise raise ``DataError`` at once (offline, TFDS itself would retry
   for minutes). GCS is never tried. TFDS's own progress output is silenced.
3. Read the splits ``train`` and ``test``, only the first ``train_size`` / ``test_size``
   records when given.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import socket
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxcnn.data.common import check_available
from jaxcnn.errors import DataError

INSTALL = "pip install 'jaxcnn[tfds]'"
PREPARE_INSTALL = "pip install 'jaxcnn[tfds-prepare]'"
IMAGE_SHAPE = (28, 28, 1)
BATCH = 2048
CONNECT_TIMEOUT_S = 3.0


def _alternatives(manual_dir: Path | str) -> str:
    return ("use --data mnist-embedded (5,000 MNIST digits shipped with jaxcnn), "
            "--data idx:DIR (the four IDX files, e.g. `apt-get install dataset-fashion-mnist` "
            "then idx:/usr/share/datasets/fashion-mnist), or put the original downloads "
            f"(checksums must match; re-compressed copies are read by idx:DIR) in TFDS's "
            f"manual_dir {manual_dir}")


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """Silence absl warnings (e.g. 'Variant folder ... has no dataset_info.json') inside."""
    from absl import logging as absl_logging

    old = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(old)


@contextlib.contextmanager
def _quiet_tfds(tfds) -> Iterator[None]:
    """Silence TFDS's own output inside: its tqdm progress bars (stderr), its
    "Downloading and preparing dataset ..." / "... downloaded and prepared" lines (printed
    on stdout, where they would break ``--json`` output) and absl warnings. jaxcnn reports
    progress itself. The progress-bar switch is global in TFDS; it is restored on exit."""
    from tensorflow_datasets.core.utils import tqdm_utils

    was_active = getattr(tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)
    try:
        with _quiet_absl(), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        tfds.display_progress_bar(was_active)


def _import_tfds():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TFDS may import TensorFlow
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise DataError(
            f"the TFDS sources need tensorflow-datasets, which is not installed or broken "
            f"({exc}); run {INSTALL}, or use --data mnist-embedded or --data idx:DIR") from exc
    return tfds


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null inside: TensorFlow's C++ start-up lines
    ("oneDNN custom operations are on ...", twice, whatever TF_CPP_MIN_LOG_LEVEL says)
    bypass Python's sys.stderr. Python exceptions are unaffected."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _import_tensorflow(why: str):
    try:
        with _quiet_native_stderr():
            import tensorflow as tf
    except ImportError as exc:
        raise DataError(f"{why} needs TensorFlow, which is not installed ({exc}); run "
                        f"{PREPARE_INSTALL}") from exc
    try:
        tf.config.set_visible_devices([], "GPU")  # leave the accelerator's memory to JAX
    except RuntimeError:  # TensorFlow already initialised its devices: too late, harmless
        pass
    return tf


def data_dir() -> str | None:
    """The TFDS data directory from ``$TFDS_DATA_DIR`` (read now), or None for TFDS's default."""
    return os.environ.get("TFDS_DATA_DIR") or None


def _not_prepared(name: str, where: Path | str, manual_dir: Path | str) -> DataError:
    return DataError(
        f"TFDS dataset {name!r} is not prepared in {where}; add --download to fetch it "
        f"(needs internet), or {_alternatives(manual_dir)}")


def _installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked by sys.modules[module] = None
        return False


def _require_installed() -> None:
    """Reading needs TFDS and pillow (TFDS decodes images with it), not TensorFlow."""
    missing = [p for m, p in (("tensorflow_datasets", "tensorflow_datasets"), ("PIL", "pillow"))
               if not _installed(m)]
    if missing:
        raise DataError(
            f"the TFDS sources need {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; run {INSTALL}, or use "
            "--data mnist-embedded or --data idx:DIR")


def _fail_fast_if_absent(name: str) -> None:
    """Raise the not-prepared error without importing TFDS (0.5 s) when that is certain.

    Certain means: the data directory is local and holds neither ``<name>/`` (where TFDS
    prepares it) nor ``downloads/manual/``.
    """
    configured = data_dir()
    if configured and "://" in configured:  # e.g. gs://: leave it to TFDS
        return
    root = Path(configured or Path.home() / "tensorflow_datasets").expanduser()
    manual_dir = root / "downloads" / "manual"
    folder = root / name.split(":")[0]  # "emnist/letters:3.1.0" -> emnist/letters
    if not folder.exists() and not manual_dir.exists():
        raise _not_prepared(name, folder, manual_dir)


def unreachable_reason(url: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None if a TCP connection to ``url``'s host (or its proxy) opens in ``timeout`` s.

    Otherwise a short reason. Runs in a daemon thread, so a hanging DNS lookup cannot
    block longer than ``timeout``.
    """
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    target = urllib.parse.urlsplit(proxy) if proxy else parts
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot connect to {host}:{port}: {exc}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer from {host}:{port} within {timeout:.0f} s"


def _manual_files_present(builder, manual_dir: Path) -> bool:
    infos = builder.url_infos or {}
    names = [info.filename for info in infos.values() if info.filename]
    return bool(names) and all((manual_dir / name).is_file() for name in names)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_manual_files(builder, manual_dir: Path) -> None:
    """Raise ``DataError`` naming every file in ``manual_dir`` whose size or SHA-256 is not
    the one TFDS registered for it (TFDS would stop at the first, after its progress bars).

    Files that hold valid IDX data anyway (typically re-compressed copies of the
    originals, whose bytes differ) are readable as they are through ``idx:DIR``.
    """
    wrong = []
    for info in (builder.url_infos or {}).values():
        path = manual_dir / info.filename
        size, checksum = path.stat().st_size, _sha256(path)
        if size != int(info.size) or checksum != info.checksum:
            wrong.append(f"{info.filename} is {size:,} bytes with sha256 {checksum[:12]}..., "
                         f"expected {int(info.size):,} bytes with sha256 {info.checksum[:12]}...")
    if not wrong:
        return
    from jaxcnn.data import idx

    try:
        idx.read_idx_dir(manual_dir)
        advice = (f"they hold valid IDX data (a re-compressed or re-packed copy?): read them "
                  f"as they are with --data idx:{manual_dir}")
    except DataError as exc:
        advice = (f"they are not valid IDX files either ({exc}); replace them with the "
                  "original downloads")
    raise DataError(f"TFDS's manual_dir {manual_dir} does not hold the original "
                    f"{builder.name} files: {'; '.join(wrong)}; {advice}")


def _one_line(exc: BaseException, limit: int = 600) -> str:
    """``exc``'s whole message on one line (TFDS's are multi-line: the detail that matters,
    e.g. expected and actual checksums, comes after the first), without TFDS's debug URL."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.strip().startswith("To debug, see")]
    text = " ".join(lines)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _prepare(builder, tfds, name: str, download: bool) -> None:
    """Make ``builder`` prepared (as array_record), or raise ``DataError`` fast (see the
    module docstring). Files in manual_dir are checked first, then that TensorFlow is
    installed, then (for a download) that the network answers."""
    manual_dir = Path(builder.data_dir_root) / "downloads" / "manual"
    manual = _manual_files_present(builder, manual_dir)
    if manual:
        _check_manual_files(builder, manual_dir)
    elif not download:
        raise _not_prepared(name, builder.data_dir, manual_dir)
    if not _installed("tensorflow"):
        raise DataError(f"preparing TFDS dataset {name!r} needs TensorFlow, once (reading it "
                        f"later does not), and it is not installed; run {PREPARE_INSTALL}, "
                        "or use --data idx:PATH with the IDX files")
    if not manual:
        urls = sorted((builder.url_infos or {}).keys()) or [getattr(builder, "URL", "")]
        reason = unreachable_reason(urls[0]) if urls[0] else None
        if reason:
            raise DataError(
                f"cannot download TFDS dataset {name!r}: no network ({reason}); "
                f"{_alternatives(manual_dir)}")
    _import_tensorflow(f"preparing TFDS dataset {name!r}")  # hides GPUs from TensorFlow
    config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir),
                                          try_download_gcs=False)
    try:
        with _quiet_tfds(tfds):
            builder.download_and_prepare(download_config=config, file_format="array_record")
    except Exception as exc:  # TFDS raises many types; the user needs one message
        raise DataError(
            f"preparing TFDS dataset {name!r} in {builder.data_dir} failed "
            f"({type(exc).__name__}: {_one_line(exc)}); {_alternatives(manual_dir)}") from exc


def _family_keys(builder, name: str) -> tuple[str, str, tuple[str, ...]]:
    """``(image key, label key, class names)``; ``DataError`` unless the data set has
    28x28x1 uint8 images and a class label (checked from its code, before any download)."""
    info = builder.info
    keys = info.supervised_keys
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str)
                                                               for k in keys)):
        raise DataError(f"TFDS dataset {name!r} is not an (image, label) classification data "
                        f"set (its supervised keys are {keys}); jaxcnn needs 28x28 grayscale "
                        "images with class labels, e.g. tfds:kmnist or tfds:emnist/balanced")
    image_key, label_key = keys
    image, label = info.features[image_key], info.features[label_key]
    if type(image).__name__ != "Image":
        raise DataError(f"TFDS dataset {name!r} is not an image data set (its input "
                        f"{image_key!r} is {type(image).__name__}); jaxcnn needs 28x28 "
                        "grayscale images with class labels, e.g. tfds:kmnist")
    shape = tuple(getattr(image, "shape", ()) or ())
    dtype = np.dtype(image.np_dtype)  # not .dtype: that is TensorFlow's and imports it
    if shape != IMAGE_SHAPE or dtype != np.uint8:
        colour = " (colour)" if shape[-1:] == (3,) else ""
        raise DataError(f"TFDS dataset {name!r} has {dtype} images of shape {shape}{colour}; "
                        "this network needs 28x28 grayscale images, (28, 28, 1) uint8, as in "
                        "mnist, fashion_mnist, kmnist or emnist")
    names = getattr(label, "names", None)
    if not names:
        raise DataError(f"TFDS dataset {name!r}: its {label_key!r} feature is not a class label "
                        f"({type(label).__name__}); jaxcnn needs class labels")
    return image_key, label_key, tuple(str(n) for n in names)


def _split_sizes(builder) -> dict[str, int]:
    """Examples per split per the prepared metadata (empty when unknown, e.g. mocked)."""
    try:
        return {k: int(v.num_examples) for k, v in builder.info.splits.items()
                if int(v.num_examples)}
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}


def _read_source(builder, split: str, limit: int | None, image_key: str, label_key: str
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Images uint8 (N, 28, 28) and labels int64 (N,) through ``as_data_source`` (no
    TensorFlow), or None when the data set is stored as tfrecord (no random access).

    Records are read in record order, ``BATCH`` at a time with ``__getitems__``, or one at
    a time with ``src[i]`` where that is broken (under ``tfds.testing.mock_data``).
    """
    try:
        src = builder.as_data_source(split=split)
    except NotImplementedError:
        return None
    n = len(src) if limit is None else min(limit, len(src))
    images = np.empty((n, 28, 28), np.uint8)
    labels = np.empty((n,), np.int64)
    batched = True
    for start in range(0, n, BATCH):
        indices = list(range(start, min(start + BATCH, n)))
        records = None
        if batched:
            try:  # twice as fast as one record at a time (measured: 0.07 vs 0.15 ms each)
                records = src.__getitems__(indices)
            except Exception:  # broken under tfds.testing.mock_data
                batched = False
        if records is None:
            records = [src[i] for i in indices]
        for i, record in zip(indices, records, strict=True):
            images[i] = np.asarray(record[image_key]).reshape(28, 28)
            labels[i] = int(record[label_key])
    return images, labels


def _read_tfrecord(builder, tfds, split: str, limit: int | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The same through TensorFlow's ``as_dataset``, for data prepared as tfrecord, with a
    fixed batch size (never ``batch_size=-1``, which aborts under ``mock_data``)."""
    spec = split if limit is None else f"{split}[:{limit}]"
    ds = builder.as_dataset(split=spec, batch_size=BATCH, as_supervised=True,
                            shuffle_files=False)
    images, labels = [], []
    for image_batch, label_batch in tfds.as_numpy(ds):
        images.append(image_batch.reshape(len(image_batch), 28, 28))
        labels.append(label_batch)
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    return (np.concatenate(images).astype(np.uint8, copy=False),
            np.concatenate(labels).astype(np.int64))


def _builder(tfds, name: str):
    """``tfds.builder(name)``; ``DataError`` naming the configs when the name is wrong."""
    try:
        with _quiet_absl():
            return tfds.builder(name, data_dir=data_dir())
    except Exception as exc:  # DatasetNotFoundError, a bad config or version, ...
        detail = _one_line(exc, 300).split(" Available datasets:")[0]
        base = name.split(":")[0].split("/")[0]
        try:
            configs = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS]
        except Exception:  # no such data set either
            configs = []
        hint = (f"{base}'s configs are {', '.join(configs)} (tfds:{base}/CONFIG)" if configs
                else "check the name (tfds:NAME or tfds:NAME/CONFIG, e.g. tfds:emnist/letters)")
        raise DataError(f"tensorflow-datasets cannot open {name!r} ({type(exc).__name__}: "
                        f"{detail}); {hint}") from exc


def load_tfds(name: str, *, download: bool = False, train_size: int | None = None,
              test_size: int | None = None
              ) -> tuple[dict[str, np.ndarray], tuple[str, ...], tuple[str, ...]]:
    """Read TFDS data set ``name`` (e.g. 'mnist', 'kmnist', 'emnist/letters') in TFDS's
    fixed record order (TFDS shuffles once, by key hash, when it prepares the data).

    Returns ``(arrays, class_names, notes)``: ``{train,test}_images`` uint8 (N, 28, 28),
    ``{train,test}_labels`` int32 (N,); class names from the label feature; notes on how
    it was read. ``train_size``/``test_size`` read only the first that many; asking for
    more than the prepared split holds raises ``DataError``.
    """
    _require_installed()
    if not download:
        _fail_fast_if_absent(name)
    tfds = _import_tfds()
    builder = _builder(tfds, name)
    image_key, label_key, names = _family_keys(builder, name)
    with _quiet_absl():
        prepared = builder.is_prepared()
    if not prepared:
        _prepare(builder, tfds, name, download)
    sizes = _split_sizes(builder)
    if sizes and "test" not in sizes:
        raise DataError(f"TFDS dataset {name!r} has no 'test' split (it has "
                        f"{', '.join(sorted(sizes))}); jaxcnn needs 'train' and 'test'")
    for split, size in (("train", train_size), ("test", test_size)):
        if split in sizes:  # fail before decoding; TFDS rejects such slices anyway
            check_available(size, sizes[split], split, name)
    arrays, how = {}, "array_record, without TensorFlow"
    with _quiet_tfds(tfds):
        for split, limit in (("train", train_size), ("test", test_size)):
            read = _read_source(builder, split, limit, image_key, label_key)
            if read is None:
                if not _installed("tensorflow"):
                    raise DataError(
                        f"TFDS dataset {name!r} in {builder.data_dir} was prepared as "
                        "tfrecord, which only TensorFlow reads; re-prepare it as array_record "
                        f"(delete that folder, then run `jaxcnn data --data {name} "
                        f"--download` once, with {PREPARE_INSTALL}), or install TensorFlow "
                        f"({PREPARE_INSTALL}) to read it as it is")
                _import_tensorflow("reading tfrecord data")
                read, how = _read_tfrecord(builder, tfds, split, limit), "tfrecord, with TensorFlow"
            arrays[f"{split}_images"] = read[0]
            arrays[f"{split}_labels"] = read[1]
    top = max(int(arrays[f"{s}_labels"].max(initial=-1)) for s in ("train", "test"))
    if top >= len(names):
        raise DataError(f"TFDS dataset {name!r}: label {top} but its label feature declares "
                        f"{len(names)} classes; the prepared data is damaged: delete "
                        f"{builder.data_dir} and prepare it again")
    for split in ("train", "test"):
        arrays[f"{split}_labels"] = arrays[f"{split}_labels"].astype(np.int32)
    notes = (f"tensorflow-datasets {builder.info.full_name} in {builder.data_dir} ({how})",
             f"class names: the {label_key!r} feature ({len(names)} classes)")
    return arrays, names, notes
