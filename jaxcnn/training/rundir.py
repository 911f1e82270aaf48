"""A run folder (``jaxcnn train --out DIR``): checked before any work, locked for the
run's lifetime, swept after crashes.

``prepare(DIR, ...)`` is the first thing a training run does with its folder, before
loading data or compiling anything. It refuses a path that is a file or cannot be
created, takes the folder's exclusive lock (``runlock``: a second run is refused with
the holder's pid, host and command; an unwritable or full folder fails here), removes
the temporary files a crash left behind (``fsio.sweep_temp_files``), and refuses to
start a new run in a folder that already holds one, unless that run is being resumed
or ``force`` replaces it (its files are deleted then, and the pictures ``jaxcnn plot``
drew of it in ``DIR/plots``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sys
import time
from pathlib import Path

from jaxcnn.errors import ConfigError, OutputError
from jaxcnn.training import checkpoint, fsio, outputs, plots, runlock

RUN_FILES = (checkpoint.FILE_NAME, outputs.CSV_NAME, outputs.JSON_NAME, checkpoint.LEGACY_JSON)


def holder() -> dict:
    """Who is running: pid, host, start time and the command line (for the lock file)."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": shlex.join(["jaxcnn", *sys.argv[1:]])}


def run_files(directory: Path) -> list[str]:
    """The names of the run files ``directory`` holds (empty: it holds no run)."""
    return [name for name in RUN_FILES if (directory / name).exists()]


def _remove_pictures(folder: Path) -> None:
    """The PNG files ``jaxcnn plot`` wrote into the run folder show the run that --force
    replaces: remove them (nothing else there), and the folder when that empties it."""
    for name in plots.FILES:
        (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty, or not there
        folder.rmdir()


def prepare(directory: str | Path, *, resuming_here: bool, force: bool) -> runlock.RunLock:
    """Make ``directory`` ready for a run and lock it; return the held lock.

    resuming_here: the run continues the checkpoint in this folder (its files stay).
    force: a run already in the folder is deleted instead of refused.
    Raises ``OutputError`` (unusable or locked folder) or ``ConfigError`` (holds a run).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"--out {directory} is a file, not a folder; give a folder path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fsio.output_error(exc, f"cannot create the output folder {directory}") from None
    lock = runlock.acquire(directory, holder())
    try:
        fsio.sweep_temp_files(directory, RUN_FILES)
        present = run_files(directory)
        if present and not resuming_here:
            if not force and checkpoint.FILE_NAME not in present:
                raise ConfigError(
                    f"{directory} already holds the log of a run that saved no checkpoint "
                    f"({', '.join(present)}); choose another --out, or pass --force to "
                    "replace it")
            if not force:
                raise ConfigError(
                    f"{directory} already holds a run ({', '.join(present)}); continue it with "
                    f"--resume {directory}, choose another --out, or pass --force to replace it")
            for name in present:
                (directory / name).unlink()
            _remove_pictures(directory / plots.FOLDER)
            fsio.fsync_dir(directory)
    except OSError as exc:
        lock.release()
        raise fsio.output_error(exc, f"cannot prepare the output folder {directory}") from None
    except BaseException:
        lock.release()
        raise
    return lock
