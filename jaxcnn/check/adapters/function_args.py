"""Layers whose constructor takes functions, as "neural network from scratch" tutorials
write them::

    def tanh(x):
        return np.tanh(x)

    def tanh_prime(x):
        return 1 - np.tanh(x) ** 2

    class ActivationLayer:
        def __init__(self, activation, activation_prime): ...
        def forward_propagation(self, input_data):         # activation(input_data)
            ...
        def backward_propagation(self, output_error, learning_rate):
            return self.activation_prime(self.input) * output_error

Such a class is built once per function pair ``f`` / ``f_prime`` (``_derivative``,
``_deriv``, ``_grad``, ``_gradient``) of one argument each, taken from its own file
(defined there or imported from a file beside it) or, when that file has none, from
the other files checked with it: ``ActivationLayer(tanh, tanh_prime)``,
``ActivationLayer(sigmoid, sigmoid_prime)``, one layer each. The kind comes from
``f``'s name (tanh, sigmoid, relu, softmax: the catalogue's exact oracle, its tie-free
and kink inputs and its classic mistakes; other names: the numeric oracle of the layer's
own forward), and the rest is ``module_style``'s (a ``learning_rate`` argument, a
stored output). The pair itself is also checked on its own row
(``dialects.derivative_pairs``): a wrong ``tanh_prime`` shows on both rows, a layer that
forgets to multiply it in on the layer's row only.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from jaxcnn.check.adapters.module_names import size_for

# a derivative's name: the function's and one of these (tanh_prime)
DERIVATIVE_SUFFIXES = ("_prime", "_derivative", "_deriv", "_grad", "_gradient")
# a constructor argument that takes a function, by its name
FUNCTION_NAME = re.compile(r"activation|^act(_|$)|prime|deriv|func|^fn|^f$|^f_|^df|^d_?f$|"
                           r"transfer|nonlin|^phi|^g$|^g_", re.IGNORECASE)
# ... and one that takes the derivative
DERIVATIVE_NAME = re.compile(r"prime|deriv|grad|^df|^d_?f$|^d_?act|backward|^d_", re.IGNORECASE)


class Pair(NamedTuple):
    """A function and its derivative beside it: ``tanh`` / ``tanh_prime``."""

    name: str
    fn: Callable
    dname: str
    d: Callable


def _required(fn) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def function_params(cls) -> list[str]:
    """The required constructor arguments of ``cls`` that take functions, by name
    (``activation``, ``activation_prime``, ``f``, ``df``, ``func``...; never one that
    ``module_names.SIZE_NAMES`` sizes). [] for a class that takes none."""
    return [p.name for p in _required(cls) if FUNCTION_NAME.search(p.name)
            and size_for(p.name, False) is None]


def activation_pairs(functions: dict) -> list[Pair]:
    """``f`` / ``f_prime`` pairs of one-argument functions in ``functions`` (name ->
    function, in file order): the activations a function-taking layer is built with."""
    out = []
    for name, fn in functions.items():
        if name.endswith(DERIVATIVE_SUFFIXES) or len(_required(fn)) != 1:
            continue
        for suffix in DERIVATIVE_SUFFIXES:
            d = functions.get(name + suffix)
            if d is not None and len(_required(d)) == 1:
                out.append(Pair(name, fn, name + suffix, d))
                break
    return out


def arguments(params: list[str], pair: Pair) -> dict | None:
    """The constructor's function arguments for ``pair``: ``{activation: f,
    activation_prime: f_prime}`` (the derivative by its argument's name, else the second),
    ``{activation: f}`` for one; None for three or more (not an activation layer)."""
    fn, d = pair.fn, pair.d
    if len(params) == 1:
        return {params[0]: fn}
    if len(params) != 2:
        return None
    deriv = [p for p in params if DERIVATIVE_NAME.search(p)]
    second = deriv[0] if len(deriv) == 1 else params[1]
    first = params[0] if second == params[1] else params[1]
    return {first: fn, second: d}


def layer_name(class_name: str, params: list[str], pair: Pair) -> str:
    """``ActivationLayer(tanh, tanh_prime)``: the row's name, as the user builds it."""
    given = arguments(params, pair) or {}
    shown = [getattr(given[p], "__name__", p) for p in params if p in given]
    return f"{class_name}({', '.join(shown)})"


def heirs_of(cls, modules, file: str | None = None) -> list:
    """The classes of ``modules`` derived from ``cls``, or from the class of that name in
    ``file`` (the path ``cls`` was loaded from) imported again (``from activation import
    Activation`` in a file beside it)."""
    def source(c):
        try:
            return Path(inspect.getsourcefile(c) or "").resolve()
        except (TypeError, OSError):
            return None

    where = Path(file).resolve() if file else None
    out = []
    for module in modules:
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj is not cls and obj not in out and any(
                    b is cls or (b.__name__ == cls.__name__ and where is not None
                                 and source(b) == where) for b in obj.__mro__[1:]):
                out.append(obj)
    return out


def make_all(cls, class_name: str, fwd: str, bwd: str, file: str | None, params: list[str],
             pairs: list[Pair], where: str, heirs=()) -> tuple[list, list]:
    """(layers, skipped) for a class whose constructor takes the functions ``params``:
    one layer per pair (see the module docstring); ``where``: the pairs' origin, for the
    note; ``heirs``: classes derived from it (``heirs_of``): without pairs, a base class
    whose subclasses give the functions is skipped saying so. Never raises for the user's
    code: what cannot be built is skipped with why."""
    from jaxcnn.check.adapters import module_style

    if not pairs:
        built = sorted(c.__name__ for c in heirs if not function_params(c))
        if built:  # class Tanh(Activation): super().__init__(tanh, tanh_prime) inside
            return [], [(class_name, f"its constructor takes functions ({', '.join(params)}):"
                                     f" checked through its subclasses that give them "
                                     f"({', '.join(built)})")]
        return [], [(class_name, f"its constructor takes functions ({', '.join(params)}) and "
                                 "no function with its derivative beside it (tanh / "
                                 "tanh_prime, sigmoid / sigmoid_prime, ...) is in its file or "
                                 "the files checked with it: give the file that defines them "
                                 "too")]
    if len(params) > 2:
        return [], [(class_name, f"its constructor takes {len(params)} functions "
                                 f"({', '.join(params)}): only an activation and its "
                                 "derivative are guessed; check it from Python")]
    others = [p.name for p in _required(cls) if p.name not in params]
    layers, skipped = [], []
    for pair in pairs:
        name = layer_name(class_name, params, pair)
        try:
            layer = module_style.make(cls, name, fwd, bwd, file,
                                      given=arguments(params, pair),
                                      kind_from=None if others else pair.name)
        except Exception as exc:
            from jaxcnn.check.refusals import refused

            skipped.append(refused(name, exc, "module"))
            continue
        note = f"{pair.name} / {pair.dname}: {where}, checked on its own row too"
        layers.append(layer._replace(notes=(*layer.notes, note)))
    return layers, skipped


__all__ = ["DERIVATIVE_SUFFIXES", "Pair", "activation_pairs", "arguments", "function_params",
           "heirs_of", "layer_name", "make_all"]
