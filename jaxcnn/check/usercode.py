"""User code that ends the process or is interrupted: ``os._exit`` turned into an
exception while it runs, and which exceptions are the code's own.

Imported by the loader (``discover``) and the notebook runner (``notebook``), which
both run user code; it imports nothing of theirs.
"""

from __future__ import annotations

import contextlib
import os


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


__all__ = ["UserExit", "no_process_exit", "raised_by_code"]
