"""Average pools: CS231n's (NCHW, pool_param) and the deep-learning specialisation's
(NHWC, hparameters {"f", "stride"}, distribute_value): correct on every input set;
overwriting windows, a max pool's backward and a missing 1/window are named."""

from __future__ import annotations

import importlib.util

import pytest
from catalogue_helpers import FIXTURES, assert_correct, assert_named, check, run_mutant

from jaxcnn.check import check_layer, from_cs231n

FIXTURE = "cs231n_extra_layers.py"


def test_correct_cs231n_avg_pool_is_correct():
    assert_correct(check(FIXTURES / FIXTURE, "avg_pool"))


def _dls(source: str | None = None, tmp_path=None):
    path = FIXTURES / "dls_pool.py"
    if source is not None:
        path = tmp_path / "dls_pool.py"
        path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"dls_pool_{id(path)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return from_cs231n(lambda a, hp: module.pool_forward(a, hp, mode="average"),
                       lambda da, cache: module.pool_backward(da, cache, mode="average"),
                       "avg_pool_nhwc", "pool_forward(mode='average')")


def test_the_specialisations_average_pool_is_correct():
    report = check_layer(_dls(), fd_seconds=0.02)
    assert_correct(report)
    assert len(report.check("A_prev").inputs) >= 4


def test_the_specialisations_distribute_value_without_the_division_is_scaled(tmp_path):
    source = (FIXTURES / "dls_pool.py").read_text().replace(
        "    average = dz / (n_H * n_W)", "    average = dz")
    report = check_layer(_dls(source, tmp_path), fd_seconds=0.02)
    assert_named(report, ["A_prev"], "scaled")


MUTANTS = [
    ("overwrite", "            dx[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]"
                  " += (", "            dx[:, :, i * stride:i * stride + ph, j * stride:j * "
                           "stride + pw] = (", "missing-accumulation"),
    ("no-division", "                dout[:, :, i, j][:, :, None, None] / (ph * pw))",
     "                dout[:, :, i, j][:, :, None, None])", "scaled"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_avg_pool_mutants_are_named(mutant, tmp_path):
    _, old, new, kind = mutant
    run_mutant(tmp_path, FIXTURE, "avg_pool", old, new, ["x"], kind)


def test_a_max_pools_backward_for_an_average_pool_is_named(tmp_path):
    old = ("            dx[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw] += (\n"
           "                dout[:, :, i, j][:, :, None, None] / (ph * pw))")
    new = ("            for n in range(x.shape[0]):\n"
           "                for c in range(x.shape[1]):\n"
           "                    win = x[n, c, i * stride:i * stride + ph, j * stride:j * "
           "stride + pw]\n"
           "                    a, b = np.unravel_index(np.argmax(win), win.shape)\n"
           "                    dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]")
    run_mutant(tmp_path, FIXTURE, "avg_pool", old, new, ["x"], "wrong-derivative",
               "max pool")


# ------------------------------------------------------------------ global average pools

MODULES = "module_layers.py"


@pytest.mark.parametrize("name,kind", [("GlobalAveragePooling", "global_avg_pool"),
                                       ("AvgPool2d", "avg_pool")])
def test_module_style_average_pools_get_the_catalogue_reference(name, kind):
    report = check(FIXTURES / MODULES, name)
    assert_correct(report)
    assert report.kind == kind
    assert report.check("x").oracle == "exact"


@pytest.mark.parametrize("new,rule", [
    ("        return np.broadcast_to(dout[:, :, None, None], self.shape).copy()",
     "1/(H W) left out"),
    ("        return np.broadcast_to(dout[:, :, None, None] / (n * h * w), self.shape).copy()",
     "batch in the mean"),
])
def test_global_average_pool_mistakes_are_named(new, rule, tmp_path):
    run_mutant(tmp_path, MODULES, "GlobalAveragePooling",
               "        return np.broadcast_to(dout[:, :, None, None] / (h * w), "
               "self.shape).copy()", new, ["x"], "wrong-derivative", rule)


GAP_NHWC = '''import numpy as np


def global_avg_pool_forward(x):
    return x.mean(axis=(1, 2)), x.shape


def global_avg_pool_backward(dout, shape):
    n, h, w, c = shape
    return np.broadcast_to(dout[:, None, None, :], shape) / (h * w)
'''


def test_a_channels_last_global_average_pool_pair_is_matched_by_its_layout(tmp_path):
    path = tmp_path / "gap.py"
    path.write_text(GAP_NHWC)
    report = check(path, "global_avg_pool")
    assert_correct(report)
    assert report.kind == "global_avg_pool_nhwc"
    sets = {r.inputs for r in report.check("x").inputs}
    assert any("batch of one" in s for s in sets), sets
    path.write_text(GAP_NHWC.replace("[:, None, None, :], shape) / (h * w)",
                                     "[:, None, None, :], shape).copy()"))
    assert_named(check(path, "global_avg_pool"), ["x"], "wrong-derivative", "1/(H W)")

