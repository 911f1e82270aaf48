"""Time limits and progress for running user code: an import that never ends
(``while True: pass`` at import) or a layer that never finishes must end in one line
naming the file and line where it was stuck, not hang without a word.

``time_limit(seconds, what)`` arms ``SIGALRM`` (``signal.setitimer``) around a block: when
it fires, the handler raises ``TimeLimit`` (a ``BaseException``, so that a user's
``except Exception`` does not swallow it) in whatever Python frame runs, and the block
ends with ``Stuck`` naming the user's innermost frame (file, line, source). Until the
block has ended, the alarm fires again every ``RETRY`` seconds: code that swallows the
first ``TimeLimit`` (a bare ``except:``, ``except BaseException``, a library's cleanup)
is stopped by the next. Only in the
main thread of a platform with ``SIGALRM`` (POSIX); elsewhere the block runs unlimited.
A C call that never returns cannot be interrupted this way (the handler runs when it
returns). ``progress(what, stream)`` prints ``what`` to ``stream`` once the block has run
``after`` seconds (a slow import says what it is doing; a fast one prints nothing).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import sysconfig
import threading
import time
import traceback

from jaxcnn.check import cells
from jaxcnn.errors import JaxcnnError

DEFAULT_TIME_LIMIT = 300.0  # seconds per import and per layer (`jaxcnn check --time-limit`)
PROGRESS_AFTER = 2.0  # seconds before a block says what it is doing
RETRY = 1.0  # seconds between two alarms once the time is up


class TimeLimit(BaseException):
    """Raised inside the running code when its time is up (internal)."""


class Stuck(JaxcnnError):
    """A block ran past its time limit. ``where``: "file.py:3 (`while True: pass`)" or ""."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


_OWN = os.path.join(os.path.realpath(os.path.join(os.path.dirname(__file__), os.pardir)), "")
# Python's own library (``re``, ``json``, ...): a user's code stuck inside a call to it is
# stuck at the user's line that called it.
_STDLIB = tuple(os.path.join(os.path.realpath(p), "") for p in {
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})


def _not_users(filename: str) -> bool:
    path = os.path.realpath(filename)
    return (path.startswith(_OWN) or "site-packages" in filename or filename.startswith("<")
            or (path.startswith(_STDLIB) and "site-packages" not in path))


def user_frame(tb) -> str:
    """``file:line (`source`)`` of the innermost frame of ``tb`` that is the user's (not
    jaxcnn's, not an installed package's, not Python's own library's, not the import
    machinery's), or ""."""
    frames = [f for f in traceback.extract_tb(tb) if not _not_users(f.filename)]
    if not frames:
        return ""
    f = frames[-1]
    code = f" (`{f.line.strip()}`)" if f.line and f.line.strip() else ""
    return f"{cells.where(f.filename, f.lineno, short=False)}{code}"


def _can_alarm() -> bool:
    """SIGALRM's timer exists here and this is the main thread (where the handler runs).
    A timer already running (an enclosing limit's, or the user's own) is paused by
    ``time_limit`` and given back what it had left."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str):
    """Run the block for at most ``seconds`` (None or <= 0: no limit). Raises ``Stuck``:
    "{what} did not finish in {seconds} s: stuck at file.py:3 (`while True: pass`)".
    Nested in another limit's block, that one is paused while this one runs (its time
    counts what runs outside the inner blocks).
    """
    if not seconds or seconds <= 0 or not _can_alarm():
        yield
        return

    armed = [True]  # until the block has ended: a TimeLimit swallowed is raised again

    def fire(signum, frame):
        if armed[0]:
            raise TimeLimit()

    previous = signal.signal(signal.SIGALRM, fire)
    # inside another limit's block (a layer's finding inside a file's): the outer one is
    # paused, and resumes with the time it had left when this block ends
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds, RETRY)
    try:
        yield
    except TimeLimit as exc:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        where = user_frame(exc.__traceback__)
        raise Stuck(f"{what} did not finish in {seconds:g} s"
                    + (f": stuck at {where}" if where else "")
                    + "; raise the limit with --time-limit SECONDS (0: none)", where) from None
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, outer, RETRY)


_ITEM_LIMIT: contextvars.ContextVar = contextvars.ContextVar("item_limit", default=None)


@contextlib.contextmanager
def per_item(seconds: float | None):
    """Inside the block, ``item(what)`` limits each item (one layer's finding) to
    ``seconds``."""
    token = _ITEM_LIMIT.set(seconds)
    try:
        yield
    finally:
        _ITEM_LIMIT.reset(token)


@contextlib.contextmanager
def item(what: str):
    """``time_limit`` of the enclosing ``per_item`` block (none outside one) around one
    item: a class whose constructor or probe never returns is one refused layer, the
    others are found (the file's own limit is paused meanwhile)."""
    with time_limit(_ITEM_LIMIT.get(), what):
        yield


@contextlib.contextmanager
def progress(what: str, stream=None, after: float = PROGRESS_AFTER):
    """Print ``what ...`` to ``stream`` (default: nothing) if the block is still running
    ``after`` seconds later, and how long it took once it is done (not when it raised)."""
    if stream is None:
        yield
        return
    start = time.perf_counter()
    said = threading.Event()

    def say():
        said.set()
        print(f"{what} ...", file=stream, flush=True)

    timer = threading.Timer(after, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
    if said.is_set():  # (not when the block raised: its error says the rest)
        print(f"{what}: done in {time.perf_counter() - start:.1f} s", file=stream, flush=True)


__all__ = ["DEFAULT_TIME_LIMIT", "Stuck", "TimeLimit", "progress", "time_limit", "user_frame"]
