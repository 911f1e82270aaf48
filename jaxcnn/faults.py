"""Fault injection for the crash-safety tests: a real crash or signal at a named point.

The code calls ``point(name)`` where a crash must be survivable (between the steps of
an atomic write, before an XLA compile, at start-up). Nothing happens unless the
environment variable ``JAXCNN_FAULT`` is set, which only the tests do::

    JAXCNN_FAULT="checkpoint-e2:synced=KILL"     # SIGKILL this process at that point
    JAXCNN_FAULT="compile=INT+0.3"               # SIGINT 0.3 s after that point, from a
                                                 # timer thread: it lands during the compile

Actions: ``KILL``, ``INT``, ``TERM``, ``HUP`` (that signal to this process), optionally
``+SECONDS`` for a delayed signal. Several faults are separated by commas.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "JAXCNN_FAULT"


def point(name: str) -> None:
    """Deliver the fault configured for ``name`` in ``$JAXCNN_FAULT``, if any."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for item in spec.split(","):
        where, _, action = item.partition("=")
        if where.strip() != name:
            continue
        sig_name, _, delay = action.strip().partition("+")
        sig = getattr(signal, f"SIG{sig_name}")
        if delay:
            timer = threading.Timer(float(delay), os.kill, (os.getpid(), sig))
            timer.daemon = True
            timer.start()
        else:
            os.kill(os.getpid(), sig)
