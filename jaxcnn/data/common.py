"""What ``jaxcnn.data`` and the sources it reads (``idx``, ``tfds_source``) share.

Data flows one way: ``data`` imports the sources, the sources import this module, each
other and ``errors``, and nothing here imports any other part of jaxcnn.
"""

from __future__ import annotations

import numbers
import os
import stat
from pathlib import Path
from typing import BinaryIO

from jaxcnn.errors import DataError

DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def check_size(n: int | None, split: str) -> None:
    """Raise ``DataError`` unless ``n`` (a requested ``{split}_size``) is None or an int >= 1."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
        raise DataError(f"{split}_size must be a whole number of at least 1, got {n!r}")


def check_available(n: int | None, available: int, split: str, source: str) -> None:
    """Raise ``DataError`` when ``n`` examples of ``split`` are asked but only ``available``."""
    if n is not None and n > available:
        raise DataError(
            f"--{split}-size {n:,} is more than the {available:,} {split} "
            f"images that {source} holds; give --{split}-size {available:,} or less, or a "
            "larger source (--data mnist, fashion_mnist or idx:DIR hold 60,000 / 10,000)")


class NotRegularFile(OSError):
    """A path that is not a regular file (a FIFO, a device, a socket, a folder): reading
    it may never end (``mkfifo``, ``/dev/zero``, ``/dev/stdin``). ``what`` says which."""

    def __init__(self, path, what: str):
        super().__init__(f"{path} is {what}, not a regular file")
        self.path, self.what = path, what


def file_kind(mode: int) -> str:
    """What ``st_mode`` names, in words: 'a regular file', 'a FIFO (named pipe)', ..."""
    for test, what in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def open_regular(path: str | Path) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading only if it is a regular file: ``(binary file, size in
    bytes)``. A FIFO, device, socket or folder raises ``NotRegularFile`` at once, without
    waiting for a writer (the file is opened non-blocking and checked with ``fstat``);
    other failures raise ``OSError``. Read at most ``size`` bytes: a file that grows
    while it is read (an endless writer) is not followed."""
    mode = os.stat(path).st_mode  # follows links: the file that would be read
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, file_kind(mode))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the stat and the open
            raise NotRegularFile(path, file_kind(info.st_mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path) -> bytes:
    """The bytes of regular file ``path``, at most its size when opened (``open_regular``)."""
    fh, size = open_regular(path)
    with fh:
        return fh.read(size)
