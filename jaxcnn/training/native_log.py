"""One line instead of XLA's C++ log in a multi-process run.

When the coordination service of a multi-process run fails (a process that never
connects, a duplicated ``--process-id``, process 0 gone), JAX's C++ client ends the
process with ``LOG(FATAL)``: a glog line, the failed RPC, a stack trace and
``abort()`` (exit 134), with no Python code to catch it. ``filter_stderr()`` routes
file descriptor 2 through a small child process (standard library only, started in
a few tens of milliseconds) that passes jaxcnn's own lines through and replaces each
C++ log block by at most one line saying what failed (``FATAL_LINES``), dropping
warnings and stack traces; after a fatal one, nothing more (the process is ending, and
its own error line would be a second one). The child ignores the terminal's signals and ends when
the process's stderr closes (its exit, however it ends), so even an abort's last
words are filtered.
"""

from __future__ import annotations

import os
import subprocess
import sys

# What the fatal C++ messages mean, for the line printed instead (first match wins).
FATAL_LINES = (
    ("DEADLINE_EXCEEDED", "not every process of this run connected to the coordinator "
                          "within {timeout} s: start all --num-processes processes, each "
                          "with its own --process-id (0 exactly once) and the same "
                          "--coordinator"),
    ("", "the coordination service of this run failed: another process (or process 0, "
         "which hosts it) stopped; see its output"),
)

_FILTER = r"""
import ast, re, signal, sys
for name in ("SIGINT", "SIGTERM", "SIGHUP"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
prefix, timeout, fatal = sys.argv[1], sys.argv[2], ast.literal_eval(sys.argv[3])
native = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")
out, block, said, ended = sys.stdout, False, False, False
for line in sys.stdin:
    if native.match(line):
        block = True
        if line[0] == "F" and not said:
            why = next(text for key, text in fatal if key in line or not key)
            if not ended:  # jaxcnn's own line came first: it stays the only one
                out.write(f"{prefix}: error: {why.format(timeout=timeout)}\n")
            said = True
    elif said or (block and not line.startswith(("jaxcnn", "Traceback"))):
        pass  # the rest of a C++ message (its RPC, stack trace), or a process that dies
    else:
        block = False
        ended = ended or line.startswith(prefix + ": ")  # an error or a signal's line
        out.write(line)
    out.flush()
"""


def filter_stderr(prefix: str, timeout: int) -> None:
    """Route this process's fd 2 through the filter (``prefix``: "jaxcnn train";
    ``timeout``: the connect timeout the fatal message quotes). Best effort: on any
    failure stderr stays as it is."""
    try:
        sys.stderr.flush()
        read, write = os.pipe()
        terminal = os.dup(2)
        try:
            subprocess.Popen([sys.executable, "-S", "-c", _FILTER, prefix, str(timeout),
                              repr(FATAL_LINES)], stdin=read, stdout=terminal,
                             stderr=terminal, close_fds=True, start_new_session=True)
        finally:
            os.close(read)
            os.close(terminal)
        os.dup2(write, 2)
        os.close(write)
    except (OSError, ValueError):
        pass
