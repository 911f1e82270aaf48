"""Inverted dropout: the mask is the user's own, read from their forward; a correct
backward is correct in train and test mode; the mask left out of the backward, and a
mask not divided by p, are named."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, layers_of, run_mutant

FIXTURE = "cs231n_assignment2.py"


def test_correct_dropout_is_correct_in_train_and_test_mode():
    report = check(FIXTURES / FIXTURE, "dropout")
    assert_correct(report)
    families = {r.inputs for r in report.check("x").inputs}
    assert any("test" in f for f in families) and any("train" in f for f in families)
    # the mask read from the forward is the assignment's own draw, scaled by 1/p
    assert any(k.get("scales") == [pytest.approx(1 / 0.3)] for k in report.kinks)


def test_the_reference_reads_the_users_mask_not_a_draw_of_its_own(x64):
    layer = layers_of(FIXTURES / FIXTURE)["dropout"]
    param = ({"mode": "train", "p": 0.4, "seed": 5},)
    x = np.linspace(1, 2, 12).reshape(3, 4)
    ours = np.asarray(layer.reference.forward((x,), param))
    theirs = layer.forward((x,), param)
    np.testing.assert_array_equal(ours, theirs)


MUTANTS = [
    ("mask-not-applied", "        dx = dout * mask", "        dx = dout", "wrong-derivative"),
    ("not-divided-by-p", "        dx = dout * mask", "        dx = dout * (mask != 0)",
     "scaled"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_dropout_mutants_are_named(mutant, tmp_path):
    _, old, new, kind = mutant
    report = run_mutant(tmp_path, FIXTURE, "dropout", old, new, ["x"], kind)
    if kind == "scaled":
        assert report.check("x").scale in (pytest.approx(0.3), pytest.approx(0.75))


# ------------------------------------------------------------------ module style

MODULES = "module_layers.py"


def test_module_style_dropout_gets_the_catalogue_reference():
    report = check(FIXTURES / MODULES, "Dropout")
    assert_correct(report)
    assert report.kind == "dropout"
    assert report.check("x").oracle == "exact"


def test_module_style_dropout_mask_left_out_is_named(tmp_path):
    run_mutant(tmp_path, MODULES, "Dropout", "        return dout * self.mask\n",
               "        return dout\n", ["x"], "wrong-derivative", "mask not applied")


def test_module_style_dropout_mask_not_scaled_is_named_with_its_keep_probability(tmp_path):
    report = run_mutant(tmp_path, MODULES, "Dropout", "        return dout * self.mask\n",
                        "        return dout * (self.mask > 0)\n", ["x"], "scaled")
    assert report.check("x").scale == pytest.approx(0.7)  # 1 - p of the fixture's p = 0.3
