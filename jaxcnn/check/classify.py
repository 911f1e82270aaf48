"""Name the kind of a gradient error: a chain of small detectors, first match wins.

``classify(hand, reference, context)`` runs ``DETECTORS`` in order, like optax's
``chain`` runs transformations: each detector looks at the hand gradient, the exact
reference and the context (tolerance, alternates, kinks) and either returns a
``Finding`` or passes. The vocabulary (``KINDS``) is the one ``jaxcnn check --json``
prints:

correct               equal to the reference, or to another valid subgradient at ties
                      (max-pool "first"/"split"/"last", ReLU's 0/1/1/2 at 0); ``rule``
                      says which
tie-overcount         k tied maxima each got the full gradient (the report's rule)
imprecise             the right gradient up to rounding: every entry within 0.1% of the
                      reference's, but not within the tolerance (a float16 cast, float32
                      arithmetic in a float64 check, an epsilon added)
scaled                hand = alpha * reference; ``scale`` is alpha (1/N: a mean where a
                      sum belongs)
sign-flipped          hand = -reference
transposed            the right values with axes swapped or permuted, or flattened /
                      reshaped in another order; ``axes`` says which (a max-pool's: the
                      maximum's position in its window with row and column exchanged)
flipped               the right values reversed along some axes (a flipped kernel)
missing-accumulation  a sum over positions kept one term (``=`` where ``+=`` belongs)
off-by-one            the first or last position along an axis never contributes
wrong-window          the backward indexes other windows than the forward (stride left out)
wrong-derivative      a known wrong formula for this layer (ReLU without its mask, sigmoid'
                      at the input, softmax without its diagonal, an average pool's, ...)
cotangent-dropped     the upstream gradient (dout) was never multiplied in
wrong-wiring          (a CS231n sandwich such as ``conv_relu_pool``) the parts are chained
                      wrongly: a part's backward left out, or fed dout where the cotangent
                      of its own output belongs
wrong-argument        the gradient of another argument (returned in another order than
                      the arguments, or the wrong variable returned)
zero                  all zeros where the reference is not
wrong-shape           another shape than the argument's
missing               no gradient returned for an argument that has one
non-finite            NaN or inf where the reference is finite
update-before-use     (blog style) dL/dinput computed with parameters already updated
update-rule           (blog style) the update is not ``param -= learn_rate * grad``
stale-gradient        (module style) the grads list or dict an optimizer reads still holds
                      the old array: the backward rebound ``self.dW = ...`` instead
error                 the user's backward raised (or no input could be run at all)
inconclusive          no exact oracle (the forward differs from the reference) and finite
                      differences too noisy to confirm the gradient (a float32 forward)
unclassified          none of the above: look at the worst entries and the hint
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from jaxcnn.check.compare import rel_error, scale

KINDS = ("correct", "tie-overcount", "imprecise", "scaled", "sign-flipped", "transposed", "flipped",
         "missing-accumulation", "off-by-one", "wrong-window", "cotangent-dropped", "wrong-wiring",
         "wrong-derivative", "wrong-argument", "zero", "wrong-shape", "missing", "non-finite",
         "update-before-use", "update-rule", "stale-gradient", "not-reentrant", "modifies-input",
         "clipped", "wrong-order",
         "error", "inconclusive", "unclassified")


class Candidate(NamedTuple):
    """An array the hand gradient may equal, and what a match means."""

    name: str
    value: np.ndarray
    valid: bool
    kind: str
    note: str


class Context(NamedTuple):
    """What the detectors know besides the two arrays.

    tol: relative tolerance, against max |reference|
    candidates: alternates for this argument (valid subgradients and known bugs)
    lazy: ``() -> list[Candidate]``, costlier candidates built only when needed
    kink_mask: bool, True at entries on a kink (ties, zeros), or None
    axis_names: names of the argument's axes, or None
    subgradient: ``(hand) -> str | None``, names the rule when ``hand`` is some other
        valid subgradient at the kinks (see ``layer.Reference.subgradient``)
    others: ``(name, reference gradient)`` of the layer's other arguments, and
        ``order``, the arguments' names in order (for ``wrong_argument``)
    """

    tol: float
    candidates: tuple = ()
    lazy: Callable[[], list] | None = None
    kink_mask: np.ndarray | None = None
    axis_names: tuple | None = None
    subgradient: Callable | None = None
    others: tuple = ()
    order: tuple = ()


class Finding(NamedTuple):
    """The verdict on one gradient: its kind and what pins it down.

    against: the array the error measures should use (the matched valid rule, else the
        reference); None when the shapes make a comparison meaningless
    """

    kind: str
    rule: str | None = None
    scale: float | None = None
    axes: tuple | None = None
    note: str = ""
    against: np.ndarray | None = None


def _close(hand: np.ndarray, value: np.ndarray, denominator: float, tol: float) -> bool:
    return hand.shape == value.shape and rel_error(hand, value, denominator) <= tol


# ------------------------------------------------------------------ reorderings

def _axes_text(perm: tuple[int, ...], names: tuple | None) -> str:
    if names and len(names) == len(perm):
        return f"({', '.join(names[p] for p in perm)}) where ({', '.join(names)}) belongs"
    return f"axes {perm}"


def find_reordering(hand: np.ndarray, reference: np.ndarray, tol: float,
                    names: tuple | None = None) -> tuple[tuple, str] | None:
    """The reordering of ``reference`` that ``hand`` equals, as (axes, description).

    Tried, in order: a transpose (same or permuted shape); the flat buffer read in
    another axis order (reshape to a permuted shape, then transpose back); a transpose
    then a reshape (a flatten in another order). Up to 4 axes; None if nothing fits.
    """
    if hand.size != reference.size or hand.size < 2 or reference.ndim > 4 or hand.ndim > 4:
        return None
    denominator = scale(reference)
    identity = tuple(range(reference.ndim))

    def reorders(perm, shape) -> bool:  # moving only size-1 axes keeps the buffer's order
        real = [a for a in perm if shape[a] != 1]
        return real != sorted(real)

    for perm in itertools.permutations(identity):
        if not reorders(perm, reference.shape):
            continue
        moved = reference.transpose(perm)
        if moved.shape == hand.shape and _close(hand, moved, denominator, tol):
            return perm, f"axes permuted: {_axes_text(perm, names)}"
    shapes = {tuple(s) for s in itertools.permutations(reference.shape)} - {reference.shape}
    for shape in sorted(shapes):
        read = reference.reshape(shape)
        for perm in itertools.permutations(range(len(shape))):
            moved = read.transpose(perm)
            if moved.shape == hand.shape and _close(hand, moved, denominator, tol):
                return perm, (f"reshape in the wrong order: the gradient's buffer was read as "
                              f"shape {shape} and transposed by {perm} (a flatten/reshape "
                              "order mismatch between forward and backward)")
    for perm in itertools.permutations(identity):
        if not reorders(perm, reference.shape):
            continue
        moved = reference.transpose(perm).reshape(hand.shape)
        if _close(hand, moved, denominator, tol):
            return perm, (f"flattened in another axis order: {_axes_text(perm, names)}, then "
                          "reshaped (a flatten/reshape order mismatch)")
    return None


def describe_scale(alpha: float) -> tuple[str, str]:
    """(alpha as text, e.g. '1/4', and a hint about where such a factor comes from)."""
    frac = Fraction(alpha).limit_denominator(10000)
    exact = abs(float(frac) - alpha) <= 1e-6 * abs(alpha)
    text = (f"{frac.numerator}/{frac.denominator}" if exact and frac.denominator != 1
            else f"{frac.numerator}" if exact else f"{alpha:.6g}")
    if exact and frac.numerator == 1 and frac.denominator > 1:
        k = frac.denominator  # named by its value: "N" is the batch size in the same note
        hint = (f"{k} times too small: a division by {k} too many (a mean where the "
                f"reference sums, if this gradient sums {k} terms)")
    elif exact and frac.denominator == 1 and abs(frac.numerator) > 1:
        k = abs(frac.numerator)
        hint = (f"{k} times too large: a factor of {k} too many (a sum where the reference "
                f"averages {k} terms, or a term counted {k} times)")
    else:
        hint = "a constant factor: a wrong constant, learning rate or normalisation?"
    return text, hint


# ------------------------------------------------------------------ detectors

def missing(hand, reference, ctx) -> Finding | None:
    if hand is None:
        return Finding("missing", note="the backward pass returned None for this argument")
    return None


def wrong_argument(hand, reference, ctx) -> Finding | None:
    """The hand gradient is not this argument's but another's (``ctx.others``)."""
    if _close(hand, reference, scale(reference), ctx.tol):
        return None
    for name, value in ctx.others:
        if value is not None and scale(value) > 0 and _close(hand, value, scale(value),
                                                             ctx.tol):
            order = f" ({', '.join(ctx.order)})" if ctx.order else ""
            return Finding("wrong-argument", rule=name,
                           note=f"this is the gradient of {name}, another argument: the "
                                f"gradients are returned in another order than the "
                                f"arguments{order}, or the wrong variable is returned",
                           against=None if value.shape != reference.shape else reference)
    return None


def wrong_shape(hand, reference, ctx) -> Finding | None:
    if hand.shape == reference.shape:
        return None
    if hand.size == reference.size and _close(hand.reshape(reference.shape), reference,
                                              scale(reference), ctx.tol):
        return Finding("wrong-shape", note=f"the values are right but the shape is "
                                           f"{hand.shape}; it must be {reference.shape}",
                       against=None)
    found = find_reordering(hand, reference, ctx.tol, ctx.axis_names)
    if found is not None:
        return Finding("transposed", axes=found[0],
                       note=f"shape {hand.shape}, expected {reference.shape}; {found[1]}")
    try:
        broadcast = np.broadcast_shapes(hand.shape, reference.shape)
    except ValueError:
        broadcast = None
    extra = (f"; it broadcasts against {reference.shape} to {broadcast}, silently"
             if broadcast is not None and broadcast != reference.shape else "")
    return Finding("wrong-shape", note=f"shape {hand.shape}, expected {reference.shape}{extra}")


def non_finite(hand, reference, ctx) -> Finding | None:
    bad = ~np.isfinite(hand)
    if not bad.any():
        return None
    nan, inf = int(np.isnan(hand).sum()), int(np.isinf(hand).sum())
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    return Finding("non-finite", note=f"{nan} NaN and {inf} inf entries (first at {where}) "
                                      "where the reference is finite: an overflow, underflow "
                                      "or 0/0 in the hand formulas", against=reference)


def valid_match(hand, reference, ctx) -> Finding | None:
    denominator = scale(reference)
    valid = [("autodiff", reference, "")] + [(c.name, c.value, c.note) for c in ctx.candidates
                                              if c.valid and c.value is not None]
    matched = [(name, value, note) for name, value, note in valid
               if _close(hand, value, denominator, ctx.tol)]
    if not matched:
        return None
    alternates = [name for name, _, _ in valid if name != "autodiff"]
    if not alternates:
        return Finding("correct", against=reference)
    if len(matched) == len(valid):
        return Finding("correct", against=reference,
                       note="no tie or kink decides the rule in this input")
    rules = [m for m in matched if m[0] != "autodiff"]
    if not rules:
        return Finding("correct", rule="autodiff", against=reference)
    return Finding("correct", rule=", ".join(name for name, _, _ in rules), against=rules[0][1],
                   note=f"a valid subgradient at the kinks: {rules[0][2]}")


def other_subgradient(hand, reference, ctx) -> Finding | None:
    if ctx.subgradient is None:
        return None
    rule = ctx.subgradient(hand)
    if rule is None:
        return None
    return Finding("correct", rule=rule, against=None,
                   note="a valid subgradient at the kinks: per tie or zero, a convex "
                        "combination of the one-sided derivatives")


def zero(hand, reference, ctx) -> Finding | None:
    if np.all(hand == 0) and scale(reference) > 0:
        return Finding("zero", note="all entries are 0: the gradient is never written, or it "
                                    "is computed into a variable that is not returned",
                       against=reference)
    return None


def known_bug(hand, reference, ctx) -> Finding | None:
    denominator = scale(reference)
    for c in ctx.candidates:
        if not c.valid and c.value is not None and _close(hand, c.value, denominator, ctx.tol):
            return Finding(c.kind, rule=c.name, note=c.note, against=reference)
    return None


IMPRECISE_REL = 1e-3  # per entry: float16 rounds to 4.9e-4 relative, float32 to 6e-8


def imprecise(hand, reference, ctx) -> Finding | None:
    """Every entry within ``IMPRECISE_REL`` of the reference's own value (plus a floor of
    1e-6 of max |reference| for entries near 0): lost precision, not a wrong formula."""
    if hand.shape != reference.shape or not np.all(np.isfinite(hand)):
        return None
    denominator = scale(reference)
    err = np.abs(hand - reference)
    if denominator == 0 or not np.all(err <= IMPRECISE_REL * (np.abs(reference)
                                                               + 1e-3 * denominator)):
        return None
    worst = float(np.max(err)) / denominator
    return Finding("imprecise", note=f"the right gradient up to rounding: every entry "
                   f"within {IMPRECISE_REL:g} of the reference's, but the max relative error "
                   f"{worst:.2g} exceeds the tolerance {ctx.tol:g}: precision is lost "
                   "somewhere (a float16 cast, float32 arithmetic, an epsilon added)",
                   against=reference)


def scaled(hand, reference, ctx) -> Finding | None:
    denominator = scale(reference)
    bases = [("", reference)] + [(c.name, c.value) for c in ctx.candidates
                                 if c.valid and c.value is not None]
    for name, base in bases:
        norm = float(np.vdot(base, base))
        if norm == 0:
            continue
        alpha = float(np.vdot(hand, base)) / norm
        if alpha == 0 or not _close(hand, alpha * base, abs(alpha) * denominator, ctx.tol):
            continue
        rule_note = f" (of the {name!r} tie rule)" if name else ""
        if abs(alpha + 1) <= max(ctx.tol, 1e-9):
            return Finding("sign-flipped", scale=-1.0, note="hand = -reference" + rule_note
                           + ": a minus sign lost, or a `-=` where `+=` belongs (or an "
                             "ascent step)", against=reference)
        text, hint = describe_scale(alpha)
        return Finding("scaled", scale=alpha, note=f"hand = {text} x reference{rule_note}: "
                                                   f"{hint}", against=reference)
    return None


def find_flip(hand: np.ndarray, reference: np.ndarray, tol: float,
              names: tuple | None = None) -> tuple[tuple, str] | None:
    """The axes along which ``hand`` is ``reference`` reversed (same shape), if any."""
    if hand.shape != reference.shape or reference.ndim > 5:
        return None
    denominator = scale(reference)
    for r in range(1, reference.ndim + 1):
        for axes in itertools.combinations(range(reference.ndim), r):
            if all(reference.shape[a] == 1 for a in axes):
                continue
            if _close(hand, np.flip(reference, axes), denominator, tol):
                text = (", ".join(names[a] for a in axes) if names and len(names) ==
                        reference.ndim else f"axes {axes}")
                return axes, f"reversed along ({text})"
    return None


def flipped(hand, reference, ctx) -> Finding | None:
    found = find_flip(hand, reference, ctx.tol, ctx.axis_names)
    if found is None:
        return None
    return Finding("flipped", axes=found[0], note=found[1] + ": a kernel or window flipped, as "
                   "in a convolution where the forward computes a cross-correlation (or the "
                   "reverse)", against=reference)


def transposed(hand, reference, ctx) -> Finding | None:
    found = find_reordering(hand, reference, ctx.tol, ctx.axis_names)
    if found is None:
        return None
    return Finding("transposed", axes=found[0], note=found[1], against=reference)


def lazy_candidates(hand, reference, ctx) -> Finding | None:
    if ctx.lazy is None:
        return None
    denominator = scale(reference)
    for c in ctx.lazy():
        if c.value is not None and _close(hand, c.value, denominator, ctx.tol):
            return Finding(c.kind, rule=c.name, note=c.note, against=reference)
    return None


def where_it_differs(wrong: np.ndarray, names: tuple | None = None) -> str:
    """A hint from where the wrong entries lie: all at the first or last index of an axis
    (an off-by-one loop bound), or only along some slices."""
    if not wrong.any() or wrong.all():
        return ""
    hints = []
    for axis in range(wrong.ndim):
        if wrong.shape[axis] < 2:
            continue
        hit = np.flatnonzero(np.any(wrong, axis=tuple(a for a in range(wrong.ndim)
                                                      if a != axis)))
        name = names[axis] if names and len(names) == wrong.ndim else f"axis {axis}"
        last = wrong.shape[axis] - 1
        if set(hit) <= {0, last} and len(hit) < wrong.shape[axis]:
            where = "last" if set(hit) == {last} else "first" if set(hit) == {0} else \
                "first and last"
            hints.append(f"all differences are at the {where} index along {name}: an "
                         "off-by-one loop bound or window index?")
    return "; ".join(hints)


def unclassified(hand, reference, ctx) -> Finding:
    denominator = scale(reference)
    wrong = np.abs(hand - reference) > ctx.tol * max(denominator, 1e-300)
    note = f"differs at {int(wrong.sum())} of {wrong.size} entries"
    if ctx.kink_mask is not None and wrong.any():
        at_kinks = int((wrong & ctx.kink_mask).sum())
        note += (f", {at_kinks} of them on kinks (tied maxima / zeros)"
                 if at_kinks else ", none of them on a kink")
    hint = where_it_differs(wrong, ctx.axis_names)
    if hint:
        note += f"; {hint}"
    return Finding("unclassified", note=note + "; see the worst entries", against=reference)


DETECTORS = (missing, wrong_argument, wrong_shape, non_finite, valid_match, other_subgradient,
             zero, known_bug, imprecise, scaled, transposed, flipped, lazy_candidates)


def classify(hand: np.ndarray | None, reference: np.ndarray, ctx: Context,
             detectors=DETECTORS) -> Finding:
    """The first finding of ``detectors`` (in order), else ``unclassified``."""
    for detect in detectors:
        finding = detect(hand, reference, ctx)
        if finding is not None:
            return finding
    return unclassified(hand, reference, ctx)
