"""Check YOUR hand-derived backward passes against autodiff and finite differences.

Give it Python files or Jupyter notebooks (or -m MODULE) holding layers: blog/report
classes with ``forward``
and ``backprop``; CS231n ``*_forward`` / ``*_backward`` functions and losses; module-style
classes (``backward`` storing ``self.dinputs``, ``self.dweights``); the deep-learning
specialisation's functions and ``forward_propagation`` / ``backward_propagation`` pairs;
JAX ``custom_vjp`` functions; ``torch.autograd.Function`` subclasses; a function beside
its ``_prime``/``_derivative``. Names the catalogue does not know are checked against
finite differences of their own forward. Each layer is checked on its own inputs
(tie-free random, real MNIST digits, exact zeros, overlapping windows, large logit gaps,
and yours with --inputs) and every gradient gets a kind: correct, tie-overcount, scaled,
sign-flipped, transposed, missing-accumulation, zero, wrong-shape, non-finite,
not-reentrant, modifies-input, ... A file holding a whole network (the report's conv,
pool and softmax classes; or CS231n's conv, relu, max_pool, affine and softmax_loss) is
also checked as a chain that names the first wrong layer.

notebooks (.ipynb, nbformat 4): the code cells run in order in the notebook's folder,
IPython lines (%magics, !shell, %%time's first line; %%bash cells) dropped; lines are
named "cell N, line M" (cells counted from 1, markdown included). A cell that raises
(missing data files, plots) or runs one statement past --time-limit stops there, is
listed as skipped, and the other cells still run; a notebook that is not JSON, not
nbformat 4 or has no code cells is one line, exit 2.

cache: compiled programs and the exact oracle's results are kept between runs in
~/.cache/jaxcnn/xla ($XDG_CACHE_HOME/jaxcnn/xla when that is set; JAXCNN_CACHE_DIR moves
it, empty turns it off), keyed on the traced computation and its inputs, so an edited
file is never judged by stale results; each folder is kept under JAXCNN_CACHE_MAX_MB
(default 1024; 0: no limit), least recently used files deleted first.

exit status: 0 every gradient correct; 1 a gradient is wrong (in a layer or a chain);
2 nothing wrong was found but something could not be checked (every input of a layer
refused, a layer found that could not be run at all: an error row, no layers, a file
that cannot be imported, a time limit passed, a usage error). With --json, stdout is
always one JSON document ("ok": false and "error" on exit 2, and on Ctrl-C: "status":
130).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from jaxcnn.cli import path_arg
from jaxcnn.cli.documents import error_json, print_document
from jaxcnn.interrupts import interrupted_document


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcnn.check.limits import DEFAULT_TIME_LIMIT

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = "\n\n".join([__doc__.split("\n\n", 1)[0], *__doc__.split("\n\n")[-3:]])
    parser.add_argument("files", nargs="*", type=_file_arg, metavar="FILE",
                        help="Python files (.py) or Jupyter notebooks (.ipynb) with layers "
                             "(options may come before or after)")
    parser.add_argument("-m", "--module", action="append", default=[], metavar="MODULE",
                        help="an importable module with layers (repeatable), e.g. "
                             "jaxcnn.reference")
    parser.add_argument("--layer", action="append", default=[], metavar="NAME",
                        help="check only this layer (repeatable): a row name (affine, "
                             "Conv3x3), a function or class name (conv_forward_fast, "
                             "conv_backward_fast, Layer_Dense; ActivationLayer or "
                             "tanh_prime for every row built from it) or a kind (conv)")
    parser.add_argument("--inputs", metavar="SPEC",
                        help="your own inputs (FILE.py, FILE.py:FUNC or FILE.npz), checked "
                             "before jaxcnn's: a function (default "
                             "name `inputs`) returning {layer: [(x, w, b), ...]} or a list "
                             "for every layer (an input may be {'args': (...), 'static': "
                             "(...), 'label': k}); or an .npz with arrays LAYER/ARG or "
                             "LAYER/K/ARG and LAYER/static as a JSON list (see the README)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    parser.add_argument("--time-limit", type=_seconds_arg, default=DEFAULT_TIME_LIMIT,
                        metavar="SECONDS",
                        help="the longest an import of your file (a statement of a "
                             "notebook's cell: past it, the cell is skipped), finding its "
                             "layers "
                             "(which runs their constructors and forwards), or the check "
                             f"of one layer, may take (default {DEFAULT_TIME_LIMIT:g}; 0: no "
                             "limit); a layer past it is one error row naming the file "
                             "and line where it was stuck (the others are still checked), "
                             "an import or the finding past it one line; exit 2")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    _intermixed(parser)


def _intermixed(parser: argparse.ArgumentParser) -> None:
    """Options after file arguments (``check a.py --json b.py``) work: this parser parses
    intermixed. (With --json anywhere on the line, a usage error also prints one JSON
    document: ``jaxcnn.cli.main`` arranges it, ``usage_document``, for the errors of the
    top-level parser too, ``--bogus``.)"""
    plain = parser.parse_known_args
    state = {"busy": False}

    def parse_known_args(args=None, namespace=None):
        if state["busy"]:
            return plain(args, namespace)
        state["busy"] = True
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            state["busy"] = False

    parser.parse_known_args = parse_known_args


def _interrupt_json(code: int, what: str, partial: dict | None = None) -> str:
    """The document of a run ended by a signal: what ``error_json`` gives, with the
    layers checked before it (``partial``: ``report.to_json`` of them, rendered as each
    was checked), built with the standard library only and nothing imported (it is
    written from inside the signal handler)."""
    partial = partial or {}
    return interrupted_document(code, what, partial.get("layers", []),
                                partial.get("skipped", []), (
                                    f"; {len(partial['layers'])} layer"
                                    f"{'s' * (len(partial['layers']) != 1)} checked before "
                                    "it, the others and the chains not"
                                    if partial.get("layers") else ""))


MAX_TIME_LIMIT = 1e8  # seconds (about 3 years): setitimer refuses what time_t cannot hold


def _seconds_arg(text: str) -> float:
    """argparse type for --time-limit: a finite number of seconds, 0 (no limit) or more,
    at most ``MAX_TIME_LIMIT``; checked before any file is imported."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0 or value > MAX_TIME_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be 0 (no limit) or a number of seconds up to {MAX_TIME_LIMIT:g}, got {text}")
    return value


def _file_arg(text: str) -> str:
    """An empty FILE.py (an unset variable in a script) is an error, not the current
    folder."""
    return str(path_arg(text))


def run(args: argparse.Namespace) -> int:
    from jaxcnn.check import api, store
    from jaxcnn.cli import xla_cache
    from jaxcnn.errors import JaxcnnError

    try:
        xla_cache.check_user_flags()  # XLA would end the process: one line, exit 2
    except JaxcnnError as exc:
        if args.json:
            print_document(error_json(str(exc)))
        raise
    xla_cache.prefer_cheap_compiles()  # eager programs too: see xla_cache
    cache = xla_cache.enable()
    if cache is not None:  # the oracle's results too, keyed on computation and inputs
        store.enable(xla_cache.results_dir(cache))
    if not args.json:
        from jaxcnn import interrupts

        table = []  # the rows checked so far, rendered: a Ctrl-C prints them

        def keep(reports, skipped):
            from jaxcnn.check import report  # (JAX: only once a layer was checked)

            table[:] = [f"\n{report.table(reports)}\n\n{len(reports)} layer"
                        f"{'s' * (len(reports) != 1)} checked before the interruption; the "
                        "others, and the chains, were not\n"]

        def interrupted(code: int, what: str) -> None:
            if table:
                os.write(1, table[0].encode())
        with interrupts.last_words(interrupted):
            result = api.check_sources(args.files, args.module, layers=args.layer,
                                       seed=args.seed, inputs=args.inputs,
                                       time_limit=args.time_limit, log=sys.stdout,
                                       progress=sys.stderr, on_checked=keep)
            table.clear()
        print()
        print(result.text())
        return result.status
    # --json: stdout holds exactly one JSON document. Everything else written to it (the
    # user's prints, from any thread, or from C code writing to file descriptor 1) goes to
    # stderr until the document is written.
    from jaxcnn import jsonsafe

    def keep(reports, skipped):  # rendered now: the signal handler only dumps them
        from jaxcnn.check import report  # (JAX: only once a layer was checked)

        partial.update(report.to_json(reports, skipped))

    partial = {}
    with _stdout_to_stderr(partial) as document:
        try:
            result = api.check_sources(args.files, args.module, layers=args.layer,
                                       seed=args.seed, inputs=args.inputs,
                                       time_limit=args.time_limit, log=sys.stderr,
                                       progress=sys.stderr, on_checked=keep)
        except Exception as exc:  # one JSON document on every exit with one line (exit 2)
            from jaxcnn.cli import out_of_memory

            if isinstance(exc, BrokenPipeError) or not (
                    isinstance(exc, (JaxcnnError, OSError)) or out_of_memory(exc)):
                raise
            document(error_json(str(exc) or type(exc).__name__,
                                 getattr(exc, "partial", None)))
            raise
        document(jsonsafe.dumps(result.to_json(), indent=2))
    return result.status


@contextlib.contextmanager
def _stdout_to_stderr(partial: dict | None = None):
    """File descriptor 1 (and ``sys.stdout``) point at stderr inside the block; yields
    ``write(text)``, which writes one line to the real stdout.

    Once the document is written, descriptor 1 stays on stderr: a thread the user's code
    started may still print until the interpreter exits, and stdout must hold the one
    document and nothing after it."""
    from jaxcnn import interrupts

    sys.stdout.flush()
    saved = None
    try:
        if sys.stdout.fileno() == 1:  # else stdout is captured in the process (a StringIO,
            saved = os.dup(1)  # a test): Python-level only
            os.dup2(2, 1)
    except (OSError, ValueError, AttributeError):  # no descriptor to juggle
        saved = None
    real = sys.stdout
    sys.stdout = sys.stderr
    written = []

    def write(text: str) -> None:
        written.append(True)
        with interrupts.document_out():
            if saved is None:
                real.write(text + "\n")
                real.flush()
            else:  # all of it: a short write (a file size limit) is followed by an error
                data = memoryview((text + "\n").encode())
                while data:
                    data = data[os.write(saved, data):]

    def interrupted(code: int, what: str) -> None:
        """Ctrl-C, SIGTERM, SIGHUP (see ``jaxcnn.interrupts``): the one JSON document
        says so, unless it is already out."""
        if not written:
            write(_interrupt_json(code, what, partial))

    try:
        with interrupts.last_words(interrupted):
            yield write
    finally:
        sys.stdout = real
        if saved is not None:
            sys.stderr.flush()
            if not written:  # no document (an unexpected exception): stdout as it was
                os.dup2(saved, 1)
            os.close(saved)
