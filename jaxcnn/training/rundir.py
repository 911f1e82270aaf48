"""A run folder (``jaxcnn train --out DIR``): checked before any work, locked for the
run's lifetime, swept after crashes.

``prepare(DIR, ...)`` is the first thing a training run does with its folder, before
loading data or compiling anything. It refuses a path that is a file or cannot be
created, takes the folder's exclusive lock (``runlock``: a second run is refused with
the holder's pid, host and command; an unwritable or full folder fails here), removes
the temporary files a crash left behind (``fsio.sweep_temp_files``), and refuses to
start a new run in a folder that already holds one, unless that run is being resumed
or ``force`` replaces it. Nothing of the old run is removed here: with ``force`` the
new run logs into a staged ``metrics.csv`` (``STAGED_CSV``, swept after a crash) and
the old run stays whole until the new run's first checkpoint commits over it; then
``RunLock.commit()`` (``replace_old_run``) renames the log into place and removes the
rest of the old run and the pictures ``jaxcnn plot`` drew of it in ``DIR/plots``. A
run refused or stopped before that leaves the old run as it was (a folder or lock file
it created is removed again by ``RunLock.abandon()``).
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
# the log of a run that --force starts, until its first checkpoint commits (a crash
# before leaves the old run whole, and this file to the next start's sweep)
STAGED_CSV = f".{outputs.CSV_NAME}.new{fsio.TEMP_SUFFIX}"


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


def replace_old_run(directory: Path, present: list[str], wrote_json: bool) -> None:
    """The first commit of a run that ``--force`` started, after its checkpoint replaced
    the old one: its staged log becomes ``metrics.csv``, and what is left of the old run
    (its ``metrics.json``, unless ``wrote_json``: the new run wrote its own; the legacy
    JSON; its pictures) goes."""
    os.replace(directory / STAGED_CSV, directory / outputs.CSV_NAME)
    for name in present:
        if name in (outputs.JSON_NAME, checkpoint.LEGACY_JSON) and not (
                wrote_json and name == outputs.JSON_NAME):
            (directory / name).unlink(missing_ok=True)
    _remove_pictures(directory / plots.FOLDER)
    fsio.fsync_dir(directory)


def prepare(directory: str | Path, *, resuming_here: bool, force: bool) -> runlock.RunLock:
    """Make ``directory`` ready for a run and lock it; return the held lock.

    resuming_here: the run continues the checkpoint in this folder (its files stay).
    force: a run already in the folder is deleted instead of refused.
    Raises ``OutputError`` (unusable or locked folder) or ``ConfigError`` (holds a run).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"--out {directory} is a file, not a folder; give a folder path")
    created = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fsio.output_error(exc, f"cannot create the output folder {directory}") from None
    had_lock_file = (directory / runlock.LOCK_NAME).exists()
    lock = runlock.acquire(directory, holder())
    lock.created = created if not had_lock_file else []
    lock.lock_file_created = not had_lock_file
    try:
        fsio.sweep_temp_files(directory, (*RUN_FILES, STAGED_CSV))
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
            # replaced only by the new run's first checkpoint commit (RunLock.commit)
            lock.staged_csv = directory / STAGED_CSV
            lock.on_commit = lambda wrote_json: replace_old_run(directory, present,
                                                                 wrote_json)
    except OSError as exc:
        lock.abandon()
        raise fsio.output_error(exc, f"cannot prepare the output folder {directory}") from None
    except BaseException:
        lock.abandon()
        raise
    return lock
