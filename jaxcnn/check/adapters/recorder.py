"""An optimizer object that records the gradients a layer hands to it.

Course frameworks and from-scratch libraries give a layer an optimizer object and let
its backward update the parameters through it, keeping no gradient of its own::

    self.weights = self.optimizer.calculate_update(self.weights, self.gradient_weights)
    self.W = self.W_opt.update(self.W, grad_w)        # ML-From-Scratch's layers

``Recorder`` stands in for that optimizer: it answers both calls, records ``(parameter,
gradient)`` (the parameter array itself: identity tells which one a gradient is for)
and returns ``parameter - lr * gradient``, a new array (the parameter itself at
``lr = 0``): a real step, so that an input gradient computed after the update shows. Copies of it
(``copy.copy(optimizer)`` per parameter, a deep copy of the layer) are the recorder
itself, so that every gradient lands in one list.

``install(obj, shape)`` puts one on a constructed layer: into an ``optimizer``
attribute (or property) left ``None``, or through ``initialize(optimizer)``; a layer with
``set_input_shape`` is first given one sample's shape.
"""

from __future__ import annotations

import inspect

import numpy as np

OPTIMIZER_ATTRS = ("optimizer", "_optimizer", "opt")


class Recorder:
    """A stand-in optimizer: ``calculate_update(param, grad)`` / ``update(param, grad)``
    (also ``step``) record ``(param, grad)`` and return ``param - lr * grad``."""

    def __init__(self, lr: float = 0.0):
        self.lr = lr
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def calculate_update(self, param, grad):
        self.calls.append((param, np.array(grad, dtype=np.float64, copy=True)))
        return param if self.lr == 0 else param - self.lr * np.asarray(grad)

    update = step = calculate_update

    def grad_for(self, param) -> np.ndarray | None:
        """The gradient recorded for ``param``: by identity, else the one recorded
        gradient of its shape; None when there is none."""
        for p, g in self.calls:
            if p is param:
                return g
        same = [g for p, g in self.calls if np.shape(p) == np.shape(param)]
        return same[0] if len(same) == 1 else None


def _takes_optimizer(fn) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                         p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    if params and params[0].name in ("self", "cls"):  # the function of a class
        params = params[1:]
    return len(params) == 1 and "optim" in params[0].name.lower()


def needs_initialize(cls) -> bool:
    """Whether instances of ``cls`` get their parameters from ``initialize(optimizer)``."""
    return _takes_optimizer(getattr(cls, "initialize", None))


def install(obj, input_shape: tuple | None = None) -> Recorder | None:
    """A ``Recorder`` put on ``obj`` (see the module docstring), or None where it takes
    no optimizer. ``input_shape``: one sample's shape, given to ``set_input_shape``
    before ``initialize(optimizer)``. Raises what the layer's own methods raise."""
    if input_shape is not None and callable(getattr(obj, "set_input_shape", None)):
        obj.set_input_shape(input_shape)
    recorder = Recorder()
    if needs_initialize(type(obj)):
        obj.initialize(recorder)
        return recorder
    for attr in OPTIMIZER_ATTRS:
        if hasattr(obj, attr) and getattr(obj, attr) is None:
            setattr(obj, attr, recorder)
            return recorder
    return None


def recorder_of(obj) -> Recorder | None:
    """The ``Recorder`` an object holds (in any attribute), or None."""
    return next((v for v in vars(obj).values() if isinstance(v, Recorder)), None)


__all__ = ["Recorder", "install", "needs_initialize", "recorder_of"]
