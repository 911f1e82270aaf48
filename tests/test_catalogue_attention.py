"""Scaled dot-product attention, plain, with a mask argument, and causal: correct on
every input set; the softmax's Jacobian left out (or only its diagonal, or summed over the
queries), the scale 1/sqrt(d) left out of the backward (or applied twice) and a mask
applied in the forward but not the backward are named."""

from __future__ import annotations

import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, run_mutant

FIXTURE = "cs231n_extra_layers.py"


@pytest.mark.parametrize("name,kind", [("attention", "attention"),
                                       ("masked_attention", "attention_masked"),
                                       ("causal_attention", "causal_attention")])
def test_correct_attention_is_correct(name, kind):
    report = check(FIXTURES / FIXTURE, name)
    assert_correct(report)
    assert report.kind == kind


JACOBIAN = ("    dscores = weights * (dweights - (weights * dweights).sum(axis=-1, "
            "keepdims=True))\n    dq = dscores @ k * scale\n    dk = dscores.transpose(0, 2, 1) "
            "@ q * scale\n    return dq, dk, dv\n\n\ndef masked_attention_forward")
MUTANTS = [
    ("no-jacobian", "attention", JACOBIAN, JACOBIAN.replace(
        "weights * (dweights - (weights * dweights).sum(axis=-1, keepdims=True))",
        "dweights"), ["q", "k"], "wrong-derivative", "left out"),
    ("diagonal-only", "attention", JACOBIAN, JACOBIAN.replace(
        "weights * (dweights - (weights * dweights).sum(axis=-1, keepdims=True))",
        "weights * dweights"), ["q", "k"], "wrong-derivative", "diagonal"),
    ("mask-forward-only", "causal_attention",
     "    return masked_attention_backward(dout, cache)",
     "    q, k, v, weights, scale = cache\n"
     "    return attention_backward(dout, attention_forward(q, k, v)[1])",
     ["q", "k", "v"], "wrong-derivative", "mask left out"),
    ("no-scale", "attention", JACOBIAN, JACOBIAN.replace("dscores @ k * scale",
                                                         "dscores @ k").replace(
        "@ q * scale", "@ q"), ["q", "k"], "wrong-derivative", "1/sqrt(d) left out"),
    ("no-scale-in-dq-only", "attention", JACOBIAN, JACOBIAN.replace("dscores @ k * scale",
                                                                    "dscores @ k"),
     ["q"], "wrong-derivative", "1/sqrt(d) left out"),
    ("scale-twice", "attention", JACOBIAN, JACOBIAN.replace("dscores @ k * scale",
                                                            "dscores @ k * scale ** 2").replace(
        "@ q * scale", "@ q * scale ** 2"), ["q", "k"], "wrong-derivative", "1/d"),
    ("softmax-sum-over-queries", "attention", JACOBIAN, JACOBIAN.replace(
        "(weights * dweights).sum(axis=-1", "(weights * dweights).sum(axis=-2"),
     ["q", "k"], "wrong-derivative", "summed over the queries"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_attention_mutants_are_named(mutant, tmp_path):
    _, layer, old, new, quantities, kind, rule = mutant
    run_mutant(tmp_path, FIXTURE, layer, old, new, quantities, kind, rule)
