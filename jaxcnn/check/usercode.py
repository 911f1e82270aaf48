"""User code that ends the process, is interrupted, or takes the standard streams:
``os._exit`` turned into an exception while it runs, which exceptions are the code's
own, and ``sys.stdout`` / ``sys.stderr`` given back as they were after it ran.

Imported by the loader (``discover``) and the notebook runner (``notebook``), which
both run user code; it imports nothing of theirs.
"""

from __future__ import annotations

import contextlib
import os
import sys


class UserExit(BaseException):
    """The user's code called ``os._exit`` (a BaseException: ``except Exception`` in user
    code does not swallow it)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def no_process_exit():
    """While user code runs: ``os._exit(n)`` raises ``UserExit`` instead of ending the
    process without a word (``sys.exit`` raises ``SystemExit`` already)."""
    real = os._exit

    def refuse(code=0):
        raise UserExit(code)

    os._exit = refuse
    try:
        yield
    finally:
        os._exit = real


def closed(stream) -> bool:
    """Whether ``stream`` cannot be written: None, closed, or not a stream at all."""
    try:
        return stream is None or bool(stream.closed)
    except Exception:  # noqa: BLE001 - whatever the user put there
        return not callable(getattr(stream, "write", None))


def reopen(stream, fd: int):
    """A new text stream on descriptor ``fd`` (left open when it is closed), in
    ``stream``'s encoding: what stands in for a standard stream the user's code
    closed."""
    encoding = getattr(stream, "encoding", None)
    return open(fd, "w", encoding=encoding if isinstance(encoding, str) else "utf-8",
                errors="backslashreplace", buffering=1, closefd=False)


@contextlib.contextmanager
def keep_streams():
    """Around user code: ``sys.stdout`` and ``sys.stderr`` are the streams they were
    before it, after it, whatever it did to them (``sys.stdout = None``,
    ``sys.stderr.close()`` at import); a stream it closed is replaced by a new one on
    the same descriptor (1 or 2), so that jaxcnn's own lines still get out."""
    saved = (sys.stdout, sys.stderr)
    try:
        yield
    finally:
        for name, fd, stream in (("stdout", 1, saved[0]), ("stderr", 2, saved[1])):
            if closed(stream):
                try:
                    stream = reopen(stream, fd)
                except (OSError, ValueError):  # the descriptor itself is gone
                    continue
            setattr(sys, name, stream)


def raised_by_code(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the user's code rather than from the person at the
    keyboard: any exception, and a ``KeyboardInterrupt`` while a handler other than
    Python's own has SIGINT (the command line's ``jaxcnn.interrupts`` ends the process on a
    real Ctrl-C, so one that arrives as an exception was raised by the code)."""
    from jaxcnn.check.limits import TimeLimit  # jaxcnn's own interruption

    if isinstance(exc, (GeneratorExit, TimeLimit)):
        return False
    if isinstance(exc, KeyboardInterrupt):
        import signal

        return signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    return True


__all__ = ["UserExit", "closed", "keep_streams", "no_process_exit", "raised_by_code", "reopen"]
