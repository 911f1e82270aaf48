"""Several files checked together: what one imports from another is one row (or one
"Skipped" line), where it is defined; a base class whose methods are placeholders is
skipped as such; CS231n's `from past.builtins import xrange` imports without `future`."""

from __future__ import annotations

import textwrap

import pytest

from jaxcnn.check import imports
from jaxcnn.check.api import check_sources

BASE = """
class Layer:
    def __init__(self):
        self.input = None

    def forward(self, input):
        # TODO: return output
        pass

    def backward(self, output_gradient, learning_rate):
        raise NotImplementedError
"""

SCALE = """
from layer import Layer


class Scale(Layer):
    def forward(self, input):
        self.input = input
        return 3.0 * input

    def backward(self, output_gradient, learning_rate):
        return 3.0 * output_gradient
"""

SHIFT = SCALE.replace("Scale", "Shift").replace("3.0 * input", "input + 1.0").replace(
    "3.0 * output_gradient", "output_gradient")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    d = tmp_path_factory.mktemp("shared_base")
    for name, text in (("layer.py", BASE), ("scale.py", SCALE), ("shift.py", SHIFT)):
        (d / name).write_text(textwrap.dedent(text))
    return d


def test_a_base_class_imported_into_every_file_is_skipped_once_where_it_is_defined(project):
    files = [str(project / n) for n in ("scale.py", "shift.py", "layer.py")]
    report = check_sources(files)
    assert sorted(r.name.rpartition(":")[2] for r in report.layers) == ["Scale", "Shift"]
    assert all(r.ok for r in report.layers)
    layer_lines = [(n, why) for n, why in report.skipped if n.endswith(":Layer")]
    assert layer_lines == [(f"{project / 'layer.py'}:Layer",
                            "a base class: its forward and backward do nothing (pass); the "
                            "classes built on it are checked")]
    # without layer.py among the files: one line still, in the first file that imports it
    report = check_sources(files[:2])
    assert [n for n, _ in report.skipped] == [f"{project / 'scale.py'}:Layer"]


def test_a_function_imported_from_a_file_checked_too_is_one_row(tmp_path):
    (tmp_path / "linear_svm.py").write_text(textwrap.dedent("""
        import numpy as np

        def svm_loss_vectorized(W, X, y, reg):
            n = X.shape[0]
            s = X @ W
            m = s - s[np.arange(n), y][:, None] + 1
            m[np.arange(n), y] = 0
            ds = (m > 0).astype(float)
            ds[np.arange(n), y] = -ds.sum(axis=1)
            return (np.maximum(m, 0).sum() / n + reg * np.sum(W * W),
                    X.T @ ds / n + 2 * reg * W)
        """))
    (tmp_path / "linear_classifier.py").write_text(
        "from linear_svm import svm_loss_vectorized\n")
    report = check_sources([str(tmp_path / "linear_classifier.py"),
                            str(tmp_path / "linear_svm.py")])
    assert [r.name for r in report.layers] == [
        f"{tmp_path / 'linear_svm.py'}:svm_loss_vectorized"]


def test_past_builtins_without_future_installed(tmp_path):
    pytest.importorskip("numpy")
    try:
        import past  # noqa: F401
        pytest.skip("the future package is installed: no stand-in needed")
    except ImportError:
        pass
    path = tmp_path / "k.py"
    path.write_text("from past.builtins import xrange\n\n"
                    "def total(n):\n    return sum(i for i in xrange(n))\n")
    module = imports.load_file(path)
    assert module.total(4) == 6
    import sys

    assert "past" not in sys.modules  # the stand-in lives only while the file is imported
