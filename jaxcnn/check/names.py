"""The names a user may call a layer by (``--layer``, ``--inputs``): its row name, its
functions' or class's names, its kind."""

from __future__ import annotations

import re

from jaxcnn.check.layer import Layer


def aliases(layer: Layer) -> set[str]:
    """The names ``--layer`` accepts for a layer: its row name (with and without the file
    label), its functions' names (``conv_forward_fast``, ``conv_backward_fast``; ``f_fwd``,
    ``f_bwd``) and its catalogue kind."""
    full = layer.name
    short = full.rpartition(":")[2]
    names = {full, short, layer.kind}
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


__all__ = ["aliases", "matches"]
