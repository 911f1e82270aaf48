"""Ctrl-C, SIGTERM and SIGHUP at any moment: one line on stderr and an exit code.

``install(command)`` runs when ``jaxcnn._program`` (the program's entry point) is
imported, before anything but the standard library: only the interpreter's own
start-up (some tens of milliseconds) comes first. ``jaxcnn.cli.main`` installs them too.
The handler flushes stdout, writes one line and ends the process with ``os._exit``:
it does not unwind Python or tear down XLA (doing that while XLA threads are compiling
crashed the interpreter with a segmentation fault). Nothing is lost by exiting at once,
because every file jaxcnn writes is committed atomically (``fsio.atomic_write``) and
log rows are flushed as they happen: a run stopped at any instant keeps its last
complete checkpoint, exactly as after kill -9.

Exit codes: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP), the shell's 128 + signal number.
A signal that was ignored when jaxcnn started (``nohup``, background jobs) stays ignored.
Python runs the handler between bytecodes of the main thread, so a signal that arrives
inside one long native call (an XLA compile: about a second here) takes effect when it
returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

_hard_exit = os._exit  # bound now: `jaxcnn check` swaps os._exit while user code runs

SIGNALS = {
    "SIGINT": (130, "interrupted (Ctrl-C)"),
    "SIGTERM": (143, "terminated (SIGTERM)"),
    "SIGHUP": (129, "hung up (SIGHUP)"),
}


_last_words: list = []  # ``(code, what) -> None``, run by the handler before its line


@contextlib.contextmanager
def last_words(write):
    """Inside the block, a signal handled here first calls ``write(code, what)`` (e.g.
    ``(130, "interrupted (Ctrl-C)")``): ``jaxcnn check --json`` writes its one JSON
    document. ``write`` must not import or take locks: it runs inside a signal handler."""
    _last_words.append(write)
    try:
        yield
    finally:
        _last_words.remove(write)


# ``jaxcnn check --json``: stdout is to hold exactly one JSON document. "promised": the
# command line asks for it; "out": it is written (or being written).
_document = {"promised": False, "out": False}


def wants_json(argv: list[str]) -> bool:
    """Whether ``argv`` is a ``jaxcnn check`` line with ``--json`` anywhere on it (or an
    abbreviation argparse takes for it, ``--js``), before a ``--``."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    return command_of(words) == "check" and any(
        len(a) >= 3 and "--json".startswith(a) for a in words)


def promise_document(wanted: bool = True) -> None:
    """From now on (``wanted``; else no more), a signal that comes before the one JSON
    document is out writes it (``interrupted_document``, on descriptor 1) after the
    ``last_words`` writers, unless one of them wrote it (inside ``document_out``): at any
    moment, start-up imports included, stdout gets one document."""
    _document.update(promised=wanted, out=False)


@contextlib.contextmanager
def document_out():
    """Around writing the one JSON document: it counts as written (no signal writes a
    second one), and the signals of ``SIGNALS`` wait until it is whole."""
    _document["out"] = True
    sigs = [getattr(signal, name) for name in SIGNALS if hasattr(signal, name)]
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, OSError, ValueError):  # no sigmask here: write at once
        blocked = None
    try:
        yield
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def interrupted_document(code: int, what: str, layers=(), skipped=(), note: str = "") -> str:
    """The JSON document of a run ended by a signal (standard library only: it is built
    inside the signal handler): ``"ok": false``, the layers checked before it, and
    ``"status"`` / ``"error"`` saying what ended it."""
    return json.dumps({"ok": False, "layers": list(layers), "skipped": list(skipped),
                       "chains": [], "status": code, "error": what + note}, indent=2)


def command_of(argv: list[str]) -> str:
    """The sub-command named in ``argv`` (its first word that is not a flag), for messages."""
    return next((a for a in argv if not a.startswith("-")), "command")


def install(command: str, note: str | None = None) -> None:
    """Handle the signals of ``SIGNALS`` for the rest of the process: print
    ``jaxcnn COMMAND: <what><note>`` and exit with that signal's code. Default note: for
    ``train``, that the files already saved are intact."""
    if note is None:
        note = "; files already saved are intact" if command == "train" else ""
    for name, (code, what) in SIGNALS.items():
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) is signal.SIG_IGN:
            continue
        line = f"jaxcnn {command}: {what}{note}\n".encode()

        def handler(signum, frame, line=line, code=code, what=what):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 (a reentrant or broken stream: skip it)
                    pass
            for write in list(_last_words):
                try:
                    write(code, what)
                except Exception:  # noqa: BLE001 (the exit must happen whatever it does)
                    pass
            if _document["promised"] and not _document["out"]:  # before any writer
                _document["out"] = True
                try:
                    data = (interrupted_document(code, what) + "\n").encode()
                    while data:
                        data = data[os.write(1, data):]
                except OSError:
                    pass
            try:
                os.write(2, line)
            finally:
                _hard_exit(code)

        signal.signal(sig, handler)
