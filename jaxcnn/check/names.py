"""The names a user may call a layer by (``--layer``, ``--inputs``): its row name, its
functions' or class's names, its kind."""

from __future__ import annotations

import re

from jaxcnn.check.layer import Layer


def row_names(name: str) -> set[str]:
    """The names a row's name is built from: itself (with and without its file label),
    and for a row named as it is built, ``ActivationLayer(tanh, tanh_prime)`` or
    ``FullyConnectedNet(normalization='batchnorm')``, the class and the functions named
    in it (``ActivationLayer``, ``tanh``, ``tanh_prime``); ``linear_activation_forward
    (relu)``: the function."""
    short = name.rpartition(":")[2]
    names = {name, short}
    m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", short)
    if m:
        names.add(m.group(1))
        names |= {a.strip() for a in m.group(2).split(",")
                  if re.fullmatch(r"[A-Za-z_]\w*", a.strip())}
    return names


def aliases(layer: Layer) -> set[str]:
    """The names ``--layer`` accepts for a layer: its row name (with and without the file
    label), its functions' names (``conv_forward_fast``, ``conv_backward_fast``; ``f_fwd``,
    ``f_bwd``) and its catalogue kind."""
    full = layer.name
    short = full.rpartition(":")[2]
    names = row_names(full) | {layer.kind}
    for fn in layer.sources:  # the class and the functions the row is built from
        qualname = getattr(fn, "__qualname__", "") or ""
        own = qualname.partition(".")[0] if "." in qualname else getattr(fn, "__name__", None)
        if own and "<" not in own:  # a method gives its class, not `forward`
            names.add(own)
    names |= set(layer.names)
    if "_forward" in short:
        names |= {short.replace("_forward", "_backward"), short.partition("_forward")[0]}
    elif layer.style == "cs231n":
        names |= {f"{short}_forward", f"{short}_backward"}
    elif layer.style == "jax":
        names |= {f"{short}_fwd", f"{short}_bwd"}
    return names


def matches(layer: Layer, name: str) -> bool:
    """Whether ``name`` names ``layer``: one of its ``aliases``, or for a CS231n row named
    by its stem (``conv``), any function of that stem (``conv_forward_naive``,
    ``conv_backward_naive``)."""
    if name in aliases(layer):
        return True
    short = layer.name.rpartition(":")[2]
    return layer.style == "cs231n" and "_forward" not in short and re.fullmatch(
        rf"{re.escape(short)}_(forward|backward)\w*", name) is not None


__all__ = ["aliases", "matches", "row_names"]
