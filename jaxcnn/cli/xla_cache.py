"""JAX's persistent compilation cache for the command line: compile once per machine.

A check compiles a few hundred small XLA programs (about 20 ms each on a small CPU);
the cache keeps them on disk between runs. It is keyed by JAX on the compiled program
itself (its HLO, the compile options, and the jax/jaxlib versions), so an edited
function is a different program and is compiled afresh: the cache can make a run
faster, never stale.

``jaxcnn check`` also keeps its exact oracle's results beside it (``results_dir``;
``jaxcnn.check.store``: keyed on the traced computation and its inputs' values).

Location: ``$JAXCNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxcnn/xla``, else
``~/.cache/jaxcnn/xla``, with a folder per jaxlib version inside (two installed
versions never read each other's entries). ``JAXCNN_CACHE_DIR=`` (empty) turns it off; an unwritable
location turns it off silently. An entry that cannot be written (a full disk, a file
size limit) or read (one truncated by a full disk) costs a compilation, nothing else:
JAX's warning about it, two lines per program on every run, is silenced.

Size: each folder (the compiled programs, the check's results) is kept under
``$JAXCNN_CACHE_MAX_MB`` (default 1024): at most once an hour, a run that finds a folder
larger deletes its least recently used files (by access or write time, whichever is
later) until it is under 80 % of that (``prune``). A deleted entry is a miss: compiled
again, never wrong.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

MAX_MB = 1024.0  # default of $JAXCNN_CACHE_MAX_MB, per folder
PRUNE_EVERY = 3600.0  # seconds between two size checks of the same folders


def jaxlib_folder() -> str:
    """``jaxlib-<version>``: each jaxlib gets a folder of its own, so that no version
    loads another's executables (JAX's keys tell them apart, but a foreign entry is
    still read, with a compatibility warning on stderr). Read from the installed
    package's metadata: imports no JAX."""
    from importlib import metadata

    try:
        return f"jaxlib-{metadata.version('jaxlib')}"
    except metadata.PackageNotFoundError:
        return "jaxlib-unknown"


def cache_dir() -> Path | None:
    """Where the cache lives (a ``jaxlib-<version>`` folder inside the location), or
    None when it is turned off."""
    configured = os.environ.get("JAXCNN_CACHE_DIR")
    if configured is not None:
        if not configured.strip():
            return None
        return Path(configured).expanduser() / jaxlib_folder()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxcnn" / "xla" / jaxlib_folder()


def results_dir(cache: Path) -> Path:
    """Where ``jaxcnn check`` keeps its oracle's results (``jaxcnn.check.store``), beside
    the compilation cache folder ``cache``: ``jaxlib-<version>-results``."""
    return cache.parent / f"{cache.name}-results"


def max_bytes() -> int | None:
    """The size limit per folder in bytes: ``$JAXCNN_CACHE_MAX_MB`` (a number of MB;
    0, a negative number or inf: no limit, nothing deleted; unreadable: the default)."""
    text = os.environ.get("JAXCNN_CACHE_MAX_MB", "").strip()
    try:
        mb = float(text) if text else MAX_MB
    except ValueError:
        mb = MAX_MB
    if mb != mb:  # NaN
        mb = MAX_MB
    if mb <= 0 or mb == float("inf"):  # inf, 1e400: no limit either
        return None
    return int(mb * 2**20)


def prune(folder: Path, limit: int, keep: float = 0.8) -> int:
    """Delete the least recently used files of ``folder`` (recursively; by the later
    of access and write time) while it holds more than ``limit`` bytes, down to ``keep``
    of it. Returns the bytes deleted; never raises (a file another process removed or
    holds is skipped)."""
    entries = []
    try:
        for p in folder.rglob("*"):
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):  # a plain file (lstat: a link is not followed)
                entries.append((max(st.st_atime, st.st_mtime), st.st_size, p))
    except OSError:
        return 0
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return 0
    freed = 0
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total - freed <= keep * limit:
            break
        try:
            p.unlink()
            freed += size
        except OSError:
            continue
    return freed


def prune_if_due(cache: Path) -> None:
    """``prune`` the compilation cache folder ``cache`` and its results folder, at most
    once every ``PRUNE_EVERY`` seconds (a stamp file beside them), when a limit is set."""
    limit = max_bytes()
    if limit is None:
        return
    stamp = cache.parent / f"{cache.name}-pruned"
    try:
        if time.time() - stamp.stat().st_mtime < PRUNE_EVERY:
            return
    except OSError:
        pass
    try:
        stamp.touch()
    except OSError:
        return
    for folder in (cache, results_dir(cache)):
        if folder.is_dir():
            prune(folder, limit)


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at ``cache_dir()``; returns the folder
    used, or None (off, or not writable). Call before anything compiles. Imports no JAX:
    when JAX is not imported yet, the settings go to the environment variables it reads
    when it is (``JAX_COMPILATION_CACHE_DIR``, ...)."""
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        return None
    prune_if_due(path)
    import sys
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning,
                            message="Error (writing|reading) persistent compilation cache")
    settings = {"jax_compilation_cache_dir": str(path),
                "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    jax = sys.modules.get("jax")
    if jax is None:  # not imported yet (nothing to check may need it): JAX reads these
        for name, value in settings.items():  # when it is imported
            os.environ[name.upper()] = str(value)
        return path
    for name, value in settings.items():
        jax.config.update(name, value)
    return path


# The programs JAX compiles for eager operations (a user's JAX code, ``jaxcnn verify``'s
# hand functions and oracles) take no per-program options, so the command line gives them
# the options the oracles ask for per program (jaxcnn.check.autodiff.CPU_OPTIONS) through
# XLA_FLAGS: XLA:CPU's elemental emitters instead of its MLIR fusion emitters (small
# programs compile 2-2.5x faster, the same code bit for bit), and LLVM at level 0 without
# its expensive passes (an eager exp or matmul compiles 1.4-1.7x faster; results may
# differ in the last bit, as the oracles' own do: every verdict stays the same). An
# unknown flag there kills the process, so only for jaxlib versions known to have them.
CHEAP_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0",
               "--xla_llvm_disable_expensive_passes=true")
CHEAP_FLAG_JAXLIB = ("0.9.", "0.10.")


def prefer_cheap_compiles() -> bool:
    """Add ``CHEAP_FLAGS`` to ``XLA_FLAGS`` for jaxlib versions known to accept them, each
    unless the user set that flag (theirs wins); True when any of them is in effect. Call
    before JAX compiles anything (XLA reads the variable once); imports no JAX."""
    from importlib import metadata

    flags = os.environ.get("XLA_FLAGS", "")
    if flags.strip() and not flags.lstrip().startswith("-"):
        return False  # XLA reads such a value as the name of a file of flags: left alone
    try:
        version = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return False
    if not version.startswith(CHEAP_FLAG_JAXLIB):
        return False
    given = flags.split()  # to find the names only: the user's text is kept as written
    names = {flag.lstrip("-").split("=")[0] for flag in given}
    added = [flag for flag in CHEAP_FLAGS if flag.lstrip("-").split("=")[0] not in names]
    if added:  # appended: a quoted value with spaces in the user's flags stays intact
        os.environ["XLA_FLAGS"] = " ".join([flags.rstrip(), *added]).strip()
    return any(flag in given + added for flag in CHEAP_FLAGS)


_XLA_LOG = re.compile(r"^[EF]\d{4} [\d:.]+\s+\d+ (parse_flags_from_env|command_line_flags)"
                      r"\.cc:\d+\] (?P<message>.*)$")


def check_user_flags() -> None:
    """Raise ``ConfigError`` (one line, exit 2) when XLA rejects the user's ``XLA_FLAGS``.

    XLA reads the variable when JAX starts its backend and, on an unknown flag, a value it
    cannot parse or a flags file it cannot open, ends the process at once (exit 1, which
    means "a wrong gradient" to ``jaxcnn check``, and no JSON document). So a non-empty
    ``XLA_FLAGS`` is tried first in a child process (``import jax; jax.devices()``, about
    0.6 s), once per jaxlib version and flags string: an accepted one is remembered in the
    cache folder (``cache_dir()``; without a cache it is tried on every run). A child that
    fails for another reason says nothing about the flags: the run goes on. Call before
    ``prefer_cheap_compiles`` (the user's own flags are the question) and before JAX
    starts; imports no JAX."""
    flags = os.environ.get("XLA_FLAGS", "")
    if not flags.strip():
        return
    import hashlib
    import subprocess
    import sys

    key = hashlib.sha256(f"{jaxlib_folder()}\n{flags}".encode()).hexdigest()[:32]
    cache = cache_dir()
    marker = None if cache is None else cache.parent / "xla-flags-accepted" / key
    if marker is not None and marker.exists():
        return
    try:
        child = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"],
                               capture_output=True, text=True, timeout=120,
                               env=dict(os.environ), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return  # no verdict on the flags
    if child.returncode == 0:
        if marker is not None:
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:
                pass
        return
    messages = [m.group("message") for m in map(_XLA_LOG.match, child.stderr.splitlines())
                if m]
    if not messages:
        return
    from jaxcnn.errors import ConfigError

    raise ConfigError(f"XLA rejects XLA_FLAGS={flags!r}: {messages[0].rstrip('. ')}. Fix "
                      "or unset XLA_FLAGS")
