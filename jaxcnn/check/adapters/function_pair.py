"""Function pairs the catalogue has no reference for, checked against the numeric oracle.

A layer jaxcnn does not know (a batch norm, a leaky ReLU, an SVM loss, a custom JAX
activation) is not skipped for its name: it is run on inputs built from its signature
(``probe.argument_candidates``: float arrays by role, config dicts, labels and numbers
static) and its gradients are compared with central differences of its own forward::

    from_function_pair(forward, backward)   # forward(*args) -> (out, cache),
                                            # backward(dout, cache) -> grads (one per array)
    from_loss_function(loss)                # loss(x, y) -> (value, dx)
    from_probed_custom_vjp(f)               # a jax.custom_vjp: autodiff of f.fun is exact

Differentiable: the float arrays (``x``, ``w``, ``b``, ``gamma``, ``beta``, ...); static:
config dicts (``bn_param``, ``conv_param``), labels (an int array), numbers (a slope),
strings (a mode). The first layout of ``probe.ARG_LAYOUTS`` the forward runs on (with a
finite output) is used, on two random input sets.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from jaxcnn.check.adapters import probe
from jaxcnn.check.layer import InputSet, Layer


def _names(fn) -> list[str]:
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty]


def _interleave(args, static, mask, own: bool = False):
    """The call's arguments in the signature's order: copies of ``args``, or (``own``)
    the arrays themselves (``Layer.raw``)."""
    a, s = iter(args), iter(static)
    return [next(s) if m else next(a) if own else np.array(next(a), copy=True) for m in mask]


def _static_names(names, mask) -> tuple:
    return tuple(n for n, m in zip(names, mask, strict=False) if m)


def _pick(fn, names, first_output: bool, backward: Callable | None = None):
    """(layout, diff names, values, mask) of the first candidate ``fn`` runs on (and
    ``backward(dout, cache)`` too, when given: else the first ``fn`` runs on)."""
    why, forward_only = "", None
    for what, diff, values, mask in probe.argument_candidates(names):
        if not diff:
            continue

        def run(values=values):
            out = fn(*[np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                       for v in values])
            return out[0] if first_output and isinstance(out, (tuple, list)) else out
        ok, why_here = probe.runs(run)
        if ok and backward is not None:
            forward_only = forward_only or (what, diff, values, mask)

            def back(values=values):
                out, cache = fn(*[np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                                  for v in values])
                backward(np.ones(np.shape(out)), cache)
                return 0.0
            ok, why_here = probe.runs(back)
        if ok:
            return what, diff, values, mask
        why = why or why_here
    if forward_only is not None:
        return forward_only  # the backward's error is then reported
    raise ValueError(f"its forward runs on none of the inputs tried (arguments "
                     f"{', '.join(names)}: {', '.join(w for w, *_ in probe.ARG_LAYOUTS[:3])}, "
                     f"...): {why}; check it from Python with your own inputs: "
                     "jaxcnn.check.from_jax_pair / from_custom_vjp(..., inputs=[...]) for JAX, "
                     "a Layer with input_sets otherwise")


def _sets(names_diff, values, mask, what):
    shapes = [np.shape(v) for v, m in zip(values, mask, strict=True) if not m]
    static = tuple(v for v, m in zip(values, mask, strict=True) if m)

    def input_sets(seed):
        sets = []
        for k in range(2):
            r = np.random.default_rng(seed * 1000 + k)
            args = tuple(1.0 + 0.5 * r.standard_normal(s) if n in ("gamma", "scale")
                         else probe.random_like(r, s) for n, s in zip(names_diff, shapes,
                                                                      strict=True))
            text = "random " + ", ".join(f"{n} {s}" for n, s in zip(names_diff, shapes,
                                                                     strict=True))
            if len(shapes) > 1:
                text += f" ({what})"
            sets.append(InputSet("random", text, args, static))
        return sets
    return input_sets


def from_function_pair(forward: Callable, backward: Callable, name: str | None = None,
                       file: str | None = None, style: str = "cs231n") -> Layer:
    """``forward(*args) -> (out, cache)``, ``backward(dout, cache) -> grads``, checked
    numerically. ValueError when no input tried runs."""
    names = _names(forward)
    what, diff, values, mask = _pick(forward, names, True, backward)
    result = forward(*[np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                       for v in values])
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        if not isinstance(result, (tuple, list)):
            raise ValueError(f"it returns a {type(result).__name__}, not (out, cache)")
        raise ValueError(f"it returns {len(result)} values, not (out, cache): a layer with "
                         "several outputs (an LSTM step's next_h, next_c) is not checked this "
                         "way yet")

    def fwd(args, static):  # a dropout mask drawn with np.random: alike in every call
        with probe.seeded():
            out = forward(*_interleave(args, static, mask))
        return out[0] if isinstance(out, (tuple, list)) else out

    def vjp(args, static, own=False):
        with probe.seeded():
            out, cache = forward(*_interleave(args, static, mask, own))
        return out, lambda ct: backward(ct if own else np.array(ct, copy=True), cache)

    layer = Layer(name or forward.__name__, "custom", style, tuple(diff), fwd, vjp, None,
                  _sets(diff, values, mask, what), file=file, sources=(forward, backward),
                  raw=lambda args, static: vjp(args, static, own=True),
                  static_names=_static_names(names, mask))
    if "pool" in layer.name.lower():
        return _as_max_pool(layer)
    return _as_conv(layer) if "conv" in layer.name.lower() else layer


# (stride, padding) a conv pair taking them as keywords may run with
CONV_SETTINGS = ((1, 0), (1, 1), (2, 0), (2, 1), (1, 2), (2, 2))


def _as_conv(layer: Layer) -> Layer:
    """A conv of ``(x, w, b)`` arrays with no settings passed (its stride and padding are
    keyword defaults: ``conv_forward(X, W, b, stride=1, padding=0)``) whose forward is the
    catalogue's NCHW / OIHW cross-correlation at one of ``CONV_SETTINGS`` gets that
    exact oracle and its named mistakes (overlapping windows that overwrite, the stride
    left out: ``wrong-window``), on its own inputs; else ``layer``."""
    from jaxcnn.check.adapters.module_catalogue import forward_agrees
    from jaxcnn.check.catalogue import spec
    from jaxcnn.check.layer import Reference

    if len(layer.arg_names) != 3 or layer.static_names:
        return layer
    try:
        first = layer.input_sets(0)[0]
    except Exception:
        return layer
    if [np.ndim(a) for a in first.args] != [4, 4, 1]:
        return layer
    base = spec("conv").reference
    for stride, pad in CONV_SETTINGS:
        setting = ({"stride": stride, "pad": pad},)
        reference = Reference(
            f"{base.name} (stride {stride}, padding {pad})",
            lambda args, static, setting=setting: base.forward(args, setting),
            lambda args, static, ct, setting=setting: base.alternates(args, setting, ct))
        with probe.seeded():
            agreed = forward_agrees(reference, layer.forward, first)
        if agreed == "forward":
            return layer._replace(kind="conv", reference=reference, notes=(
                *layer.notes, f"its forward is the catalogue's conv at stride {stride}, "
                              f"padding {pad}: checked against it"))
    return layer


def _as_max_pool(layer: Layer) -> Layer:
    """A pool of one array and no settings whose forward is one of the catalogue's max
    pools (NCHW, NHWC, (H, W, C) or one (C, H, W) image; 2x2 stride 2 and the other
    settings of ``module_catalogue.find_max_pool``) gets its exact oracle and inputs, so
    the tie rule is checked too (finite
    differences leave tied maxima out as kinks: an ``==`` mask passed them). Otherwise
    ``layer``, with a note that the tie rule is not checked."""
    from jaxcnn.check.adapters import module_catalogue

    if len(layer.arg_names) == 1 and not layer.static_names:
        known = module_catalogue.find_max_pool(lambda x: layer.forward((x,), ()))
        if known is not None:
            return layer._replace(kind=known.kind, reference=known.reference,
                                  input_sets=known.input_sets,
                                  notes=(*layer.notes, known.note))
    return layer._replace(notes=(*layer.notes, (
        "a pool checked against finite differences only: tied maxima are kinks, left out, "
        "so a max pool's tie rule (an `==` mask gives every tied maximum the full "
        "gradient) is not checked here; a max pool of one (N, C, H, W), (N, H, W, C), "
        "(C, H, W) or (H, W, C) array (2x2 stride 2, 2x2 stride 1, 3x3 stride 2), or "
        "CS231n's max_pool_forward_naive(x, pool_param), is checked against the exact "
        "oracle, ties included")))


def from_loss_function(loss: Callable, name: str | None = None, file: str | None = None
                       ) -> Layer:
    """``loss(x, y) -> (value, dx)``, checked numerically (``dx`` times the cotangent)."""
    names = _names(loss)
    what, diff, values, mask = _pick(loss, names, True)
    if len(diff) != 1:
        raise ValueError(f"a loss returning (value, dx) has one array argument; "
                         f"{', '.join(diff)} look like arrays")

    def fwd(args, static):
        return np.asarray(loss(*_interleave(args, static, mask))[0])

    def vjp(args, static, own=False):
        value, dx = loss(*_interleave(args, static, mask, own))
        return value, lambda ct: (None if dx is None else np.asarray(ct) * np.asarray(dx),)

    return Layer(name or loss.__name__, "loss", "cs231n", tuple(diff), fwd, vjp, None,
                 _sets(diff, values, mask, what), file=file, sources=(loss, loss),
                 raw=lambda args, static: vjp(args, static, own=True),
                 static_names=_static_names(names, mask))


def probed_inputs(f: Callable) -> tuple[tuple[str, ...], list[tuple], tuple, Callable]:
    """(arg_names, [args], static, input_sets) for a JAX function: static arguments (labels,
    numbers) must come last, as ``custom_vjp``'s ``nondiff_argnums`` convention has it.
    Only the arguments the signature requires are given (never invented ones)."""
    import jax

    names = _names(f)
    with jax.enable_x64(True):
        what, diff, values, mask = _pick(lambda *a: jax.numpy.asarray(f(*a)), names, False)
    if any(m and not all(mask[i:]) for i, m in enumerate(mask)):
        raise ValueError("a static argument (a label, a number) before an array one: give "
                         "the inputs from Python (from_custom_vjp(..., inputs=..., static=...))")
    args = tuple(v for v, m in zip(values, mask, strict=True) if not m)
    static = tuple(v for v, m in zip(values, mask, strict=True) if m)
    return tuple(diff), [args], static, _sets(diff, values, mask, what)

__all__ = ["from_function_pair", "from_loss_function", "probed_inputs"]
