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

Reading stops at the first row that ``MetricsLog`` could not have written: a line
without its end (torn by a crash, or still being written), bytes that are not UTF-8
CSV (a damaged file, the zero-filled tail a power loss can leave), or a non-finite or
out-of-range number (a hand edit). Nothing after it is used, so no ``NaN`` or
``Infinity`` is carried into a resumed run's files, ``metrics.json`` or a plot; ``Cut``
says where and why a file was cut.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from jaxcnn.data.common import NotRegularFile, open_regular
from jaxcnn.errors import DivergenceError, OutputError
from jaxcnn.jsonsafe import dumps
from jaxcnn.training import fsio

CSV_NAME = "metrics.csv"
JSON_NAME = "metrics.json"
CSV_COLUMNS = ["run_id", "step", "epoch", "seed", "steps", "images", "loss", "accuracy"]
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


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


def _no_follow(path, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)


class MetricsLog:
    """``metrics.csv`` of one run, opened for appending (header written when new).

    ``write(window)`` appends one row per seed and flushes; ``sync()`` fsyncs.
    Raises ``OSError`` when the file cannot be written.
    """

    def __init__(self, path: str | Path, run_id: str, seeds: list[int], batch_size: int):
        self.path, self.run_id, self.seeds, self.batch_size = Path(path), run_id, seeds, batch_size
        # never appended through a symbolic link (carry_over has just replaced any)
        self.fh: TextIO = open(self.path, "a", newline="", opener=_no_follow)
        self.writer = csv.writer(self.fh, lineterminator="\n")
        if self.fh.tell() == 0:
            self.writer.writerow(CSV_COLUMNS)
            self.fh.flush()

    def write(self, window) -> None:
        """Append ``window`` (a ``train.Window``) and flush it to the OS. A non-finite
        number is refused (``DivergenceError``), never written."""
        images = window.steps * self.batch_size
        values = np.concatenate([np.asarray(window.loss, np.float64),
                                 np.asarray(window.accuracy, np.float64)])
        if not np.isfinite(values).all():
            raise DivergenceError(f"refusing to log the window of step {window.step}: its "
                                  f"loss or accuracy is not finite ({values.tolist()})")
        for seed, loss, acc in zip(self.seeds, window.loss, window.accuracy, strict=True):
            self.writer.writerow([self.run_id, window.step, window.epoch, seed, window.steps,
                                  images, repr(float(loss)), repr(float(acc))])
        self.fh.flush()

    def sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


@dataclass
class Cut:
    """Where reading a metrics.csv stopped early: its line number (1 = the header) and
    why. ``_rows`` and ``windows`` fill one in when given it."""

    line: int = 0
    why: str = ""

    def __bool__(self) -> bool:
        return self.line > 0


def _row(raw: list[str]) -> dict:
    """One row as ``MetricsLog`` writes it; ``ValueError`` saying why when it is not."""
    if len(raw) != len(CSV_COLUMNS):
        raise ValueError(f"{len(raw)} fields instead of {len(CSV_COLUMNS)} (a row torn by a "
                         "crash?)")
    run_id, step, epoch, seed, steps, images, loss, acc = raw
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run_id {run_id!r} is not 32 hexadecimal digits")
    row = {"run_id": run_id}
    for name, text, low in (("step", step, 1), ("epoch", epoch, 1), ("seed", seed, 0),
                            ("steps", steps, 1), ("images", images, 1)):
        if not text.isdigit() or int(text) < low:
            raise ValueError(f"{name} {text!r} is not a whole number of at least {low}")
        row[name] = int(text)
    for name, text, high in (("loss", loss, math.inf), ("accuracy", acc, 1.0)):
        value = float(text)
        if not (math.isfinite(value) and 0 <= value <= high):
            raise ValueError(f"{name} {text!r} is not a finite number"
                             + (" in [0, 1]" if high == 1.0 else " >= 0"))
        row[name] = value
    return row


def _parse_line(line: bytes) -> list[str]:
    """The fields of one complete line; ``ValueError`` when it is not text a CSV writer
    wrote (bytes that are not UTF-8, NUL bytes that a power loss can leave at the end of a
    file, no line end: a row torn by a crash or still being written)."""
    if not line.endswith(b"\n"):
        raise ValueError("the line has no end (a row torn by a crash, or still being "
                         "written)")
    try:
        return next(csv.reader([line.decode("utf-8")]), [])
    except UnicodeDecodeError:
        raise ValueError("the line is not UTF-8 text (a damaged file)") from None
    except csv.Error as exc:
        raise ValueError(f"the line is not CSV ({exc}; a damaged file)") from None


def _rows(path: Path, cut: Cut | None = None) -> Iterator[dict]:
    """Parsed rows of a metrics.csv, in file order, streamed; stops at the first line
    that ``MetricsLog`` could not have written (torn by a crash, damaged, or holding a
    non-finite or out-of-range number), saying where in ``cut``. Nothing when the file
    is missing, and nothing (cut at line 1) when it is empty or has another header."""
    try:
        fh, _ = open_regular(path)
    except FileNotFoundError:
        return
    except NotRegularFile as exc:  # a FIFO or /dev/zero: reading it might never end
        raise OutputError(f"{path} is {exc.what}, not a regular file: not a log jaxcnn "
                          "wrote; remove it or restore the run's metrics.csv") from None
    with fh:
        first = fh.readline()
        try:
            header = _parse_line(first) if first else None
        except ValueError:
            header = []
        if header != CSV_COLUMNS:
            if cut is not None:
                cut.line, cut.why = 1, ("the file is empty" if header is None else
                                        "its header is not that of a jaxcnn metrics.csv")
            return
        for number, line in enumerate(fh, start=2):
            try:
                row = _row(_parse_line(line))
            except ValueError as exc:
                if cut is not None:
                    cut.line, cut.why = number, str(exc)
                return
            yield row


def carry_over(source: Path | None, target: Path, run_id: str, up_to_step: int,
               cut: Cut | None = None) -> int:
    """Rewrite ``target`` (atomically) as the rows of ``source``'s metrics.csv that belong
    to ``run_id`` with step <= ``up_to_step``, up to the first row jaxcnn could not have
    written (``cut`` says where). Returns the last step kept (0: none)."""
    last = 0

    def write(fh):
        nonlocal last
        text = io.TextIOWrapper(fh, newline="", write_through=True)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in _rows(source, cut) if source is not None else ():
            if row["run_id"] == run_id and row["step"] <= up_to_step:
                writer.writerow([row[c] if c not in ("loss", "accuracy") else repr(row[c])
                                 for c in CSV_COLUMNS])
                last = row["step"]
        text.flush()
        text.detach()

    fsio.atomic_write(target, write)
    return last


def windows(path: Path, run_id: str, num_seeds: int, cut: Cut | None = None
            ) -> Iterator[dict]:
    """The log windows of ``run_id`` in a metrics.csv, as metrics.json writes them, up to
    the first row jaxcnn could not have written (``cut`` says where)."""
    group: list[dict] = []

    def emit(rows):
        if len(rows) == num_seeds:
            first = rows[0]
            return {"step": first["step"], "epoch": first["epoch"], "steps": first["steps"],
                    "images": first["images"], "loss": summary([r["loss"] for r in rows]),
                    "accuracy": summary([r["accuracy"] for r in rows])}
        return None

    for row in _rows(path, cut):
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


def write_metrics(directory: str | Path, metrics: dict, run_id: str, num_seeds: int,
                  csv_path: Path | None = None) -> None:
    """Write ``metrics.json`` atomically: ``metrics`` plus the run's windows, read from
    ``csv_path`` (default ``metrics.csv``) one at a time (flat memory). Raises ``OSError``."""
    directory = Path(directory)
    csv_path = csv_path or directory / CSV_NAME
    marker = "\x00windows\x00"
    head = dumps(dict(metrics, windows=marker), indent=2)
    before, after = head.split(json.dumps(marker))

    def write(fh):
        fh.write(before.encode() + b"[")
        for i, window in enumerate(windows(csv_path, run_id, num_seeds)):
            fh.write((",\n    " if i else "\n    ").encode() + dumps(window).encode())
        fh.write(b"\n  ]" + after.encode())

    fsio.atomic_write(directory / JSON_NAME, write)
