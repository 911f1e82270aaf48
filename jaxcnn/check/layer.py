"""The one contract every adapter reduces a hand-written layer to.

A hand layer is a ``Layer``: a NamedTuple of plain functions, like optax's
``GradientTransformation``. The engine (``jaxcnn.check.engine``) knows nothing about
coding styles; the adapters (``jaxcnn.check.adapters``) turn a JAX ``custom_vjp``, a
CS231n ``(forward, backward)`` pair or a blog-style class into this shape::

    out, backward = layer.vjp(args, static)     # the hand-written forward + backward
    grads = backward(cotangent)                 # one entry per differentiable argument
    out = layer.forward(args, static)           # the user's forward alone (finite differences)

``args`` are the differentiable arrays (named by ``arg_names``); ``static`` holds the
arguments that are not differentiated (a CS231n ``conv_param`` dict, a label), like
``nondiff_argnums`` of ``jax.custom_vjp``. ``backward`` returns one array per argument,
or ``None`` where the layer legitimately computes no gradient (``optional``: the blog
conv, a first layer, returns no input gradient).

The exact oracle is a ``Reference``: a JAX function of the same ``(args, static)``
whose ``jax.vjp`` in float64 is the right answer, plus the *alternates* that explain
disagreements: other valid subgradients at kinks (max-pool "first"/"split"/"last",
ReLU at 0) and known wrong rules (the report's tie-overcount, overwriting windows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class InputSet(NamedTuple):
    """One set of inputs a layer is checked on.

    family: "random" (tie-free), "digits" (real MNIST, tie-rich), "flat" (every pool
        window tied), "boundary" (exact zeros at ReLU kinks), "overlap" (windows that
        overlap), "strided", "large-gap" (confident wrong logits), "batch-of-one" (N = 1),
        "regularized" (a model's loss with its regularization on)
    name: what is shown to the user, e.g. "MNIST digit 1 (label 2)"
    args: the differentiable arguments, float64 NumPy arrays
    static: the non-differentiated arguments (a conv_param dict, a label)
    label: the class whose ``-1/p`` seeds a blog Softmax's backprop, if any
    dtype: "float64", or "float32" to run the hand in float32 (against a float64 oracle)
    note: what the set exposes, e.g. "pool 2x2, stride 1: overlapping windows"
    provenance: how args were made, e.g. {"image": ..., "filters": ...} for a pool input
        that is a conv output (tells structural ties from real kinks)
    """

    family: str
    name: str
    args: tuple
    static: tuple = ()
    label: int | None = None
    dtype: str = "float64"
    note: str = ""
    provenance: dict | None = None


class Alternate(NamedTuple):
    """A known way of computing a gradient, right or wrong.

    grads: one array per argument (None where the alternate says nothing)
    valid: True for another valid (sub)gradient: a hand matching it is ``correct``
    kind: the error kind a match means when not valid ("tie-overcount", ...)
    note: one sentence for the user
    """

    name: str
    grads: tuple
    valid: bool
    kind: str
    note: str


class Kinks(NamedTuple):
    """Where an input set puts the layer on a kink.

    mask: per argument, bool arrays (True at entries on a kink) or None
    stats: JSON-ready numbers, e.g. tied windows per sample
    summary: one line for the table
    """

    mask: tuple
    stats: dict
    summary: str


class Reference(NamedTuple):
    """The exact oracle for one layer kind.

    name: what is differentiated, e.g. "jaxcnn.model.maxpool2"
    forward: ``(args, static) -> out``, JAX-traceable
    alternates: ``(args, static, cotangent) -> list[Alternate]`` or None
    kinks: ``(input_set) -> Kinks`` or None
    subgradient: ``(args, static, cotangent, i, hand, tol) -> str | None``: whether
        ``hand`` is *some* valid subgradient for argument ``i`` (any convex combination of
        the tied maxima, any slope in [0, 1] at a ReLU's 0), named; None if not
    wrong_forwards: ``(args, static) -> list[(name, out, note)]``: known wrong forwards
        (batch norm with the unbiased variance); a user's forward that reproduces one has
        a bug in its forward, and its gradients are judged against ``forward``
    variants: ``(args, static) -> list[(name, out, note)]``: forwards that differ from
        ``forward`` only by a documented, harmless change (an epsilon inside a loss's log,
        ``log(p + 1e-7)``); a user's forward that reproduces one keeps the exact oracle,
        and its gradients are judged against ``forward``'s (the usual backward has no
        epsilon; one that differentiates it shows as ``imprecise``)
    """

    name: str
    forward: Callable[[tuple, tuple], Any]
    alternates: Callable[[tuple, tuple, np.ndarray], list[Alternate]] | None = None
    kinks: Callable[[InputSet], Kinks] | None = None
    subgradient: Callable | None = None
    wrong_forwards: Callable | None = None
    variants: Callable | None = None


class Layer(NamedTuple):
    """A hand-written layer in the engine's contract (see the module docstring).

    name: e.g. "MaxPool2"; kind: the catalogue kind it was matched to, e.g. "maxpool2"
    style: "jax", "cs231n" or "blog"; file: where it came from (or None)
    arg_names: names of the differentiable arguments ("input", "filters", "x", "w", ...)
    axis_names: per argument, names of its axes, used to say which axes are swapped
    forward, vjp: the user's code, see the module docstring
    reference: the exact oracle, or None (then only finite differences)
    input_sets: ``(seed) -> list[InputSet]``
    cotangent: ``(out, input_set, rng) -> cotangent``; None: standard normal
    optional: argument names whose gradient may be None
    recovered: argument names whose gradient is recovered from a parameter update
        (``(before - after) / learn_rate``): a looser tolerance
    extra: ``(args, static, cotangent) -> list[(arg_name, kind, note)]``, adapter-specific
        findings (e.g. an input gradient that depends on the learn rate), replacing a
        wrong verdict against the exact oracle; against the numeric one, only a ``scaled``
        one by a factor above 1 (a model's tied pool windows: ``tie-overcount``)
    forward_key: the user's forward function itself, when layers share it: finite
        differences of one forward on the same inputs are then computed once per
        ``memo`` (see ``engine.check_layer``)
    sources: ``(forward_function, backward_function)``, the user's own Python functions
        (plain functions or methods; the same one for a loss that returns its gradient),
        whose source the first-wrong-step analysis re-compiles (``jaxcnn.check.steps``);
        () when there is no Python source to analyse
    held: ``(args) -> args`` as the layer holds them (a blog layer's float32 parameters
        rounded to float32, returned as float64), for inputs made elsewhere (a chain's);
        None: as given
    raw: ``(args, static) -> (out, backward)`` like ``vjp``, but running the user's code
        on the arrays themselves (no copies), with one state across calls of
        ``backward``: for the checks of ``jaxcnn.check.sanity`` (inputs modified in
        place, a second backward that answers differently). None: not available (JAX
        arrays cannot be modified). It must hand the user's code the very arrays of
        ``args``, of ``static`` (its top-level arrays: labels, a linear loss's ``X``) and
        the upstream gradient it is given, and, after an in-place update of parameters
        (a ``backward(grad, lr)``), restore them before the next call of ``backward``
    static_names: names of ``static``'s entries, for ``raw``'s findings (``("X", "y",
        "reg")``); () : named by position
    notes: what the adapter wants the user told about how the layer was run (sizes it
        chose for a constructor, parameters it drew instead of zeros)
    offsets: ``(args, static, cotangent) -> list[Alternate]``, known mistakes given as
        what they take from the right gradient (a regularisation term's gradient left
        out): a hand equal to ``reference - grads[i]`` is named by the alternate, with
        the numeric oracle too (then the reference is the finite differences); None: none
    names: more names ``--layer`` accepts for it (a derivative pair's ``tanh_prime``)
    locate: ``(checks) -> steps.FirstWrong | None``, the first wrong line by the adapter's
        own rule, for a layer with no ``sources`` to re-run line by line (a scalar
        engine's ``_backward`` closure of the operation found wrong), or, for one with
        ``sources``, tried before that analysis (a whole function's named slip whose
        line the adapter finds); None: not located
    """

    name: str
    kind: str
    style: str
    arg_names: tuple[str, ...]
    forward: Callable
    vjp: Callable
    reference: Reference | None
    input_sets: Callable[[int], list[InputSet]]
    axis_names: dict | None = None
    cotangent: Callable | None = None
    optional: frozenset = frozenset()
    recovered: frozenset = frozenset()
    extra: Callable | None = None
    file: str | None = None
    forward_key: object = None
    held: Callable | None = None
    raw: Callable | None = None
    static_names: tuple = ()
    sources: tuple = ()
    notes: tuple = ()
    offsets: Callable | None = None
    names: tuple = ()
    locate: Callable | None = None
