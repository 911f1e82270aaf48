"""Several files checked together: what one imports from another is checked once.

CS231n's ``linear_classifier.py`` imports ``svm_loss_vectorized`` from ``linear_svm.py``;
The Independent Code's ``dense.py`` and ``activation.py`` both import ``Layer`` from
``layer.py``. Discovery counts a name imported from a file beside the module as the
module's own (a file checked alone must find what it uses), so with several files each
import would be one more row, or one more "Skipped" line. ``once_each`` keeps each
layer and each skipped name once: where it is defined, when that file is among those
checked, else in the first file that has it.
"""

from __future__ import annotations

import inspect
import os


def _real(path) -> str | None:
    """The real path of a source file; of a notebook's cell (``"nb.ipynb, cell 3"``), the
    notebook's."""
    from jaxcnn.check.cells import split_filename

    return os.path.realpath(split_filename(path)[0]) if isinstance(path, str) else None


def _layer_origin(layer) -> tuple | None:
    """(defining file, first line, the layer's name) of the user's function behind
    ``layer`` (its forward); for a layer with no function to tell (a scalar engine's
    rows, named after the file that defines the engine), (its file, 0, its name); None
    when it has neither."""
    fn = layer.sources[0] if layer.sources else None
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        file = _real(getattr(layer, "file", None))
        return None if file is None else (file, 0, layer.name)
    return (_real(code.co_filename), code.co_firstlineno, layer.name)


def _object_origin(module, name: str) -> tuple | None:
    """(defining file, qualified name) of the class or function ``name`` in ``module``,
    or None (a variant's name, an object with no source). Not its id: each checked file
    imports the file beside it afresh, so ``Layer`` is a new class in each."""
    obj = vars(module).get(name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return None
    if inspect.isfunction(obj):
        file = obj.__code__.co_filename
    else:  # by its methods' code: its module may have left sys.modules
        file = next((f.__code__.co_filename for f in vars(obj).values()
                     if inspect.isfunction(f)), None)
    if file is None:
        return None
    return (_real(file), obj.__qualname__)


def once_each(sources: list, found: list) -> list:
    """``found`` (one ``discover.Found`` per ``(label, module, file)`` of ``sources``) with
    each layer and skipped name that several files share kept once (see the module
    docstring)."""
    files = [_real(file) for _, _, file in sources]

    def keep_once(items_per_source, origin_of):
        owner = {}  # origin -> index of the source that keeps it
        for k, items in enumerate(items_per_source):
            for item in items:
                origin = origin_of(k, item)
                if origin is None:
                    continue
                here = files[k] is not None and origin[0] == files[k]
                if origin not in owner or here:
                    if origin not in owner or files[owner[origin]] != origin[0]:
                        owner[origin] = k
        return [[item for item in items if (o := origin_of(k, item)) is None
                 or owner.get(o) == k] for k, items in enumerate(items_per_source)]

    layers = keep_once([f.layers for f in found], lambda k, layer: _layer_origin(layer))
    skipped = keep_once([f.skipped for f in found],
                        lambda k, entry: _object_origin(sources[k][1], entry[0]))
    return [f._replace(layers=la, skipped=sk)
            for f, la, sk in zip(found, layers, skipped, strict=True)]


__all__ = ["once_each"]
