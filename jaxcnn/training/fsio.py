"""Files that survive crashes: atomic, durable writes; stale temporary files swept;
OS errors turned into one line a user can act on.

``atomic_write`` is the only way jaxcnn replaces a file. It writes a temporary file
``.NAME.XXXX.tmp`` in the same folder, flushes and fsyncs it, renames it over ``NAME``
(``os.replace``, atomic on POSIX file systems) and fsyncs the folder. A crash at any
instant therefore leaves either the old ``NAME`` or the new one, complete, plus at most
one stale temporary file, which ``sweep_temp_files`` removes at the next start.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from jaxcnn import faults
from jaxcnn.errors import OutputError

TEMP_SUFFIX = ".tmp"

_HINTS = {
    errno.ENOSPC: "free some disk space or choose another {out}",
    errno.EDQUOT: "free some of your disk quota or choose another {out}",
    errno.EFBIG: "a file size limit (ulimit -f) stops the write; raise it or choose "
                 "another {out}",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose another {out}",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another {out}",
    errno.EEXIST: "choose another {out}",
    errno.EIO: "the disk reported an I/O error; check it or choose another {out}",
}


def describe(exc: OSError, action: str, out: str = "--out") -> str:
    """One line: what failed (``action``), the OS's reason, the path, and what to do;
    ``out`` names what to choose instead (the flag that chose the path, or for a command
    without one, "folder")."""
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    hint = _HINTS.get(exc.errno, "check the path and the disk").format(out=out)
    return f"{action}: {reason}{where}; {hint}"


def output_error(exc: OSError, action: str, out: str = "--out") -> OutputError:
    """``OutputError`` carrying ``describe(exc, action, out)``."""
    return OutputError(describe(exc, action, out))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable. No-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None],
                 label: str | None = None) -> None:
    """Replace ``path`` by what ``write(fh)`` writes, atomically and durably.

    ``label`` names the fault-injection points (``LABEL:written``, ``LABEL:synced``,
    ``LABEL:renamed``; default: the file name). Raises ``OSError`` (the temporary file
    is removed then, and ``path`` keeps its old content).
    """
    path = Path(path)
    label = label or path.name
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            faults.point(f"{label}:written")
            fh.flush()
            os.fsync(fh.fileno())
        faults.point(f"{label}:synced")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    faults.point(f"{label}:renamed")
    fsync_dir(path.parent)


def sweep_temp_files(directory: str | Path, names: Iterable[str]) -> list[str]:
    """Remove the temporary files ``atomic_write`` left for ``names`` in ``directory``
    (after a crash). Only call this while holding the folder's run lock. Returns the
    names removed."""
    directory = Path(directory)
    prefixes = tuple(f".{name}." for name in names)
    removed = []
    for entry in directory.iterdir():
        if entry.name.startswith(prefixes) and entry.name.endswith(TEMP_SUFFIX):
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return sorted(removed)
