"""Flatten and nearest-neighbour upsampling (catalogue family ``shape``): correct code
is correct against the catalogue's reference; the usual wrong backwards are named."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, run_mutant

from jaxcnn.check import catalogue

MODULES = "module_layers.py"


@pytest.mark.parametrize("name,kind", [("Flatten", "flatten"),
                                       ("UpSampling2D", "upsample_nearest")])
def test_module_style_shape_layers_get_the_catalogue_reference(name, kind):
    report = check(FIXTURES / MODULES, name)
    assert_correct(report)
    assert report.kind == kind
    assert report.check("x").oracle == "exact"


def test_upsampling_gradient_read_at_one_position_per_block_is_named(tmp_path):
    # the gradient of one copy per pixel instead of the sum over its block
    run_mutant(tmp_path, MODULES, "UpSampling2D",
               "        return dout.reshape(n, c, hh // s, s, ww // s, s).sum(axis=(3, 5))",
               "        return dout[:, :, ::s, ::s]", ["x"], "wrong-derivative",
               "one position per block")


def test_upsampling_gradient_averaged_over_each_block_is_named(tmp_path):
    run_mutant(tmp_path, MODULES, "UpSampling2D",
               "        return dout.reshape(n, c, hh // s, s, ww // s, s).sum(axis=(3, 5))",
               "        return dout.reshape(n, c, hh // s, s, ww // s, s).mean(axis=(3, 5))",
               ["x"], "wrong-derivative", "mean over each block")


def test_an_upsampling_class_is_checked_with_its_own_scale(tmp_path):
    source = (FIXTURES / MODULES).read_text().replace("    def __init__(self, size=2):",
                                                      "    def __init__(self, size=3):")
    path = tmp_path / MODULES
    path.write_text(source)
    report = check(path, "UpSampling2D")
    assert_correct(report)
    assert all("s = 3" in r.inputs for r in report.check("x").inputs)


def test_flatten_unflattened_in_fortran_order_is_named_a_reshape_order_mismatch(tmp_path):
    report = run_mutant(tmp_path, MODULES, "Flatten", "        return dout.reshape(self.shape)",
                        "        return dout.reshape(self.shape, order='F')", ["x"],
                        "transposed")
    assert "reshape" in report.check("x").note


FLATTEN_PAIR = '''import numpy as np


def flatten_forward(x):
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, shape):
    n, c, h, w = shape
    return dout.reshape(n, h, w, c).transpose(0, 3, 1, 2)
'''


def test_a_flatten_pair_unflattened_channels_last_is_named(tmp_path):
    path = tmp_path / "flat.py"
    path.write_text(FLATTEN_PAIR)
    report = check(path, "flatten")
    assert report.kind == "flatten"
    # only the 4-d inputs can be un-flattened channels last; the others refuse it
    x = report.check("x")
    assert x.kind in ("wrong-derivative", "error"), x
    assert any(r.rule == "channels last" for r in x.inputs), [(r.inputs, r.rule)
                                                              for r in x.inputs]


def test_shape_inputs_have_no_two_axes_alike_and_a_batch_of_one():
    for kind in ("flatten", "upsample_nearest"):
        sets = catalogue.spec(kind).input_sets(0)
        assert any(s.args[0].shape[0] == 1 for s in sets)
    for s in catalogue.spec("flatten").input_sets(0):
        assert len(set(np.shape(s.args[0])[1:])) == len(np.shape(s.args[0])[1:])
