"""The ``jaxcnn`` program: the console script and ``python -m jaxcnn`` start here.

Importing this module installs jaxcnn's signal handlers at once (``interrupts``), before
anything but the standard library is imported, so that Ctrl-C during the start-up
imports is one line and exit 130 too. Import it only to run the program.
"""

import os
import sys

from jaxcnn import interrupts

interrupts.install(interrupts.command_of(sys.argv[1:]))
if interrupts.wants_json(sys.argv[1:]):  # `jaxcnn check --json`: one document, always
    interrupts.promise_document()


def _standard_streams() -> None:
    """Open /dev/null on a closed standard descriptor (``jaxcnn train >&-``, ``2>&-``).

    Otherwise the next file opened would get that number: the run lock or a checkpoint
    would receive whatever native code prints to stdout or stderr, and Python, which
    starts with ``sys.stdout = None`` then, ended an otherwise good run with a traceback
    and exit 1."""
    try:
        for fd in (0, 1, 2):
            try:
                os.fstat(fd)
            except OSError:
                os.open(os.devnull, os.O_RDWR)  # the lowest free number: fd
        for name, fd in (("stdout", 1), ("stderr", 2)):
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, "w", closefd=False))
    except OSError:  # no /dev/null: leave the streams as they are
        pass


_standard_streams()
if any(a.startswith(("--coordinator", "--num-processes", "--process-id", "--distributed"))
       for a in sys.argv[1:]) or "JAX_COORDINATOR_ADDRESS" in os.environ:
    # A multi-process run: XLA's C++ runtime warns about its recoverable-task feature on
    # every run, and jaxcnn reports failures itself. Read once, when jaxlib loads.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run() -> None:
    """``jaxcnn.cli.main()``, then end the process at once with its status.

    Skipping the interpreter's teardown (everything is written and closed by then) means
    a Ctrl-C in the last milliseconds still meets jaxcnn's handler, not the default one
    that the teardown restores, and XLA's threads are never torn down under Python.
    """
    from jaxcnn.cli import _error, main, stdout_error

    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, --version, a bad flag
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if not isinstance(exc.code, (int, type(None))):
            _error(str(exc.code))  # as the interpreter would
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except OSError as exc:  # e.g. --help > /dev/full: lost output is not a success
        if code == 0:
            _error(f"jaxcnn {interrupts.command_of(sys.argv[1:])}: error: {stdout_error(exc)}")
            code = 2
    except ValueError:
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)
