"""What a finder reports about a layer it recognised but could not build or run.

A leaf module (adapters and finders both import it): ``Refused`` entries become error
rows (exit 2), plain ``(name, why)`` entries are skipped lines (not a layer).
"""

from __future__ import annotations


def _describe(exc: BaseException) -> str:
    """``ValueError: ...`` for the user's exception; jaxcnn's own (``JaxcnnError``: a time
    limit passed, ``limits.Stuck``) is its message alone."""
    from jaxcnn.errors import JaxcnnError

    text = " ".join(str(exc).split())[:300]
    if isinstance(exc, JaxcnnError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class NotALayer(ValueError):
    """Raised by an adapter when what its finder recognised turns out not to be a layer
    with a hand-written backward after all (a model whose ``loss`` returns no gradients
    at all): skipped, not an error row."""


class Refused(tuple):
    """A ``(name, why)`` entry of ``Found.skipped`` for a layer that *was* recognised (its
    methods, names and signature say what it is) but could not be built or run: the
    report lists it as an error row (exit 2), never as a skipped line beside a pass.
    ``style``: the dialect that recognised it ("module", "model", "cs231n", ...)."""

    style: str

    def __new__(cls, name: str, why: str, style: str = ""):
        self = super().__new__(cls, (name, why))
        self.style = style
        return self

    def renamed(self, name: str) -> Refused:
        return Refused(name, self[1], self.style)


def refused(name: str, exc: BaseException, style: str, what: str = "cannot run it"):
    """The skipped entry for a recognised layer whose building raised ``exc``: a
    ``Refused`` (an error row), or a plain skipped entry when ``exc`` says it is not a
    layer (``NotALayer``)."""
    if isinstance(exc, NotALayer):
        return (name, " ".join(str(exc).split())[:300])
    return Refused(name, f"{what}: {_describe(exc)}", style)


__all__ = ["NotALayer", "Refused", "refused"]
