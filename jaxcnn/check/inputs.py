"""The user's own inputs for ``jaxcnn check --inputs``: a Python function or an ``.npz``.

**Python** (``--inputs FILE.py`` or ``--inputs FILE.py:FUNC``; FUNC defaults to
``inputs``): a function called without arguments that returns either

* a dict ``{layer name: [input, ...]}`` (the names the rows show, e.g. ``"affine"``,
  ``"conv_forward_fast"``, ``"Conv3x3"``), or
* a list ``[input, ...]`` for every layer checked (use it with ``--layer NAME``),

where each input is a tuple of arrays, one per differentiable argument in the layer's
order (``(x, w, b)`` for a CS231n affine or conv; ``(input, filters)`` for a blog conv;
the arguments of a ``custom_vjp``), or a dict ``{"args": (x, w, b), "static":
({"stride": 2, "pad": 1},), "label": 3}`` with the non-differentiated arguments
(``conv_param``, ``pool_param``, a label vector) and, for a blog softmax, the label whose
``-1/p`` seeds its backprop.

**npz** (``--inputs FILE.npz``): arrays named ``LAYER/ARG`` (one input per layer), or
``LAYER/K/ARG`` (input K = 0, 1, ...), ``ARG`` the argument's name (``x``, ``w``, ``b``;
``input``, ``filters``); the static arguments of an input as a JSON list in a string
array ``LAYER/static`` (or ``LAYER/K/static``), e.g. ``np.array('[{"stride": 1, "pad":
1}]')``; a label as ``LAYER/label``. Loaded without pickle.

Inputs given this way are checked in addition to jaxcnn's own, first, and named
``your inputs #K (FILE)`` in the output (jaxcnn's keep their names: ``random x (4, 6)``,
``MNIST digit 0``, ...). Every error is one ``CheckUsageError`` line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxcnn.check.discover import CheckUsageError
from jaxcnn.check.layer import InputSet, Layer
from jaxcnn.check.names import matches

FAMILY = "given"  # the InputSet family of the user's inputs
PREFIX = "your inputs"


class Given(NamedTuple):
    """One input of the user's: the differentiable arrays, static args and a label."""

    args: tuple
    static: tuple = ()
    label: int | None = None


class UserInputs(NamedTuple):
    """What ``load`` read: per layer name (None: every layer), the inputs; and where from."""

    by_layer: dict
    origin: str


def _entry(value, where: str) -> Given:
    if isinstance(value, dict):
        unknown = set(value) - {"args", "static", "label"}
        if unknown or "args" not in value:
            raise CheckUsageError(f"{where}: an input dict has keys args (required), static "
                                  f"and label; got {', '.join(sorted(map(str, value)))}")
        args, static, label = value["args"], value.get("static", ()), value.get("label")
    else:
        args, static, label = value, (), None
    if isinstance(args, np.ndarray) or not isinstance(args, (tuple, list)):
        args = (args,)
    if not isinstance(static, (tuple, list)):
        static = (static,)
    arrays = []
    for k, a in enumerate(args):
        arr = np.asarray(a)
        if arr.dtype.kind not in "fiub":
            raise CheckUsageError(f"{where}: argument {k} is not an array of numbers "
                                  f"({type(a).__name__})")
        arrays.append(arr)
    return Given(tuple(arrays), tuple(static), None if label is None else int(label))


def _entries(value, where: str) -> list[Given]:
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, (tuple, list, dict)) for v in value):
        return [_entry(v, f"{where}[{k}]") for k, v in enumerate(value)]
    if isinstance(value, dict) and "args" in value:
        return [_entry(value, where)]
    raise CheckUsageError(f"{where}: give a list of inputs, each a tuple of arrays or a dict "
                          "with args/static/label")


def _from_python(spec: str) -> UserInputs:
    from jaxcnn.check import imports

    m = re.fullmatch(r"(.+\.py)(?::(\w+))?", spec)
    path, func = m.group(1), m.group(2) or "inputs"
    try:
        module = imports.load_file(path)
    except CheckUsageError as exc:  # "cannot import FILE: ...": say which option named it
        raise CheckUsageError(f"--inputs {spec}: {exc}") from None
    make = getattr(module, func, None)
    if not callable(make):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        raise CheckUsageError(f"--inputs {spec}: {path} has no function {func}(); found "
                              f"{', '.join(names) or 'none'} (name it with {path}:FUNC)")
    try:
        value = make()
    except Exception as exc:
        raise CheckUsageError(f"--inputs {spec}: {func}() raised {type(exc).__name__}: "
                              f"{exc}") from None
    where = f"--inputs {spec}"
    if isinstance(value, dict) and "args" not in value:
        return UserInputs({str(k): _entries(v, f"{where} [{k!r}]") for k, v in value.items()},
                          f"{Path(path).name}:{func}")
    return UserInputs({None: _entries(value, where)}, f"{Path(path).name}:{func}")


def _from_npz(path: str) -> UserInputs:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # np.load would try it as a pickle and say so
        raise CheckUsageError(f"--inputs {path}: not an .npz file (not a zip archive); "
                              "write it with np.savez(path, **{'LAYER/ARG': array, ...})")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, OSError, ValueError: one line, whatever it is
        raise CheckUsageError(f"--inputs {path}: cannot read it as .npz: {exc}") from None
    groups: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    with data:
        for key in data.files:
            parts = key.split("/")
            if len(parts) == 2:
                layer, k, arg = parts[0], 0, parts[1]
            elif len(parts) == 3 and parts[1].isdigit():
                layer, k, arg = parts[0], int(parts[1]), parts[2]
            else:
                raise CheckUsageError(f"--inputs {path}: array {key!r} is not named LAYER/ARG "
                                      "or LAYER/K/ARG (e.g. affine/x, conv/0/w)")
            try:
                groups.setdefault((layer, k), {})[arg] = data[key]
            except ValueError as exc:  # an object array, refused without pickle
                raise CheckUsageError(f"--inputs {path}: array {key!r} cannot be read without "
                                      f"pickle ({exc}); save arrays of numbers "
                                      "(np.asarray(x, dtype=float))") from None
            except Exception as exc:  # a damaged member: CRC, truncated
                raise CheckUsageError(f"--inputs {path}: array {key!r} cannot be read: "
                                      f"{exc}") from None
    by_layer: dict[str, list] = {}
    for (layer, k), arrays in sorted(groups.items()):
        static: tuple = ()
        if "static" in arrays:
            try:
                static = tuple(json.loads(str(arrays.pop("static"))))
            except (ValueError, TypeError) as exc:
                raise CheckUsageError(f"--inputs {path}: {layer}/{k}/static is not a JSON "
                                      f"list: {exc}") from None
        label = arrays.pop("label", None)
        if label is not None and (label.size != 1 or label.dtype.kind not in "iub"):
            raise CheckUsageError(f"--inputs {path}: {layer}/{k}/label must be one integer "
                                  f"(a class), got {label.dtype} of shape {label.shape}")
        by_layer.setdefault(layer, []).append(
            (arrays, Given((), static, None if label is None else int(label))))
    return UserInputs(by_layer, Path(path).name)


def load(spec: str) -> UserInputs:
    """Read ``--inputs SPEC`` (see the module docstring). CheckUsageError on any problem."""
    m = re.fullmatch(r"(.+\.py)(?::(\w+))?", spec)
    file = m.group(1) if m else spec
    if Path(file).is_dir():
        raise CheckUsageError(f"--inputs {spec}: is a folder; give FILE.py, FILE.py:FUNC or "
                              "FILE.npz")
    if Path(file).exists() and not Path(file).is_file():
        raise CheckUsageError(f"--inputs {spec}: not a regular file (a pipe or device); "
                              "give FILE.py, FILE.py:FUNC or FILE.npz")
    if file.endswith(".npz"):
        if not Path(file).is_file():
            raise CheckUsageError(f"--inputs {spec}: no such file")
        return _from_npz(file)
    if file.endswith(".py"):
        if not Path(file).is_file():
            raise CheckUsageError(f"--inputs {spec}: no such file")
        return _from_python(spec)
    raise CheckUsageError(f"--inputs {spec}: give FILE.py, FILE.py:FUNC or FILE.npz")


def _short(name: str) -> str:
    return name.rpartition(":")[2]


def apply(layers: list[Layer], given: UserInputs) -> tuple[list[Layer], dict[str, int]]:
    """``layers`` with the user's inputs added before jaxcnn's own; and per layer name how
    many were added. CheckUsageError for inputs naming no layer, or of the wrong size."""
    unknown = sorted(k for k in given.by_layer
                     if k is not None and not any(matches(layer, k) for layer in layers))
    if unknown:
        raise CheckUsageError(f"--inputs: no layer named {', '.join(unknown)}; the layers "
                              f"are {', '.join(layer.name for layer in layers)}")
    out, counts = [], {}
    for layer in layers:
        # by the row name first, then by any other name the layer has, then for all
        entries = next((given.by_layer[k] for k in (layer.name, _short(layer.name))
                        if k in given.by_layer), None)
        if entries is None:
            entries = next((v for k, v in given.by_layer.items()
                            if k is not None and matches(layer, k)),
                           given.by_layer.get(None))
        if not entries:
            out.append(layer)
            continue
        sets = []
        for k, entry in enumerate(entries):
            if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], dict):
                arrays, meta = entry  # from an npz: arrays by argument name
                missing = [n for n in layer.arg_names if n not in arrays]
                extra = sorted(set(arrays) - set(layer.arg_names))
                if missing or extra:
                    raise CheckUsageError(
                        f"--inputs {given.origin}: {_short(layer.name)} input {k} needs "
                        f"arrays {', '.join(layer.arg_names)}"
                        + (f"; missing {', '.join(missing)}" if missing else "")
                        + (f"; unknown {', '.join(extra)}" if extra else ""))
                entry = meta._replace(args=tuple(arrays[n] for n in layer.arg_names))
            if len(entry.args) != len(layer.arg_names):
                raise CheckUsageError(
                    f"--inputs {given.origin}: input {k} for {_short(layer.name)} has "
                    f"{len(entry.args)} arrays; it takes {len(layer.arg_names)} "
                    f"({', '.join(layer.arg_names)})")
            args = tuple(np.array(a, dtype=np.float64) for a in entry.args)
            if layer.held is not None:
                args = tuple(layer.held(args))
            sets.append(InputSet(FAMILY, f"{PREFIX} #{k} ({given.origin})", args,
                                 entry.static, entry.label))
        own = layer.input_sets

        def input_sets(seed, sets=sets, own=own):
            return list(sets) + list(own(seed))

        out.append(layer._replace(input_sets=input_sets))
        counts[layer.name] = len(sets)
    return out, counts


__all__ = ["Given", "UserInputs", "apply", "load"]
