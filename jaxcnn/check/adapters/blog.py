"""Blog / report style: NumPy classes with ``forward`` and ``backprop`` and state inside.

The style of the report and of the blog it follows (``jaxcnn/reference.py``)::

    class Conv3x3:                      # attribute `filters` (F, 3, 3)
        def forward(self, input): ...   # caches what backprop needs on self
        def backprop(self, d_L_d_out, learn_rate):
            ...                         # updates self.filters IN PLACE
            return None                 # the first layer may return no input gradient
    class MaxPool2:
        def backprop(self, d_L_d_out): ...  # returns dL/dinput
    class Softmax:                      # attributes `weights` (D, C), `biases` (C,)
        def forward(self, input): ...   # flattens input, returns probabilities
        def backprop(self, d_L_d_out, learn_rate): ...  # returns dL/dinput

How the engine sees it (``from_blog``):

* the parameters are the float array attributes found on the constructed object
  (``filters``, ``weights``, ``biases``, or any other name) that its forward depends on
  (gradient or momentum buffers and scratch arrays are not), set to each input's values
  in the object's own dtype (a float32 layer runs in float32, and the inputs, the
  reference and a chain see its parameters rounded to float32 too); their gradients are
  recovered from the in-place update on a copy, ``(before - after) / learn_rate``, with
  ``learn_rate = 0.5`` (a power of two: the division is exact), in the parameter's
  dtype (a float32 parameter's update has float32 precision, and float32 tolerances);
* a second backprop at ``learn_rate = 0.125`` must give the same input gradient and the
  same recovered gradients: otherwise dL/dinput was computed with parameters already
  updated (``update-before-use``), or the update is not ``param -= learn_rate * grad``;
* a Softmax's ``backprop`` receives what the report's step (1) gives it: dL/dp with one
  non-zero entry, ``-1/p_c`` at the label;
* the reference semantics are jaxcnn's own layers (``model.conv3x3``,
  ``model.maxpool2``, dense + softmax), and finite differences of your own forward.

Every call works on deep copies: the object you pass is never modified.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np

from jaxcnn.check.catalogue import Spec, spec
from jaxcnn.check.layer import InputSet, Layer

LEARN_RATE = 0.5
SECOND_LEARN_RATE = 0.125
_CACHE_PREFIXES = ("last", "cache", "_")


def parameters(obj) -> dict[str, np.ndarray]:
    """The float ndarray attributes of ``obj`` that are parameters (not caches)."""
    return {k: v for k, v in vars(obj).items()
            if isinstance(v, np.ndarray) and v.dtype.kind == "f"
            and not k.startswith(_CACHE_PREFIXES)}


def _used_by_forward(obj, params: dict[str, np.ndarray], s: Spec) -> dict[str, np.ndarray]:
    """The ``params`` whose values the forward depends on, on the spec's first input:
    gradient buffers (``self.d_weights``), momentum buffers and scratch arrays set in the
    constructor are not parameters. An attribute whose change makes the forward fail is
    kept (it is used); when the forward fails as it is, all are kept."""
    x = s.input_sets(0)[0].args[0]

    def run(o):
        return np.asarray(o.forward(np.array(x, copy=True)), np.float64)

    try:
        base = run(copy.deepcopy(obj))
    except Exception:
        return params
    rng = np.random.default_rng(0)
    used = {}
    for name, value in params.items():
        o = copy.deepcopy(obj)
        bump = (1.0 + float(np.max(np.abs(value), initial=0.0))) * rng.standard_normal(
            value.shape)
        setattr(o, name, (value + 0.1 * bump).astype(value.dtype))
        try:
            out = run(o)
        except Exception:
            used[name] = value
            continue
        if out.shape != base.shape or not np.array_equal(out, base, equal_nan=True):
            used[name] = value
    return used


def _slots(kind: str, params: dict[str, np.ndarray], s: Spec) -> list[str]:
    """The user's attribute name for each parameter argument of the spec, by shape.

    Raises ValueError when the kind's parameters are not all there, or when the object
    has a parameter the kind has no place for (it would go unchecked)."""
    wanted = s.arg_names[1:]
    two_d = [k for k, v in params.items() if v.ndim == 2]
    one_d = [k for k, v in params.items() if v.ndim == 1]
    if kind in ("conv3x3", "conv3x3_bias"):
        names = [k for k, v in params.items() if v.ndim == 3 and v.shape[1:] == (3, 3)][:1]
        if kind == "conv3x3_bias":
            names += [k for k in one_d if names and params[k].shape[0] ==
                      params[names[0]].shape[0]][:1]
    elif kind in ("dense_softmax", "dense"):
        names = two_d[:1] + one_d[:1]
    else:
        names = []
    found = ", ".join(f"{k} {v.shape}" for k, v in params.items()) or "none"
    if len(names) != len(wanted):
        need = {"conv3x3": "one (F, 3, 3) array of filters",
                "conv3x3_bias": "(F, 3, 3) filters and (F,) biases",
                "dense_softmax": "a (D, C) weight matrix and a (C,) bias vector",
                "dense": "a (D, C) weight matrix and a (C,) bias vector"}.get(
                    kind, "no parameters")
        raise ValueError(f"expected {need} as attributes; found {found}")
    unchecked = [k for k in params if k not in names]
    if unchecked:
        raise ValueError(f"a {kind} layer has no parameter like {', '.join(unchecked)} "
                         f"(found {found}); it would go unchecked")
    return names


def _in_user_layout(s: Spec, shapes: list[tuple]) -> Spec:
    """``s`` with each 2-d parameter the user stores transposed (PyTorch's (out, in)
    weight against the report's (in, out)) transposed in the inputs and back inside the
    reference, so that gradients and worst entries are in the user's own layout."""
    first = s.input_sets(0)[0]
    flip = [len(shape) == 2 and tuple(shape) != np.shape(a) and tuple(shape) ==
            np.shape(a)[::-1] for shape, a in zip(shapes, first.args[1:], strict=False)]
    if not any(flip):
        return s
    flip = [False, *flip]

    def swap(args):
        return tuple(np.swapaxes(a, 0, 1) if f else a for a, f in zip(args, flip, strict=True))

    def forward(args, static):
        return s.reference.forward(tuple(a.T if f else a for a, f in zip(args, flip,
                                                                         strict=True)), static)

    def input_sets(seed):
        return [i._replace(args=swap(i.args)) for i in s.input_sets(seed)]

    axis_names = dict(s.axis_names)
    for name, f in zip(s.arg_names, flip, strict=True):
        if f and axis_names.get(name):
            axis_names[name] = tuple(reversed(axis_names[name]))
    return s._replace(reference=s.reference._replace(
        name=s.reference.name + " (weights stored transposed)", forward=forward,
        alternates=None, subgradient=None), input_sets=input_sets, axis_names=axis_names)


def _backprop_takes_learn_rate(obj) -> bool:
    params = [p for p in inspect.signature(obj.backprop).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(params) >= 2


def softmax_cotangent(out: np.ndarray, s: InputSet, rng) -> np.ndarray:
    """The report's step (1): dL/dp is -1/p_c at the label c, zero elsewhere. (A random
    cotangent when ``out`` is not a probability vector, or p_c is 0.)"""
    c = s.label if s.label is not None else int(rng.integers(out.shape[-1]))
    probabilities = (out.ndim == 1 and np.all(out >= 0) and abs(float(out.sum()) - 1) < 1e-6)
    if not probabilities or out[c] == 0:
        return rng.standard_normal(out.shape)
    ct = np.zeros(out.shape)
    ct[c] = -1.0 / out[c]
    return ct


def from_blog(obj, kind: str, name: str | None = None, file: str | None = None) -> Layer:
    """A ``Layer`` for a constructed blog-style object (see the module docstring).

    kind: "conv3x3", "maxpool2", "dense_softmax" or an elementwise kind ("relu", ...).
    Raises ValueError when the object's parameters do not fit the kind.
    """
    s = spec(kind)
    params = parameters(obj)
    if len(params) > len(s.arg_names) - 1:  # more float arrays than the kind has parameters
        params = _used_by_forward(obj, params, s)
    slots = _slots(kind, params, s) if len(s.arg_names) > 1 or params else []
    s = _in_user_layout(s, [params[k].shape for k in slots])
    arg_names = ("input", *slots)  # the blog's layers all call their argument `input`
    takes_lr = _backprop_takes_learn_rate(obj)
    name = name or type(obj).__name__
    template = copy.deepcopy(obj)

    dtypes = [params[attr].dtype for attr in slots]

    def fresh(args):
        """A copy of the object holding ``args``' parameters, in the dtype the object
        keeps them in (a float32 layer stays float32, and gets float32 tolerances)."""
        layer = copy.deepcopy(template)
        for attr, value, dtype in zip(slots, args[1:], dtypes, strict=True):
            setattr(layer, attr, np.array(value, dtype=dtype, copy=True))
        return layer

    def held(args):
        """``args`` with each parameter rounded to the dtype the object keeps it in: the
        values a float32 layer really computes with, which the reference must see too
        (else a float32 layer fed float64 activations differs from it by the rounding of
        its weights, ~1e-8, and loses its exact oracle)."""
        return (args[0], *(np.asarray(np.asarray(a, dtype=d), dtype=np.float64)
                           for a, d in zip(args[1:], dtypes, strict=True)))

    narrow = any(np.dtype(d).itemsize < 8 for d in dtypes)
    input_sets = s.input_sets
    if narrow:
        def input_sets(seed):
            return [i._replace(args=held(i.args)) for i in s.input_sets(seed)]

    def forward(args, static):
        return fresh(args).forward(np.array(args[0], copy=True))

    def run_backprop(layer, ct, learn_rate, copy_ct=True):
        before = [np.array(getattr(layer, attr), dtype=np.float64, copy=True) for attr in slots]
        ct = np.array(ct, copy=True) if copy_ct else ct
        d_input = layer.backprop(ct, learn_rate) if takes_lr else layer.backprop(ct)
        # A gradient recovered from a float32 parameter's update has float32's precision:
        # returned in that dtype, it gets float32's tolerance.
        grads = [((b - np.asarray(getattr(layer, attr), dtype=np.float64)) / learn_rate)
                 .astype(np.float32 if d == np.float32 else np.float64)
                 for b, attr, d in zip(before, slots, dtypes, strict=True)]
        return (d_input, *grads)

    def vjp(args, static):
        layer = fresh(args)
        out = layer.forward(np.array(args[0], copy=True))
        return out, lambda ct: run_backprop(copy.deepcopy(layer), ct, LEARN_RATE)

    def extra(args, static, ct):
        if not takes_lr:
            return []
        layer = fresh(args)
        layer.forward(np.array(args[0], copy=True))
        first = run_backprop(copy.deepcopy(layer), ct, LEARN_RATE)
        second = run_backprop(copy.deepcopy(layer), ct, SECOND_LEARN_RATE)
        findings = []
        if _differ(first[0], second[0]):
            findings.append((arg_names[0], "update-before-use",
                             f"dL/d{arg_names[0]} changes with the learn rate ({LEARN_RATE} vs "
                             f"{SECOND_LEARN_RATE}): it is computed with parameters already "
                             "updated in this step; compute it before the update"))
        for attr, g1, g2 in zip(slots, first[1:], second[1:], strict=True):
            if _differ(g1, g2):
                findings.append((attr, "update-rule",
                                 f"{attr} does not change by learn_rate x gradient: the "
                                 f"recovered gradient at learn rate {LEARN_RATE} and "
                                 f"{SECOND_LEARN_RATE} differ (is learn_rate applied "
                                 "once, to this gradient?)"))
        return findings

    def raw(args, static):
        """One object across calls: each backprop starts from ``args``' parameters (an
        update is undone), nothing else is reset (a cache, a gradient buffer)."""
        layer = fresh(args)
        out = layer.forward(args[0])

        def backward(ct):
            for attr, value, dtype in zip(slots, args[1:], dtypes, strict=True):
                setattr(layer, attr, np.array(value, dtype=dtype, copy=True))
            return run_backprop(layer, ct, LEARN_RATE, copy_ct=False)

        return out, backward

    axis_names = {n: s.axis_names.get(n) for n in (*s.arg_names, "out")}
    axis_names["input"] = s.axis_names.get(s.arg_names[0])
    axis_names.update({attr: s.axis_names.get(std) for attr, std in
                       zip(slots, s.arg_names[1:], strict=True)})

    return Layer(name, kind, "blog", arg_names, forward, vjp, s.reference, input_sets,
                 axis_names=axis_names,
                 cotangent=softmax_cotangent if kind == "dense_softmax" else None,
                 optional=frozenset({arg_names[0]}) if kind.startswith("conv3x3")
                 else frozenset(),
                 recovered=frozenset(slots), extra=extra, file=file,
                 held=held if narrow else None, raw=raw,
                 sources=(type(obj).forward, type(obj).backprop))


def _differ(a, b) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return True
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False  # non-finite values are reported by the main check
    denominator = max(float(np.max(np.abs(a), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / denominator > 1e-6


__all__ = ["from_blog", "parameters", "softmax_cotangent"]
