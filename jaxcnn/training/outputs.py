"""Run outputs: ``metrics.csv`` (the live log) and ``metrics.json`` (the finished run).

* ``metrics.csv``: one row per log window and seed (``run_id, step, epoch, seed, steps,
  images, loss, accuracy``; floats exact). ``MetricsLog`` appends the rows of each
  window as it happens and flushes them, so a killed run keeps every window logged
  before the kill; ``sync()`` makes them durable before a checkpoint commits. Memory
  stays flat: nothing is kept after a row is written.
* ``metrics.json``: written once, atomically, when the run ends: the config and its
  hash, run id, resume history, every window (streamed from the CSV), per-seed test
  results with mean/std, timings and library versions. Strict JSON: a non-finite number
  is written as ``null``, never ``NaN`` or ``Infinity``.

On ``--resume``, ``carry_over`` keeps exactly the rows of the same run up to the
checkpoint's step (windows logged after it are trained again), so the resumed run's
files hold every window once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from jaxcnn.jsonsafe import dumps
from jaxcnn.training import fsio

CSV_NAME = "metrics.csv"
JSON_NAME = "metrics.json"
CSV_COLUMNS = ["run_id", "step", "epoch", "seed", "steps", "images", "loss", "accuracy"]


def versions() -> dict[str, str]:
    """Versions of everything that can change the numbers."""
    import jax
    import jaxlib
    import optax

    from jaxcnn import __version__

    return {
        "jaxcnn": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "num_devices": len(jax.devices()),
    }


def summary(values) -> dict:
    """mean, std (ddof=1 when possible), min, max and the per-seed list; float64."""
    values = np.asarray(values, np.float64)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "min": float(values.min()),
            "max": float(values.max()), "per_seed": [float(v) for v in values]}


class MetricsLog:
    """``metrics.csv`` of one run, opened for appending (header written when new).

    ``write(window)`` appends one row per seed and flushes; ``sync()`` fsyncs.
    Raises ``OSError`` when the file cannot be written.
    """

    def __init__(self, path: str | Path, run_id: str, seeds: list[int], batch_size: int):
        self.path, self.run_id, self.seeds, self.batch_size = Path(path), run_id, seeds, batch_size
        self.fh: TextIO = open(self.path, "a", newline="")
        self.writer = csv.writer(self.fh, lineterminator="\n")
        if self.fh.tell() == 0:
            self.writer.writerow(CSV_COLUMNS)
            self.fh.flush()

    def write(self, window) -> None:
        """Append ``window`` (a ``train.Window``) and flush it to the OS."""
        images = window.steps * self.batch_size
        for seed, loss, acc in zip(self.seeds, window.loss, window.accuracy, strict=True):
            self.writer.writerow([self.run_id, window.step, window.epoch, seed, window.steps,
                                  images, repr(float(loss)), repr(float(acc))])
        self.fh.flush()

    def sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _rows(path: Path) -> Iterator[dict]:
    """Parsed rows of a metrics.csv, in file order; stops at the first malformed row
    (a row torn by a crash). Nothing when the file is missing or has another header."""
    try:
        fh = open(path, newline="")
    except FileNotFoundError:
        return
    with fh:
        reader = csv.reader(fh)
        if next(reader, None) != CSV_COLUMNS:
            return
        for raw in reader:
            try:
                run_id, step, epoch, seed, steps, images, loss, acc = raw
                yield {"run_id": run_id, "step": int(step), "epoch": int(epoch),
                       "seed": int(seed), "steps": int(steps), "images": int(images),
                       "loss": float(loss), "accuracy": float(acc)}
            except ValueError:
                return


def carry_over(source: Path | None, target: Path, run_id: str, up_to_step: int) -> int:
    """Rewrite ``target`` (atomically) as the rows of ``source``'s metrics.csv that belong
    to ``run_id`` with step <= ``up_to_step``. Returns the last step kept (0: none)."""
    last = 0

    def write(fh):
        nonlocal last
        text = io.TextIOWrapper(fh, newline="", write_through=True)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in _rows(source) if source is not None else ():
            if row["run_id"] == run_id and row["step"] <= up_to_step:
                writer.writerow([row[c] if c not in ("loss", "accuracy") else repr(row[c])
                                 for c in CSV_COLUMNS])
                last = row["step"]
        text.flush()
        text.detach()

    fsio.atomic_write(target, write)
    return last


def windows(path: Path, run_id: str, num_seeds: int) -> Iterator[dict]:
    """The log windows of ``run_id`` in a metrics.csv, as metrics.json writes them."""
    group: list[dict] = []

    def emit(rows):
        if len(rows) == num_seeds:
            first = rows[0]
            return {"step": first["step"], "epoch": first["epoch"], "steps": first["steps"],
                    "images": first["images"], "loss": summary([r["loss"] for r in rows]),
                    "accuracy": summary([r["accuracy"] for r in rows])}
        return None

    for row in _rows(path):
        if row["run_id"] != run_id:
            continue
        if group and row["step"] != group[0]["step"]:
            window = emit(group)
            if window:
                yield window
            group = []
        group.append(row)
    window = emit(group)
    if window:
        yield window


def write_metrics(directory: str | Path, metrics: dict, run_id: str, num_seeds: int) -> None:
    """Write ``metrics.json`` atomically: ``metrics`` plus the run's windows, read from
    ``metrics.csv`` one at a time (flat memory). Raises ``OSError``."""
    directory = Path(directory)
    marker = "\x00windows\x00"
    head = dumps(dict(metrics, windows=marker), indent=2)
    before, after = head.split(json.dumps(marker))

    def write(fh):
        fh.write(before.encode() + b"[")
        for i, window in enumerate(windows(directory / CSV_NAME, run_id, num_seeds)):
            fh.write((",\n    " if i else "\n    ").encode() + dumps(window).encode())
        fh.write(b"\n  ]" + after.encode())

    fsio.atomic_write(directory / JSON_NAME, write)
