"""An exclusive lock on a run folder, held for the lifetime of one training run.

``acquire(directory, holder)`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on
``DIR/.jaxcnn.lock`` and writes ``holder`` (pid, host, start time and command line)
into it. The lock is opened without following a symbolic link, and must be a plain
file: writing the holder through a link replaced the content of the link's target. A
second process asking for the same folder is refused at once with an ``OutputError``
naming that holder. The kernel drops the lock when its process ends in
any way (kill -9 included), so a stale lock file never blocks anyone. Works on Linux
and macOS local file systems (``flock`` may not work across NFS).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jaxcnn.errors import OutputError
from jaxcnn.training.fsio import output_error

LOCK_NAME = ".jaxcnn.lock"


@dataclass
class RunLock:
    """A held lock; ``release()`` (or the end of the process) frees it.

    It also carries the run's place in its folder's life: ``start()`` once it writes,
    ``commit()`` after its first checkpoint (what ``--force`` replaces goes then, see
    ``rundir``), and ``abandon()`` for a run refused before it started, which puts the
    lock file's last holder back (or removes the lock file and folders it created)."""

    path: Path
    fd: int | None
    on_commit: Callable[[bool], None] | None = None  # replaces what --force replaces
    staged_csv: Path | None = None  # where a --force run logs until its first commit
    created: list[Path] = field(default_factory=list)  # folders made for this run
    lock_file_created: bool = False
    previous: bytes = b""  # what the lock file held before (the last run's holder)
    started: bool = False  # the run has written (or removed) something of its own

    def start(self) -> None:
        """The run passed every check and writes its first file now."""
        self.started = True

    def commit(self, wrote_json: bool = False) -> None:
        """The run's first checkpoint has just replaced the old one: what else ``--force``
        replaces goes now (``on_commit``; once)."""
        if self.on_commit is not None:
            on_commit, self.on_commit = self.on_commit, None
            on_commit(wrote_json)

    def abandon(self) -> None:
        """A run refused before it started: take back the lock file and the folders made
        for it, so that the folder is as it was (best effort), then release."""
        if not self.started and self.fd is not None:
            with contextlib.suppress(OSError):
                if not self.lock_file_created:
                    os.ftruncate(self.fd, 0)
                    os.pwrite(self.fd, self.previous, 0)
                    return self.release()
                self.path.unlink()
                for folder in self.created:  # innermost first; only while empty
                    folder.rmdir()
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:
            self.abandon()
        self.release()


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return (f"pid {info['pid']} on {info['host']}, started {info['started']}: "
                f"{info['command']}")
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "another jaxcnn process"


def _not_a_plain_file(path: Path) -> OutputError:
    what = "a symbolic link" if path.is_symlink() else "not a plain file"
    return OutputError(f"{path} is {what}; jaxcnn writes the run's lock only into a plain file "
                       "it creates there (a link's target would be overwritten): remove it "
                       "or choose another --out")


def acquire(directory: str | Path, holder: dict) -> RunLock:
    """Lock ``directory`` (which must exist) for this process; ``OutputError`` if another
    process holds it or the folder cannot be written."""
    import fcntl

    path = Path(directory) / LOCK_NAME
    try:  # never through a symbolic link: the holder's text would replace its target
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if path.is_symlink() or not (path.is_file() or not path.exists()):
            raise _not_a_plain_file(path) from None
        raise output_error(exc, f"cannot write to the output folder {directory}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_plain_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"{directory} is in use by another run ({_holder_text(path)}); wait "
                          "for it to finish or choose another --out") from None
    except OSError as exc:
        os.close(fd)
        raise output_error(exc, f"cannot lock the output folder {directory}") from None
    try:
        previous = os.pread(fd, 1 << 16, 0)  # the last holder's, restored by abandon()
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
    except OSError as exc:
        os.close(fd)
        raise output_error(exc, f"cannot write to the output folder {directory}") from None
    return RunLock(path, fd, previous=previous)
