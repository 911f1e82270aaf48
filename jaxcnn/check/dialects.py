"""Discovery of the dialects beyond the report's, CS231n's and JAX's (``discover.py``).

One finder per dialect, each ``(module, file, own) -> (layers, skipped)``, listed in
``FINDERS``; ``discover.find_layers`` runs them after its own three:

* ``module_classes``: classes with ``forward``/``backward`` (or ``__call__``/``backward``,
  or ``X_forward``/``X_backward`` method pairs): ``adapters.module_style``; and
  ``forward``/``backprop`` classes whose name names no catalogue kind (checked
  numerically instead of skipped);
* ``specialisation``: the deep-learning specialisation's NHWC functions with an
  ``hparameters`` dict, ``mode`` or ``activation`` argument: ``adapters.specialisation``;
* ``network_pairs``: ``forward_propagation`` with ``backward_propagation`` (a whole
  network's cost and gradients dict): ``adapters.network_pair``;
* ``torch_functions``: ``torch.autograd.Function`` subclasses:
  ``adapters.torch_function``.

A finder never raises for the user's code: what cannot be built is skipped with the
reason.
"""

from __future__ import annotations

import contextlib
import inspect
import sys

from jaxcnn.check.layer import Layer


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def is_torch_function(obj) -> bool:
    return inspect.isclass(obj) and any(
        b.__name__ == "Function" and b.__module__.startswith("torch.autograd")
        for b in obj.__mro__[1:])


def module_classes(module, file, own, taken: set) -> tuple[list[Layer], list]:
    """Module-style classes (see ``adapters.module_style``); ``taken``: class names the
    blog finder already checks."""
    from jaxcnn.check.adapters import module_style

    layers, skipped = [], []
    for name, obj in vars(module).items():
        if not (inspect.isclass(obj) and own(module, obj)) or name in taken \
                or is_torch_function(obj):
            continue
        pairs = module_style.method_pairs(obj)
        if not pairs and callable(getattr(obj, "forward", None)) and callable(
                getattr(obj, "backprop", None)):
            pairs = [(name, "forward", "backprop")]
        for layer_name, fwd, bwd in pairs:
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    layers.append(module_style.make(obj, layer_name, fwd, bwd, file))
            except Exception as exc:
                skipped.append((layer_name, f"cannot run it: {_describe(exc)}"))
    return layers, skipped


def has_module_pairs(cls) -> bool:
    from jaxcnn.check.adapters import module_style

    return bool(module_style.method_pairs(cls))


FINDERS = (module_classes,)

__all__ = ["FINDERS", "has_module_pairs", "is_torch_function", "module_classes"]
