"""Error measures between a hand gradient and a reference: never a whole matrix.

Every comparison in ``jaxcnn.check`` goes through ``errors``: max absolute error, max
error relative to the reference's largest entry, cosine, and the ``k`` worst entries
as ``(index, hand value, reference value)``. Arrays are compared on the host in
float64; non-finite hand values are reported, not propagated.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Entry(NamedTuple):
    """One entry of a gradient: its index in the reference's shape and both values."""

    index: tuple[int, ...]
    hand: float
    reference: float


class Errors(NamedTuple):
    """How far ``hand`` is from ``reference``.

    max_abs_error: max |hand - reference| (inf when hand has a non-finite entry)
    max_rel_error: max_abs_error / max |reference| (max_abs_error when the reference is 0)
    cosine: <hand, reference> / (|hand| |reference|); 1.0 when both are zero, 0.0 when
        exactly one is
    worst: the k entries with the largest |hand - reference|, worst first
    """

    max_abs_error: float
    max_rel_error: float
    cosine: float
    worst: tuple[Entry, ...]


def as_float64(x) -> np.ndarray:
    """A host float64 copy of an array-like (NumPy or JAX)."""
    return np.array(x, dtype=np.float64, copy=True)


def scale(reference: np.ndarray) -> float:
    """max |reference|, the denominator of every relative error here (0.0 for empty)."""
    return float(np.max(np.abs(reference), initial=0.0))


def rel_error(hand: np.ndarray, reference: np.ndarray, denominator: float | None = None
              ) -> float:
    """max |hand - reference| / max |reference| (shapes must match; inf if non-finite)."""
    diff = np.abs(hand - reference)
    if not np.all(np.isfinite(diff)):
        return float("inf")
    err = float(np.max(diff, initial=0.0))
    denominator = scale(reference) if denominator is None else denominator
    return err / denominator if denominator > 0 else err


def cosine(hand: np.ndarray, reference: np.ndarray) -> float:
    """Cosine of the angle between two same-shape arrays, flattened."""
    a, b = hand.reshape(-1), reference.reshape(-1)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    # Plain sums, not BLAS: on tiny arrays BLAS calls cost more than the arithmetic.
    na, nb = math.sqrt(float(np.sum(a * a))), math.sqrt(float(np.sum(b * b)))
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.sum(a * b)) / (na * nb)


def worst_entries(hand: np.ndarray, reference: np.ndarray, k: int = 5,
                  mask: np.ndarray | None = None) -> tuple[Entry, ...]:
    """The ``k`` entries where |hand - reference| is largest (non-finite hand first).

    ``mask`` (bool, same shape) restricts the search to its True entries.
    """
    diff = np.abs(hand - reference)
    diff = np.where(np.isfinite(diff), diff, np.inf)
    if mask is not None:
        diff = np.where(mask, diff, -1.0)
    flat = diff.reshape(-1)
    k = min(k, flat.size)
    if k == 0:
        return ()
    top = np.argpartition(-flat, k - 1)[:k]
    top = top[np.argsort(-flat[top], kind="stable")]
    out = []
    for i in top:
        if flat[i] <= 0:
            break
        index = tuple(int(j) for j in np.unravel_index(i, hand.shape))
        out.append(Entry(index, float(hand[index]), float(reference[index])))
    return tuple(out)


def errors(hand, reference, k: int = 5) -> Errors:
    """All measures of ``hand`` against ``reference`` (same shape), as float64."""
    hand, reference = as_float64(hand), as_float64(reference)
    if hand.shape != reference.shape:
        raise ValueError(f"shapes differ: {hand.shape} vs {reference.shape}")
    abs_err = float(np.max(np.abs(hand - reference), initial=0.0))
    if not np.isfinite(abs_err):
        abs_err = float("inf")
    denominator = scale(reference)
    rel = abs_err / denominator if denominator > 0 else abs_err
    return Errors(abs_err, rel, cosine(hand, reference), worst_entries(hand, reference, k))
