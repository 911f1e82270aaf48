"""The ``jaxcnn`` program: the console script and ``python -m jaxcnn`` start here.

Importing this module installs jaxcnn's signal handlers at once (``interrupts``), before
anything but the standard library is imported, so that Ctrl-C during the start-up
imports is one line and exit 130 too. Import it only to run the program.
"""

import os
import sys

from jaxcnn import interrupts

interrupts.install(interrupts.command_of(sys.argv[1:]))
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
    from jaxcnn.cli import main

    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
