"""What ``torch.autograd.gradcheck`` checks besides the gradient's value, and one more.

Run by ``engine.check_layer`` after the gradients are judged (``review``):

* **reentrancy**: a second call of the backward with the same cache and the same upstream
  gradient must give the same answer. A backward that modifies its cache (``x -= ...`` on
  a cached array), or accumulates into a gradient buffer kept on the object
  (``self.dW += ...`` never reset), answers differently, and a training loop's second
  step is wrong: kind ``not-reentrant`` (replacing ``correct``; a gradient already wrong
  keeps its kind and gets a note).
* **inputs left alone**: a forward or backward that writes into the caller's arrays
  (``x -= x.max(axis=1, keepdims=True)`` in a ``softmax_loss``) changes what the caller
  holds, even when the gradient is right: kind ``modifies-input`` on that argument. The
  static arrays count too (labels, a linear loss's or a model's ``X``): a write into one
  is carried by the layer's first row whose values nothing explains (``unclassified``:
  code after the write read the overwritten array), else its first correct row. A
  backward that writes into the upstream gradient (``dout``) is a note only: the usual
  pipelines never read it again.
* **only in float32**: a gradient that fails only on float32 input sets, and is correct
  when the same code runs the same inputs in float64, gets a note saying so (round-off
  or underflow of float32, not a wrong formula).

Reentrancy and inputs use ``Layer.raw`` (the user's code on the arrays themselves: the
arguments, the static arrays, the upstream gradient; one state across calls of the
backward), which every NumPy adapter gives; this module alone compares the arrays before
and after. A layer without it (JAX: its arrays cannot be modified; PyTorch) is not
checked for them.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np

REENTRANT_TOL = 1e-10  # relative difference of two calls allowed (summation order)


def _snapshot(value):
    """A deep copy of what a backward returned (a buffer it mutates later stays as it was)."""
    grads = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    out = []
    for g in grads:
        try:
            out.append(None if g is None else np.array(g, dtype=np.float64, copy=True))
        except (TypeError, ValueError):
            out.append(None)
    return out


def _differ(a, b, tol: float = REENTRANT_TOL) -> float | None:
    """The relative difference of ``a`` and ``b`` when above ``tol`` (inf for another
    shape or None-ness), else None. Non-finite entries in the same places are equal."""
    if a is None or b is None:
        return None if (a is None) == (b is None) else float("inf")
    if a.shape != b.shape:
        return float("inf")
    same_nan = np.isnan(a) & np.isnan(b)
    a, b = np.where(same_nan, 0.0, a), np.where(same_nan, 0.0, b)
    with np.errstate(all="ignore"):
        diff = np.abs(a - b)
    diff = np.where(a == b, 0.0, diff)  # equal infinities
    scale = max(float(np.max(np.abs(np.where(np.isfinite(a), a, 0.0)), initial=0.0)), 1e-300)
    rel = float(np.max(diff, initial=0.0)) / scale
    return rel if rel > tol or not np.isfinite(rel) else None


def _changed(before: np.ndarray, after) -> bool:
    after = np.asarray(after)
    if after.shape != before.shape:
        return True
    return not np.array_equal(before, after, equal_nan=True)


def _first_run_set(layer, report, seed: int):
    errors = {f["inputs"] for f in report.forward if f.get("error")}
    for s in layer.input_sets(seed):
        if s.dtype == "float64" and s.name not in errors:
            return s
    return None


def _static_arrays(layer, static) -> list[tuple[int, str]]:
    """(position, name) of the top-level arrays among ``static`` (labels, a linear loss's
    ``X``): the user's code receives them as the caller's. A config dict (``bn_param``,
    whose running averages a forward updates in place by design) is not one."""
    names = tuple(getattr(layer, "static_names", ()) or ())
    return [(i, names[i] if i < len(names) else f"static argument {i + 1}")
            for i, v in enumerate(static) if isinstance(v, np.ndarray)]


def _written(names, static_at, before_args, args, before_static, static) -> list[str]:
    """The names of the arrays (arguments, then static arrays) that differ from before."""
    out = [n for n, b, a in zip(names, before_args, args, strict=True) if _changed(b, a)]
    out += [n for i, n in static_at if _changed(np.asarray(before_static[i]), static[i])]
    return out


def _what(layer, name: str) -> str:
    """How a message names the array ``name`` a layer was given: ``its argument x``; for
    a whole function, whose parameters are not its arguments, ``the global Wxh`` (a
    module-level function) or ``the attribute self.Wxh`` (a method, Nielsen's lists)."""
    if layer.style != "whole" or name in layer.static_names:
        return f"its argument {name}"
    fn = layer.sources[0] if layer.sources else None
    try:
        first = next(iter(inspect.signature(fn).parameters), None) if fn else "self"
    except (TypeError, ValueError):
        first = None
    return f"the attribute self.{name}" if first == "self" else f"the global {name}"


def call_findings(layer, s, seed: int) -> tuple[dict, list[str]]:
    """({argument: (kind, note)}, notes) from calling ``layer.raw`` on ``s``: arrays the
    forward or backward modified in place (the differentiable arguments, the static
    arrays such as labels, the parameters an adapter hands over as they are), gradients
    a second backward changes, and a note for a backward that writes into the upstream
    gradient it is given. Keys are ``layer.arg_names`` and, for static arrays,
    ``layer.static_names``."""
    findings: dict[str, tuple[str, str]] = {}
    notes: list[str] = []
    names = layer.arg_names
    args = tuple(np.array(a, dtype=np.float64, copy=True) for a in s.args)
    pristine = tuple(a.copy() for a in args)
    static = tuple(copy.deepcopy(tuple(s.static)))
    static_at = _static_arrays(layer, static)
    static_pristine = copy.deepcopy(static)
    try:
        with np.errstate(all="ignore"):
            out, backward = layer.raw(args, static)
            out = np.array(out, dtype=np.float64, copy=True)
    except Exception:  # the main check reports the user's errors
        return findings, notes
    who = "your loss" if np.ndim(out) == 0 else "your forward"  # a loss: one function
    for name in _written(names, static_at, pristine, args, static_pristine, static):
        what = _what(layer, name)
        findings[name] = ("modifies-input", f"{who} writes into {what} (on {s.name}): " + (
            "the caller's array changes; compute into a new array "
            f"({name} = {name} - m, not {name} -= m; np.sort({name}), not {name}.sort(); "
            f"np.where(...), not {name}[mask] = 0)" if what.startswith("its argument") else
            "the parameter changes while its gradient is computed; a function that returns "
            "gradients leaves its parameters as they were (an update belongs to the "
            "training loop that calls it)"))
    after_forward = tuple(a.copy() for a in args)
    static_after = copy.deepcopy(static)
    rng = np.random.default_rng([seed, 17])
    ct = (np.asarray(layer.cotangent(out, s, rng), np.float64) if layer.cotangent is not None
          else rng.standard_normal(out.shape))
    given = ct.copy()
    try:
        with np.errstate(all="ignore"):
            first = _snapshot(backward(given))
            if _changed(ct, given):
                notes.append(f"{s.name}: your backward writes into the upstream gradient "
                             "(dout) it is given; harmless in a plain chain, wrong where dout "
                             "is used again (a residual connection)")
            for name in _written(names, static_at, after_forward, args, static_after,
                                 static):
                findings.setdefault(name, (
                    "modifies-input", f"your backward writes into the forward's argument "
                    f"{name} (through its cache, or as it is given; on {s.name}): the "
                    "caller's array changes"))
            second = _snapshot(backward(ct.copy()))
    except Exception as exc:
        notes.append(f"{s.name}: a second call of your backward with the same cache raised "
                     f"{type(exc).__name__}: {exc}")
        for name in names:
            findings.setdefault(name, ("not-reentrant", "a second call of the backward with "
                                       "the same cache raised; it must be callable again"))
        return findings, notes
    for i, name in enumerate(names):
        a = first[i] if i < len(first) else None
        b = second[i] if i < len(second) else None
        rel = _differ(a, b)
        if rel is not None and name not in findings:
            how = "" if not np.isfinite(rel) else f" (max rel difference {rel:.2g})"
            findings[name] = ("not-reentrant", f"a second call of the backward with the same "
                              f"cache and dout gives another dL/d{name}{how}, on {s.name}: it "
                              "modifies its cache or accumulates into a buffer across calls "
                              "(a `+=` into an array kept on the object, never reset), so a "
                              "training loop's second step is wrong")
    return findings, notes


def _only_float32(layer, report, seed: int, check_set) -> None:
    """Note the gradients that fail only on float32 sets and pass those sets in float64
    (``check_set(input_set, rng) -> per-argument results``, the engine's exact check)."""
    sets = {s.name: s for s in layer.input_sets(seed)}
    for c in report.checks:
        if c.ok:
            continue
        failing = [r for r in c.inputs if r.kind != "correct"]
        if not failing or not all(sets.get(r.inputs) is not None
                                  and sets[r.inputs].dtype == "float32" for r in failing):
            continue
        try:
            with np.errstate(all="ignore"):
                again = [check_set(sets[r.inputs]._replace(dtype="float64"),
                                   np.random.default_rng(seed)) for r in failing]
        except Exception:
            continue
        i = layer.arg_names.index(c.quantity)
        if all(res[i] is not None and res[i].kind == "correct" for res in again):
            c.note = ("only in float32: the same code on the same inputs in float64 is "
                      "correct (float32 round-off or underflow, not a wrong formula); "
                      + c.note)


def review(layer, report, seed: int, check_set) -> None:
    """Apply the checks of the module docstring to ``report`` (in place).
    ``check_set(input_set, rng)``: the engine's per-argument results for one input set,
    to run a float32 set again in float64."""
    import jax

    with jax.enable_x64(True):
        _only_float32(layer, report, seed, check_set)
    if layer.raw is None:
        return
    s = _first_run_set(layer, report, seed)
    if s is None:
        return
    findings, notes = call_findings(layer, s, seed)
    report.notes.extend(notes)
    checked = [c.quantity for c in report.checks]
    # a write into an array that is not a checked gradient's (labels, a model's X) is
    # the layer's: one row carries it, so that the verdict (and the exit code) does: the
    # first whose values nothing explains, else the first correct one
    rows = sorted((c for c in report.checks),
                  key=lambda c: (c.kind != "unclassified", not c.ok))
    target = next((c.quantity for c in rows if c.quantity not in findings), None)
    carried = []
    for name, (kind, note) in findings.items():
        if name in checked:
            continue
        if kind == "modifies-input" and target is not None:
            carried.append(note)
        else:
            report.notes.append(f"{name}: {kind}: {note}")
    if carried:
        findings[target] = ("modifies-input", "; ".join(carried))
    for c in report.checks:
        if c.quantity not in findings:
            continue
        kind, note = findings[c.quantity]
        if c.ok:  # the values agree: no worst entries to show
            c.kind, c.rule, c.worst = kind, None, []
            c.note = f"the gradient's values are correct, but {note}"
        elif kind == "modifies-input" and c.kind == "unclassified":
            # nothing else explains the values; the write is the one mistake found, and
            # the likely cause (a line after it reads the overwritten array)
            c.kind, c.rule = kind, None
            c.note = (f"{note}; the gradient's values are wrong too, most likely because "
                      f"code after the write reads the overwritten array ({c.note})")
        else:
            c.note = f"{c.note}; also: {note}"


__all__ = ["call_findings", "review"]
