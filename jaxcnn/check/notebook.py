"""Jupyter notebooks (``.ipynb``, nbformat 4) as the checker's source files.

A notebook is read with ``json`` (no new dependency) and its code cells are run in
order, in one module, as ``jaxcnn check`` runs a ``.py`` file, so that every dialect
finds its layers in them:

* **Cells.** Cells are numbered from 1 in the notebook's order, markdown and raw cells
  included (the N-th cell as a reader scrolls the notebook). Each code cell is compiled
  under its own file name, ``"PATH, cell N"`` (what Python's tracebacks then show as
  ``File "nb.ipynb, cell 7", line 3``), with its text registered in ``linecache``: the
  lines of a cell are its own lines, counted from 1, so every line number the checker
  reports (the first wrong step of a backward, where an error was raised) is a line of
  that cell, and ``where`` / ``line_text`` name the cell beside it.
* **IPython syntax.** A cell that compiles as Python is run as it is. One that does not
  has its IPython lines replaced by ``pass`` (line numbers kept): line magics (``%matplotlib
  inline``, ``x = %timeit f()``), shell lines (``!pip install ...``, ``files = !ls``) and
  help lines (``np.sum?``), never inside a string or a bracket. A cell magic whose body
  is Python (``%%time``, ``%%timeit``, ``%%capture``, ``%%prun``) loses its first line;
  a cell magic of another language (``%%bash``, ``%%html``, ...) is not run, nor is
  ``%%writefile`` (no file is written: an import of it reads the one on disk). A
  ``%run other.py`` line, dropped so, is listed as skipped (``run_cell``'s left out).
  ``get_ipython()`` (what ``jupytext`` and ``nbconvert`` write for a magic) and
  ``display()`` exist in the module and do nothing.
* **Failing cells.** A cell that raises (a training loop reading a data file that is
  not there, a plot, a name an earlier failed cell never defined), or runs past the time
  limit, stops where it did, as in Jupyter, except that the functions and classes
  defined and the imports further down in that cell still run (a setup cell whose
  ``import imageio`` fails still imports the layers after it); the cells after it run.
  Each is a ``Failure`` (the loader lists them as skipped); it does not change the exit
  status by itself.
* **Training loops.** A top-level ``while`` of a cell that calls a function the
  notebook defines (min-char-rnn's ``while True: ... lossFun(...)``) is left out, as in
  a ``.py`` file (``jaxcnn.check.scripts``), and listed as skipped with its cell and
  line; the rest of the cell runs. Plots are drawn off-screen (``MPLBACKEND=Agg``) and thrown away.
"""

from __future__ import annotations

import ast
import contextlib
import json
import linecache
import os
import re
import types
import warnings
from pathlib import Path
from typing import NamedTuple

from jaxcnn.check.cells import cell_filename

SUFFIX = ".ipynb"
# cell magics whose body is Python: the magic line is dropped, the body runs
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
# the statements still run in a cell after one of its statements raised: what defines
# names (a setup cell whose `import imageio` fails still imports the layers after it)
STILL_RUN = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
               ast.ImportFrom)


class NotebookError(ValueError):
    """A notebook that cannot be read as one: not JSON, not nbformat 4, not Python, or
    without code cells. The message is one line."""


class Cell(NamedTuple):
    """One code cell: its number (from 1, every cell counted) and its source text."""

    number: int
    source: str


class Failure(NamedTuple):
    """A code cell that did not run to its end: its number, the line (in the cell) where
    it stopped (0 when it never started: a syntax error without a line, a cell magic of
    another language), and why, in one line."""

    cell: int
    line: int
    why: str
    stopped: bool = True  # False: one statement left out, the rest of the cell ran


# ------------------------------------------------------------------ reading a notebook

def _text(value, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return "".join(value)
    raise NotebookError(f"not a valid notebook: {what} is not text")


def code_cells(text: str, name: str = "FILE") -> list[Cell]:
    """The code cells of a notebook's JSON ``text`` (nbformat 4: ``{"nbformat": 4,
    "cells": [{"cell_type": "code", "source": str | [str, ...]}, ...]}``), numbered as
    ``Cell`` says, empty ones left out; ``name``: the file, for a hint.

    Raises ``NotebookError`` (one line): not JSON, not nbformat 4, a kernel in another
    language than Python, cells that are not cells, no code cells."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"not a notebook: not valid JSON ({exc.msg} at line "
                            f"{exc.lineno}, column {exc.colno})") from None
    if not isinstance(doc, dict) or "cells" not in doc and "nbformat" not in doc:
        raise NotebookError("not a notebook: JSON without \"cells\" or \"nbformat\"")
    version = doc.get("nbformat")
    if isinstance(version, str) and version.strip().isdigit():  # "4", as some tools write it
        version = int(version)
    if version != 4 or isinstance(version, bool):
        hint = (f" (convert it: jupyter nbconvert --to notebook --nbformat 4 {name})"
                if isinstance(version, int) and version < 4 else "")
        raise NotebookError(f"nbformat {version!r} notebook; only nbformat 4 is read{hint}")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    language = ((meta.get("kernelspec") or {}).get("language")
                or (meta.get("language_info") or {}).get("name"))
    if isinstance(language, str) and language.lower() not in ("python", "python3", "ipython"):
        raise NotebookError(f"a {language} notebook; only Python notebooks can be checked")
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise NotebookError("not a valid notebook: \"cells\" is not a list")
    out = []
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            raise NotebookError(f"not a valid notebook: cell {number} is not an object")
        if cell.get("cell_type") != "code":
            continue
        source = _text(cell.get("source", ""), f"the source of cell {number}")
        if source.strip():
            out.append(Cell(number, source))
    if not out:
        raise NotebookError("no code cells to run")
    return out


# ------------------------------------------------------------------ IPython syntax

_MAGIC_LINE = re.compile(r"^\s*(%|!)|^\s*[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_]\w*)*\s*=\s*[%!]"
                         r"|^\s*[\w.\[\]()]+\?\??\s*$|^\s*\?\??[\w.]+\s*$")


def _scan(line: str, state: dict) -> None:
    """Advance ``state`` (``quote``: the open string's delimiter or None; ``depth``: open
    brackets; ``more``: a backslash continues the line) over one line of Python."""
    i, n = 0, len(line)
    state["more"] = False
    comment = False
    while i < n:
        q = state["quote"]
        c = line[i]
        if q is not None:
            if c == "\\":
                i += 2
                continue
            if line.startswith(q, i):
                state["quote"] = None
                i += len(q)
                continue
            i += 1
            continue
        if c == "#":
            comment = True
            break
        if c in "\"'":
            triple = line[i:i + 3]
            state["quote"] = triple if triple in ('"""', "'''") else c
            i += len(state["quote"])
            continue
        if c in "([{":
            state["depth"] += 1
        elif c in ")]}":
            state["depth"] = max(0, state["depth"] - 1)
        i += 1
    if state["quote"] in ('"', "'"):  # an unterminated one-line string: the line is bad
        state["quote"] = None
    state["more"] = (not comment and state["quote"] is None
                     and line.rstrip("\r\n").endswith("\\"))


def _pass_line(line: str) -> str:
    return line[:len(line) - len(line.lstrip())] + "pass"


def python_source(source: str) -> tuple[str | None, str]:
    """(the cell's text as Python, what was changed) for a cell's ``source``: itself when
    it compiles; else with its IPython lines replaced (see the module docstring), line
    numbers kept. (None, why) for a cell magic of another language than Python."""
    try:
        with warnings.catch_warnings():  # the cell's own compile warns, once
            warnings.simplefilter("ignore")
            compile(source, "<cell>", "exec", dont_inherit=True)
        return source, ""
    except (SyntaxError, ValueError):
        pass
    lines = source.splitlines()
    changed = []
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
        if magic == "writefile":
            target = first[2:].split()[-1] if len(first[2:].split()) > 1 else "?"
            return None, (f"a %%writefile cell: not run ({target} is not written; what "
                          "imports it reads the file on disk)")
        if magic not in PYTHON_CELL_MAGICS:
            return None, f"a %%{magic} cell (not Python): not run"
        lines[0] = ""
        changed.append(f"%%{magic}")
    state = {"quote": None, "depth": 0, "more": False}
    continued = False  # the previous line was a magic ending in a backslash
    for k, line in enumerate(lines):
        at_start = state["quote"] is None and state["depth"] == 0 and not state["more"]
        if continued:
            continued = line.rstrip().endswith("\\")
            lines[k] = ""
            continue
        if at_start and _MAGIC_LINE.match(line) and not line.lstrip().startswith("%%"):
            changed.append(line.strip().split()[0])
            continued = line.rstrip().endswith("\\")
            lines[k] = _pass_line(line)
            continue
        _scan(line, state)
    return "\n".join(lines) + "\n", ", ".join(changed)


# ------------------------------------------------------------------ running the cells

class _Shell:
    """What ``get_ipython()`` returns in a checked notebook: every method does nothing."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None

    def __repr__(self) -> str:
        return "<jaxcnn check: no IPython shell>"


def _display(*objs, **kwargs) -> None:
    """``display`` of a notebook: nothing is shown while it is checked."""


def ipython_names() -> dict:
    """The names a notebook's code may use without importing them: ``get_ipython``,
    ``display``."""
    shell = _Shell()
    return {"get_ipython": lambda: shell, "display": _display}


def register(filename: str, source: str) -> None:
    """Make ``source`` the text of ``filename`` for ``linecache`` (and so ``inspect`` and
    tracebacks), replacing what was registered before under that name."""
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    linecache.cache[filename] = (len(source), None, lines, filename)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failed_line(exc: BaseException, filename: str) -> int:
    """The line of cell ``filename`` where ``exc`` left it (its innermost frame there)."""
    line, tb = 0, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def run_cell(cell: Cell, path: str, namespace: dict, guard, own=frozenset(),
             left_out: list | None = None) -> Failure | None:
    """Run one code cell in ``namespace``, statement by statement; after a statement
    raised, only the functions, classes and imports below it. ``guard(what)``: a context
    manager around each statement (a time limit) that may raise ``Stop`` for a statement
    that must not go on (its message the failure's). A top-level ``while`` that calls
    one of ``own`` (the notebook's own functions) is a training loop, not run
    (``jaxcnn.check.scripts``, the rule of a ``.py`` file): a ``Failure`` with
    ``stopped`` False for each is appended to ``left_out``. Returns the cell's first
    failure, or None. The exceptions that are not the user's (a real Ctrl-C) go
    through."""
    from jaxcnn.check import scripts
    from jaxcnn.check.usercode import UserExit, raised_by_code

    filename = cell_filename(path, cell.number)
    source, why = python_source(cell.source)
    if source is None:
        return Failure(cell.number, 0, why)
    register(filename, source)
    if left_out is not None:  # a %run line became `pass`: say so, it defines nothing here
        for k, (was, now) in enumerate(zip(cell.source.splitlines(), source.splitlines(),
                                           strict=False), 1):
            if was != now and re.match(r"\s*%run\b", was):
                left_out.append(Failure(cell.number, k, f"`{was.strip()[:80]}` is not run "
                                        "(what that file defines is not defined here; "
                                        "import it instead)", False))
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 0
        return Failure(cell.number, line, f"{type(exc).__name__}: "
                       f"{getattr(exc, 'msg', str(exc))}: not run")
    failure = None
    for stmt in tree.body:
        if failure is not None and not isinstance(stmt, STILL_RUN):
            continue
        names = scripts.loop_calls(stmt, own)
        if names:
            if left_out is not None:
                left_out.append(Failure(cell.number, stmt.lineno,
                                        scripts.why(names, "the notebook's"), False))
            continue
        try:
            code = compile(ast.Module([stmt], []), filename, "exec", dont_inherit=True)
            with guard("the statement"):
                exec(code, namespace)
        except Stop as exc:
            failure = failure or Failure(cell.number, exc.line or stmt.lineno, str(exc))
        except UserExit as exc:
            failure = failure or Failure(cell.number, stmt.lineno,
                                         f"it exits (os._exit({exc.code}))")
        except BaseException as exc:
            if not raised_by_code(exc):
                raise
            failure = failure or Failure(cell.number, _failed_line(exc, filename)
                                         or stmt.lineno, _one_line(exc))
    return failure


class Stop(Exception):
    """A statement stopped by a guard (past the time limit): its message says why;
    ``line`` the cell's line where it was stopped, when known."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.line = line


@contextlib.contextmanager
def off_screen():
    """Plots drawn while a notebook runs go to matplotlib's Agg back end (no window to
    wait on), unless the user chose a back end in ``MPLBACKEND``."""
    had = "MPLBACKEND" in os.environ
    if not had:
        os.environ["MPLBACKEND"] = "Agg"
    try:
        yield
    finally:
        if not had:
            os.environ.pop("MPLBACKEND", None)


def run(cells: list[Cell], path: str, module: types.ModuleType, guard) -> list[Failure]:
    """Run ``cells`` in ``module`` (see ``run_cell``); the failures and the training
    loops left out, in cell order. The whole notebook's Python text is registered under
    ``path`` too, so that ``inspect`` finds a class's source (its methods' lines are the
    cells')."""
    from jaxcnn.check import scripts

    module.__dict__.update(ipython_names())
    sources = [python_source(c.source)[0] for c in cells]
    register(path, "\n".join(source or "" for source in sources))
    own = set()  # the functions the notebook defines at the top level of its cells
    for source in sources:
        with contextlib.suppress(SyntaxError, ValueError):
            own |= scripts.own_functions(ast.parse(source or "").body)
    failures = []
    with off_screen():
        for cell in cells:
            left_out = []
            failure = run_cell(cell, path, module.__dict__, guard, own, left_out)
            failures += sorted([*left_out, *([failure] if failure else [])],
                               key=lambda f: f.line)
    return failures


def read(path: Path) -> list[Cell]:
    """The code cells of the notebook file at ``path``. Raises OSError,
    UnicodeDecodeError, or ``NotebookError`` (see ``code_cells``)."""
    return code_cells(path.read_bytes().decode("utf-8-sig"), str(path))


def failure_text(path: str, failure: Failure) -> tuple[str, str]:
    """(name, why) of a failed cell, for the list of what was skipped: ``("nb.ipynb, cell
    7", "line 3: FileNotFoundError: ... (the cell stopped there; the rest ran)")``, the
    notebook's path as given."""
    name = cell_filename(path, failure.cell)
    if not failure.stopped:  # a training loop left out
        return name, f"line {failure.line}: {failure.why} (the rest of the cell ran)"
    if not failure.line:  # never started
        return name, f"{failure.why}; the other cells were run"
    return name, f"line {failure.line}: {failure.why} (the cell stopped there; the rest ran)"


__all__ = ["Cell", "Failure", "NotebookError", "Stop", "code_cells", "failure_text",
           "python_source", "read", "register", "run", "run_cell"]
