"""A layer whose code lives in another file than the one checked (``from mylayers import
*`` in a notebook or a script): every line a message names says which file it is in,
and the layer's header names the file its code is in."""

from __future__ import annotations

import json
from pathlib import Path

from jaxcnn.check import check_file

TANH = ("import numpy as np\n"
        "\n"
        "def tanh_forward(x):\n"
        "    out = np.tanh(x)\n"
        "    return out, out\n"
        "\n"
        "def tanh_backward(dout, cache):\n"
        "    out = cache\n"
        "    dx = dout * (1 - out)\n"
        "    return dx\n")

ENGINE_FIXTURE = Path(__file__).parent / "fixtures" / "dialects" / "scalar_engine_bugs.py"


def _engine() -> str:
    """The fixture's ``Node`` and ``AssignValue`` (whose ``+`` and ``*`` assign where
    they should add): lines 1-60, ``+``'s first ``=`` at line 38."""
    return "".join(ENGINE_FIXTURE.read_text().splitlines(True)[:60])


def _notebook(path: Path, sources) -> Path:
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None,
                   "outputs": [], "source": s.splitlines(True)} for s in sources]}))
    return path


def _details(report) -> str:
    from jaxcnn.check.report import details

    return details(report.layers)


def test_a_step_in_an_imported_file_names_that_file(tmp_path):
    (tmp_path / "mylayers.py").write_text(TANH)
    script = tmp_path / "usesit.py"
    script.write_text("import numpy as np\nfrom mylayers import *\n")
    nb = _notebook(tmp_path / "nb.ipynb", ["import numpy as np", "from mylayers import *"])
    for checked in (script, nb):
        report = check_file(checked)
        text = _details(report)
        assert "first wrong step: mylayers.py, line 9, `dx = dout * (1 - out)`" in text, text
        assert f"tanh (cs231n, mylayers.py, imported by {checked})" in text, text
        assert "tanh: first wrong step: mylayers.py, line 9" in report._repr_html_()
        first = report.layers[0].checks[0].first_wrong_intermediate
        assert (Path(first["file"]).name, first["line"]) == ("mylayers.py", 9)


def test_a_step_in_the_checked_file_names_no_file(tmp_path):
    path = tmp_path / "layers.py"
    path.write_text(TANH)
    text = _details(check_file(path))
    assert f"tanh (cs231n, {path}) vs" in text and "imported by" not in text
    assert "first wrong step: line 9, `dx = dout * (1 - out)`" in text


def _network() -> str:
    """The fixture's micrograd MLP, on ``AssignValue`` imported from ``myengine.py``."""
    lines = ENGINE_FIXTURE.read_text().splitlines(True)
    start = next(k for k, line in enumerate(lines) if line.startswith("class Neuron"))
    end = next(k for k, line in enumerate(lines) if line.startswith("class MLP"))
    end = next((k for k in range(end + 1, len(lines)) if lines[k].startswith("class ")),
               len(lines))
    return "from myengine import AssignValue\n\n\n" + "".join(lines[start:end])


def test_a_scalar_network_on_an_imported_engine_names_the_engine_file(tmp_path):
    (tmp_path / "myengine.py").write_text(_engine())
    net = tmp_path / "net.py"
    net.write_text(_network())
    report = check_file(net)
    mlp = next(r for r in report.layers if r.name == "MLP: parameters")
    assert {c.kind for c in mlp.checks} == {"missing-accumulation"}, _details(report)
    first = mlp.first_wrong_step
    assert (Path(first.file).name, first.line) == ("myengine.py", 38)
    assert "first wrong step: myengine.py, line 38, `self.grad = out.grad`" in \
        _details(report)
    assert "should add (+=): myengine.py, line 38" in mlp.checks[0].note
