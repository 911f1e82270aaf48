"""Whole networks: the report's (image -> loss) and CS231n's sandwiches
(``affine_relu``, ``conv_relu``, ``conv_relu_pool``: the parts' references composed)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import model
from jaxcnn.check import autodiff
from jaxcnn.check.autodiff import as_np, bind, compiled, device_array, vjp, vjps
from jaxcnn.check.catalogue import activations, conv, dense, pool
from jaxcnn.check.catalogue.base import Spec, digits
from jaxcnn.check.catalogue.pool import (
    OVERCOUNT_NOTE,
    TIE_NOTES,
    nchw_windows,
    report_pool_kinks,
    tie_rule_max,
)
from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference


def _network_sets(seed: int, count: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((8, 3, 3)) / 9
    weights = rng.standard_normal((13 * 13 * 8, 10)) / (13 * 13 * 8)
    biases = np.zeros(10)
    sets = []
    for k in range(count):
        label = int(rng.integers(10))
        sets.append(InputSet("random", f"random image {k} (tie-free)",
                             (rng.uniform(-0.5, 0.5, (28, 28)), filters, weights, biases),
                             (label,), label=label))
    images, labels = digits(count)
    for k in range(count):
        sets.append(InputSet("digits", f"MNIST digit {k} (label {labels[k]})",
                             (images[k], filters, weights, biases), (int(labels[k]),),
                             label=int(labels[k])))
    gap = np.zeros(10)
    gap[[0, 1]] = 86.5
    sets.append(InputSet("large-gap", "MNIST digit 0, logit gap 86.5, label 9",
                         (images[0], filters, weights, biases + gap), (9,), label=9,
                         note="confident and wrong"))
    return sets


def _network_kinks(s: InputSet) -> Kinks:
    image, filters = s.args[0], s.args[1]
    conv = as_np(model.conv3x3(device_array(image), device_array(filters)))
    pool = report_pool_kinks(InputSet(s.family, s.name, (conv,),
                                       provenance={"image": image, "filters": filters}))
    return Kinks((None,) * 4, pool.stats, pool.summary)


def report_network_spec(count: int = 2) -> Spec:
    """The whole network, loss of one image: dL/d(image, filters, weights, biases).

    Inputs: ``count`` random images, ``count`` real digits, one confident wrong digit.
    Alternates: autodiff with each tie rule ("first", "split" valid; the report's rule is
    tie-overcount). On real digits the tied pool inputs sit on identical conv patches
    (structural ties), so the filter gradient is unique and every valid rule agrees.
    """
    def loss_with(rule):
        def forward(image, filters, weights, biases, label):
            return model.loss(model.Params(filters, weights, biases), image, label, rule)
        return forward

    def alternates(args, static, cotangent):
        out = []
        for rule, valid, kind, note in (
                ("first", True, "correct", TIE_NOTES["first"]),
                ("report", False, "tie-overcount", OVERCOUNT_NOTE + " (in the max-pool layer)")):
            fun = loss_with(rule)
            out.append(Alternate(rule, vjp(lambda *a, f=fun: f(*a, static[0]), args, cotangent),
                                 valid, kind, note))
        return out

    reference = Reference("jax.grad of jaxcnn.model.loss",
                          lambda args, static: loss_with("split")(*args, static[0]),
                          alternates, _network_kinks)
    return Spec("report_network", ("image", "filters", "weights", "biases"),
                {"image": ("row", "column"), "filters": ("filter", "x", "y"),
                 "weights": ("input", "class"), "biases": ("class",), "out": ()},
                reference, functools.partial(_network_sets, count=count), ("label",))


# ------------------------------------------------------------------ CS231n sandwiches

POOL_2X2 = {"pool_height": 2, "pool_width": 2, "stride": 2}
SANDWICH_PARTS = ("conv", "affine", "relu", "max_pool")
_PARTS = {"conv": conv.conv_spec, "affine": dense.affine_spec, "relu": activations.relu_spec,
          "max_pool": pool.max_pool_spec}
WIRING_NOTE = ("each part's backward may be right on its own, but the sandwich chains them "
               "wrongly: ")


def _sandwich_run(parts: tuple[str, ...], rule: str = "split"):
    """f(args, static) of the parts in order; a max pool with tie rule ``rule``. ``static``
    holds each part's static arguments in order (conv_param, pool_param)."""
    def forward(args, static):
        k, x = 0, None
        for n, part in enumerate(parts):
            if part == "max_pool":
                x = tie_rule_max(nchw_windows(static[k])(x), rule)
                k += 1
            elif part == "conv":
                x = conv.conv_nchw(*args, static[k]) if n == 0 else None
                k += 1
            elif part == "affine":
                x = args[0].reshape(args[0].shape[0], -1) @ args[1] + args[2]
            elif part == "relu":
                x = jnp.maximum(args[0] if n == 0 else x, 0.0)
        return x
    return forward


def _sandwich_skips(parts, args, static, cotangent) -> list[tuple]:
    """For each later part ``skip`` (1, 2, ...): the gradients of the first part when the
    backward of part ``skip`` is left out (the cotangent it receives is passed on
    unchanged): the hand's wiring hands dout, or the wrong intermediate, to the part
    before it. ``()`` where the cotangent's shape is not that part's input's.

    Traced (a function of arrays, ``_skipped``), so that all of them are one compiled
    program (``autodiff.compiled``; eager, it was one program per primitive and shape:
    most of a CS231n convnet file's cold check). Its result is stored by the parts'
    forwards (``_skips_recalled``): a warm run traces no VJP."""
    args = tuple(np.asarray(a, np.float64) for a in args)
    cotangent = np.asarray(cotangent, np.float64)
    key, stored, sizes = _skips_recalled(parts, static, args, cotangent)
    if stored is None:
        grads = compiled(functools.partial(_skipped, parts, static), args, cotangent,
                         stored=key is None)
        autodiff.keep(key, [g for gs in grads for g in gs])
        return [tuple(as_np(g) for g in gs) for gs in grads]
    out = []
    for size in sizes:
        out.append(tuple(as_np(g) for g in stored[:size]))
        stored = stored[size:]
    return out


def _part_funs(parts, static) -> list:
    """The sandwich's parts as functions of arrays, in order: the first of the layer's
    arguments, each later one of the previous part's output (a max pool's rule "first")."""
    k = 0
    funs = []
    for n, part in enumerate(parts):
        if part in ("max_pool", "conv"):
            st, k = static[k], k + 1
        else:
            st = None
        if n == 0:
            funs.append(lambda *a, p=part, st=st: _sandwich_run((p,))(a, (st,) if st else ()))
        else:
            funs.append(lambda v, p=part, st=st: _sandwich_run(("relu",), "split")((v,), ())
                        if p == "relu" else tie_rule_max(nchw_windows(st)(v), "first"))
    return funs


def _skips_recalled(parts, static, args, cotangent) -> tuple:
    """``(key, stored, sizes)``: ``_sandwich_skips``'s result as stored by each part's
    forward at the input it receives (``autodiff.forward_keys``, traced part by part),
    this module's source and the values; ``sizes``: how many gradients each skip gives
    (0 where the cotangent's shape is not that part's input's). ``stored`` is None when
    not stored (``key`` None: the forwards have no key)."""
    funs, keys, inputs = _part_funs(parts, static), [], [args]
    for fun in funs:
        got = autodiff.forward_keys([(fun, inputs[-1])])
        if got is None or len(got[1][0]) != 1 or getattr(got[1][0][0], "weak_type", False):
            return None, None, None
        keys.append(got[0][0])
        out = got[1][0][0]
        inputs.append((np.zeros(out.shape, out.dtype),))  # its type is all a trace reads
    if inputs[-1][0].shape != cotangent.shape:
        return None, None, None
    sizes = []
    for skip in range(1, len(parts)):  # _skipped's walk, on shapes
        c, size = cotangent.shape, 0
        for n in range(len(parts) - 1, -1, -1):
            if n == skip:
                if c != inputs[n][0].shape:
                    break
                continue
            if n == 0:
                size = len(args)
                break
            c = inputs[n][0].shape
        sizes.append(size)
    helper = (f"network.skips {parts} {autodiff.source_digest(__file__)} "
              f"{autodiff.source_digest(autodiff.__file__)}")
    key, stored = autodiff.recall(helper, keys, [*args, cotangent],
                                  autodiff.types_of(args) * sum(s > 0 for s in sizes))
    return key, stored, sizes


def _skipped(parts, static, args, ct) -> list[tuple]:
    """``_sandwich_skips`` of float64 arrays, traceable."""
    funs = _part_funs(parts, static)
    values = [tuple(args)]
    for fun in funs:
        values.append((fun(*values[-1]),))
    out = []
    for skip in range(1, len(parts)):
        c, grads = ct, ()
        for n in range(len(parts) - 1, -1, -1):
            if n == skip:
                if c.shape != values[n][0].shape:
                    break
                continue
            _, pullback = jax.vjp(funs[n], *values[n])
            step = pullback(c)
            if n == 0:
                grads = tuple(step)
                break
            c = step[0]
        out.append(grads)
    return out


def sandwich_spec(parts: tuple[str, ...]) -> Spec:
    """A CS231n "sandwich" (``layer_utils.py``: ``affine_relu``, ``conv_relu``,
    ``conv_relu_pool``): the catalogue's parts composed in order, with the first part's
    arguments and the static arguments of the parts that take one (conv_param,
    pool_param; a pool is 2x2, stride 2 in the inputs). Alternates: the other tie rules
    of the pool (valid), and each later part's backward left out (``wrong-wiring``)."""
    if not parts or parts[0] not in ("conv", "affine") or any(
            p not in SANDWICH_PARTS for p in parts) or any(p in ("conv", "affine")
                                                          for p in parts[1:]):
        raise ValueError(f"no reference for the sandwich {' + '.join(parts)}: it must start "
                         "with conv or affine, followed by relu / max_pool")
    first = _PARTS[parts[0]]()

    def input_sets(seed):
        out = []
        for s in first.input_sets(seed):
            if "max_pool" in parts:
                # its shape only: traced abstractly, nothing compiled or run
                shape = jax.eval_shape(lambda *a, s=s: first.reference.forward(a, s.static),
                                       *s.args).shape
                if shape[-1] < 2 or shape[-2] < 2:
                    continue
                s = s._replace(static=(*s.static, POOL_2X2),
                               name=s.name + ", then relu and a 2x2 pool, stride 2")
            out.append(s)
        return out

    def alternates(args, static, cotangent):
        out = []
        if "max_pool" in parts:  # one program for both tie rules
            rules = ("first", "last")
            grads = vjps([bind(_sandwich_run(parts, rule), static) for rule in rules], args,
                         cotangent)
            out += [Alternate(rule, g, True, "correct", TIE_NOTES[rule])
                    for rule, g in zip(rules, grads, strict=True)]
        for n, grads in enumerate(_sandwich_skips(parts, args, static, cotangent), start=1):
            if grads:
                out.append(Alternate(
                    f"{parts[n]} backward left out", grads, False, "wrong-wiring",
                    WIRING_NOTE + f"the cotangent meant for {parts[n]}_backward goes straight "
                    f"to {parts[n - 1]}_backward: {parts[n]}_backward is left out, or the "
                    "part before it is fed dout instead of its output"))
        return out

    static_names = tuple(n for p in parts for n in _PARTS[p]().static_names)
    out_names = _PARTS[parts[-1]]().axis_names.get("out", first.axis_names.get("out"))
    return Spec("+".join(parts), first.arg_names, dict(first.axis_names, out=out_names),
                Reference(" -> ".join(parts) + " (the catalogue's parts composed)",
                          _sandwich_run(parts), alternates),
                input_sets, static_names)


SPECS = {"report_network": report_network_spec}
