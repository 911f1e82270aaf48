"""Shapes and values for a layer the catalogue has no inputs for: found by running it.

A layer jaxcnn has no catalogue entry for (a custom activation, a loss, a dense layer
without a bias, a class whose sizes come from its constructor) still needs inputs. They
come from what the code itself says, in this order: the parameters it holds (a weight
``(4, 5)`` takes inputs ``(N, 4)``, or ``(N, 5)`` when it is stored ``(out, in)``), the
names of its arguments (``w``, ``b``, ``labels``), and a probe: a few small candidate
shapes, the first one its forward runs on (with a finite output) wins. The shapes are
small (every entry of every argument fits the finite-difference budget: the numeric
oracle then has the full gradient, and is the same on every run) and not square, so that
swapped axes show.

Everything here is deterministic: the same seed gives the same shapes and values.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence

import numpy as np

BATCH = 3  # samples in a probed batch: not a feature size, so that axes cannot be confused
FEATURES = 4  # input features when nothing says otherwise
HIDDEN = 5  # output features when nothing says otherwise

# Candidate shapes of a single input with no parameters to go by, tried in order: a
# batch of vectors, one vector, a batch of NCHW images, one HWC image, a batch of NHWC.
LONE_SHAPES = ((BATCH, FEATURES), (FEATURES,), (2, 3, 4, 6), (4, 6, 3), (2, 4, 6, 3))


def runs(fn: Callable[[], object]) -> tuple[bool, str]:
    """(whether ``fn()`` returns a finite float result, why not in words)."""
    try:
        with contextlib.redirect_stdout(sys.stderr), np.errstate(all="ignore"):
            out = fn()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    try:
        arr = np.asarray(out, dtype=np.float64)
    except Exception:
        return False, f"it returned {type(out).__name__}, not an array"
    if not np.all(np.isfinite(arr)):
        return False, "it returned NaN/inf"
    return True, ""


def input_candidates(params: Sequence[np.ndarray]) -> list[tuple[str, tuple]]:
    """(layout, shape) candidates for the input of a layer holding ``params``.

    layout: "rows" (``x @ W``: x (N, in), W (in, out)), "rows_t" (``x @ W.T``, PyTorch's
    (out, in) weight), "cols" (``W @ x``, x (in, N): the deep-learning specialisation's
    column samples), "nchw" / "nhwc" (a conv's OIHW / HWIO filters), "image" (the report's
    (F, k, k) filters on one 2-D image), "any" (no parameters to go by)."""
    out: list[tuple[str, tuple]] = []
    for p in params:
        if p.ndim == 2:
            a, b = p.shape
            out += [("rows", (BATCH, a)), ("rows_t", (BATCH, b)), ("cols", (b, BATCH)),
                    ("rows", (a,)), ("rows_t", (b,))]
        elif p.ndim == 4:
            f, c, kh, kw = p.shape
            # OIHW (F, C, kh, kw), or HWIO (kh, kw, C, F)
            out += [("nchw", (2, c, kh + 3, kw + 4)),
                    ("nhwc", (2, p.shape[0] + 3, p.shape[1] + 4, p.shape[2])),
                    ("nchw", (2, p.shape[2], p.shape[0] + 3, p.shape[1] + 4))]
        elif p.ndim == 3:
            f, kh, kw = p.shape
            out += [("image", (kh + 5, kw + 5)), ("chw", (2, kh + 3, kw + 4)),
                    ("hwc", (kh + 3, kw + 4, f))]
    out += [("any", s) for s in LONE_SHAPES]
    seen, unique = set(), []
    for layout, shape in out:
        if shape not in seen:
            seen.add(shape)
            unique.append((layout, shape))
    return unique


def random_like(rng: np.random.Generator, shape: tuple, kind: str = "normal") -> np.ndarray:
    """Tie-free values: standard normal ("normal"), scaled by 1/sqrt(fan-in) for a
    parameter ("param"), or rows of probabilities ("probabilities": positive, each last
    axis summing to 1, none near 0 or 1)."""
    if kind == "probabilities":
        z = rng.standard_normal(shape) * 0.5
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    x = rng.standard_normal(shape)
    if kind == "param" and len(shape) >= 2:
        x = x / np.sqrt(np.prod(shape[:-1]) if len(shape) > 2 else shape[0])
    return x


def constant(a: np.ndarray) -> str | None:
    """"zeros", "ones" or "constant" when every entry of ``a`` is the same (a weight
    initialised so hides a transpose and a wrong sign); None otherwise."""
    if a.size == 0 or not np.all(a.reshape(-1) == a.reshape(-1)[0]):
        return None
    v = float(a.reshape(-1)[0])
    return "zeros" if v == 0 else "ones" if v == 1 else "constant"


__all__ = ["BATCH", "FEATURES", "HIDDEN", "constant", "input_candidates", "random_like", "runs"]
