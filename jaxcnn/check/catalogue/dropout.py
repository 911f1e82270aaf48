"""Inverted dropout, CS231n's ``dropout_forward(x, dropout_param) -> (out, cache)`` with
``dropout_param = {"p", "mode", "seed"}`` (``p``: the probability of KEEPING a unit).

The assignment's forward draws ``mask = (np.random.rand(*x.shape) < p) / p`` after
``np.random.seed(seed)`` and returns ``x * mask`` in train mode, ``x`` in test mode.
The mask is the layer's own choice, so the reference reads it from *your* forward
(``Spec.from_user``): your forward run on ones of x's shape with the same
``dropout_param`` returns the mask itself (its keep pattern and its scale: 1/p, or
1/(1 - p) if p is your drop probability). The reference is then ``x * mask`` in train
mode (``jax.vjp``: ``dout * mask``) and the identity in test mode. Without a user
forward (``spec("dropout").reference``) the mask is the assignment's draw.

Inputs: keep probabilities 0.3 and 0.75 (not 0.5: a mask divided by p and one
multiplied by p differ by 1/p^2, not by a factor that looks like 4), x without zeros
(so out / x shows the mask), and test mode. Alternates: the mask not applied in the
backward (``dx = dout``, ``wrong-derivative``); a mask not divided by p shows as
``scaled`` by p.
"""

from __future__ import annotations

import numpy as np

from jaxcnn.check.autodiff import as_np
from jaxcnn.check.catalogue.base import Spec, module_name, wrong
from jaxcnn.check.layer import InputSet, Kinks, Reference


def assignment_mask(shape, param) -> np.ndarray:
    """CS231n's draw: ``np.random.seed(seed); (np.random.rand(*shape) < p) / p``, with
    NumPy's global generator saved and restored around it."""
    state = np.random.get_state()  # noqa: NPY002 (the assignment's own draw)
    try:
        if "seed" in param:
            np.random.seed(param["seed"])  # noqa: NPY002 (the assignment's own draw)
        p = float(param["p"])
        return (np.random.rand(*shape) < p) / p  # noqa: NPY002 (the assignment's own draw)
    finally:
        np.random.set_state(state)  # noqa: NPY002 (the assignment's own draw)


def _train(param) -> bool:
    return not (isinstance(param, dict) and param.get("mode") == "test")


def _reference(mask_of, name: str) -> Reference:
    """``x * mask`` (train mode) or ``x`` (test mode), the mask from ``mask_of``."""
    def forward(args, static):
        x = args[0]
        return x * mask_of(tuple(x.shape), static) if _train(static[0]) else x

    def alternates(args, static, cotangent):
        return [wrong("mask not applied", (as_np(cotangent),),
                      "dx = dout: the mask (and its 1/p) is not applied in the backward")]

    def kinks(s: InputSet) -> Kinks:
        if not _train(s.static[0]):
            return Kinks((None,), {"mode": "test"}, "test mode: the identity")
        mask = np.asarray(mask_of(np.shape(s.args[0]), s.static))
        kept = int(np.count_nonzero(mask))
        scales = sorted({float(v) for v in np.unique(mask[mask != 0])})
        return Kinks((None,), {"kept": kept, "units": int(mask.size), "scales": scales},
                     f"your mask keeps {kept} of {mask.size} units, scaled by "
                     f"{', '.join(f'{v:.4g}' for v in scales) or '-'} (p = "
                     f"{s.static[0].get('p')})")

    return Reference(name, forward, alternates, kinks)


def _from_user(user_forward) -> Reference:
    memo: dict = {}

    def mask_of(shape, static):
        key = (tuple(shape), repr(static))
        if key not in memo:  # ones of x's shape: the forward returns its mask itself
            memo[key] = as_np(user_forward((np.ones(shape),), static))
        return memo[key]

    return _reference(mask_of, "x * your forward's mask (train), x (test)")


def _sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng([seed, 18])

    def away(shape):  # no zeros: out / x is the mask
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)

    return [InputSet("random", "random x (4, 6), train, p = 0.3",
                     (away((4, 6)),), ({"mode": "train", "p": 0.3, "seed": 123},),
                     note="p not 0.5: a mask divided by p and one multiplied by p differ"),
            InputSet("random", "random x (3, 5, 2), train, p = 0.75",
                     (away((3, 5, 2)),), ({"mode": "train", "p": 0.75, "seed": 7},)),
            InputSet("random", "random x (4, 6), test mode", (away((4, 6)),),
                     ({"mode": "test", "p": 0.3, "seed": 123},),
                     note="test mode: the identity")]


def dropout_spec() -> Spec:
    return Spec("dropout", ("x",), {"x": None},
                _reference(lambda shape, static: assignment_mask(shape, static[0]),
                           "x * (rand < p) / p (train), x (test)"),
                _sets, ("dropout_param",), names={"cs231n": r"(inverted_)?dropout",
                                             "module": module_name(
                                                 r"(time_?)?(inverted_?)?dropout")},
                from_user=_from_user)


SPECS = {"dropout": dropout_spec}
