"""Import a user's file the way its project imports it, and tell an environment problem
from a mistake in the file.

* **Import roots.** ``cs231n/layer_utils.py`` doing ``from cs231n.layers import *`` in a
  folder without ``__init__.py`` fails with "No module named 'cs231n'" when the file is
  run on its own: the project runs it from the folder *above* ``cs231n``. ``load_file``
  walks up the folders of the file until one holds the missing top-level name (a folder
  or a ``.py`` file), puts that folder on ``sys.path`` and imports again.
* **Unbuilt extensions.** CS231n's ``im2col_cython`` is Cython source (``.pyx``) that
  must be compiled (``python setup.py build_ext --inplace``). An extension that has its
  ``.pyx`` but no compiled module beside it is an environment problem, not the user's
  error: while the file is imported it is replaced by a stand-in whose every attribute
  raises ``UnbuiltExtension`` when called, so that the layers that do not need it are
  checked, and those that do are reported as not checked, with the command that builds
  it.
* **Python 2 helpers.** CS231n's starter code (2017-2019) has ``from past.builtins
  import xrange``: the ``future`` package, rarely installed now. When ``past`` is
  missing, a stand-in ``past.builtins`` gives what ``future`` gives on Python 3 (``xrange``
  is ``range``, ``basestring`` / ``unicode`` ``str``, ``long`` ``int``, ``raw_input``
  ``input``, ``unichr`` ``chr``, ``reduce``) while the file is imported.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import re
import sys
import types
from pathlib import Path

from jaxcnn.check import discover

_MISSING = re.compile(r"No module named '([\w.]+)'")
_BUILT = tuple(importlib.machinery.EXTENSION_SUFFIXES)


class UnbuiltExtension(RuntimeError):
    """A function of a compiled extension that is not built was called."""


def _build_hint(pyx: Path) -> str:
    setup = next((d for d in (pyx.parent, *pyx.parents) if (d / "setup.py").is_file()), None)
    if setup is not None:
        return f"build it: cd {setup} && python setup.py build_ext --inplace"
    return f"build it (cythonize -i {pyx.name} in {pyx.parent})"


def unbuilt_extensions(folder: Path, depth: int = 2) -> dict[str, Path]:
    """``{module name: .pyx path}`` of the Cython sources in ``folder`` and its sub-folders
    (``depth`` levels) that have no compiled module beside them, under every name they
    can be imported by from ``folder`` (``im2col_cython`` and ``cs231n.im2col_cython``)."""
    found: dict[str, Path] = {}

    def walk(d: Path, prefix: tuple, level: int):
        try:
            entries = sorted(d.iterdir())
        except OSError:
            return
        for e in entries:
            if e.suffix == ".pyx" and e.is_file():
                built = any((d / f"{e.stem}{suffix}").exists() for suffix in _BUILT)
                if not built:
                    found[".".join((*prefix, e.stem))] = e
                    found.setdefault(e.stem, e)
            elif e.is_dir() and level < depth and not e.name.startswith((".", "_")):
                walk(e, (*prefix, e.name), level + 1)

    walk(folder, (), 0)
    # also by the package names the folder may be imported under (cs231n.im2col_cython
    # for cs231n/im2col_cython.pyx, imported by a file inside cs231n/)
    for name, pyx in list(found.items()):
        prefix, up = name, folder
        for _ in range(2):
            if not up.name.isidentifier():
                break
            prefix = f"{up.name}.{prefix}"
            found.setdefault(prefix, pyx)
            up = up.parent
    return found


def _stand_in(name: str, pyx: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__all__ = []
    hint = _build_hint(pyx)

    def missing(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def unbuilt(*args, **kwargs):
            raise UnbuiltExtension(f"{name}.{attr} is in a compiled extension that is not "
                                   f"built ({pyx.name} has no compiled module beside it); "
                                   f"{hint}")
        unbuilt.__name__ = attr
        return unbuilt

    module.__getattr__ = missing
    module.__file__ = None
    module.__jaxcnn_unbuilt__ = str(pyx)
    return module


@contextlib.contextmanager
def stand_ins(folders):
    """Stand-ins for the unbuilt extensions under ``folders`` in ``sys.modules`` while the
    block runs (names already importable are left alone)."""
    added = []
    for folder in folders:
        for name, pyx in unbuilt_extensions(Path(folder)).items():
            if name in sys.modules:
                continue
            sys.modules[name] = _stand_in(name, pyx)
            added.append(name)
    try:
        yield added
    finally:
        for name in added:
            if getattr(sys.modules.get(name), "__jaxcnn_unbuilt__", None):
                del sys.modules[name]


def python2_stand_in() -> dict[str, types.ModuleType]:
    """``{"past": ..., "past.builtins": ...}``: the ``future`` package's Python 3 names
    (see the module docstring), for a file that imports them without it installed."""
    import functools

    past, builtins = types.ModuleType("past"), types.ModuleType("past.builtins")
    past.__path__ = []  # a package: `from past.builtins import xrange` finds the submodule
    past.builtins = builtins
    for name, value in (("xrange", range), ("basestring", str), ("unicode", str),
                        ("long", int), ("raw_input", input), ("unichr", chr),
                        ("reduce", functools.reduce)):
        setattr(builtins, name, value)
    for m in (past, builtins):
        m.__jaxcnn_stand_in__ = True
    return {"past": past, "past.builtins": builtins}


@contextlib.contextmanager
def _python2_names():
    added = [n for n in ("past", "past.builtins") if n not in sys.modules]
    stand_in = python2_stand_in()
    for name in added:
        sys.modules[name] = stand_in[name]
    try:
        yield
    finally:
        for name in added:
            if getattr(sys.modules.get(name), "__jaxcnn_stand_in__", False):
                del sys.modules[name]


def _holds(folder: Path, parts: list[str]) -> bool:
    """Whether ``folder`` holds the module ``".".join(parts)`` (folders, then a folder or
    a ``.py`` file)."""
    inner = folder.joinpath(*parts[:-1])
    return (inner / parts[-1]).is_dir() or (inner / f"{parts[-1]}.py").is_file()


def _root_for(missing: str, start: Path) -> Path | None:
    """The first folder from ``start`` upwards that holds all of the dotted name
    ``missing`` (``transformer/layers/base/dense.py`` for ``transformer.layers.base.dense``,
    not the ``transformer/transformer.py`` on the way up, which is no package), else the
    first that holds its top-level name."""
    parts = missing.split(".")
    folders = (start, *start.parents)
    return next((d for d in folders if _holds(d, parts)),
                next((d for d in folders if _holds(d, parts[:1])), None))


def _unshadow(top: str, roots: list[Path]) -> None:
    """Drop the roots added for ``top`` that hold it as a module ``top.py``, not as the
    package a dotted import needs (a regular module found later on ``sys.path`` wins over
    a folder without ``__init__.py`` found first), and the module itself."""
    for root in [r for r in roots if (r / f"{top}.py").is_file() and not (r / top).is_dir()]:
        roots.remove(root)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))
    if not hasattr(sys.modules.get(top), "__path__"):
        sys.modules.pop(top, None)


def _missing_in_cells(module) -> list[str]:
    """The modules the failed notebook cells of ``module`` missed (``No module named
    'cs231n'``), in cell order."""
    found = (_MISSING.search(f.why) for f in getattr(module, "__jaxcnn_failed_cells__", ()))
    return [m.group(1) for m in found if m is not None]


def load_file(path: str | Path, time_limit: float | None = None):
    """``discover.load_file``, with the import root found by walking up the folders and
    unbuilt extensions replaced by stand-ins (see the module docstring); for a notebook
    (``time_limit``: seconds per statement of a cell), a cell that failed on a missing
    module has it looked for the same way, and the notebook is run again. Raises
    ``CheckUsageError`` (one line) when it still cannot be imported, naming the command
    that would work where one is known."""
    path = Path(path)
    folder = path.resolve().parent
    roots: list[Path] = []
    python2 = False  # the `past` stand-in, once the file missed it
    try:
        while True:
            with stand_ins([folder, *roots]), \
                    _python2_names() if python2 else contextlib.nullcontext():
                try:
                    module = discover.load_file(path, time_limit)
                    missing = _missing_in_cells(module)
                    fresh = [r for r in dict.fromkeys(_root_for(m, folder) for m in missing)
                             if r is not None and r not in roots and str(r) not in sys.path]
                    if any(m.split(".")[0] == "past" for m in missing) and not python2:
                        python2 = True
                    elif fresh:
                        roots += fresh
                        for root in fresh:
                            sys.path.insert(0, str(root))
                    else:  # the failures are listed among the skipped
                        return module
                    continue
                except discover.CheckUsageError as exc:
                    text = str(exc)
                    m = _MISSING.search(text)
                    if m is not None and m.group(1).split(".")[0] == "past" and not python2:
                        python2 = True
                        continue
                    if m is None:
                        if "no known parent package" in text:
                            raise discover.CheckUsageError(
                                f"{text}; it is part of a package: run "
                                f"`cd {folder.parent} && jaxcnn check -m "
                                f"{folder.name}.{path.stem}`") from None
                        raise
                    root = _root_for(m.group(1), folder)
                    if root is None or root in roots or str(root) in sys.path:
                        unbuilt = unbuilt_extensions(folder).get(m.group(1))
                        if unbuilt is not None:
                            raise discover.CheckUsageError(
                                f"{text}: a compiled extension that is not built (an "
                                f"environment problem, not your code); "
                                f"{_build_hint(unbuilt)}") from None
                        raise
                    if "is not a package" in text:  # a module of that name shadowed it
                        _unshadow(m.group(1).split(".")[0], roots)
                    roots.append(root)
                    sys.path.insert(0, str(root))
    finally:
        for root in roots:  # later imports (inside the user's functions) still work
            with contextlib.suppress(ValueError):
                sys.path.remove(str(root))
            sys.path.append(str(root))


def load_module(name: str):
    """``discover.load_module``, with the stand-ins of ``load_file`` (unbuilt extensions
    under the module's folder and its parent, ``past.builtins``): ``jaxcnn check -m
    cs231n.fast_layers`` reports an unbuilt ``im2col_cython`` as ``load_file`` does, not
    as the ``NameError`` its own ``except ImportError`` leaves. Raises
    ``CheckUsageError`` (one line) when it cannot be found or imported."""
    import importlib.util
    import os

    folders: list[Path] = []
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        found = importlib.util.find_spec(name)
        if found is not None and found.origin and found.origin.endswith(".py"):
            here = Path(found.origin).resolve().parent
            folders = [here, here.parent]
    except Exception:  # the user's package __init__ raised: load_module says so
        pass
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)
    with stand_ins(folders), _python2_names():
        return discover.load_module(name)


def environment_problem(report) -> str | None:
    """The note of a ``LayerReport`` whose failures all come from an unbuilt extension
    (``UnbuiltExtension``), else None."""
    bad = [c for c in report.checks if not c.ok]
    if not bad:
        return None
    if not all("UnbuiltExtension" in c.note for c in bad):
        return None
    hit = bad[0].note
    return hit.partition("UnbuiltExtension: ")[2] or hit


__all__ = ["UnbuiltExtension", "environment_problem", "load_file", "load_module", "stand_ins",
           "unbuilt_extensions"]
