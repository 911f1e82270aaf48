"""Where a line of a notebook's code cell is: the file name each cell is compiled under
(``"PATH, cell N"``) and the text that names it in messages (``"cell 7, line 3"``).

Standard library only: the engine, the time limits and the steps analysis name lines
through it without importing the notebook runner (``jaxcnn.check.notebook``).
"""

from __future__ import annotations

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


def line_text(filename: str | None, line: int) -> str:
    """``"cell 7, line 3"`` for a notebook cell's line, else ``"line 3"``."""
    _, cell = split_filename(filename)
    return f"line {line}" if cell is None else f"cell {cell}, line {line}"


def where(filename: str, line: int, *, short: bool = True) -> str:
    """Where a line is, for a message: ``"layers.py:3"``, or ``"nb.ipynb, cell 7, line 3"``
    for a notebook cell (``short``: the file's name without its folder)."""
    path, cell = split_filename(filename)
    path = path or ""
    if short:
        path = path.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{path}:{line}" if cell is None else f"{path}, cell {cell}, line {line}"


__all__ = ["CELL_FILE", "cell_filename", "line_text", "split_filename", "where"]
