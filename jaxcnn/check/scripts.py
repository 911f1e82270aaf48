"""The one rule for a script's training loop, in a ``.py`` file and in a notebook alike.

A ``while`` at the top level of a file (of any code cell of a notebook) that calls a
function defined at the top level of that same file (of any of the notebook's code
cells) is a script's training loop (min-char-rnn's ``while True: loss, dWxh, ... =
lossFun(...)`` trains forever): it is left out, so that the functions around it can be
checked. Everything else runs as written (a loop that calls none of them, ``while True:
pass``, meets the time limit). Standard library only.
"""

from __future__ import annotations

import ast

LEFT_OUT = "a top-level `while` loop that calls {names} (a training script's loop): left out"


def own_functions(body: list[ast.stmt]) -> set[str]:
    """The names of the functions defined at the top level of ``body``."""
    return {s.name for s in body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}


def loop_calls(stmt: ast.stmt, defined: set[str] | frozenset[str]) -> list[str]:
    """The functions of ``defined`` that ``stmt``, a top-level ``while``, calls (sorted);
    [] when it is not a ``while`` or calls none of them: then it is not a training loop."""
    if not isinstance(stmt, ast.While):
        return []
    return sorted({n.func.id for n in ast.walk(stmt) if isinstance(n, ast.Call)
                   and isinstance(n.func, ast.Name) and n.func.id in defined})


def why(names: list[str], whose: str = "the file's") -> str:
    """The sentence for a loop left out: "a top-level `while` loop that calls the file's
    own lossFun (...): left out"."""
    return LEFT_OUT.format(names=f"{whose} own {', '.join(names)}")


__all__ = ["LEFT_OUT", "loop_calls", "own_functions", "why"]
