"""`jaxcnn check NOTEBOOK.ipynb`: code cells run in order with IPython lines dropped, every
line named as a cell and a line of it, a failing cell listed while the others are checked,
a broken notebook one line with exit 2, and an edited cell never judged by stale results.

The notebooks are built here from their cells' sources (nbformat 4 JSON)."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from jaxcnn.check import cells, notebook

ROOT = Path(__file__).resolve().parent.parent


def write_notebook(path: Path, cells, *, nbformat: int = 4, language: str = "python") -> Path:
    """A notebook of ``cells``: (cell_type, source) pairs, sources as lists of lines as
    Jupyter writes them."""
    doc = {"nbformat": nbformat, "nbformat_minor": 5,
           "metadata": {"kernelspec": {"name": "python3", "language": language}},
           "cells": [{"cell_type": kind, "metadata": {}, "source": source.splitlines(True),
                      **({"execution_count": None, "outputs": []} if kind == "code" else {})}
                     for kind, source in cells]}
    path.write_text(json.dumps(doc, indent=1))
    return path


def jaxcnn_check(*args, cwd=ROOT, env=None):
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "jaxcnn", "check", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


IMPORTS = "%matplotlib inline\nimport numpy as np\n!pip install numpy\n"
AFFINE_FORWARD = ("def affine_forward(x, w, b):\n"
                  "    out = x.reshape(x.shape[0], -1) @ w + b\n"
                  "    return out, (x, w)\n")
AFFINE_BACKWARD = ("def affine_backward(dout, cache):\n"
                   "    x, w = cache\n"
                   "    dx = (dout @ w.T).reshape(x.shape)\n"
                   "    dw = x.reshape(x.shape[0], -1).T @ dout\n"
                   "    db = dout.sum(axis=0)\n"
                   "    return dx, dw, db\n")
BUG = ("dw = x.reshape(x.shape[0], -1).T @ dout\n",
       "dw = x.reshape(x.shape[0], -1).T @ dout / x.shape[0]\n")


def affine_notebook(path: Path, backward: str = AFFINE_BACKWARD, extra=()) -> Path:
    """Cell 1 markdown, 2 imports with magics, 3 the forward, 4 a %%time cell, 5 the
    backward, then ``extra``."""
    return write_notebook(path, [("markdown", "# Affine layer\n"), ("code", IMPORTS),
                                 ("code", AFFINE_FORWARD),
                                 ("code", "%%time\nx = np.ones((2, 3))\nprint(x.sum())\n"),
                                 ("code", backward), *extra])


# ------------------------------------------------------------------ IPython lines

def test_magics_and_shell_lines_become_pass_with_line_numbers_kept():
    source = ("import numpy as np\n%matplotlib inline\nfiles = !ls\nnp.sum?\n"
              "for i in range(2):\n    !echo {i}\n%time y = 3\n")
    text, changed = notebook.python_source(source)
    lines = text.splitlines()
    assert lines == ["import numpy as np", "pass", "pass", "pass", "for i in range(2):",
                     "    pass", "pass"]
    assert "%matplotlib" in changed and "!echo" in changed
    compile(text, "cell", "exec")


def test_percent_and_bang_inside_strings_and_brackets_are_kept():
    source = ("s = '''\n%not a magic\n!nor this\n'''\nx = (7\n     % 2)\n"
              "y = [1,\n!= 2]\n%matplotlib inline\n")
    text, _ = notebook.python_source(source)
    lines = text.splitlines()
    assert lines[1:3] == ["%not a magic", "!nor this"]
    assert lines[5] == "     % 2)" and lines[7] == "!= 2]"  # not magics: inside brackets
    assert lines[8] == "pass"
    text, _ = notebook.python_source("x = 1  # a comment ending in \\\n%matplotlib inline\n")
    assert text.splitlines()[1] == "pass"  # a comment's backslash continues nothing


def test_cell_magics():
    text, _ = notebook.python_source("%%time\nx = 1\n")
    assert text.splitlines() == ["", "x = 1"]  # the body keeps its line numbers
    text, why = notebook.python_source("%%bash\necho hi\n")
    assert text is None and "%%bash" in why
    text, why = notebook.python_source("%%writefile layers.py\nx = 1\n")
    assert text is None and "layers.py is not written" in why
    text, _ = notebook.python_source("x = 1\n")  # Python as it is: untouched
    assert text == "x = 1\n"


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('{"nbformat": 3, "worksheets": []}', "nbformat 3 notebook; only nbformat 4"),
    ('[1, 2]', "not a notebook"),
    ('{"nbformat": 4, "cells": [{"cell_type": "markdown", "source": "hi"}]}', "no code cells"),
    ('{"nbformat": 4, "cells": [{"cell_type": "code", "source": 3}]}', "not text"),
    ('{"nbformat": 4, "metadata": {"kernelspec": {"language": "R"}}, "cells": []}',
     "a R notebook"),
])
def test_what_is_not_a_python_notebook_is_one_line(text, message):
    with pytest.raises(notebook.NotebookError, match=message) as info:
        notebook.code_cells(text)
    assert "\n" not in str(info.value)


def test_cells_are_numbered_among_all_cells():
    doc = json.dumps({"nbformat": 4, "cells": [
        {"cell_type": "markdown", "source": "# t"}, {"cell_type": "code", "source": ["a = 1\n"]},
        {"cell_type": "code", "source": ""}, {"cell_type": "raw", "source": "x"},
        {"cell_type": "code", "source": "b = 2"}]})
    assert notebook.code_cells(doc) == [notebook.Cell(2, "a = 1\n"), notebook.Cell(5, "b = 2")]


def test_where_names_the_cell():
    name = cells.cell_filename("/tmp/x/nb.ipynb", 7)
    assert cells.where(name, 3) == "nb.ipynb, cell 7, line 3"
    assert cells.line_text(name, 3) == "cell 7, line 3"
    assert cells.where("/tmp/x/layers.py", 3) == "layers.py:3"
    assert cells.split_filename(name) == ("/tmp/x/nb.ipynb", 7)


# ------------------------------------------------------------------ checking a notebook

def test_a_right_layer_passes_and_magics_are_skipped(tmp_path):
    path = affine_notebook(tmp_path / "affine.ipynb")
    proc = jaxcnn_check(path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(layer["name"], layer["file"]) for layer in doc["layers"]] == [
        ("affine", str(path))]
    assert {c["kind"] for c in doc["layers"][0]["checks"]} == {"correct"}
    assert doc["skipped"] == []  # the magics and the %%time cell ran or were dropped
    assert "6.0" in proc.stderr  # the %%time cell's body ran (its print goes to stderr)


def test_a_planted_bug_is_named_by_cell_and_line(tmp_path):
    path = affine_notebook(tmp_path / "affine.ipynb", AFFINE_BACKWARD.replace(*BUG))
    proc = jaxcnn_check(path)
    assert proc.returncode == 1, proc.stderr
    assert ("first wrong step: cell 5, line 4, `dw = x.reshape(x.shape[0], -1).T @ dout / "
            "x.shape[0]`: scaled x0.25") in proc.stdout
    proc = jaxcnn_check(path, "--json")
    doc = json.loads(proc.stdout)
    w = next(c for c in doc["layers"][0]["checks"] if c["quantity"] == "w")
    assert w["kind"] == "scaled"
    first = w["first_wrong_intermediate"]
    assert (first["cell"], first["line"], first["file"]) == (5, 4, str(path))


def test_the_html_table_and_an_error_name_the_cell(tmp_path):
    from jaxcnn.check import check_file

    raising = AFFINE_BACKWARD.replace("    db = dout.sum(axis=0)\n",
                                      "    db = dout.sum(axis=0)\n    raise ValueError('boom')\n")
    report = check_file(affine_notebook(tmp_path / "a.ipynb", AFFINE_BACKWARD.replace(*BUG)))
    assert report.status == 1
    assert "affine: first wrong step: cell 5, line 4" in report._repr_html_()
    report = check_file(affine_notebook(tmp_path / "b.ipynb", raising))
    assert report.status == 1
    assert "raised ValueError: boom at b.ipynb, cell 5, line 6" in report.layers[0].checks[0].note


def test_a_failing_cell_does_not_stop_the_other_cells(tmp_path):
    from jaxcnn.check import check_file

    relu = ("data = np.load('cifar10.npz')      # not there\n"
            "def relu_forward(x):\n    return np.maximum(x, 0), x\n"
            "def relu_backward(dout, x):\n    return dout * (x > 0)\n"
            "print('never printed')\n")
    path = affine_notebook(tmp_path / "nb.ipynb", extra=[("code", relu),
                                                        ("code", "model.fit(data)\n")])
    report = check_file(path)
    assert [r.name for r in report.layers] == ["affine", "relu"]
    assert report.status == 0  # failing cells are listed, the layers decide
    skipped = dict(report.skipped)
    assert skipped[f"{path}, cell 6"].startswith("line 1: FileNotFoundError")
    assert skipped[f"{path}, cell 7"].startswith("line 1: NameError: name 'model'")


def test_a_cell_missing_past_or_an_import_root_is_run_again_with_it(tmp_path):
    """As for a file: CS231n's helpers' `from past.builtins import xrange` gets its
    stand-in, and `from course_pkg.helpers import mask` finds course_pkg in a folder above
    the notebook's."""
    from jaxcnn.check import check_file

    (tmp_path / "course_pkg").mkdir()
    (tmp_path / "course_pkg" / "helpers.py").write_text(
        "from past.builtins import xrange\nimport numpy as np\n"
        "def mask(x):\n    out = np.zeros_like(x)\n"
        "    for i in xrange(len(x)):\n        out[i] = x[i] > 0\n    return out\n")
    (tmp_path / "notebooks").mkdir()
    path = write_notebook(tmp_path / "notebooks" / "nb.ipynb", [
        ("code", "import numpy as np\nimport a_package_that_is_not_installed\n"),
        ("code", "from course_pkg.helpers import mask\n"),
        ("code", "def relu_forward(x):\n    return np.maximum(x, 0), x\n"
                 "def relu_backward(dout, x):\n    return dout * mask(x)\n")])
    report = check_file(path)
    assert [r.name for r in report.layers] == ["relu"] and report.status == 0
    assert list(dict(report.skipped)) == [f"{path}, cell 1"]


def test_after_a_failed_statement_a_cell_still_defines_and_imports(tmp_path):
    """A setup cell whose first import fails still runs its imports and definitions;
    not its other statements."""
    (tmp_path / "mylayers.py").write_text(AFFINE_FORWARD)
    module = types.ModuleType("nb")
    cell = notebook.Cell(3, "import numpy as np\nimport not_installed_xyz\nx = 1\n"
                            "from mylayers import affine_forward\n"
                            "def f():\n    return 2\nprint(undefined)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        failure = notebook.run_cell(cell, str(tmp_path / "nb.ipynb"), module.__dict__,
                                    lambda what: contextlib.nullcontext())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mylayers", None)
    assert failure == notebook.Failure(3, 2, "ModuleNotFoundError: No module named "
                                             "'not_installed_xyz'")
    names = vars(module)
    assert "affine_forward" in names and names["f"]() == 2 and "x" not in names


def test_a_namespace_package_left_behind_its_dropped_parent_is_dropped_too(tmp_path):
    """A second run of a notebook (or of a file) in one process: `course.sub` has no
    __init__.py (no source file); left in sys.modules without `course`, its next import
    raised KeyError: 'course'."""
    from jaxcnn.check.discover import forget_modules_under

    (tmp_path / "course" / "sub").mkdir(parents=True)
    (tmp_path / "course" / "__init__.py").write_text("")
    (tmp_path / "course" / "sub" / "helpers.py").write_text("X = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("course.sub.helpers")
        forget_modules_under(tmp_path)
        assert not [n for n in sys.modules if n.split(".")[0] == "course"]
        assert importlib.import_module("course.sub.helpers").X == 1
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] == "course"]:
            del sys.modules[name]


def test_a_cell_past_the_time_limit_is_stopped_and_the_others_run(tmp_path):
    from jaxcnn.check import check_file

    path = affine_notebook(tmp_path / "nb.ipynb", extra=[("code", "while True:\n    pass\n")])
    report = check_file(path, time_limit=2)
    assert [r.name for r in report.layers] == ["affine"] and report.status == 0
    why = dict(report.skipped)[f"{path}, cell 6"]
    assert "did not finish in 2 s: stuck at" in why and "nb.ipynb, cell 6, line " in why


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "bad.ipynb: not a notebook: not valid JSON"),
    ('{"nbformat": 3, "worksheets": []}', "bad.ipynb: nbformat 3 notebook"),
    ('{"nbformat": 4, "metadata": {}, "cells": []}', "bad.ipynb: no code cells"),
])
def test_a_broken_notebook_is_one_line_and_exit_2(tmp_path, text, message):
    path = tmp_path / "bad.ipynb"
    path.write_text(text)
    proc = jaxcnn_check(path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
    assert message in proc.stderr and "Traceback" not in proc.stderr
    doc = json.loads(jaxcnn_check(path, "--json").stdout)
    assert doc["status"] == 2 and message in doc["error"]


JAX_CELLS = ("import jax\nimport jax.numpy as jnp\n\n@jax.custom_vjp\ndef dense(x, w):\n"
             "    return jnp.tanh(x @ w)\n")
JAX_RULES = ("def dense_fwd(x, w):\n    y = jnp.tanh(x @ w)\n    return y, (x, w, y)\n\n"
             "def dense_bwd(res, g):\n    x, w, y = res\n    d = g * (1 - y ** 2)\n"
             "    return d @ w.T, x.T @ d\n\ndense.defvjp(dense_fwd, dense_bwd)\n")


def test_an_edited_cell_is_never_served_from_the_cache(tmp_path):
    """The oracle's stored results are keyed on the traced computation and its inputs: a
    cell edited between two runs (here the forward, which is this layer's reference) gets
    the verdict of its new code, and editing it back gives the first verdict again."""
    env = {"JAXCNN_CACHE_DIR": str(tmp_path / "cache")}
    path = tmp_path / "nb.ipynb"
    statuses = []
    for forward in (JAX_CELLS, JAX_CELLS.replace("jnp.tanh(x @ w)", "jnp.sin(x @ w)"),
                    JAX_CELLS):
        write_notebook(path, [("code", forward), ("code", JAX_RULES)])
        proc = jaxcnn_check(path, "--json", env=env)
        doc = json.loads(proc.stdout)
        statuses.append((proc.returncode, sorted({c["kind"] for layer in doc["layers"]
                                                  for c in layer["checks"]})))
    assert statuses[0] == (0, ["correct"]) == statuses[2], statuses
    assert statuses[1][0] == 1 and "correct" not in statuses[1][1], statuses
    assert list((tmp_path / "cache").glob("jaxlib-*-results"))  # the store was on


def test_an_edited_cell_is_read_afresh_in_one_session(tmp_path):
    """``check_file`` twice in one Python session (a notebook checking another): the
    second run reads the edited cell's text, for its verdict and for the line it names."""
    from jaxcnn.check import check_file

    path = affine_notebook(tmp_path / "nb.ipynb", AFFINE_BACKWARD.replace(*BUG))
    first = check_file(path).layers[0].first_wrong_step
    assert (first.line, "/ x.shape[0]" in first.code) == (4, True)
    affine_notebook(path, AFFINE_BACKWARD.replace(*BUG).replace(
        "    x, w = cache\n", "    x, w = cache\n\n\n"))
    first = check_file(path).layers[0].first_wrong_step
    assert (first.line, "/ x.shape[0]" in first.code) == (6, True)
    affine_notebook(path)
    assert check_file(path).status == 0


def test_a_training_loop_calling_the_notebooks_functions_is_left_out(tmp_path):
    """min-char-rnn's `while True:` in a cell calls the notebook's own functions: left
    out as a .py file's is (it would run until the time limit), listed with its cell and
    line; the rest of that cell runs, and a loop that calls none of them still runs."""
    from jaxcnn.check import check_file

    loop = ("n = 0\n"
            "while True:\n"
            "    out, cache = affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))\n"
            "    n += 1\n"
            "after = n\n"
            "while n < 3:\n"
            "    n += 1\n")
    path = affine_notebook(tmp_path / "nb.ipynb", extra=[("code", loop),
                                                         ("code", "assert after == 0, after\n"
                                                                  "assert n == 3, n\n")])
    report = check_file(path, time_limit=20)
    assert [r.name for r in report.layers] == ["affine"] and report.status == 0
    assert report.skipped == [(f"{path}, cell 6", "line 2: a top-level `while` loop that "
                               "calls the notebook's own affine_forward (a training script's "
                               "loop): left out (the rest of the cell ran)")]


def test_nbformat_given_as_a_numeric_string_is_read():
    doc = {"nbformat": "4", "nbformat_minor": 5, "metadata": {},
           "cells": [{"cell_type": "code", "metadata": {}, "source": "a = 1\n"}]}
    assert notebook.code_cells(json.dumps(doc)) == [notebook.Cell(1, "a = 1\n")]
    for version in ("3", True, "four"):
        with pytest.raises(notebook.NotebookError, match="only nbformat 4 is read"):
            notebook.code_cells(json.dumps({**doc, "nbformat": version}))


def test_a_percent_run_line_is_listed_as_not_run(tmp_path):
    from jaxcnn.check import check_file

    path = affine_notebook(tmp_path / "nb.ipynb",
                           extra=[("code", "y = 1\n%run other.py\nz = 2\n")])
    report = check_file(path)
    assert report.status == 0 and [r.name for r in report.layers] == ["affine"]
    assert report.skipped == [(f"{path}, cell 6", "line 2: `%run other.py` is not run (what "
                               "that file defines is not defined here; import it instead) "
                               "(the rest of the cell ran)")]
