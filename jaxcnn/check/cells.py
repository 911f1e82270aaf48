"""Where a line of a notebook's code cell is: the file name each cell is compiled under
(``"PATH, cell N"``) and the text that names it in messages (``"cell 7, line 3"``).

Standard library only: the engine, the time limits and the steps analysis name lines
through it without importing the notebook runner (``jaxcnn.check.notebook``).
"""

from __future__ import annotations

import os
import re

CELL_FILE = re.compile(r"^(?P<path>.*\.ipynb), cell (?P<cell>\d+)$", re.S)


def cell_filename(path: str, number: int) -> str:
    """The file name cell ``number`` of the notebook at ``path`` is compiled under."""
    return f"{path}, cell {number}"


def split_filename(filename: str | None) -> tuple[str | None, int | None]:
    """(notebook path, cell number) of a cell's file name, else (filename, None)."""
    m = CELL_FILE.match(filename or "")
    if m is None:
        return filename, None
    return m.group("path"), int(m.group("cell"))


def same_file(a: str | None, b: str | None) -> bool:
    """Whether two paths (a cell's file name is its notebook's) name the same file."""
    a, b = split_filename(a)[0], split_filename(b)[0]
    if a is None or b is None or a == b:
        return True  # nothing to tell apart
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def file_name(filename: str, home: str | None = None) -> str:
    """The name of ``filename``'s file for a message: its path relative to ``home``'s
    folder when it lies under it (``mylayers.py``, ``lib/layers.py``), else its name."""
    path = split_filename(filename)[0] or ""
    if home:
        folder = os.path.dirname(os.path.realpath(split_filename(home)[0] or ""))
        try:
            rel = os.path.relpath(os.path.realpath(path), folder)
        except (OSError, ValueError):
            rel = ""
        if rel and not rel.startswith(os.pardir):
            return rel.replace("\\", "/")
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def line_text(filename: str | None, line: int, home: str | None = None) -> str:
    """``"cell 7, line 3"`` for a notebook cell's line, else ``"line 3"``; where the line
    is not in ``home`` (the file a layer is reported under), its file is named first:
    ``"mylayers.py, line 9"``, ``"other.ipynb, cell 2, line 3"``."""
    _, cell = split_filename(filename)
    text = f"line {line}" if cell is None else f"cell {cell}, line {line}"
    if home is not None and filename and not same_file(filename, home):
        text = f"{file_name(filename, home)}, {text}"
    return text


def where(filename: str, line: int, *, short: bool = True) -> str:
    """Where a line is, for a message: ``"layers.py:3"``, or ``"nb.ipynb, cell 7, line 3"``
    for a notebook cell (``short``: the file's name without its folder)."""
    path, cell = split_filename(filename)
    path = path or ""
    if short:
        path = path.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{path}:{line}" if cell is None else f"{path}, cell {cell}, line {line}"


__all__ = ["CELL_FILE", "cell_filename", "file_name", "line_text", "same_file", "split_filename",
           "where"]
