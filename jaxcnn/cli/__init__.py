"""The `jaxcnn` command: one sub-command per job.

Each job lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``. Errors a user can fix (``JaxcnnError``, and any ``OSError``:
a full disk, a closed output pipe, a standard output that cannot be written; and
running out of memory) are printed as one line on stderr with exit status 2, never as
a traceback. Ctrl-C, SIGTERM and SIGHUP at any moment, start-up imports included, print
one line and exit with 130, 143 and 129 (``jaxcnn.interrupts``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from jaxcnn import faults, interrupts, memory
from jaxcnn.errors import JaxcnnError, OutputError

# sub-command -> (module, one-line help). Modules are imported lazily so that
# `jaxcnn data` does not pay for compiling anything.
COMMANDS = {
    "train": ("jaxcnn.cli.train", "train the network (defaults reproduce the report)"),
    "evaluate": ("jaxcnn.cli.evaluate", "score a saved checkpoint on test data"),
    "check": ("jaxcnn.cli.check", "check YOUR hand-written backprop (NumPy or JAX) against "
                                  "autodiff"),
    "verify": ("jaxcnn.cli.verify", "check the report's hand-derived gradients against "
                                    "jax.grad"),
    "data": ("jaxcnn.cli.data", "show what a data source holds"),
    "plot": ("jaxcnn.cli.plot", "draw a run: learning curves, filters, confusion matrix, "
                                "mistakes"),
}


def path_arg(text: str) -> Path:
    """argparse type for a file or folder: an empty string (an unset ``$OUT`` in a
    script) is an error, not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    return Path(text)


RUN_FILE_NAMES = ("checkpoint.npz", "metrics.json", "metrics.csv")


def run_folder(path: Path, argument: str) -> Path:
    """The run folder that ``path``, given as ``argument`` (``--resume``, ``--init-from``,
    or "" for a command's DIR), names: the folder itself, or the folder of one of its run files
    (``DIR/checkpoint.npz`` is taken as DIR, in every command alike). Raises
    ``CheckpointError``, with the same words in every command, for any other file or a
    path that does not exist."""
    from jaxcnn.errors import CheckpointError

    if path.is_file() and path.name in RUN_FILE_NAMES:
        return path.parent
    named = f"{argument} {path}" if argument else str(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{named} is a file, not a run folder; give the folder that "
                              "`jaxcnn train --out DIR` wrote")
    if not path.exists():
        raise CheckpointError(f"{named}: no such folder; give the folder that "
                              "`jaxcnn train --out DIR` wrote")
    return path


def positive_int(text: str) -> int:
    """argparse type for a count: a whole number of at least 1, checked before any file
    is read."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: "jaxcnn check: error: ... (see jaxcnn check --help)"
    and exit 2, without the usage block (sub-command parsers inherit this class)."""

    command: str | None = None  # the sub-command on the line, for the top-level parser

    def error(self, message: str):
        prog = f"{self.prog} {self.command}" if self.command else self.prog
        if _usage_document:  # `jaxcnn check --json`: stdout holds one document still
            _usage_document.pop()(message)
        _error(f"{prog}: error: {message} (see {prog} --help)")
        sys.exit(2)


# While ``main`` parses a command line that asks for JSON (``jaxcnn check ... --json``,
# the flag anywhere): ``(message) -> None``, which writes a usage error's document.
_usage_document: list = []


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when None)."""
    from jaxcnn import __version__

    parser = _Parser(
        prog="jaxcnn",
        description="Check hand-derived backprop against autodiff; train the report's "
                    "from-scratch MNIST CNN.",
    )
    parser.add_argument("--version", action="version", version=f"jaxcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


class KeptStream:
    """``sys.stderr`` (and, as ``CheckedStdout``, ``sys.stdout``) while a command runs:
    jaxcnn's own stream, which the user's code cannot take from it. Its ``close()`` only
    flushes (``jaxcnn check`` runs code that may do ``sys.stdout.close()`` at import),
    and where the stream it wraps was closed all the same (``sys.__stderr__.close()``),
    a new one on the same descriptor takes its place. Everything else is the wrapped
    stream's."""

    def __init__(self, stream, fd: int):
        self._stream = stream
        self._fd = fd

    def _live(self):
        from jaxcnn.check.usercode import closed, reopen

        if closed(self._stream):
            self._stream = reopen(self._stream, self._fd)
        return self._stream

    def __getattr__(self, name):
        return getattr(self._live(), name)

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:
        self.flush()

    def write(self, text):
        return self._live().write(text)

    def writelines(self, lines):
        return self._live().writelines(lines)

    def flush(self):
        return self._live().flush()


class CheckedStdout(KeptStream):
    """``sys.stdout`` while a command runs (a ``KeptStream``). A write or flush that fails
    for another reason than a closed pipe (``> /dev/full``, a full disk, an I/O error)
    raises ``OutputError`` naming standard output: such an ``OSError`` carries no file
    name, and was reported as if ``--out`` had failed."""

    def __init__(self, stream):
        super().__init__(stream, 1)

    def _call(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise stdout_error(exc) from None

    def write(self, text):
        return self._call(super().write, text)

    def writelines(self, lines):
        return self._call(super().writelines, lines)

    def flush(self):
        return self._call(super().flush)


def stdout_error(exc: OSError) -> OutputError:
    """The one line for an ``OSError`` that writing standard output raised."""
    return OutputError(f"cannot write to standard output ({exc.strerror or exc}); send it "
                       "where it can be written (a full disk or /dev/full cannot take it)")


def _stdout_closed() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# what the top-level parser itself takes before a command
TOP_LEVEL_FLAGS = ("-h", "--help", "--version", "-V")


def _command_first(argv: list[str]) -> list[str]:
    """``argv`` with the flags written before the command moved after it (``jaxcnn --json
    check x.py`` is ``jaxcnn check --json x.py``: the flags are the command's); as it is
    when there is no command, or the top-level parser's own flags come first."""
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if not at or argv[at] not in COMMANDS or any(
            a in TOP_LEVEL_FLAGS or a == "--" for a in argv[:at]):
        return argv
    return [argv[at], *argv[:at], *argv[at + 1:]]


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Installs process-wide signal handlers (``interrupts.install``) first: this runs the
    program (see ``jaxcnn._program``), it is not a library function.
    """
    argv = _command_first(sys.argv[1:] if argv is None else list(argv))
    command = next((a for a in argv if not a.startswith("-")), None)
    command = command if command in COMMANDS else None
    interrupts.install(command or "command")
    # `check --json`: a signal from now on writes the one document
    interrupts.promise_document(interrupts.wants_json(argv))
    memory.fit_malloc_to_limit()  # under `ulimit -v`: address space for data, not arenas
    faults.point("start")
    prog = f"jaxcnn {command}" if command else "jaxcnn"
    stdout, sys.stdout = sys.stdout, CheckedStdout(sys.stdout)
    stderr, sys.stderr = sys.stderr, KeptStream(sys.stderr, 2)
    try:
        parser = build_parser(command)
        parser.command = command
        if interrupts.wants_json(argv):
            from jaxcnn.cli.documents import usage_document

            _usage_document[:] = [usage_document]
        try:
            args = parser.parse_args(argv)  # --help and --version print here (and exit)
        finally:
            _usage_document.clear()
        if args.command is None:
            parser.print_help(sys.stderr)
            _error(f"jaxcnn: error: give a command: {', '.join(COMMANDS)} (see jaxcnn --help)")
            return 2
        if command in ("train", "evaluate", "plot"):  # check and verify: in their run
            from jaxcnn.cli import xla_cache

            xla_cache.check_user_flags()  # XLA would end the process: one line, exit 2
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # what is still buffered fails here, not silently at exit
        return code
    except JaxcnnError as exc:
        if isinstance(exc, OutputError) and str(exc).startswith("cannot write to standard"):
            _stdout_closed()  # the interpreter's last flush cannot fail again
        _error(f"{prog}: error: {_short(str(exc))}")
    except BrokenPipeError:
        _stdout_closed()
        saved = "; files already saved are intact" if command == "train" else ""
        _error(f"{prog}: stopped: its output pipe was closed (the reader, e.g. `head`, "
               f"exited){saved}")
    except OSError as exc:
        from jaxcnn.training.fsio import describe

        out = "--out" if command in ("train", "plot") else "folder"  # evaluate has no --out
        _error(f"{prog}: error: {_short(describe(exc, 'a file operation failed', out))}")
    except Exception as exc:  # noqa: BLE001 - only running out of memory is the user's
        if not out_of_memory(exc):
            raise
        _error(f"{prog}: error: {_short(out_of_memory_message(exc, command))}")
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    return 2


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the machine's memory (or a device's) ran out: NumPy's
    ``MemoryError`` or XLA's ``RESOURCE_EXHAUSTED`` (``JaxRuntimeError``)."""
    return isinstance(exc, MemoryError) or (
        type(exc).__name__ in ("JaxRuntimeError", "XlaRuntimeError")
        and str(exc).startswith("RESOURCE_EXHAUSTED"))


def out_of_memory_message(exc: BaseException, command: str | None) -> str:
    """One line for running out of memory: XLA's reason and what to make smaller."""
    reason = str(exc).split("\n")[0].removeprefix("RESOURCE_EXHAUSTED: ") or "MemoryError"
    smaller = ("train fewer --seeds at once, fewer --filters, or a smaller --batch-size or "
               "--test-size" if command == "train" else
               "use a smaller --test-size" if command in ("evaluate", "plot") else
               "ask for less at once")
    saved = "; files already saved are intact" if command == "train" else ""
    return f"out of memory ({reason}); {smaller}{saved}"


def _short(message: str, limit: int = 600) -> str:
    """A message on one line, at most ``limit`` characters (a listing can be huge)."""
    message = " ".join(message.split())
    if len(message) <= limit:
        return message
    return message[:limit - 30].rstrip() + f" ... ({len(message) - limit + 30:,} more characters)"


def _error(line: str) -> None:
    """``line`` on stderr (descriptor 2 itself where ``sys.stderr`` was closed or
    replaced by the user's code); silently nothing when stderr itself is gone."""
    try:
        print(line, file=sys.stderr, flush=True)
        return
    except OSError:
        return
    except (ValueError, AttributeError):  # a closed sys.stderr, or None
        pass
    try:
        os.write(2, (line + "\n").encode(errors="backslashreplace"))
    except OSError:
        pass
