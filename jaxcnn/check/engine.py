"""The engine: check one ``Layer`` against two oracles kept apart, on every input set.

For each input set of the layer:

1. run the user's forward, and the reference forward (JAX, float64): if they agree the
   exact oracle applies, else only the numeric one ("your forward differs from ...");
2. seed the backward with a cotangent (standard normal, or the layer's own rule) and
   run the hand VJP;
3. **exact oracle**: ``jax.vjp`` of the reference in float64, plus its alternates;
4. **numeric oracle**: central differences of the user's own forward, skipping every
   entry where the step crossed a kink (``jaxcnn.check.numeric``);
5. name the kind of each argument's error (``jaxcnn.check.classify``).

Nothing is cached between calls: every call runs the layer's functions as they are now,
so a function edited in a notebook is checked afresh (jax's trace cache is keyed on
function objects, and every closure here is new). Everything JAX computes here runs
inside a scoped ``jax.enable_x64(True)``, so the switch never leaks to the caller.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import math
import time
import traceback
from dataclasses import dataclass, field

import jax
import numpy as np

from jaxcnn.check import cells, numeric, steps
from jaxcnn.check import classify as cls
from jaxcnn.check.autodiff import bind, forward_and_vjp, vjp, vjp_many
from jaxcnn.check.autodiff import forward as reference_forward
from jaxcnn.check.compare import Entry, as_float64, cosine, rel_error, scale, worst_entries
from jaxcnn.check.layer import Alternate, InputSet, Layer

# Relative tolerances against max |reference|, keyed by the dtype the hand ran in.
EXACT_TOL = {"float64": 1e-10, "float32": 1e-4}
RECOVERED_TOL = {"float64": 1e-8, "float32": 1e-3}  # (before - after) / learn_rate
# float32: its round-off, including a float32 -log of a subnormal probability (5e-4 of
# the loss at a logit gap of 100, where the value is right to 3 digits)
FORWARD_TOL = {"float64": 1e-9, "float32": 1e-3}
NUMERIC_TOL = 1e-5  # central differences in float64, step 1e-6
NUMERIC_TOL_32 = 1e-2  # of a forward computing in float32, step 1e-3
# A numeric-only "correct" must agree with the differences at least this well (relative);
# one that passed only a looser, noise-driven tolerance (float32 round-off) is
# "inconclusive".
NUMERIC_MAX_TOL = 0.05
# Forward calls per argument and input set for finite differences along entries (a
# count, never a time: the same file and seed give the same numbers at any machine load)
FD_EVALUATIONS = 1025
FD_MIN_ENTRIES = 64
FD_STREAM = 0xFD  # the finite differences' generator: (FD_STREAM, seed, input set, argument)
# kinds an adapter sees happen (a second backward, the object after it): they name a
# wrong gradient even where only the numeric oracle judges it
ADAPTER_SEEN = ("update-before-use", "stale-gradient")
NOT_RUN = "not-run"  # an input set the user's forward refused (internal, never a verdict)
DIRECTIONS = 6  # random directions of the projection test (numeric="directions")


@dataclass
class SetResult:
    """One argument on one input set."""

    inputs: str
    family: str
    kind: str
    rule: str | None = None
    scale: float | None = None
    axes: tuple | None = None
    note: str = ""
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    cosine: float | None = None
    norm_ratio: float | None = None  # |hand| / |reference|
    worst: list = field(default_factory=list)
    numeric: dict | None = None


@dataclass
class Check:
    """One argument's verdict over all input sets (the row ``jaxcnn check`` prints)."""

    quantity: str
    kind: str
    rule: str | None
    scale: float | None
    axes: tuple | None
    max_rel_error: float | None
    max_abs_error: float | None
    cosine: float | None
    worst: list
    note: str
    oracle: str  # "exact" or "numeric"
    inputs: list[SetResult]
    first_wrong_intermediate: dict | None = None  # see jaxcnn.check.steps.FirstWrong

    @property
    def ok(self) -> bool:
        return self.kind == "correct"


@dataclass
class LayerReport:
    """Everything about one layer: its checks, kinks per input set, and timing."""

    name: str
    kind: str
    style: str
    file: str | None
    reference: str | None
    checks: list[Check]
    forward: list[dict]
    kinks: list[dict]
    notes: list[str]
    seconds: float
    first_wrong_step: steps.FirstWrong | None = None
    # the file the layer's code is in, where it is not ``file`` (a notebook's or file's
    # ``from mylayers import *``: "/path/mylayers.py"); None when it is ``file``
    code_file: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and bool(self.checks)

    def _repr_html_(self) -> str:  # a table in Jupyter
        from jaxcnn.check import html

        return html.table([self])

    def check(self, quantity: str) -> Check:
        """The check of one argument; KeyError naming the ones there are."""
        for c in self.checks:
            if c.quantity == quantity:
                return c
        raise KeyError(f"{self.name} has no checked argument {quantity!r}; it has "
                       f"{', '.join(c.quantity for c in self.checks) or 'none'}")


def _error_text(exc: BaseException, where: str) -> str:
    """One line: what raised, the message (whitespace collapsed, at most 300 characters)
    and the user's innermost frame outside jaxcnn."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/jaxcnn/" not in f.filename.replace("\\", "/")
              and "site-packages" not in f.filename]
    at = f" at {cells.where(frames[-1].filename, frames[-1].lineno)}" if frames else ""
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{where} raised {type(exc).__name__}: {message}{at}"


def _as_tuple(grads) -> tuple:
    """What a backward returned, as a tuple (one bare array: a one-argument layer's)."""
    return tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)


def _is_float32(g) -> bool:
    try:
        return np.asarray(g).dtype == np.float32
    except Exception:
        return False


def _to_array(g):
    """A float64 array, None for None; ValueError naming what else was returned."""
    if g is None:
        return None
    if isinstance(g, (dict, str, bytes)):
        raise ValueError(f"it returned a {type(g).__name__} where an array belongs: return "
                         "one array per argument, in a tuple")
    arr = np.asarray(g)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"it returned {type(g).__name__} of dtype {arr.dtype} where an "
                         "array of floats belongs")
    return arr.astype(np.float64)


def _arg_name(layer: Layer, j: int) -> str:
    return layer.arg_names[j] if j < len(layer.arg_names) else f"#{j}"


def _generic_candidates(layer: Layer, args: tuple, static: tuple, ct: np.ndarray, i: int):
    """Costly candidates, built only when cheaper detectors failed, each a ``jax.vjp`` of
    the reference with something changed: the upstream gradient dropped (dout = 1) or read
    with its axes permuted, another argument flipped (a kernel), one term kept of a sum over
    output positions (``=`` where ``+=``), the first or last position skipped."""
    ref = layer.reference
    out_names = (layer.axis_names or {}).get("out")
    fun = bind(ref.forward, static)

    def axes_text(axes):
        if out_names and len(out_names) == ct.ndim:
            return "(" + ", ".join(out_names[a] for a in axes) + ")"
        return f"{axes}"

    out = []
    if ct.size > 1 and not np.all(ct == 1):
        ones = np.ones_like(ct)
        dropped = [("dout = 1", vjp(fun, args, ones)[i])]
        if ref.alternates is not None:
            dropped += [(f"dout = 1, {a.name} rule", a.grads[i])
                        for a in ref.alternates(args, static, ones)
                        if a.valid and i < len(a.grads) and a.grads[i] is not None]
        out += [cls.Candidate(name, value, False, "cotangent-dropped",
                              "the upstream gradient (dout) is never multiplied in: this is "
                              "the gradient for dout = 1") for name, value in dropped]
    for perm in itertools.permutations(range(ct.ndim)) if 2 <= ct.ndim <= 4 else ():
        moved = ct.transpose(perm)
        if perm == tuple(range(ct.ndim)) or moved.shape != ct.shape or np.array_equal(moved, ct):
            continue
        out.append(cls.Candidate(
            f"dout read with axes {axes_text(perm)}", vjp(fun, args, np.ascontiguousarray(
                moved))[i], False, "transposed",
            f"the upstream gradient is read with its axes permuted, {axes_text(perm)}: an "
            "index order swapped where dout is read (e.g. d_out[j, i] for d_out[i, j])"))
    for j, other in enumerate(args):  # a kernel used flipped for another argument
        if j == i or np.ndim(other) < 2:
            continue
        # along its spatial axes where they are named (HWIO keeps them first), else the
        # last two
        names = (layer.axis_names or {}).get(_arg_name(layer, j))
        spatial = tuple(k for k, n in enumerate(names or ()) if n in ("row", "column", "x", "y"))
        axes = spatial if names and len(names) == np.ndim(other) and spatial else (-2, -1)
        where = (f"its {', '.join(names[a] for a in axes)} axes" if axes != (-2, -1)
                 else "its last two axes")
        flipped = list(args)
        flipped[j] = np.ascontiguousarray(np.flip(other, axis=axes))
        out.append(cls.Candidate(
            f"argument {j} flipped", vjp(fun, tuple(flipped), ct)[i], False, "flipped",
            f"computed with argument {j} ({_arg_name(layer, j)}) reversed along {where}: a "
            "flipped kernel (convolution where the forward correlates)"))
    if 1 <= ct.ndim <= 4 and ct.size > 1:
        masks = []
        for r in range(1, ct.ndim + 1):
            for axes in itertools.combinations(range(ct.ndim), r):
                if all(ct.shape[a] == 1 for a in axes):
                    continue
                for which, pos in (("last", -1), ("first", 0)):
                    keep = np.zeros(ct.shape, bool)
                    keep[tuple(pos if a in axes else slice(None) for a in range(ct.ndim))] = True
                    masks.append((which, axes, keep))
        values = vjp_many(fun, args, np.stack([np.where(k, ct, 0.0) for _, _, k in masks]))[i]
        for (which, axes, _), value in zip(masks, values, strict=True):
            # with two positions, keeping the first is also skipping the last
            other = {"first": "last", "last": "first"}[which]
            two = (f"; with 2 positions along it, this is also the {other} position skipped: "
                   "an off-by-one loop bound such as range(n - 1)"
                   if len(axes) == 1 and ct.shape[axes[0]] == 2 else "")
            out.append(cls.Candidate(
                f"only the {which} term along {axes_text(axes)}", value, False,
                "missing-accumulation",
                f"only the {which} position along the output's {axes_text(axes)} "
                f"contributes: a sum over positions kept one term (`=` where `+=` belongs)"
                + two))
    for axis in range(ct.ndim):
        if ct.shape[axis] < 2:
            continue
        for which, pos in (("last", -1), ("first", 0)):
            cut = ct.copy()
            index = [slice(None)] * ct.ndim
            index[axis] = pos
            cut[tuple(index)] = 0.0
            out.append(cls.Candidate(
                f"{which} {axes_text((axis,))} skipped", vjp(fun, args, cut)[i], False,
                "off-by-one",
                f"the {which} position along the output's {axes_text((axis,))} never "
                "contributes: a loop bound one short (range(n - 1)) or a window index off "
                "by one"))
    return out


def _numeric(layer: Layer, s: InputSet, ct: np.ndarray, i: int, hand, exact,
             rng: np.random.Generator, kink_mask, opts: dict) -> dict | None:
    """Central differences of the user's forward for argument ``i`` (see numeric.py):
    along entries (``mode="entries"``: at most ``fd_evaluations`` forward calls) or along
    ``DIRECTIONS`` random directions (``mode="directions"``).

    In ``"entries"`` mode, when an exact oracle is there (``exact``), the differences are
    its cross-check: first along ``directions`` random directions (kinked entries held
    still), and per entry only when a direction disagrees with the hand, or when every
    direction crossed a kink (never one projection alone: a wrong gradient can pass a
    single random projection). ``rng``: the finite differences' own generator (never the
    cotangents'), so that what they pick never moves anything else. Deterministic: the
    budget is a count of forward calls, never a time."""
    args = tuple(as_float64(a) for a in s.args)
    arg = args[i]

    def h(value):
        a = list(args)
        a[i] = value
        out = as_float64(layer.forward(tuple(x.copy() for x in a), s.static))
        return float(np.sum(ct * out)) if out.shape == ct.shape else float("nan")

    precision = np.float32 if opts.get("precision") == "float32" else np.float64
    eps = numeric.step_for(precision)
    mode = opts["numeric"]
    comparable = hand is not None and hand.shape == arg.shape
    if mode == "directions":
        directions = rng.standard_normal((opts["directions"], *arg.shape))
        key = None
        if layer.forward_key is not None and opts["memo"] is not None:
            key = (id(layer.forward_key), i, _digest(args), repr(s.static), _digest((ct,)),
                   _digest((directions,)))
        fd = opts["memo"].get(key) if key is not None else None
        if fd is None:
            fd = numeric.directional(h, arg, directions, eps, precision)
            if key is not None:
                opts["memo"][key] = fd
        return _judged(h, arg, hand, fd, mode, len(directions), precision, opts)
    if (exact is not None and comparable and exact.shape == arg.shape
            and arg.size > opts["directions"]):
        directions = rng.standard_normal((opts["directions"], *arg.shape))
        if kink_mask is not None and kink_mask.shape == arg.shape:
            directions = directions * ~kink_mask
        if np.any(directions != 0):
            fd = numeric.directional(h, arg, directions, eps, precision)
            result = _judged(h, arg, hand, fd, "directions", len(directions), precision, opts)
            if result["agrees"]:
                return result
    budget = max(FD_MIN_ENTRIES, (int(opts["fd_evaluations"]) - 1) // 2)
    priority = None
    if comparable and exact is not None and hand.shape == exact.shape:
        diff = np.abs(hand - exact).reshape(-1)
        priority = np.argsort(-np.where(np.isfinite(diff), diff, np.inf), kind="stable")
    if kink_mask is not None:
        kinked = np.flatnonzero(kink_mask.reshape(-1))
        priority = kinked if priority is None else np.concatenate([priority[:budget // 4],
                                                                   kinked])
    indices = numeric.pick_indices(arg.size, budget, priority, rng)
    fd = numeric.differences(h, arg, indices, eps, precision)
    return _judged(h, arg, hand, fd, mode, len(indices), precision, opts)


def _judged(h, arg, hand, fd: numeric.Differences, mode: str, n: int, precision,
            opts: dict) -> dict:
    """The numeric result of differences ``fd`` against the hand gradient (suspects taken
    again with a smaller step first: one that moves was a hidden kink)."""
    trusted = ~fd.kink & np.isfinite(fd.values)
    if hand is not None and hand.shape == arg.shape and trusted.any():
        # A difference that disagrees with the hand is taken again with a smaller step:
        # one that moves was a hidden kink, not evidence against the hand.
        tol = numeric_tolerance(fd, fd.values[trusted], opts.get("precision", "float64"))
        # never below the differences' own round-off: a gradient that is 0 (a bias before
        # a batch norm) would make every round-off-sized wobble a suspect, then a "kink"
        atol = max(tol * scale(fd.values[trusted]), fd.noise)
        off = np.abs(_project(hand, fd) - fd.values) > atol
        fd = numeric.confirm(h, arg, fd, trusted & off, atol, precision)
        trusted = ~fd.kink & np.isfinite(fd.values)
    result = {"mode": mode, "entries": int(n), "of": int(arg.size), "kinks": int(fd.kink.sum()),
              "seconds": round(fd.seconds, 3), "max_rel_error": None, "agrees": None}
    if hand is not None and hand.shape == arg.shape and trusted.any():
        got = _project(hand, fd)[trusted]
        want = fd.values[trusted]
        err = rel_error(got, want)
        result["max_rel_error"] = err
        result["tolerance"] = numeric_tolerance(fd, want, opts.get("precision", "float64"))
        result["agrees"] = bool(err <= result["tolerance"])
    result["_fd"] = fd
    return result


def _digest(arrays) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _project(hand: np.ndarray, fd: numeric.Differences) -> np.ndarray:
    """The hand gradient seen the way ``fd`` saw the function: entries or projections."""
    if fd.directions is not None:
        return np.tensordot(fd.directions, hand, axes=hand.ndim)
    return hand.reshape(-1)[fd.indices]


def numeric_tolerance(fd: numeric.Differences, values: np.ndarray,
                      precision: str = "float64") -> float:
    """NUMERIC_TOL (for a float32 forward: NUMERIC_TOL_32), or 100x the round-off of the
    differences when that is larger (relative to the largest |difference|)."""
    base = NUMERIC_TOL_32 if precision == "float32" else NUMERIC_TOL
    d = scale(values)
    return max(base, 100 * fd.noise / d) if d > 0 else base


def _numeric_reference(fd_result: dict, hand: np.ndarray | None, shape) -> np.ndarray | None:
    """A full-shape reference from finite differences (all entries sampled), kinks filled
    with the hand's own values so that they count as neither right nor wrong."""
    fd = fd_result["_fd"]
    size = int(np.prod(shape))
    if fd.indices is None or len(fd.indices) != size:
        return None
    values = fd.values.copy()
    bad = fd.kink | ~np.isfinite(values)
    if hand is not None and hand.size == size:
        values[bad] = hand.reshape(-1)[fd.indices][bad]
    return values.reshape(shape)


NARROW_PROBE = 1e-10  # relative nudge of the inputs, lost in a float32 computation
NARROW_MOVED = 0.1  # the largest share of outputs a float32 computation lets it move


def _narrow_inside(layer: Layer, s: InputSet, out) -> bool:
    """Whether a forward given float64 inputs computes in a narrower float inside (a
    float32 array it writes into, a cast): when one of its (non-zero) inputs moves by
    ``NARROW_PROBE`` relative, float64 arithmetic moves every non-zero output that depends
    on it, float32 arithmetic almost none (only a value that sits within 1e-10 of a
    float32 rounding boundary flips): at most ``NARROW_MOVED`` of them move. (Only asked
    when the forward already differs from the reference by more than float64's and less
    than float32's round-off.)"""
    out = np.asarray(out)
    live = out != 0
    if not np.any(live):
        return False
    for i, a in enumerate(s.args):
        a = np.asarray(a, np.float64)
        if not np.any(a != 0):
            continue
        nudged = list(np.asarray(b, np.float64).copy() for b in s.args)
        nudged[i] = a * (1 + NARROW_PROBE)
        try:
            again = np.asarray(layer.forward(tuple(nudged), s.static))
        except Exception:
            return False
        if again.shape == out.shape and np.mean(again[live] != out[live]) <= NARROW_MOVED:
            return True
    return False


def _known_wrong_forward(layer: Layer, args64: tuple, static: tuple, user_out, precision: str,
                         exact_ok: bool) -> tuple[str, str] | None:
    """(name, note) of the reference's known wrong forward (``Reference.wrong_forwards``,
    e.g. batch norm with the unbiased variance) that the user's forward reproduces, when
    it does not reproduce the reference itself; else None."""
    ref = layer.reference
    if exact_ok or ref is None or getattr(ref, "wrong_forwards", None) is None:
        return None
    for name, out, note in ref.wrong_forwards(args64, static):
        out = as_float64(out)
        if out.shape == user_out.shape and rel_error(user_out, out) <= FORWARD_TOL[precision]:
            return name, note
    return None


def _benign_variant(layer: Layer, args64: tuple, static: tuple, user_out,
                    precision: str) -> tuple[str, str] | None:
    """(name, note) of the reference's harmless variant (``Reference.variants``: an
    epsilon inside a loss's log) that the user's forward reproduces to the forward
    tolerance; else None."""
    ref = layer.reference
    if ref is None or getattr(ref, "variants", None) is None:
        return None
    for name, out, note in ref.variants(args64, static):
        out = as_float64(out)
        if out.shape == user_out.shape and rel_error(user_out, out) <= FORWARD_TOL[precision]:
            return name, note
    return None


def _check_set(layer: Layer, s: InputSet, rng: np.random.Generator, opts: dict):
    """(per-argument SetResults, forward info, kinks info, layer notes) for one input set."""
    names = layer.arg_names
    variant = None  # a harmless variant of the reference the forward computes (log(p + eps))
    notes: list[str] = []
    dtype = np.float32 if s.dtype == "float32" else np.float64
    args64 = tuple(as_float64(a) for a in s.args)

    def hand_args():
        return tuple(np.array(a, dtype=dtype, copy=True) for a in s.args)

    def fail(text):
        return [SetResult(s.name, s.family, "error", note=text) for _ in names]

    try:
        raw_out = layer.forward(hand_args(), s.static)
        user_out = as_float64(raw_out)
    except FloatingPointError as exc:  # np.seterr(all="raise") or jax_debug_nans
        text = _error_text(exc, "forward")
        return ([SetResult(s.name, s.family, "non-finite", note=f"your {text}: the forward "
                           "overflows or divides by zero on this input") for _ in names],
                {"inputs": s.name, "error": text}, None, notes)
    except Exception as exc:  # the user's code: report, never crash
        # Only this input is skipped (a forward may accept fewer shapes than the
        # catalogue tries); when no input runs, the check is an error.
        text = _error_text(exc, "forward")
        notes.append(f"{s.name}: skipped, your {text}")
        return ([SetResult(s.name, s.family, NOT_RUN, note=text) for _ in names],
                {"inputs": s.name, "error": text}, None, notes)
    # A forward that computes in float32 although it was given float64 gets float32
    # tolerances and a float32 finite-difference step.
    precision = s.dtype
    if s.dtype == "float64" and np.asarray(raw_out).dtype == np.float32:
        precision = "float32"
        notes.append(f"{s.name}: your forward returns float32 for float64 inputs; float32 "
                     "tolerances apply")
    elif s.dtype == "float64" and layer.reference is None and _narrow_inside(layer, s,
                                                                             raw_out):
        # no reference to compare with (asked below otherwise): finite differences of a
        # forward that rounds an input to float32 (a parameter kept as float32) need
        # float32's step
        precision = "float32"
        notes.append(f"{s.name}: your forward computes in float32 inside (it returns "
                     "float64, but its output hardly moves when an input moves by "
                     f"{NARROW_PROBE:g} relative); float32 tolerances apply")
    opts = dict(opts, precision=precision)
    forward_info = {"inputs": s.name, "matches_reference": None, "max_rel_error": None}
    if not np.all(np.isfinite(user_out)):
        bad = int((~np.isfinite(user_out)).sum())
        text = (f"your forward returns {bad} NaN/inf values on this input (an overflow in "
                "exp, or 0/0?): its gradient cannot be right here. A softmax or "
                "log-sum-exp subtracts each row's maximum before exp, which changes no "
                "value and cannot overflow")
        return ([SetResult(s.name, s.family, "non-finite", note=text) for _ in names],
                forward_info, None, notes)
    # The cotangent depends on the user's output only: drawn first, so that the reference's
    # forward and its VJP are one compiled program.
    if layer.cotangent is not None:
        ct = as_float64(layer.cotangent(user_out, s, rng))
    else:
        ct = rng.standard_normal(user_out.shape)
    exact_ok = False
    exact_grads = None
    if layer.reference is not None:
        try:
            ref_out, exact_grads = forward_and_vjp(bind(layer.reference.forward, s.static),
                                                   args64, ct)
        except Exception:  # noqa: BLE001 - not differentiable as written: its forward alone
            ref_out = reference_forward(layer.reference.forward, args64, s.static)
        if ref_out.shape == user_out.shape:
            err = rel_error(user_out, ref_out)
            forward_info["max_rel_error"] = err
            exact_ok = err <= FORWARD_TOL[precision]
            if (not exact_ok and precision == "float64" and err <= FORWARD_TOL["float32"]
                    and _narrow_inside(layer, s, raw_out)):
                precision, exact_ok = "float32", True
                opts = dict(opts, precision=precision)
                notes.append(f"{s.name}: your forward computes in float32 inside (it returns "
                             "float64, but its output hardly moves when an input moves by "
                             f"{NARROW_PROBE:g} relative); float32 tolerances apply")
        forward_info["matches_reference"] = exact_ok
        wrong_forward = _known_wrong_forward(layer, args64, s.static, user_out, precision,
                                             exact_ok)
        if wrong_forward is not None:  # a bug in the forward: judge against the textbook
            exact_ok = True
            forward_info["known_wrong_forward"] = wrong_forward[0]
            notes.append(f"{s.name}: your forward is the reference with {wrong_forward[0]} "
                         f"({wrong_forward[1]}): a bug in the forward; its gradients are "
                         f"judged against {layer.reference.name}")
        variant = None if exact_ok else _benign_variant(layer, args64, s.static, user_out,
                                                        precision)
        if variant is not None:  # log(p + 1e-7): the textbook loss, made finite
            exact_ok = True
            forward_info["variant"] = variant[0]
            notes.append(f"{s.name}: your forward is {layer.reference.name} with {variant[0]} "
                         f"({variant[1]}); the exact oracle applies")
        if not exact_ok:
            err = forward_info["max_rel_error"]
            how = (f"max rel error {err:.3g}" if err is not None else
                   f"output shape {user_out.shape}, the reference's {ref_out.shape}")
            notes.append(f"{s.name}: the forward differs from {layer.reference.name} ({how}); "
                         "gradients are checked against finite differences of your forward "
                         "only")
    try:
        _, backward = layer.vjp(hand_args(), s.static)
        raw = _as_tuple(backward(np.array(ct, dtype=dtype)))
    except Exception as exc:
        return fail(_error_text(exc, "backward")), forward_info, None, notes
    try:
        hand = [_to_array(raw[i]) if i < len(raw) else None for i in range(len(names))]
    except ValueError as exc:
        return fail(f"backward: {exc}"), forward_info, None, notes
    if len(raw) > len(names):
        notes.append(f"{s.name}: backward returned {len(raw)} values for {len(names)} "
                     f"arguments {names}; the extra ones are ignored")

    exact = candidates = None
    if exact_ok:
        exact = (exact_grads if exact_grads is not None else
                 vjp(bind(layer.reference.forward, s.static), args64, ct))
        candidates = ([] if layer.reference.alternates is None
                      else layer.reference.alternates(args64, s.static, ct))
        support = ct != 0
        if support.any() and not support.all() and not np.all(ct[support] == 1):
            # A sparse cotangent (a blog Softmax gets -1/p_c at the label only): dropping
            # it looks like a scale; name it for what it is.
            candidates = list(candidates) + [Alternate(
                "dout = 1 where it is not 0", vjp(bind(layer.reference.forward, s.static),
                                                   args64, support.astype(np.float64)),
                False, "cotangent-dropped", "the upstream gradient (dout) is never "
                "multiplied in: this is the gradient for dout = 1 at its non-zero entries")]
    kinks = layer.reference.kinks(s) if (exact_ok and layer.reference.kinks) else None
    kink_info = {"inputs": s.name, "family": s.family, "summary": kinks.summary,
                 **kinks.stats} if kinks else None
    offsets = []  # known mistakes as what they take from the right gradient
    if layer.offsets is not None:
        try:
            offsets = list(layer.offsets(args64, s.static, ct))
        except Exception as exc:
            notes.append(f"{s.name}: " + _error_text(exc, "a known mistake's probe"))
    if offsets and exact is not None:
        candidates = list(candidates) + [Alternate(o.name, tuple(
            None if i >= len(o.grads) or o.grads[i] is None else np.asarray(e) - o.grads[i]
            for i, e in enumerate(exact)), o.valid, o.kind, o.note) for o in offsets]
    extra = {}
    if layer.extra is not None:
        try:
            for arg_name, kind, note in layer.extra(hand_args(), s.static,
                                                    np.array(ct, dtype=dtype)):
                extra[arg_name] = (kind, note)
        except Exception as exc:
            notes.append(f"{s.name}: " + _error_text(exc, "a second backward"))

    results = []
    for i, name in enumerate(names):
        h = hand[i]
        if h is None and name in layer.optional:
            results.append(None)
            continue
        recovered = name in layer.recovered
        hand_precision = "float32" if h is not None and _is_float32(raw[i]) else precision
        tol = (RECOVERED_TOL if recovered else EXACT_TOL)[hand_precision]
        kink_mask = kinks.mask[i] if kinks is not None and i < len(kinks.mask) else None
        fd_result = None
        if s.dtype == "float64" and h is not None and opts["numeric"] != "none":
            try:
                fd_rng = np.random.default_rng([FD_STREAM, *opts["fd_seed"], i])
                fd_result = _numeric(layer, s, ct, i, h, exact[i] if exact else None, fd_rng,
                                     kink_mask, opts)
            except Exception as exc:
                notes.append(f"{s.name}: finite differences of {name}: "
                             + _error_text(exc, "forward"))
        if exact is not None:
            reference = exact[i]
            oracle = "exact"
        else:
            reference = (_numeric_reference(fd_result, h, args64[i].shape)
                         if fd_result else None)
            oracle = "numeric"
            tol = max(tol, fd_result["tolerance"] if fd_result and fd_result.get("tolerance")
                      else NUMERIC_TOL_32 if precision == "float32" else NUMERIC_TOL)
        if reference is None:  # numeric oracle on a sample of entries: classify the sample
            results.append(_inconclusive(_sampled_result(s, h, fd_result, tol,
                                                         args64[i].shape), tol))
            continue
        if exact is not None:
            finding = classify_gradient(layer, args64, s.static, ct, i, h, reference,
                                        candidates, tol, kink_mask, extra.get(name), exact)
            zero = _exact_zero_up_to_round_off(h, reference, exact, tol)
            if finding.kind != "correct" and zero is not None:
                finding = zero
        else:
            shifted = tuple(cls.Candidate(o.name, reference - o.grads[i], o.valid, o.kind,
                                          o.note) for o in offsets
                            if i < len(o.grads) and o.grads[i] is not None
                            and np.shape(o.grads[i]) == np.shape(reference))
            finding = cls.classify(h, reference, cls.Context(
                tol, shifted, axis_names=(layer.axis_names or {}).get(name)))
            if finding.kind == "correct" and rel_error(h, reference) > NUMERIC_MAX_TOL:
                finding = finding._replace(kind="inconclusive", note=_too_noisy(tol))
            zero = _zero_up_to_round_off(h, reference, fd_result)
            if finding.kind != "correct" and zero is not None:
                finding = zero
            if extra.get(name) is not None and finding.kind != "correct" and (
                    extra[name][0] in ADAPTER_SEEN  # the adapter saw it happen
                    or (finding.kind == "scaled"  # a scale that changes with the learning
                        and (finding.scale or 0) > 1)):  # rate: the adapter knows why
                finding = finding._replace(kind=extra[name][0], rule=None,
                                           note=f"{extra[name][1]}; {finding.note}")
        low = _low_precision(raw[i]) if i < len(raw) else None
        if low and finding.kind in ("imprecise", "unclassified"):
            finding = finding._replace(note=f"your backward returns {low}; " + finding.note)
        if variant is not None and finding.kind == "imprecise":
            # the exact gradient of the user's own log(p + eps) differs from the
            # epsilon-free loss's by about eps / p: right too, for the forward it has
            finding = finding._replace(kind="correct", rule=f"gradient of {variant[0]}",
                                       note=f"the gradient of the loss with {variant[0]}, "
                                            "as your forward computes it; " + finding.note)
        elif variant is not None and finding.kind == "scaled" and finding.scale is not None \
                and abs(finding.scale + 1) <= 1e-4:  # -1 up to the epsilon's own share
            finding = finding._replace(kind="sign-flipped", scale=-1.0)
        results.append(_set_result(s, finding, h, reference, fd_result, oracle))
    return results, forward_info, kink_info, notes


def _zero_up_to_round_off(hand, reference, fd_result) -> cls.Finding | None:
    """``correct`` for a gradient that finite differences find 0 up to their own round-off
    (a bias before a batch norm, which the norm removes) when the hand's values are
    within that round-off of 0 too: no relative tolerance can judge a reference that is
    noise. The error is then measured against 0. None otherwise."""
    if not fd_result or fd_result.get("_fd") is None or hand is None or \
            np.shape(hand) != np.shape(reference):
        return None
    noise = fd_result["_fd"].noise
    if not (noise > 0 and scale(reference) <= noise and scale(hand) <= noise):
        return None
    return cls.Finding("correct", against=np.zeros(np.shape(hand)),
                       note=f"finite differences find this gradient 0 up to their round-off "
                            f"({noise:.1g}), and every entry of yours is within that of 0: "
                            "judged against 0")


EXACT_ROUND_OFF = 1e-12  # of the layer's largest gradient: far above float64's 1e-16


def _exact_zero_up_to_round_off(hand, reference, exact, tol: float) -> cls.Finding | None:
    """``correct`` for a gradient whose exact reference is 0 but for round-off (a key
    projection's bias in attention: softmax ignores a shift along the keys, so its terms
    cancel) when the hand's is as small: entries within ``EXACT_ROUND_OFF`` of the
    layer's largest exact gradient on this input set (float64 code only: ``tol`` below
    1e-8). No relative tolerance can judge two round-off residues. None otherwise."""
    if hand is None or np.shape(hand) != np.shape(reference) or tol > 1e-8:
        return None
    largest = max((scale(np.asarray(g, np.float64)) for g in exact if g is not None),
                  default=0.0)
    bound = EXACT_ROUND_OFF * largest
    if not (bound > 0 and scale(reference) <= bound and scale(hand) <= bound):
        return None
    return cls.Finding("correct", against=np.zeros(np.shape(hand)),
                       note=f"the exact gradient is 0 up to round-off (every entry within "
                            f"{bound:.1g}, 1e-12 of the layer's largest gradient), and so is "
                            "every entry of yours: judged against 0")


def _low_precision(g) -> str | None:
    """The dtype of a returned gradient when it is a float narrower than float32."""
    try:
        dtype = np.asarray(g).dtype
    except Exception:
        return None
    return str(dtype) if dtype.kind == "f" and dtype.itemsize < 4 else None


def _too_noisy(tol: float) -> str:
    return (f"finite differences of your forward are too noisy here to confirm the gradient "
            f"(they resolve it only to {tol:.2g} relative, and agree only beyond "
            f"{NUMERIC_MAX_TOL:g}), "
            "and your forward differs from the reference, so there is no exact oracle: a "
            "float32 forward? Let it compute in its input's dtype, or give your own inputs "
            "from Python (inputs=...)")


def _inconclusive(r: SetResult, tol: float) -> SetResult:
    """A numeric-only ``correct`` that only a tolerance too loose to mean anything let pass
    (an agreement closer than ``NUMERIC_MAX_TOL`` stays ``correct``: noise that large does
    not agree by chance)."""
    if r.kind == "correct" and (r.max_rel_error or 0.0) > NUMERIC_MAX_TOL:
        r.kind = "inconclusive"
        r.note = ("numeric oracle only; " + _too_noisy(tol) + r.note.partition(
            "numeric oracle only")[2]).strip()
    return r


def classify_gradient(layer: Layer, args: tuple, static: tuple, ct: np.ndarray, i: int,
                      hand: np.ndarray | None, reference: np.ndarray, alternates, tol: float,
                      kink_mask=None, extra: tuple | None = None,
                      exact: tuple | None = None) -> cls.Finding:
    """The kind of the hand gradient of argument ``i`` against the exact ``reference``
    (``jax.vjp`` of ``layer.reference`` at float64 ``args`` along ``ct``): the layer's
    alternates, its subgradient test, the costly generic candidates when needed, and an
    adapter's own finding ``extra = (kind, note)`` when nothing says ``correct``.
    ``exact``: the reference gradients of every argument, to tell a gradient returned in
    the place of another's (``wrong-argument``)."""
    others = tuple((_arg_name(layer, j), g) for j, g in enumerate(exact or ()) if j != i)
    ctx = cls.Context(
        tol, tuple(cls.Candidate(c.name, c.grads[i] if i < len(c.grads) else None,
                                 c.valid, c.kind, c.note) for c in (alternates or [])),
        lambda: _generic_candidates(layer, args, static, ct, i),
        kink_mask, (layer.axis_names or {}).get(layer.arg_names[i]),
        _subgradient(layer.reference, args, static, ct, i, tol), others, layer.arg_names)
    finding = cls.classify(hand, reference, ctx)
    if extra is not None and finding.kind != "correct":
        finding = cls.Finding(extra[0], note=extra[1], against=reference)
    return finding


def _subgradient(reference, args, static, ct, i, tol):
    if reference.subgradient is None:
        return None
    return lambda hand: reference.subgradient(args, static, ct, i, hand, tol)


def _sampled_result(s: InputSet, hand, fd_result, tol, shape) -> SetResult:
    """Classify the sampled entries when only finite differences are available."""
    if hand is None:
        return SetResult(s.name, s.family, "missing", note="no gradient returned")
    if hand.shape == shape and not np.all(np.isfinite(hand)):
        finding = cls.non_finite(hand, np.zeros(shape), cls.Context(tol))
        return _set_result(s, finding._replace(against=None), None, None, fd_result, "numeric")
    if hand.shape != shape:
        finding = cls.classify(hand, np.zeros(shape), cls.Context(tol), (cls.wrong_shape,))
        return _set_result(s, finding, None, None, fd_result, "numeric")
    if fd_result is None:
        return SetResult(s.name, s.family, "unclassified",
                         note="no exact oracle and no finite differences could be taken")
    fd = fd_result["_fd"]
    trusted = ~fd.kink & np.isfinite(fd.values)
    if not trusted.any():
        return SetResult(s.name, s.family, "unclassified", numeric=_public(fd_result),
                         note="numeric oracle only, and every finite difference crossed a kink")
    got = _project(hand, fd)[trusted]
    want = fd.values[trusted]
    detectors = (cls.non_finite, cls.valid_match, cls.zero, cls.imprecise, cls.scaled)
    finding = cls.classify(got, want, cls.Context(tol), detectors)
    r = _set_result(s, finding, got, want, fd_result, "numeric")
    if fd.indices is not None:
        flat = fd.indices[trusted]
        for entry in r.worst:  # sample positions -> indices of the argument
            entry["index"] = tuple(int(j) for j in np.unravel_index(flat[entry["index"][0]],
                                                                    hand.shape))
        r.note += f" ({int(trusted.sum())} sampled entries)"
    else:
        r.worst = []
        r.note += f" ({int(trusted.sum())} random directions)"
    return r


def _public(fd_result):
    if fd_result is None:
        return None
    return {k: v for k, v in fd_result.items() if not k.startswith("_")}


def _set_result(s: InputSet, finding: cls.Finding, hand, reference, fd_result, oracle
                ) -> SetResult:
    r = SetResult(s.name, s.family, finding.kind, finding.rule, finding.scale, finding.axes,
                  finding.note, numeric=_public(fd_result))
    against = finding.against
    if hand is not None and against is not None and hand.shape == against.shape:
        diff = np.abs(hand - against)
        finite = np.all(np.isfinite(diff))
        r.max_abs_error = float(np.max(diff, initial=0.0)) if finite else float("inf")
        d = scale(against)
        r.max_rel_error = (r.max_abs_error / d if d > 0 else r.max_abs_error)
        r.cosine = cosine(hand, against)
        norm = math.sqrt(float(np.sum(against * against))) if finite else 0.0
        r.norm_ratio = math.sqrt(float(np.sum(hand * hand))) / norm if norm > 0 else None
        r.worst = [e._asdict() for e in worst_entries(hand, against, 5)]
    if oracle == "numeric":
        r.note = ("numeric oracle only; " + r.note).rstrip("; ")
    return r


def _settings(static: tuple) -> str:
    """The hyperparameters among the static arguments (config dicts such as conv_param),
    as text; labels and other per-sample statics are left out."""
    return repr([sorted(a.items()) for a in static if isinstance(a, dict)])


def _aggregate(name: str, per_set: list[SetResult]) -> Check:
    """One row per argument: correct only if correct on every input set that ran (an
    input the user's forward refused is skipped; when none ran, the check is an error)."""
    ran = [r for r in per_set if r.kind != NOT_RUN]
    if not ran:
        first = per_set[0]
        return Check(name, "error", None, None, None, None, None, None, [],
                     f"no input could be run: {first.note}", "none", per_set)
    per_set = ran
    failing = [r for r in per_set if r.kind != "correct"]
    oracle = "numeric" if any("numeric oracle only" in r.note for r in per_set) else "exact"
    rels = [r.max_rel_error for r in per_set if r.max_rel_error is not None]
    abss = [r.max_abs_error for r in per_set if r.max_abs_error is not None]
    coss = [r.cosine for r in per_set if r.cosine is not None and np.isfinite(r.cosine)]
    if not failing:
        rules = sorted({r.rule for r in per_set if r.rule})
        worst_set = max(per_set, key=lambda r: r.max_rel_error or 0.0)
        return Check(name, "correct", ", ".join(rules) or None, None, None,
                     max(rels) if rels else None, max(abss) if abss else None,
                     min(coss) if coss else None, worst_set.worst,
                     ("ties: matches the " + " / ".join(rules) + " rule") if rules else "",
                     oracle, per_set)
    informative = [r for r in failing if r.kind not in ("unclassified", "error")]
    chosen = (informative or failing)[0]
    passed = sorted({r.family for r in per_set if r.kind == "correct"})
    where = f"on {chosen.inputs}: " + chosen.note
    if passed:
        where = f"correct on {', '.join(passed)} inputs; " + where
    others = sorted({r.kind for r in failing} - {chosen.kind})
    if others:
        where += f" (elsewhere also: {', '.join(others)})"
    rel = chosen.max_rel_error
    if rel is None and chosen.kind not in ("error", "missing", "wrong-shape"):
        rel = max(rels) if rels else None
    return Check(name, chosen.kind, chosen.rule, chosen.scale, chosen.axes, rel,
                 chosen.max_abs_error, chosen.cosine, chosen.worst, where, oracle, per_set)


def _compact(notes: list[str]) -> list[str]:
    """"set: text" notes with the same text become one note naming all the sets."""
    by_text: dict[str, list[str]] = {}
    for note in notes:
        where, sep, text = note.partition(": ")
        by_text.setdefault(text if sep else note, []).append(where if sep else "")
    return [(f"{', '.join(w for w in where if w)}: " if any(where) else "") + text
            for text, where in by_text.items()]


def check_layer(layer: Layer, seed: int = 0, fd_evaluations: int = FD_EVALUATIONS,
                numeric: str = "entries", directions: int = DIRECTIONS,
                memo: dict | None = None, fd_seconds: float | None = None,
                steps_budget: int = steps.MAX_EVALUATIONS) -> LayerReport:
    """Check every differentiable argument of ``layer`` on each of its input sets.

    ``seed`` draws the inputs and cotangents; the finite differences draw from their own
    generator (``FD_STREAM``, the seed, the input set and the argument), so that the same
    layer and seed give the same verdicts and numbers, bit for bit, at any machine load.
    The numeric oracle differentiates the user's forward along entries
    (``numeric="entries"``: at most ``fd_evaluations`` forward calls per argument and
    input set, at least ``FD_MIN_ENTRIES`` entries, all when they fit; where an exact
    oracle is there, ``directions`` random directions first, and entries only where a
    direction disagrees), along ``directions`` random directions (``numeric="directions"``:
    2 * directions + 1 forward calls at any size, no localisation), or not at all
    (``"none"``). ``memo``: a dict shared by the calls of one run, so that directional
    differences of a forward that several layers share (``Layer.forward_key``) on the same
    inputs are taken once; it holds nothing between runs. ``fd_seconds``: accepted for
    callers of the time budget this replaced, and ignored (a time budget made verdicts
    depend on machine load). ValueError for another ``numeric``.
    ``steps_budget``: forward evaluations for finding the first wrong step of a wrong
    backward (``jaxcnn.check.steps``; 0: not looked for).

    Returns a ``LayerReport``; never raises for errors in the user's code (they become
    checks of kind ``error``). Runs inside ``jax.enable_x64(True)``.
    """
    del fd_seconds  # a count of evaluations, never a time: see the docstring
    if numeric not in ("entries", "directions", "none"):
        raise ValueError(f"numeric must be 'entries', 'directions' or 'none', not {numeric!r}")
    opts = {"numeric": numeric, "fd_evaluations": fd_evaluations, "directions": directions,
            "memo": memo}
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    per_arg: dict[str, list[SetResult]] = {n: [] for n in layer.arg_names}
    forward, kinks, notes = [], [], []
    with jax.enable_x64(True):
        sets = layer.input_sets(seed)
        ran: list[tuple] = []
        refused: list[tuple] = []
        for k, s in enumerate(sets):
            results, forward_info, kink_info, set_notes = _check_set(
                layer, s, rng, dict(opts, fd_seed=(seed, k)))
            forward.append(forward_info)
            if kink_info:
                kinks.append(kink_info)
            notes += set_notes
            ranks = (tuple(np.ndim(a) for a in s.args), _settings(s.static))
            (refused if any(r is not None and r.kind == NOT_RUN for r in results)
             else ran).append((s, ranks, results))
            for name, r in zip(layer.arg_names, results, strict=True):
                if r is not None:
                    per_arg[name].append(r)
    # An input refused by a forward that ran on inputs of the same ranks and settings is a
    # bug (say a non-square image where rows and columns are swapped), not a limitation.
    # Other settings (a conv_param / pool_param the code does not support, like the
    # CS231n fast pool's assert on overlapping windows) are a limitation: skipped.
    for _, ranks, results in refused:
        other = next((o for o, r, _ in ran if r == ranks), None)
        if other is not None:
            for r in results:
                if r is not None:
                    r.kind = "error"
                    r.note = (f"{r.note}, though it ran on {other.name} (same ranks and "
                              "settings): a bug in the forward for this shape")
    checks = [_aggregate(name, rs) for name, rs in per_arg.items() if rs]
    first = None
    # the adapter's own rule first: a known slip it can place (a whole function's named
    # slip whose line it finds), else the line-by-line analysis
    located = layer.locate(checks) if layer.locate is not None and layer.sources and any(
        c.kind not in _NOT_STEPS for c in checks) else None
    if located is not None:
        first = located
        for c in checks:
            if c.kind != "correct":
                c.first_wrong_intermediate = first.to_json()
    elif steps_budget and layer.sources and any(c.kind not in _NOT_STEPS for c in checks):
        with jax.enable_x64(True):
            wrong = [(s, results) for s, _, results in ran if any(
                r is not None and r.kind not in _NOT_STEPS for r in results)]
            first, why = _first_wrong_step(layer, [s for s, _ in wrong], seed, steps_budget,
                                           {id(s): results for s, results in wrong})
        if why:
            notes.append(why)
        for c in checks:
            if first is not None and c.kind != "correct":
                c.first_wrong_intermediate = first.to_json()
    elif layer.locate is not None and any(c.kind not in _NOT_STEPS for c in checks):
        first = layer.locate(checks)  # the adapter's own rule (a closure's line)
        for c in checks:
            if first is not None and c.kind != "correct":
                c.first_wrong_intermediate = first.to_json()
    elif steps_budget and any(c.kind not in _NOT_STEPS for c in checks):
        notes.append(f"first wrong step not analysed for this {layer.style} layer (the "
                     "analysis needs a separate Python backward function to re-run line by "
                     "line)")
    notes = list(layer.notes) + _compact(notes)
    skipped = [name for name, rs in per_arg.items() if not rs]
    if skipped:
        notes.append(f"not returned, allowed for this layer: dL/d{', dL/d'.join(skipped)}")
    reference = layer.reference.name if layer.reference else None
    report = LayerReport(layer.name, layer.kind, layer.style, layer.file, reference, checks,
                         forward, kinks, notes, time.perf_counter() - start, first,
                         code_file(layer))
    from jaxcnn.check import sanity  # reentrancy, inputs left alone, only in float32

    exact_only = dict(opts, numeric="none", memo=None)
    sanity.review(layer, report, seed, lambda s, r: _check_set(layer, s, r, exact_only)[0])
    report.seconds = time.perf_counter() - start
    return report



def code_file(layer: Layer) -> str | None:
    """The file of the layer's own code (its backward's, else its forward's) where it is
    not ``layer.file``, the file it is reported under; else None."""
    from jaxcnn.check import cells

    for fn in reversed(layer.sources):
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        name = getattr(code, "co_filename", None)
        if isinstance(name, str) and not name.startswith("<"):
            path = cells.split_filename(name)[0]
            return None if layer.file is None or cells.same_file(path, layer.file) else path
    return None


# Kinds whose cause is not a wrong step (nothing returned, the code raised, no verdict).
_NOT_STEPS = ("correct", "error", "missing", "inconclusive", "non-finite", NOT_RUN)


def _first_wrong_step(layer: Layer, sets: list[InputSet], seed: int, budget: int,
                      verdicts: dict | None = None):
    """(the first wrong step of the layer's backward, or None; a note when the analysis
    could not run). Runs on the smallest float64 input set of ``sets`` (those where a
    gradient was found wrong), then the next smallest; the cotangent
    is drawn from its own generator (1 for a scalar output: a loss's own gradient).
    ``verdicts``: id(input set) -> its ``SetResult`` per argument (a whole model's steps
    that equal its returned gradients take these findings, which name known slips)."""
    sets = sorted((s for s in sets if s.dtype == "float64"),
                  key=lambda s: sum(np.size(a) for a in s.args))
    if not sets:
        return None, None
    rng = np.random.default_rng([seed, 20])
    why = None
    for s in sets[:2]:
        args64 = tuple(as_float64(a) for a in s.args)

        def hand_args(args64=args64):
            return tuple(a.copy() for a in args64)

        try:
            out = as_float64(layer.forward(hand_args(), s.static))
        except Exception:
            continue
        if out.shape == ():
            ct = np.ones(())
        elif layer.cotangent is not None:
            ct = as_float64(layer.cotangent(out, s, rng))
        else:
            ct = rng.standard_normal(out.shape)
        judges = _arg_judges(layer, s, args64, out, ct)
        arguments = run_with = None
        if layer.style in ("model", "whole"):  # its loss reads its parameters where no
            # tap reaches (a model's self.params, a whole function's globals)
            arguments = dict(zip(layer.arg_names, args64, strict=True))
            judges = _model_judges(layer, s, hand_args, ct, (verdicts or {}).get(id(s)))

            def run_with(name, value, s=s, h=hand_args):
                args = list(h())
                args[layer.arg_names.index(name)] = np.array(value, copy=True)
                return layer.forward(tuple(args), s.static)
        try:
            first = steps.first_wrong(
                layer.sources[0], layer.sources[1],
                lambda s=s, h=hand_args: layer.forward(h(), s.static),
                lambda s=s, h=hand_args, ct=ct: layer.vjp(h(), s.static)[1](ct.copy()),
                ct, judges, seed, budget, arguments, run_with)
        except ValueError as exc:
            return None, f"first wrong step not analysed: {exc}"
        except Exception as exc:  # the user's code under re-compilation: never crash
            why = "first wrong step not analysed: " + _error_text(exc, "your code")
            continue
        if first is not None:
            return first, None
    return None, why


def _model_judges(layer: Layer, s: InputSet, hand_args, ct, results) -> dict:
    """Per argument of a whole model, ``judge(hand) -> Finding``: the check's own verdict
    on this input set (which names the regularization's slips and tie overcounts) when
    ``hand`` is the gradient the model returned there, else None (judged by central
    differences of the loss)."""
    if not results:
        return {}
    try:
        returned = layer.vjp(hand_args(), s.static)[1](np.array(ct, copy=True))
    except Exception:
        return {}
    judges = {}
    for name, r, g in zip(layer.arg_names, results, returned, strict=False):
        if r is None or g is None or r.kind in _NOT_STEPS[1:]:
            continue
        judges[name] = functools.partial(
            _returned_judge, np.asarray(g, np.float64),
            cls.Finding(r.kind, rule=r.rule, scale=r.scale, axes=r.axes, note=r.note))
    return judges


def _returned_judge(returned: np.ndarray, finding: cls.Finding, hand) -> cls.Finding | None:
    hand = np.asarray(hand, np.float64)
    same = hand.shape == returned.shape and np.array_equal(hand, returned)
    return finding if same else None


def _arg_judges(layer: Layer, s: InputSet, args64: tuple, out, ct) -> dict:
    """Per argument name (the layer's, and the user's forward's own parameter names in
    order), ``judge(hand) -> Finding`` against the exact oracle, when the forward matches
    the reference on this input set."""
    if layer.reference is None:
        return {}
    ref_out, exact = forward_and_vjp(bind(layer.reference.forward, s.static), args64, ct)
    if exact is None or rel_error(out, ref_out) > FORWARD_TOL["float64"]:
        return {}
    alternates = ([] if layer.reference.alternates is None
                  else layer.reference.alternates(args64, s.static, ct))
    kinks = layer.reference.kinks(s) if layer.reference.kinks else None
    params = []
    try:
        fn = getattr(layer.sources[0], "__func__", layer.sources[0])
        params = [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
    except (TypeError, ValueError):
        pass
    judges = {}
    for i, name in enumerate(layer.arg_names):
        tol = (RECOVERED_TOL if name in layer.recovered else EXACT_TOL)["float64"]
        mask = kinks.mask[i] if kinks is not None and i < len(kinks.mask) else None

        def judge(hand, i=i, tol=tol, mask=mask):
            if hand.shape != np.shape(exact[i]):
                return None
            return classify_gradient(layer, args64, s.static, ct, i, hand, exact[i],
                                     alternates, tol, mask, None, exact)
        judges[name] = judge
        if i < len(params) and layer.style != "blog":
            judges.setdefault(params[i], judge)
    return judges


__all__ = ["Check", "Entry", "LayerReport", "SetResult", "check_layer"]
