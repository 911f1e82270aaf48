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
STEPS = 2  # time steps of a probed sequence (N, T, D): N, T, D and H all differ

# Candidate shapes of a single input with no parameters to go by, tried in order: a
# batch of vectors, one vector, one column vector (The Independent Code's layers take
# (n, 1)), a batch of NCHW images, one CHW image, one HWC image, a batch of NHWC images
# (even sizes: a 2x2 pool takes them), then a sequence of tokens (N, T, D) and its 2 heads
# (N, 2, T, D / 2) (a transformer's helpers that split and join heads; a width D = 4 is
# built with 2 heads).
LONE_SHAPES = ((BATCH, FEATURES), (FEATURES,), (FEATURES, 1), (2, 2, 4, 6), (2, 4, 6),
               (4, 6, 2), (2, 4, 6, 2), (BATCH, STEPS + 1, FEATURES),
               (2, 2, STEPS + 1, FEATURES // 2))


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


class seeded:  # noqa: N801 (a context manager, used like a function)
    """NumPy's global generator seeded the same way for every call of the user's forward
    (and restored after): a dropout mask drawn with ``np.random`` is then the same in the
    forward the backward follows and in every finite difference."""

    def __enter__(self):
        self.state = np.random.get_state()  # noqa: NPY002
        np.random.seed(0)  # noqa: NPY002 (the user's code draws from the global generator)

    def __exit__(self, *exc):
        np.random.set_state(self.state)  # noqa: NPY002


def input_candidates(params: Sequence[np.ndarray]) -> list[tuple[str, tuple]]:
    """(layout, shape) candidates for the input of a layer holding ``params``.

    layout: "rows" (``x @ W``: x (N, in), W (in, out)), "rows_t" (``x @ W.T``, PyTorch's
    (out, in) weight), "cols" (``W @ x``, x (in, N): the deep-learning specialisation's
    column samples), "seq" (x (N, T, D) for a (D, ...) weight: a recurrent or
    time-distributed layer), "nchw" / "nhwc" (a conv's OIHW / HWIO filters), "image" (the report's
    (F, k, k) filters on one 2-D image), "any" (no parameters to go by). A 1-D parameter
    of D > 1 entries (a norm's gamma) adds rows of D features and NCHW with D channels,
    after the matrices' and filters' layouts."""
    out: list[tuple[str, tuple]] = []
    for p in params:
        if p.ndim == 2:
            a, b = p.shape
            if a == 1 < b:  # a row vector (a bias, a norm's gamma (1, D)): rows of D first
                out.append(("rows", (BATCH, b)))
            out += [("rows", (BATCH, a)), ("rows_t", (BATCH, b)), ("cols", (b, BATCH)),
                    ("rows", (1, a)), ("rows_t", (1, b)), ("cols", (b, 1)), ("rows", (a,)),
                    ("rows_t", (b,))]
        elif p.ndim == 4:
            f, c, kh, kw = p.shape
            # OIHW (F, C, kh, kw), or HWIO (kh, kw, C, F)
            # (small, with 3 and 4 output positions: a loop one short shows as such)
            out += [("nchw", (2, c, kh + 2, kw + 3)), ("chw", (c, kh + 2, kw + 3)),
                    ("nhwc", (2, p.shape[0] + 2, p.shape[1] + 3, p.shape[2])),
                    ("nchw", (2, p.shape[2], p.shape[0] + 2, p.shape[1] + 3))]
        elif p.ndim == 3:
            f, kh, kw = p.shape
            out += [("image", (kh + 5, kw + 5)), ("chw", (2, kh + 3, kw + 4)),
                    ("hwc", (kh + 3, kw + 4, f))]
    for p in params:  # sequences (N, T, D) of a recurrent or time-distributed layer's
        if p.ndim == 2:  # input weight (D, ...), after every 2-d layout
            out.append(("seq", (BATCH, STEPS, p.shape[0])))
    for p in params:  # a norm's gamma (D,): rows of D features, or D channels
        if p.ndim == 1 and p.size > 1:
            out += [("rows", (BATCH, p.size)), ("nchw", (2, p.size, 3, 4))]
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


__all__ = ["BATCH", "FEATURES", "HIDDEN", "constant", "input_candidates", "random_like", "runs",
           "seeded"]


# Argument roles by name. A role says what an argument is: a float array to
# differentiate ("input", "weight", "bias", "scale", "shift"), or a static value ("labels",
# a config dict, a number, a mode string).
_ROLES = (
    (r"^(w|weight|weights|kernel|filters?|filts?|w\d+|wx|wh|mat|matrix|theta)$", "weight"),
    (r"^(b|bias|biases|b\d+|bx|bh)$", "bias"),
    (r"^(gamma|scale)$", "scale"),
    (r"^(beta|shift)$", "shift"),
    (r"^(y|labels?|targets?|t|classes|y_true|idx|indices)$", "labels"),
)
CONFIGS = {  # CS231n-style config dicts, by argument name
    "conv_param": {"stride": 1, "pad": 1},
    "pool_param": {"pool_height": 2, "pool_width": 2, "stride": 2},
    "bn_param": {"mode": "train", "eps": 1e-5, "momentum": 0.9},
    "ln_param": {"eps": 1e-5},
    "gn_param": {"eps": 1e-5},
    "dropout_param": {"mode": "train", "p": 0.5, "seed": 123},
    "hparameters": {"stride": 1, "pad": 1},
}
NUMBERS = {r"^(negative_?slope|alpha|slope|leak|leakiness)$": 0.1, r"^(eps|epsilon)$": 1e-5,
           r"^(p|rate|dropout|p_?dropout|p_?drop|drop_?prob|keep_?prob)$": 0.5,
           r"^(stride|strides)$": 1, r"^(pad|padding)$": 0,
           r"^(g|groups?|g_)$": 1, r"^(mode)$": "train", r"^(activation)$": "relu",
           r"^(reg|lam|lambd|lambda_?)$": 0.0}


def role(name: str) -> str:
    """The role of an argument by its name (see ``_ROLES``); "input" by default."""
    import re

    for pattern, r in _ROLES:
        if re.fullmatch(pattern, name, re.IGNORECASE):
            return r
    if name in CONFIGS or name.endswith("_param") or name.endswith("_params"):
        return "config"
    for pattern in NUMBERS:
        if re.fullmatch(pattern, name, re.IGNORECASE):
            return "number"
    return "input"


def static_value(name: str):
    """The value given to a static argument by its name (config dict or number)."""
    import re

    if name in CONFIGS:
        return dict(CONFIGS[name])
    if name.endswith(("_param", "_params")):
        return {}
    for pattern, value in NUMBERS.items():
        if re.fullmatch(pattern, name, re.IGNORECASE):
            return value
    return None


# (what, input, weight, bias/scale) shape layouts an argument list is tried with.
ARG_LAYOUTS = (
    ("batch x @ w", (BATCH, FEATURES), (FEATURES, HIDDEN), (HIDDEN,)),
    ("batch x @ w.T", (BATCH, FEATURES), (HIDDEN, FEATURES), (HIDDEN,)),
    ("one sample x @ w", (FEATURES,), (FEATURES, HIDDEN), (HIDDEN,)),
    ("one sample w @ x", (FEATURES,), (HIDDEN, FEATURES), (HIDDEN,)),
    ("columns w @ x", (FEATURES, BATCH), (HIDDEN, FEATURES), (HIDDEN, 1)),
    ("NCHW conv", (2, 2, 4, 5), (3, 2, 3, 3), (3,)),
    ("NCHW conv, column bias (F, 1)", (2, 2, 4, 5), (3, 2, 3, 3), (3, 1)),
    ("NHWC conv", (2, 4, 5, 2), (3, 3, 2, 3), (3,)),
    ("batch, per-feature parameters", (BATCH, FEATURES), (FEATURES,), (FEATURES,)),
    ("NCHW, per-channel parameters", (2, 3, 3, 4), (3,), (3,)),
    ("same shapes", (BATCH, FEATURES), (BATCH, FEATURES), (BATCH, FEATURES)),
    ("NCHW images", (2, 2, 4, 4), (2, 2, 4, 4), (2, 2, 4, 4)),
    # one (C, H, W) image, as from-scratch CNNs without a batch take it (even sizes: a 2x2
    # pool takes them); OIHW filters, a column bias (F, 1) or a flat one
    ("one CHW image, OIHW conv", (2, 6, 8), (3, 2, 3, 3), (3, 1)),
    ("one CHW image, OIHW conv, bias (F,)", (2, 6, 8), (3, 2, 3, 3), (3,)),
)


def argument_candidates(names: Sequence[str], seed: int = 0):
    """Candidate calls for a function whose positional arguments are ``names``: a list
    of (layout description, differentiable names, values by position, static mask)."""
    out = []
    roles = [role(n) for n in names]
    for what, x_shape, w_shape, b_shape in ARG_LAYOUTS:
        rng = np.random.default_rng(seed)
        values, static = [], []
        for n, r in zip(names, roles, strict=True):
            if r == "config" or r == "number":
                values.append(static_value(n))
                static.append(True)
            elif r == "labels":
                batch = x_shape[0] if len(x_shape) > 1 else None
                classes = w_shape[-1] if len(w_shape) == 2 and "w" in what else x_shape[-1]
                values.append(rng.integers(0, classes, batch) if batch else
                              int(rng.integers(0, classes)))
                static.append(True)
            else:
                shape = {"input": x_shape, "weight": w_shape, "bias": b_shape,
                         "scale": b_shape, "shift": b_shape}[r]
                value = random_like(rng, shape, "param" if r == "weight" else "normal")
                if r == "scale":
                    value = 1.0 + 0.5 * value
                values.append(value)
                static.append(False)
        out.append((what, [n for n, s in zip(names, static, strict=True) if not s], values,
                    static))
    return out
