"""The ``mnist`` / ``fashion_mnist`` sources, through tensorflow-datasets (extra ``tfds``).

Nothing here is imported until one of those sources is asked for. The order of work
keeps failures fast and offline-safe:

1. Without ``download``, if the local TFDS data directory has no trace of the dataset,
   fail at once, before importing anything.
2. Import ``tensorflow_datasets`` (about 0.5 s; TensorFlow itself is not imported yet).
   If the dataset is not prepared in the TFDS data directory (``$TFDS_DATA_DIR``, else
   ``~/tensorflow_datasets``), prepare it only when that needs no network (all four
   ``.gz`` files are in TFDS's ``manual_dir``, ``<data_dir>/downloads/manual``) or when
   ``download=True`` and the download host answers within a few seconds. Otherwise raise
   ``DataError`` at once (offline, TFDS itself would retry for minutes). GCS is never
   tried.
3. Import TensorFlow (GPUs hidden from it, so it cannot take memory JAX needs) and read
   the splits in TFDS's fixed record order, with a fixed batch size (never
   ``batch_size=-1``, which aborts the process under ``tfds.testing.mock_data``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxcnn.data_common import check_available
from jaxcnn.errors import DataError

INSTALL = "pip install 'jaxcnn[tfds]'"
BATCH = 2048
CONNECT_TIMEOUT_S = 3.0


def _alternatives(manual_dir: Path | str) -> str:
    return ("use --data mnist-embedded (5,000 MNIST digits shipped with jaxcnn), "
            "--data idx:DIR (the four IDX files, e.g. `apt-get install dataset-fashion-mnist` "
            "then idx:/usr/share/datasets/fashion-mnist), or put the four original .gz files "
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
            f"the mnist / fashion_mnist sources need tensorflow-datasets, which is not "
            f"installed or broken ({exc}); run {INSTALL}, or use --data mnist-embedded "
            "or --data idx:DIR") from exc
    return tfds


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise DataError(f"reading tensorflow-datasets data needs TensorFlow, which is not "
                        f"installed ({exc}); run {INSTALL}") from exc
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
    missing = [m for m in ("tensorflow_datasets", "tensorflow") if not _installed(m)]
    if missing:
        raise DataError(
            f"the mnist / fashion_mnist sources need {' and '.join(missing)}, which "
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
    if not (root / name).exists() and not manual_dir.exists():
        raise _not_prepared(name, root / name, manual_dir)


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
    from jaxcnn import idx

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
    """Make ``builder`` prepared, or raise ``DataError`` fast (see the module docstring)."""
    manual_dir = Path(builder.data_dir_root) / "downloads" / "manual"
    if _manual_files_present(builder, manual_dir):
        _check_manual_files(builder, manual_dir)
    else:
        if not download:
            raise _not_prepared(name, builder.data_dir, manual_dir)
        urls = sorted((builder.url_infos or {}).keys()) or [getattr(builder, "URL", "")]
        reason = unreachable_reason(urls[0]) if urls[0] else None
        if reason:
            raise DataError(
                f"cannot download TFDS dataset {name!r}: no network ({reason}); "
                f"{_alternatives(manual_dir)}")
    config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir),
                                          try_download_gcs=False)
    try:
        with _quiet_tfds(tfds):
            builder.download_and_prepare(download_config=config)
    except Exception as exc:  # TFDS raises many types; the user needs one message
        raise DataError(
            f"preparing TFDS dataset {name!r} in {builder.data_dir} failed "
            f"({type(exc).__name__}: {_one_line(exc)}); {_alternatives(manual_dir)}") from exc


def _available(builder, split: str) -> int | None:
    """Examples in ``split`` per the prepared metadata (None when unknown, e.g. mocked)."""
    try:
        return int(builder.info.splits[split].num_examples) or None
    except (KeyError, TypeError, ValueError):
        return None


def _read_split(builder, tfds, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int32 (N,) of ``split``, at most ``limit``.

    Reads TFDS's record order, which is fixed (TFDS shuffles once, by key hash, when it
    prepares the data) but not the order of the original files.
    """
    spec = split if limit is None else f"{split}[:{limit}]"
    ds = builder.as_dataset(split=spec, batch_size=BATCH, as_supervised=True,
                            shuffle_files=False)
    images, labels = [], []
    for image_batch, label_batch in tfds.as_numpy(ds):
        images.append(image_batch.reshape(len(image_batch), 28, 28))
        labels.append(label_batch)
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int32)
    return (np.concatenate(images).astype(np.uint8, copy=False),
            np.concatenate(labels).astype(np.int32))


def load_tfds(name: str, *, download: bool = False, train_size: int | None = None,
              test_size: int | None = None) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Read TFDS ``name`` ('mnist' or 'fashion_mnist') in TFDS's fixed record order.

    Returns ({train,test}_{images,labels}, class_names): images uint8 (N, 28, 28), labels
    int32 (N,). ``train_size``/``test_size`` read only the first that many (TFDS split
    slicing); asking for more than the prepared split holds raises ``DataError``.
    """
    _require_installed()
    if not download:
        _fail_fast_if_absent(name)
    tfds = _import_tfds()
    with _quiet_absl():
        builder = tfds.builder(name, data_dir=data_dir())
        prepared = builder.is_prepared()
    if not prepared:
        _prepare(builder, tfds, name, download)
    for split, size in (("train", train_size), ("test", test_size)):
        available = _available(builder, split)
        if available is not None:  # fail before decoding; TFDS rejects such slices anyway
            check_available(size, available, split, name)
    _import_tensorflow()
    arrays = {}
    with _quiet_tfds(tfds):
        for split, limit in (("train", train_size), ("test", test_size)):
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = _read_split(
                builder, tfds, split, limit)
    return arrays, tuple(builder.info.features["label"].names)
