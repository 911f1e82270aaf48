"""The oracle's results on disk, between runs: a re-check after an edit runs no oracle twice.

A check's exact oracle is a few hundred small float64 programs (``jax.vjp`` of a
catalogue reference, its alternates, the chain), and nearly all of them are the same
from one run to the next: editing a backward changes the user's numbers, not the
reference's. Compiling, or even loading a compiled program from JAX's persistent cache,
costs 10-40 ms each; reading its result costs well under one.

Each result is keyed on everything that determines it (``autodiff.compiled`` computes the
key): the traced computation itself (the jaxpr as text, the bytes of its constants and
of those of every jaxpr nested in it), the argument values' bytes, shapes and dtypes, the
jax and jaxlib versions, the backend, the compiler options and XLA_FLAGS. A function
edited in any way traces to another jaxpr or other constants, hence another key: a stored
result is never read for code it was not computed from. A VJP is keyed on the traced
forward of what it differentiates instead, and on the source of the code that
differentiates it (``autodiff.forward_keys``, ``autodiff.recall``; a forward with a custom
rule, which its text only names, gets no such key). A stored file is used only when
its arrays have the program's output shapes and dtypes. Programs that close over Python
objects (callbacks) are never stored.

One ``.npz`` per result (no pickles), written to a temporary name and renamed, so that
a reader sees a whole file or none; a file that cannot be read or written is a miss,
nothing else. Off unless ``enable(folder)`` is called (the command line does, beside
JAX's compilation cache: ``JAXCNN_CACHE_DIR``); imports no JAX.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

_folder: list[Path | None] = [None]


def enable(folder: Path | str | None) -> Path | None:
    """Store results in ``folder`` (created), or nowhere (None). Returns the folder used,
    or None when it cannot be created or written (then nothing is stored)."""
    if folder is None:
        _folder[0] = None
        return None
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = None
    if path is not None and not os.access(path, os.W_OK | os.X_OK):
        path = None
    _folder[0] = path
    return path


def folder() -> Path | None:
    """The folder in use, or None (off)."""
    return _folder[0]


def _file(key: str) -> Path | None:
    base = _folder[0]
    return None if base is None else base / key[:2] / f"{key}.npz"


def get(key: str) -> list[np.ndarray] | None:
    """The arrays stored under ``key`` (a hex digest), in order, or None."""
    path = _file(key)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return [np.array(data[f"a{i}"]) for i in range(len(data.files))]
    except Exception:  # noqa: BLE001 - absent, truncated (BadZipFile), foreign: a miss
        return None


def put(key: str, arrays: list) -> None:
    """Store ``arrays`` (NumPy-convertible, no objects) under ``key``; silent on failure."""
    path = _file(key)
    if path is None:
        return
    values = {f"a{i}": np.asarray(a) for i, a in enumerate(arrays)}
    if any(v.dtype == object for v in values.values()):
        return
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **values)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:  # noqa: BLE001 - a full disk, a read-only folder, anything: the
        return  # next run computes it again (a cache never breaks a check)
