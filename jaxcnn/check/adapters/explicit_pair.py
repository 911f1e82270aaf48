"""Explicit-argument pairs: ``f(*args) -> out`` with ``f_backward(dout, *args)``.

The style of blog MLPs and from-scratch CNNs that keep no cache: the forward returns its
output alone, and the backward is given the forward's inputs again, by name (or, where
a name differs, in the forward's order)::

    def relu(Z):                          # Z (N, D) -> A (N, D)
        return np.maximum(0, Z)

    def relu_backward(dA, Z):             # dA (N, D), Z: the forward's input -> dZ (N, D)
        dZ = np.array(dA, copy=True)
        dZ[Z <= 0] = 0
        return dZ

    def convolution(image, filt, bias, s=1):             # (C, H, W), (F, C, f, f), (F, 1)
        ...
    def convolutionBackward(dconv_prev, conv_in, filt, s):  # -> dimage, dfilt, dbias
        ...                                                  # (conv_in: the image)

The backward is named ``f_backward`` or ``fBackward`` (camelCase), beside ``f`` or in
another file checked with it. It returns one gradient per array argument of ``f``, in
``f``'s order (a single array for one). ``to_cache_pair`` reduces such a pair to the
CS231n contract (``forward -> (out, cache)``, ``backward(dout, cache)``, the cache being
the forward's arguments), so that ``adapters.cs231n`` (a catalogue kind: relu, sigmoid,
tanh, ...) or ``adapters.function_pair`` (no reference: the numeric oracle of ``f``)
checks it; the first-wrong-step analysis reads the user's own two functions.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable

# A backward argument that holds a cache, not one of the forward's inputs.
CACHE_NAME = re.compile(r"^(cache|caches|ctx|saved|memory|stash)$|_cache$|^cache_",
                        re.IGNORECASE)


def _positional(fn) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _required_after_dout(backward: Callable) -> tuple[list[str], list[str]]:
    """The backward's required arguments after the upstream gradient: (positional ones,
    keyword-only ones: ``tanh_backward(dA, *, x)``)."""
    try:
        params = list(inspect.signature(backward).parameters.values())
    except (TypeError, ValueError):
        return [], []
    positional = [p.name for p in _positional(backward)[1:] if p.default is p.empty]
    keyword = [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    return positional, keyword


def argument_map(forward: Callable, backward: Callable) -> list[str] | None:
    """For each required argument of ``backward`` after the upstream gradient, the name
    of the forward's argument it receives: by name, else the forward's next unclaimed
    argument in order (``conv_in`` for ``image``). None when the backward does not take
    the forward's inputs: no argument after ``dout``, a cache argument, more arguments
    than the forward has, or no name in common when either side has several."""
    f_names = [p.name for p in _positional(forward)]
    positional, keyword = _required_after_dout(backward)
    b_names = positional + keyword
    if not f_names or not b_names or any(CACHE_NAME.search(n) for n in b_names):
        return None
    if not set(b_names) & set(f_names) and (len(b_names) > 1 or len(f_names) > 1):
        return None
    free = [n for n in f_names if n not in b_names]
    mapping = []
    for n in b_names:
        if n in f_names:
            mapping.append(n)
        elif free:
            mapping.append(free.pop(0))
        else:
            return None  # it needs something the forward is not given (an output: Z_curr)
    return mapping


def to_cache_pair(forward: Callable, backward: Callable, mapping: list[str]
                  ) -> tuple[Callable, Callable]:
    """(forward returning ``(out, cache)``, ``backward(dout, cache)``): the cache is the
    forward's arguments by name (defaults applied), handed back to the user's backward
    as ``mapping`` says. The forward keeps the user's signature (``__wrapped__``), so
    that inputs are chosen from its argument names. TypeError when the forward returns a
    tuple (it has a cache of its own, or several outputs)."""
    signature = inspect.signature(forward)

    @functools.wraps(forward)
    def with_cache(*args, **kwargs):
        out = forward(*args, **kwargs)
        if isinstance(out, (tuple, list)):
            raise TypeError(f"{forward.__name__} returns {len(out)} values; its backward "
                            f"{backward.__name__} takes its inputs, so it should return its "
                            "output alone")
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return out, dict(bound.arguments)

    positional, keyword = _required_after_dout(backward)
    by_position, by_name = mapping[:len(positional)], mapping[len(positional):]

    def from_cache(dout, cache):
        return backward(dout, *(cache[n] for n in by_position),
                        **{k: cache[n] for k, n in zip(keyword, by_name, strict=True)})

    from_cache.__name__ = backward.__name__
    return with_cache, from_cache


def from_explicit_pair(forward: Callable, backward: Callable, name: str | None = None,
                       file: str | None = None, kind: str | None = None):
    """A ``Layer`` for ``forward(*args) -> out`` and ``backward(dout, *args)``: against
    the catalogue's ``kind`` (relu, sigmoid, tanh, ...) when given and its layout takes
    the forward's one argument, else numerically against the forward itself. ValueError
    when the backward does not take the forward's inputs, or no input tried runs."""
    from jaxcnn.check.adapters.cs231n import from_cs231n
    from jaxcnn.check.adapters.function_pair import from_function_pair

    mapping = argument_map(forward, backward)
    if mapping is None:
        raise ValueError(f"{backward.__name__} does not take the inputs of {forward.__name__}")
    fwd, bwd = to_cache_pair(forward, backward, mapping)
    name = name or forward.__name__
    required = [p for p in _positional(forward) if p.default is p.empty]
    if kind is not None and len(required) == 1:
        layer = from_cs231n(fwd, bwd, kind, name, file)
        own = (required[0].name,)  # rows named by the user's argument (Z), not x
        layer = layer._replace(arg_names=own, axis_names={
            own[0]: next(iter((layer.axis_names or {}).values()), None),
            "out": (layer.axis_names or {}).get("out")})
    else:
        layer = from_function_pair(fwd, bwd, name, file)
        if len(required) == 1 and layer.reference is None:
            # leaky_relu, softplus, gelu, ...: the catalogue kind whose reference the
            # forward reproduces (its usual settings tried), with its named mistakes
            import types

            from jaxcnn.check.adapters import module_catalogue

            try:
                known = module_catalogue.find(name, types.SimpleNamespace(), [], [], (3, 4),
                                              layer.forward)
            except Exception:  # the user's forward, on the catalogue's inputs
                known = None
            if known is not None:
                layer = layer._replace(kind=known.kind, reference=known.reference,
                                       input_sets=known.input_sets,
                                       notes=(*layer.notes, known.note))
    given = sum(_required_after_dout(backward), [])
    note = (f"{backward.__name__} is given {forward.__name__}'s inputs: " + ", ".join(
        f"{b}={f}" if b != f else b for b, f in zip(given, mapping, strict=True)))
    notes = (*layer.notes, note)
    return layer._replace(style="explicit", sources=(forward, backward), notes=notes)


__all__ = ["CACHE_NAME", "argument_map", "from_explicit_pair", "to_cache_pair"]
