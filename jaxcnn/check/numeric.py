"""The numeric oracle: central finite differences of a forward, aware of kinks.

For a cotangent ``c`` the hand VJP of argument ``a`` must equal the gradient of the
scalar ``h(a) = <c, forward(..., a, ...)>``. Entry ``i`` of that gradient is estimated
from three evaluations, ``h(a - eps e_i)``, ``h(a)`` and ``h(a + eps e_i)``:

* the central difference ``(h+ - h-) / 2 eps`` is the estimate;
* the two one-sided slopes ``(h+ - h0) / eps`` and ``(h0 - h-) / eps`` must agree where
  ``h`` is differentiable. Where they differ by more than a kink threshold, the step
  crossed a kink (a max-pool winner changed, a ReLU input changed sign) and the
  central difference is NOT trusted: the entry is reported as a kink and left out of
  every comparison. This is the "track the winners" advice of the CS231n notes, done
  without knowing the layer: a winner change is exactly a change of slope.

Steps by dtype: 1e-6 for float64 (round-off ~1e-10 relative, and small enough to stay
clear of most near-ties: at 1e-5 a step crossed a pool kink for one filter entry in
600 on real digits), 1e-3 for float32 forwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

EPS = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-3}
# A slope change marks a kink when it exceeds 1e-3 of the entry's own one-sided slopes
# (a max-pool or ReLU kink changes the slope by the whole upstream gradient) and 1e-6 of
# the largest slope (smooth functions change slope by only eps * |h''| over a step).
# A kink too small to pass both moves the central difference by < 1e-6 of the scale.
KINK_LOCAL = 1e-3
KINK_GLOBAL = 1e-6


class Differences(NamedTuple):
    """Central differences of one argument, along n entries or n directions.

    indices: (n,) int flat indices into the argument (None for directions)
    values: (n,) float64 central differences (NaN where the forward was not finite)
    kink: (n,) bool, True where the one-sided slopes disagree (a kink was crossed)
    eps: the step
    seconds: time spent in forward calls
    noise: estimated round-off of one central difference (absolute): 4 ulp of |h| / eps
    """

    indices: np.ndarray
    values: np.ndarray
    kink: np.ndarray
    eps: float
    seconds: float
    noise: float
    directions: np.ndarray | None = None  # (n, *arg.shape) for directional differences


def step_for(dtype) -> float:
    """The finite-difference step for a forward computing in ``dtype``."""
    return EPS.get(np.dtype(dtype), EPS[np.dtype(np.float64)])


def differences(h: Callable[[np.ndarray], float], arg: np.ndarray, indices: np.ndarray,
                eps: float, precision=np.float64) -> Differences:
    """Central differences of scalar ``h`` at ``arg`` along the flat ``indices``.

    ``h`` takes an array shaped like ``arg`` (a fresh copy each call, float64) and
    returns a float. 2n + 1 calls of ``h``. ``precision``: the dtype ``h`` really
    computes in (a float32 forward has float32 round-off; use a larger ``eps``).
    """
    base = np.array(arg, dtype=np.float64, copy=True)

    def bump(k, sign):
        bumped = base.copy()
        bumped.reshape(-1)[indices[k]] += sign * eps
        return bumped

    return _slopes(h, base, len(indices), bump, eps, precision)._replace(
        indices=np.asarray(indices))


def directional(h: Callable[[np.ndarray], float], arg: np.ndarray, directions: np.ndarray,
                eps: float, precision=np.float64) -> Differences:
    """Central differences of ``h`` at ``arg`` along each of ``directions`` (n, *arg.shape):
    the directional derivatives ``<grad h, t>``, 2n + 1 calls at any size (the projection
    test). A direction whose one-sided slopes differ crossed a kink and is not trusted."""
    base = np.array(arg, dtype=np.float64, copy=True)
    directions = np.asarray(directions, np.float64)
    return _slopes(h, base, len(directions), lambda k, sign: base + sign * eps * directions[k],
                   eps, precision)._replace(directions=directions)


def _slopes(h, base, n, bump, eps, precision) -> Differences:
    """``precision``: the dtype the forward computes in (its round-off sets the noise)."""
    ulp = float(np.finfo(precision).eps)
    start = time.perf_counter()
    h0 = float(h(base.copy()))
    plus, minus = np.empty(n), np.empty(n)
    for k in range(n):
        plus[k] = float(h(bump(k, 1.0)))
        minus[k] = float(h(bump(k, -1.0)))
    with np.errstate(invalid="ignore", over="ignore"):
        central = (plus - minus) / (2 * eps)
        forward_slope = (plus - h0) / eps
        backward_slope = (h0 - minus) / eps
        finite = np.isfinite(central) & np.isfinite(forward_slope) & np.isfinite(backward_slope)
        slope_scale = float(np.max(np.abs(np.where(finite, central, 0.0)), initial=0.0))
        # Round-off in h is ~1e-16 |h| per evaluation, so ~1e-16 |h| / eps per slope.
        noise = 1e3 * ulp * max(abs(h0), 1.0) / eps
        local = KINK_LOCAL * np.maximum(np.abs(forward_slope), np.abs(backward_slope))
        threshold = np.maximum(local, max(KINK_GLOBAL * slope_scale, noise))
        kink = finite & (np.abs(forward_slope - backward_slope) > threshold)
    central = np.where(finite, central, np.nan)
    h_scale = max([abs(h0)] + [float(v) for v in np.abs(np.concatenate([plus, minus]))
                               if np.isfinite(v)])
    round_off = 4 * ulp * h_scale / eps
    return Differences(None, central, kink, eps, time.perf_counter() - start, round_off)


def confirm(h: Callable[[np.ndarray], float], arg: np.ndarray, fd: Differences,
            suspects: np.ndarray, tol: float, precision=np.float64) -> Differences:
    """Take the ``suspects`` (bool, per entry or direction) again with a step 8x smaller:
    where the two central differences disagree by more than ``tol`` (absolute), the step
    crossed a kink that both one-sided slopes happened to hide (a near-tie crossed on both
    sides), and the entry is marked a kink. Costs 2 calls per suspect."""
    picks = np.flatnonzero(suspects)
    if not len(picks):
        return fd
    small = fd.eps / 8
    if fd.directions is not None:
        again = directional(h, arg, fd.directions[picks], small, precision)
    else:
        again = differences(h, arg, fd.indices[picks], small, precision)
    kink = fd.kink.copy()
    unstable = again.kink | ~np.isfinite(again.values) | (
        np.abs(again.values - fd.values[picks]) > tol)
    kink[picks] |= unstable
    return fd._replace(kink=kink, seconds=fd.seconds + again.seconds)


def pick_indices(size: int, budget: int, priority: np.ndarray | None, rng: np.random.Generator
                 ) -> np.ndarray:
    """Up to ``budget`` flat indices out of ``size``: all when they fit, else the
    ``priority`` ones first (e.g. where hand and exact oracle disagree most), then a
    random sample of the rest. Sorted."""
    if size <= budget:
        return np.arange(size)
    chosen: list[int] = []
    seen: set[int] = set()
    if priority is not None:
        for i in priority:
            i = int(i)
            if i not in seen and len(chosen) < budget // 2:
                chosen.append(i)
                seen.add(i)
    rest = rng.permutation(size)
    for i in rest:
        if len(chosen) >= budget:
            break
        i = int(i)
        if i not in seen:
            chosen.append(i)
            seen.add(i)
    return np.sort(np.asarray(chosen, dtype=np.int64))
