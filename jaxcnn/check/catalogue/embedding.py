"""Word embedding, CS231n's ``word_embedding_forward(x, W) -> (out, cache)`` and
``word_embedding_backward(dout, cache) -> dW``.

x: (N, T) integer indices into the vocabulary (static: not differentiated); W: (V, D)
float64; out = W[x], (N, T, D). The gradient scatters dout back into the rows of W
*with accumulation* (``np.add.at(dW, x, dout)``): a word that occurs twice gets both
gradients. ``dW[x] = dout`` (or ``dW[x] += dout``, which NumPy buffers the same way)
keeps one of them: ``missing-accumulation``. The inputs repeat indices for that reason
(and one set has none, where both agree).
"""

from __future__ import annotations

import numpy as np

from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.base import Spec
from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference


def _sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18])
    repeated = np.array([[0, 3, 3, 1], [4, 0, 3, 2]])
    return [InputSet("repeated", "x (2, 4) with repeated indices, W (5, 3)",
                     (rng.standard_normal((5, 3)),), (repeated,),
                     note="word 3 three times, word 0 twice: their gradients must add"),
            InputSet("random", "x (3, 2) all distinct, W (7, 4)",
                     (rng.standard_normal((7, 4)),), (np.array([[6, 1], [2, 5], [0, 3]]),)),
            InputSet("batch-of-one", "x (1, 5) with repeats, W (4, 6): a batch of one",
                     (rng.standard_normal((4, 6)),), (np.array([[2, 2, 0, 2, 1]]),))]


def _alternates(args, static, cotangent):
    w, x, dout = as_np(args[0]), np.asarray(static[0]), as_np(cotangent)
    overwritten = np.zeros_like(w)
    overwritten[x] = dout  # buffered fancy assignment: the last occurrence wins
    return [Alternate("overwrite", (overwritten,), False, "missing-accumulation",
                      "repeated indices overwrite dW instead of adding to it (`dW[x] = "
                      "dout` or `dW[x] += dout`, which NumPy buffers: use np.add.at(dW, x, "
                      "dout))")]


def _kinks(s: InputSet) -> Kinks:
    x = np.asarray(s.static[0])
    counts = np.bincount(x.ravel())
    repeated = int((counts > 1).sum())
    return Kinks((None,), {"indices": int(x.size), "repeated_words": repeated},
                 f"{repeated} words occur more than once in x {x.shape}")


def word_embedding_spec() -> Spec:
    reference = Reference("W[x] (gradient: np.add.at(dW, x, dout))",
                          lambda args, static: args[0][np.asarray(static[0])],
                          _alternates, _kinks)
    return Spec("word_embedding", ("W",), {"W": ("word", "feature"),
                                           "out": ("sample", "time", "feature")},
                reference, _sets, ("x",), names={"cs231n": r"(word_)?embedding"},
                signature=("x", "W"))


SPECS = {"word_embedding": word_embedding_spec}
