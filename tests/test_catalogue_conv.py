"""Module-style convolutions matched to the catalogue's conv kinds: channels first or
last, with the object's own stride and padding; a classic mistake named."""

from __future__ import annotations

from catalogue_helpers import FIXTURES, assert_correct, check, run_mutant

MODULES = "module_layers.py"


def test_a_module_style_channels_last_conv_gets_its_stride_and_padding():
    report = check(FIXTURES / MODULES, "Conv2D")
    assert_correct(report)
    assert report.kind == "conv_nhwc_param"
    assert "stride=2, pad=1" in report.reference
    assert all(c.oracle == "exact" for c in report.checks)


def test_a_module_style_conv_that_overwrites_overlapping_windows_is_named(tmp_path):
    run_mutant(tmp_path, MODULES, "Conv2D",
               "                dxp[:, i * s:i * s + kh, j * s:j * s + kw, :] += np.tensordot(",
               "                dxp[:, i * s:i * s + kh, j * s:j * s + kw, :] = np.tensordot(",
               ["x"], "missing-accumulation")
