"""Word embedding: the gradient scatters with accumulation; repeated indices that
overwrite (``dW[x] = dout``) are ``missing-accumulation``."""

from __future__ import annotations

import numpy as np
from catalogue_helpers import FIXTURES, assert_correct, check, run_mutant

from jaxcnn.check import catalogue

FIXTURE = "cs231n_rnn_layers.py"


def test_correct_embedding_is_correct_and_its_inputs_repeat_indices():
    report = check(FIXTURES / FIXTURE, "word_embedding")
    assert_correct(report)
    sets = catalogue.spec("word_embedding").input_sets(0)
    assert any(len(np.unique(s.static[0])) < np.size(s.static[0]) for s in sets)
    assert any(k["repeated_words"] > 0 for k in report.kinks)


def test_overwriting_repeated_indices_is_missing_accumulation(tmp_path):
    run_mutant(tmp_path, FIXTURE, "word_embedding", "    np.add.at(dW, x, dout)",
               "    dW[x] = dout", ["W"], "missing-accumulation", "overwrite")


def test_buffered_fancy_add_is_missing_accumulation_too(tmp_path):
    run_mutant(tmp_path, FIXTURE, "word_embedding", "    np.add.at(dW, x, dout)",
               "    dW[x] += dout", ["W"], "missing-accumulation")
