"""Find hand-written layers in a user's file or module, and say what was skipped.

``load_file`` and ``load_module`` execute the source afresh on every call (no ``.pyc``,
no ``sys.modules`` cache), so an edited file is never checked stale. ``find_layers``
then looks for the three styles, by methods and names:

* **blog**: a class with ``forward`` and ``backprop`` methods; its kind comes from its
  name (conv, pool, softmax/dense/fc/linear, relu, sigmoid, tanh);
* **CS231n**: functions ``<name>_forward<suffix>`` with a matching
  ``<name>_backward<suffix>`` (or a second backward of one forward,
  ``batchnorm_backward_alt``), and losses ``softmax_loss(x, y) -> (loss, dx)``; the kind
  comes first from the catalogue entries' own patterns (``catalogue.match``: batchnorm,
  dropout, lstm_step, svm_loss, ...), then from ``<name>`` (affine/fc/linear/dense, relu,
  conv, max_pool, sigmoid, tanh); a name
  of several parts (``affine_relu``, ``conv_relu_pool``: a sandwich) is checked against
  the parts composed (kind ``"conv+relu+max_pool"``), or skipped naming the part that
  has no reference (``conv_bn_relu``);
* **JAX**: ``jax.custom_vjp`` functions, and ``f`` with ``f_fwd`` / ``f_bwd`` beside it
  (the pair given to ``defvjp``); kinds as for blog classes, plus cross_entropy.

Then the finders of ``dialects.FINDERS``: module-style classes (``forward``/``backward``,
gradients returned or stored), the deep-learning specialisation's functions (claimed
before the CS231n finder sees their ``conv_forward``), whole-network pairs and
``torch.autograd.Function`` subclasses. Nothing is skipped for its name: a class, pair,
loss or ``custom_vjp`` whose name names no catalogue kind (or whose signature fits no
catalogue layout) is run on inputs built from its signature and checked against the
numeric oracle of its own forward (``adapters.function_pair``); only what cannot be run
is skipped, with what it raised.

Functions wrapped by a decorator that keeps ``__wrapped__`` (``jax.jit``,
``functools.wraps``) are found through it: the wrapped function is what is checked.

Only names defined in the module itself are considered (not what it imports).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import itertools
import os
import re
import sys
import types
from pathlib import Path
from typing import NamedTuple

from jaxcnn.check import dialects, not_layers
from jaxcnn.check.dialects import unwrap
from jaxcnn.check.layer import Layer
from jaxcnn.check.usercode import UserExit, keep_streams, no_process_exit, raised_by_code
from jaxcnn.errors import JaxcnnError


def from_blog(*args, **kwargs):
    from jaxcnn.check.adapters import from_blog as make  # JAX only once a layer is found

    return make(*args, **kwargs)


def from_cs231n(*args, **kwargs):
    from jaxcnn.check.adapters import from_cs231n as make

    return make(*args, **kwargs)


def from_cs231n_loss(*args, **kwargs):
    from jaxcnn.check.adapters import from_cs231n_loss as make

    return make(*args, **kwargs)


def from_custom_vjp(*args, **kwargs):
    from jaxcnn.check.adapters import from_custom_vjp as make

    return make(*args, **kwargs)


def from_jax_pair(*args, **kwargs):
    from jaxcnn.check.adapters import from_jax_pair as make

    return make(*args, **kwargs)


def from_function_pair(*args, **kwargs):
    from jaxcnn.check.adapters.function_pair import from_function_pair as make

    return make(*args, **kwargs)


def from_loss_function(*args, **kwargs):
    from jaxcnn.check.adapters.function_pair import from_loss_function as make

    return make(*args, **kwargs)


def probed_inputs(*args, **kwargs):
    from jaxcnn.check.adapters.function_pair import probed_inputs as probe

    return probe(*args, **kwargs)


def _is_custom_vjp(obj) -> bool:
    """Whether ``obj`` is a ``jax.custom_vjp``; False without importing JAX when the user's
    code never imported it (then nothing can be one)."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(obj, jax.custom_vjp)


class CheckUsageError(JaxcnnError):
    """The files or modules to check cannot be loaded, or hold no layers."""


# Ordered: the first pattern that matches the name gives the kind.
BLOG_KINDS = (("conv", "conv3x3"), ("pool", "maxpool2"),
              ("softmax|dense|fc|linear|affine|fullyconnected", "dense_softmax"),
              ("relu", "relu"), ("sigmoid", "sigmoid"), ("tanh", "tanh"))
CS231N_KINDS = (("conv", "conv"), ("max_?pool", "max_pool"), ("affine|fc|linear|dense", "affine"),
                ("relu", "relu"), ("sigmoid", "sigmoid"), ("tanh", "tanh"))
JAX_KINDS = (("conv", "conv3x3"), ("pool", "maxpool2"),
             ("cross_?entropy|xent|nll|loss", "cross_entropy"), ("softmax", "softmax"),
             ("dense|affine|linear|fc", "dense"), ("relu", "relu"), ("sigmoid", "sigmoid"),
             ("tanh", "tanh"))
# Layouts a JAX function of each kind may use, tried in order: the first whose reference
# its forward reproduces wins (the report's layout first).
JAX_LAYOUTS = {"conv3x3": ("conv3x3", "conv_nchw_nobias", "conv_nchw", "conv_nhwc_nobias",
                            "conv_nhwc"),
               "maxpool2": ("maxpool2", "max_pool_nchw"), "dense": ("dense", "affine")}
# A blog-style dense class may return probabilities (the report's Softmax) or logits.
BLOG_LAYOUTS = {"dense_softmax": ("dense_softmax", "dense"),
                "conv3x3": ("conv3x3", "conv3x3_bias")}
# A CS231n conv may take its images channels first (the assignment's) or channels last.
CS231N_LAYOUTS = {"conv": ("conv", "conv_nhwc_param"),
                  "max_pool": ("max_pool", "max_pool_nhwc_param")}
LOSS_KINDS = (("softmax", "softmax_loss"),)
# A loss may average over the samples (CS231n's definition) or sum them.
LOSS_LAYOUTS = {"softmax_loss": ("softmax_loss", "softmax_loss_sum")}

# Constructor arguments a blog class may require, by name.
CONSTRUCTOR_VALUES = {
    8: ("num_filters", "n_filters", "filters", "out_channels", "num_kernels", "kernels"),
    13 * 13 * 8: ("input_len", "in_features", "input_size", "n_inputs", "input_dim", "in_dim",
                  "fan_in", "inputs", "n_in"),
    10: ("nodes", "out_features", "num_classes", "n_outputs", "output_size", "output_dim",
         "out_dim", "classes", "n_out", "n_classes", "outputs"),
}
POSITIONAL_DEFAULTS = {"conv3x3": (8,), "dense_softmax": (13 * 13 * 8, 10)}


class Found(NamedTuple):
    """What ``find_layers`` found: layers to check, and (name, reason) of what it skipped."""

    layers: list[Layer]
    skipped: list[tuple[str, str]]


_counter = itertools.count()


def _execute(source: str, path: str, module_name: str, package: str | None) -> types.ModuleType:
    module = types.ModuleType(module_name)
    module.__file__ = path
    module.__package__ = package
    code, skipped = _without_script_loops(source, path)
    if skipped:
        module.__jaxcnn_skipped_loops__ = skipped
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        with no_process_exit():
            exec(code, module.__dict__)
    except UserExit as exc:
        sys.modules.pop(module_name, None)
        raise SystemExit(f"os._exit({exc.code})") from None
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


_SCRIPT_LOOP = re.compile(r"^while\b", re.MULTILINE)


def _without_script_loops(source: str, path: str) -> tuple[types.CodeType, tuple[str, ...]]:
    """(the file's code object, where the top-level training loops left out are:
    ``"line 90"``). A ``while`` at the top level of a file that calls the file's own
    functions (``while True: loss, dWxh, ... = lossFun(...)``, ``while n < 4e5: ...``) is
    a script's training loop (min-char-rnn's gist trains forever at import): it is
    replaced by ``pass``, so that the functions around it can be checked; everything
    else runs as written (``jaxcnn.check.scripts``: the same rule for a notebook's
    cells). Raises SyntaxError as ``compile`` does."""
    if not _SCRIPT_LOOP.search(source):
        return compile(source, path, "exec", dont_inherit=True), ()
    import ast

    from jaxcnn.check import scripts

    tree = ast.parse(source, path)
    defined = scripts.own_functions(tree.body)
    lines = []
    for i, stmt in enumerate(tree.body):
        if scripts.loop_calls(stmt, defined):
            lines.append(f"line {stmt.lineno}")
            tree.body[i] = ast.copy_location(ast.Pass(), stmt)
    return compile(tree, path, "exec", dont_inherit=True), tuple(lines)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}" + (f" (line {exc.lineno})" if exc.lineno else "")
    if isinstance(exc, SystemExit):
        how = exc.code if str(exc.code).startswith("os.") else f"sys.exit({exc.code})"
        return (f"it exits while being imported ({how}); put its script part under "
                "`if __name__ == \"__main__\":`")
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _file_kind(path: Path) -> str:
    """What a path that exists but is neither a file nor a folder is, in words."""
    import stat

    mode = path.stat().st_mode
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def _read_source(path: Path) -> str:
    """The file's text decoded as Python decodes a source file: UTF-8 by default, the
    encoding of a PEP 263 ``# -*- coding: latin-1 -*-`` line, a UTF-8 byte-order mark
    dropped. Raises OSError, SyntaxError (an unknown coding) or UnicodeDecodeError."""
    return importlib.util.decode_source(path.read_bytes())


_OWN = os.path.join(os.path.realpath(os.path.join(os.path.dirname(__file__), os.pardir)), "")
_INSTALLED = {os.path.join(os.path.realpath(p), "") for p in (sys.prefix, sys.base_prefix)}


def _user_source(module) -> str | None:
    """The real path of a module's source when it is user code: not jaxcnn's own, not an
    installed package, not the standard library."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return None
    real = os.path.realpath(file)
    parts = real.split(os.sep)
    if (real.startswith(_OWN) or "site-packages" in parts or "dist-packages" in parts
            or any(real.startswith(p) for p in _INSTALLED)):
        return None
    return real


def forget_modules_under(folder: str | Path) -> list[str]:
    """Drop from ``sys.modules`` the user modules that would stand in for the files in
    ``folder`` (the checked file's folder, or its package's root): those whose source
    lies under it, and those named like its files or packages but imported from
    elsewhere earlier in this process. The checked file's imports of the files beside it
    then run their current source: a check must never pass stale code. jaxcnn's own
    modules, installed packages and the standard library are kept. Returns the names
    dropped."""
    base = os.path.join(os.path.realpath(folder), "")
    try:
        entries = os.listdir(base)
    except OSError:
        entries = []
    names = {e[:-3] for e in entries if e.endswith(".py")} | {
        e for e in entries if os.path.isfile(os.path.join(base, e, "__init__.py"))}
    dropped = []
    for name, module in list(sys.modules.items()):
        real = _user_source(module)
        if real is not None and (real.startswith(base) or name.split(".")[0] in names):
            del sys.modules[name]
            dropped.append(name)
    # and what is left below a dropped package: a namespace package has no source file
    # (cs231n.classifiers without __init__.py), and one left behind its dropped parent
    # breaks the next import of it (KeyError: 'cs231n')
    parents = tuple(f"{name}." for name in dropped)
    for name in [n for n in sys.modules if parents and n.startswith(parents)]:
        if not getattr(sys.modules[name], "__jaxcnn_unbuilt__", None):  # stand-ins stay
            del sys.modules[name]
            dropped.append(name)
    return dropped


def _execute_notebook(cells, path: str, module_name: str, time_limit) -> types.ModuleType:
    """A new module holding what a notebook's code ``cells`` define (``notebook.run``:
    a cell that raises, or runs past ``time_limit`` seconds in one statement, stops
    there and the others still run), run in the notebook's folder as Jupyter runs it;
    its failures in ``__jaxcnn_failed_cells__``."""
    from jaxcnn.check import limits, notebook

    module = types.ModuleType(module_name)
    module.__file__ = path
    module.__package__ = None

    @contextlib.contextmanager
    def guard(what):
        try:
            with limits.time_limit(time_limit, what):
                yield
        except limits.Stuck as exc:
            raise notebook.Stop(str(exc)) from None

    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    here = os.getcwd()
    try:
        os.chdir(Path(path).resolve().parent)  # as Jupyter runs it: data files beside it
        failures = notebook.run(cells, path, module, guard)
        module.__jaxcnn_failed_cells__ = failures
        loops = tuple(f"cell {f.cell}, line {f.line}" for f in failures if not f.stopped)
        if loops:
            module.__jaxcnn_skipped_loops__ = loops
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        os.chdir(here)
    return module


def load_file(path: str | Path, time_limit: float | None = None) -> types.ModuleType:
    """Execute a Python file afresh as a new module (decoded as Python decodes source:
    UTF-8, or the encoding its ``coding:`` line declares), or a Jupyter notebook's code
    cells (``.ipynb``, see ``jaxcnn.check.notebook``; ``time_limit``: seconds for each
    statement of a cell, None: none; the cells that failed are listed in the module's
    ``__jaxcnn_failed_cells__``). Its folder is first on ``sys.path`` while it is
    imported, and stays importable (at the end of ``sys.path``) afterwards, so that
    imports its functions make when called still find the files beside it.

    Raises ``CheckUsageError`` (one line) when it is missing or fails to import, or for
    a notebook that is not valid JSON, not nbformat 4, or has no code cells (a notebook
    whose cells fail is imported: see above).
    """
    from jaxcnn.check import notebook

    path = Path(path)
    if path.is_dir():
        raise CheckUsageError(f"{path} is a folder; give the Python files in it "
                              f"(e.g. {path}/*.py), or -m PACKAGE.MODULE")
    if not path.is_file():
        if path.exists():  # a device, FIFO or socket: reading it could block or never end
            raise CheckUsageError(f"{path}: not a regular file ({_file_kind(path)}); give a "
                                  "Python file with your layers")
        raise CheckUsageError(f"{path}: no such file; give a Python file or a notebook "
                              "with your layers")
    if path.suffix not in (".py", notebook.SUFFIX):
        raise CheckUsageError(f"{path}: not a .py or .ipynb file; give a Python file or a "
                              "Jupyter notebook, or -m MODULE")
    try:
        if path.suffix == notebook.SUFFIX:
            cells = notebook.read(path)
        else:
            source = _read_source(path)
    except notebook.NotebookError as exc:
        raise CheckUsageError(f"{path}: {exc}") from None
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise CheckUsageError(f"cannot read {path}: {_describe(exc)}") from None
    # A file inside a package (folders with __init__.py) runs as that package's module,
    # so that its relative imports work; its top folder is importable meanwhile.
    folder, package = path.resolve().parent, []
    while path.suffix == ".py" and (folder / "__init__.py").is_file():
        package.insert(0, folder.name)
        folder = folder.parent
    root = str(folder if package else path.resolve().parent)
    name = f"_jaxcnn_check_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{next(_counter)}"
    forget_modules_under(root)
    sys.path.insert(0, root)
    try:
        with keep_streams(), contextlib.redirect_stdout(sys.stderr):
            if path.suffix == notebook.SUFFIX:  # no relative imports: not a package's
                return _execute_notebook(cells, str(path), name, time_limit)
            return _execute(source, str(path), name, ".".join(package) or None)
    except BaseException as exc:
        if not raised_by_code(exc):
            raise
        if isinstance(exc, ImportError) and (getattr(exc, "name", None) or "").split(".")[
                0] == "torch":
            from jaxcnn.check.adapters.torch_function import TORCH_EXTRA

            raise CheckUsageError(f"cannot import {path}: it imports torch, which is not "
                                  f"installed; to check PyTorch code: {TORCH_EXTRA}") from None
        raise CheckUsageError(f"cannot import {path}: {_describe(exc)}") from None
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(root)
        if root not in sys.path:  # late imports (inside the user's functions) still work,
            sys.path.append(root)  # without shadowing anything imported from elsewhere


def load_module(name: str) -> types.ModuleType:
    """Execute an importable module's source afresh (a new module object each call).

    Raises ``CheckUsageError`` when it cannot be found or fails to import.
    """
    cwd = os.getcwd()  # as `python -m` does: modules in the working folder are found
    sys.path.insert(0, cwd)
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        sys.path.remove(cwd)
        raise CheckUsageError(f"cannot find module {name!r}: {_describe(exc)}") from None
    try:
        return _load_found(name, found)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)


def _load_found(name: str, found) -> types.ModuleType:
    if found is None:
        raise CheckUsageError(f"cannot find module {name!r}; is it installed, or on PYTHONPATH?")
    origin = found.origin
    if not origin or not origin.endswith(".py"):
        raise CheckUsageError(f"module {name!r} has no Python source to check ({origin})")
    package = name if found.submodule_search_locations else name.rpartition(".")[0]
    forget_modules_under(os.path.dirname(origin))
    try:
        source = _read_source(Path(origin))
        with keep_streams(), contextlib.redirect_stdout(sys.stderr):
            return _execute(source, origin, f"_jaxcnn_check_{name}_{next(_counter)}",
                            package or None)
    except (Exception, SystemExit) as exc:
        raise CheckUsageError(f"cannot import {name}: {_describe(exc)}") from None


def _kind(name: str, table) -> tuple[str | None, list[str]]:
    """(kind, all kinds the name mentions): a name mentioning two kinds is a sandwich."""
    lowered = name.lower()
    kinds = []
    for pattern, kind in table:
        if re.search(pattern, lowered) and kind not in kinds:
            kinds.append(kind)
    return (kinds[0] if len(kinds) == 1 else None), kinds


def _own(module, obj) -> bool:
    """Defined in ``module``, or imported into it from a file in the same folder tree (a
    user's `from layers import Conv3x3`); not from installed packages; and, for a
    function, not one ``not_layers`` leaves out (a test-case builder, an evaluation
    helper: ``_not_layers`` lists them as skipped)."""
    if inspect.isfunction(obj) and _not_a_layer(obj) is not None:
        return False
    return _own_origin(module, obj)


@functools.lru_cache(maxsize=4096)
def _not_a_layer(fn) -> str | None:
    """``not_layers.why_not_a_layer`` of a function a finder would take for a layer."""
    name = getattr(fn, "__name__", "")
    return not_layers.why_not_a_layer(name, fn) if not_layers.layerish(name) else None


def _not_layers(module) -> list[tuple[str, str]]:
    """(name, why) of the module's own functions that look like layers but are not."""
    out = []
    for name, obj in vars(module).items():
        fn = unwrap(obj)
        if inspect.isfunction(fn) and _own_origin(module, fn):
            why = _not_a_layer(fn)
            if why is not None:
                out.append((name, why))
    return out


def _own_origin(module, obj) -> bool:
    """Defined in ``module`` or imported from a file in its folder tree (see ``_own``)."""
    if getattr(obj, "__module__", None) == module.__name__:
        return True
    base = getattr(module, "__file__", None)
    try:
        source = inspect.getsourcefile(getattr(obj, "fun", obj))
    except TypeError:
        return False
    if not base or not source or "site-packages" in source:
        return False
    folder = Path(base).resolve().parent
    return Path(source).resolve().is_relative_to(folder)


def _construct(cls, kind: str):
    sig = inspect.signature(cls)
    positional = list(POSITIONAL_DEFAULTS.get(kind, ()))
    args, kwargs = [], {}
    for p in sig.parameters.values():
        if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = next((v for v, names in CONSTRUCTOR_VALUES.items() if p.name.lower() in names),
                     None)
        if value is None and positional:
            value = positional[0]
        if value is None:
            raise ValueError(f"cannot guess its constructor argument {p.name!r}; give it a "
                             "default")
        if positional and value in positional:
            positional.remove(value)
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs)


def _blog_layers(module, file, layers, skipped):
    for name, obj in list(vars(module).items()):  # a snapshot: user code may add
        if not (inspect.isclass(obj) and _own(module, obj)):
            continue
        has_forward = callable(getattr(obj, "forward", None))
        has_backprop = callable(getattr(obj, "backprop", None))
        if dialects.has_module_pairs(obj) or dialects.is_torch_function(obj) or \
                dialects.is_model(obj) or dialects.is_nielsen(obj):
            continue  # module style (forward/backward), torch, loss(X, y), Nielsen's
            # feedforward/backprop(x, y): see dialects.py
        if not (has_forward and has_backprop):
            if has_forward or has_backprop:
                missing = "backprop or backward" if has_forward else "forward"
                skipped.append((name, f"class with no {missing} method"))
            continue
        kind, kinds = _kind(name, BLOG_KINDS)
        if kind is None:
            continue  # no catalogue kind: checked numerically (dialects.module_classes)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                instance = _construct(obj, kind)
                layers.append(_pick_layout(kind, lambda k, o=instance, n=name: from_blog(
                    o, k, n, file), BLOG_LAYOUTS))
        except Exception as exc:
            skipped.append(dialects.refused(name, exc, "blog",
                                            f"cannot build a {kind} layer from it"))


def _cs231n_layers(module, file, layers, skipped):
    forward_names: dict[int, str] = {}  # layer index -> its forward function's name
    _cs231n_pairs(module, file, layers, skipped, forward_names)
    # Rows that would share a name (conv_forward_naive, conv_forward_fast, ... all "conv"
    # in a layer_utils.py that imports them) are named by their forward functions.
    stems: dict[str, list[int]] = {}
    for i in forward_names:
        stems.setdefault(layers[i].name, []).append(i)
    for same in stems.values():
        if len(same) > 1:
            for i in same:
                layers[i] = layers[i]._replace(name=forward_names[i])


def _cs231n_pairs(module, file, layers, skipped, forward_names):
    functions = {n: f for n, f in ((n, unwrap(o)) for n, o in vars(module).items())
                 if inspect.isfunction(f) and _own(module, f)}
    claimed = (dialects.specialisation_names(module, _own)  # NHWC with hparameters, ...
               | dialects.linear_loss_names(module, _own)  # svm_loss(W, X, y, reg)
               | dialects.explicit_names(module, _own)  # relu(Z), relu_backward(dA, Z)
               | dialects.network_pair_names(module, _own))  # L_model_forward, a network
    if not any(re.search(r"_(forward|backward)|.+_loss$", n) for n in functions):
        return  # nothing to pair: the catalogue (and JAX with it) is not needed
    from jaxcnn.check import catalogue

    public = any(not n.startswith("_") and "_forward" in n for n in functions)
    for name, fwd in functions.items():
        if name in claimed:
            continue
        if public and name.startswith("_") and re.search(r"_(forward|backward)", name):
            if "_forward" in name:  # _pool_forward(X, pool_fun): what the public pairs call
                skipped.append((name, "a private helper (a leading _) of the public pairs "
                                      "beside it: not a layer of its own"))
            continue
        m = re.fullmatch(r"(.+?)_backward(.*)", name)
        if m and f"{m.group(1)}_forward{m.group(2)}" not in functions:
            # a second backward of one forward (batchnorm_backward_alt): paired with it
            prefix, forward = m.group(1), functions.get(f"{m.group(1)}_forward")
            kind = catalogue.match(prefix, "cs231n") if m.group(2) and forward else None
            base = f"{m.group(1)}{m.group(2)}"  # `swish(x) -> (out, cache)` beside it
            if kind is not None:
                layer_name = prefix + m.group(2)
                layers.append(_pick_layout(kind, lambda k, f=forward, b=fwd, n=layer_name:
                                           from_cs231n(f, b, k, n, file),
                                           {kind: catalogue.layouts(kind)}))
            elif base in functions and base not in claimed:
                _numeric_pair(lambda f=functions[base], b=fwd, n=base:
                              from_function_pair(f, b, n, file), base, layers, skipped)
            else:
                skipped.append((name, f"no {m.group(1)}_forward{m.group(2)} beside it"))
            continue
        m = re.fullmatch(r"(.+?)_forward(.*)", name)
        if m:
            prefix = m.group(1)
            partner = f"{prefix}_backward{m.group(2)}"
            if partner not in functions:
                skipped.append((name, f"no {partner} beside it"))
                continue
            kind = catalogue.match(prefix, "cs231n")  # the entries' own name patterns first
            if kind is not None:
                layers.append(_or_numeric(_pick_layout(
                    kind, lambda k, f=fwd, b=functions[partner], n=prefix:
                    from_cs231n(f, b, k, n, file), {kind: catalogue.layouts(kind)}),
                    fwd, functions[partner], prefix, file))
                _setting_rows(fwd, functions[partner], prefix, file, layers, skipped)
                continue
            kind, kinds = _kind(prefix, CS231N_KINDS)
            if (kind is None and kinds) or _parts(prefix) > 1:  # conv_relu_pool, conv_pool
                kind, why = _sandwich(prefix)
            if kind is None:  # no reference: the numeric oracle of its own forward
                _numeric_pair(lambda f=fwd, b=functions[partner], n=name:
                              from_function_pair(f, b, n, file), name, layers, skipped)
                _setting_rows(fwd, functions[partner], name, file, layers, skipped)
                continue
            layers.append(_or_numeric(_pick_layout(
                kind, lambda k, f=fwd, b=functions[partner], n=prefix:
                from_cs231n(f, b, k, n, file), CS231N_LAYOUTS), fwd, functions[partner],
                prefix, file))
            forward_names[len(layers) - 1] = name
            _setting_rows(fwd, functions[partner], prefix, file, layers, skipped)
        elif catalogue.match(name, "loss") is not None:
            kind = catalogue.match(name, "loss")
            layer = _pick_layout(kind, lambda k, f=fwd, n=name: from_cs231n_loss(
                f, k, n, file), {kind: catalogue.layouts(kind)})
            _loss_or_skip(layer, fwd, name, layers, skipped)
        elif re.fullmatch(r".+_loss", name):
            kind, _ = _kind(name, LOSS_KINDS)
            if kind is None:  # no reference: the numeric oracle of its own forward
                _numeric_pair(lambda f=fwd, n=name: from_loss_function(f, n, file), name,
                              layers, skipped)
            else:
                layer = _pick_layout(kind, lambda k, f=fwd, n=name: from_cs231n_loss(
                    f, k, n, file), LOSS_LAYOUTS)
                _loss_or_skip(layer, fwd, name, layers, skipped)


def _loss_or_skip(layer: Layer, loss, name: str, layers: list, skipped: list) -> None:
    """A ``loss(x, y) -> (value, dx)`` layer, or a skipped line when the function returns
    the loss alone on the layer's first input (``softmax_loss(X, t)`` of a book whose
    gradients come from layer objects): no hand-written gradient to check."""
    import numpy as np

    s = layer.input_sets(0)[0]
    try:
        with contextlib.redirect_stdout(sys.stderr), np.errstate(all="ignore"):
            result = loss(*(np.array(a, copy=True) for a in s.args), *s.static)
    except Exception:
        result = None
    if result is not None and not isinstance(result, (tuple, list)) and np.size(result) == 1:
        skipped.append((name, "it returns the loss alone, no gradient: not a layer (its "
                              "gradient is checked where it is computed)"))
        return
    layers.append(layer)


def _or_numeric(layer: Layer, forward, backward, name: str, file) -> Layer:
    """``layer`` (a CS231n pair matched to a catalogue kind by its name), or, when its
    forward runs on none of the kind's inputs (its signature is another: ``conv_forward(X,
    W, b, stride=1, padding=1)`` where the kind passes a ``conv_param`` dict), the pair
    checked against the numeric oracle of its own forward, inputs from its argument
    names, with a note saying why. ``layer`` when that cannot run either."""
    import numpy as np

    if _fits_signature(forward, layer.kind):
        return layer  # it takes the kind's arguments: its refusal is its own bug (N = 1)
    try:
        s = layer.input_sets(0)[0]
        with contextlib.redirect_stdout(sys.stderr), np.errstate(all="ignore"):
            out = np.asarray(layer.forward(s.args, s.static), np.float64)
        if np.all(np.isfinite(out)):
            return layer
        why = "it returned NaN/inf"
    except Exception as exc:
        why = _describe(exc)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            numeric = from_function_pair(forward, backward, name, file)
    except Exception:
        return layer
    if numeric.reference is not None:  # another layout of the kind (a pool without its
        return numeric  # pool_param): its own note says which
    return numeric._replace(notes=(*numeric.notes, (
        f"its name says {layer.kind}, but its forward refuses the catalogue's inputs for "
        f"it ({why[:160]}): checked against finite differences of its own forward, on "
        "inputs from its argument names")))


def _fits_signature(forward, kind: str) -> bool:
    """Whether ``forward`` takes the arguments of catalogue ``kind``: as many required
    ones as the kind's arrays and config, and a config dict (``conv_param``) where the
    kind passes one, not a number (``stride``, ``p_dropout``)."""
    from jaxcnn.check.adapters.probe import role
    from jaxcnn.check.catalogue import spec

    s = spec(kind)
    try:
        params = [p for p in inspect.signature(forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return True
    required = [p for p in params if p.default is p.empty]
    if len(required) != len(s.arg_names) + len(s.static_names):
        return False
    configs = [n for n in s.static_names if n.endswith(("_param", "_params"))
               or n == "hparameters"]
    given = [p.name for p in params[len(s.arg_names):]]
    return all(role(n) == "config" for n in given[:len(configs)])


def _setting_rows(forward, backward, name: str, file, layers: list, skipped: list) -> None:
    """A conv or pool pair whose forward takes its stride or padding as keyword numbers
    (``maxpool_forward(X, size=2, stride=2)``) checked at a second setting too, a row of
    its own (``adapters.module_names.setting_variants``): at its defaults, a backward that
    leaves out the stride, or overwrites overlapping windows, is right."""
    import functools

    from jaxcnn.check.adapters.module_names import setting_variants

    def make(setting, shown):
        def at(*args, **kwargs):
            return forward(*args, **{**setting, **kwargs})
        functools.update_wrapper(at, forward)  # its source, name and signature
        # the user's own functions for the first-wrong-step analysis (``at`` calls the
        # forward, whose code that analysis instruments)
        return from_function_pair(at, backward, shown, file)._replace(
            sources=(forward, backward))

    more, why = dialects.setting_rows(setting_variants(forward, name), name, make)
    layers += more
    skipped += why


def _numeric_pair(make, name: str, layers: list, skipped: list) -> None:
    """A layer the catalogue has no reference for, checked against finite differences
    of its own forward; skipped (saying why) only when no input tried runs it."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            layers.append(make())
    except Exception as exc:
        skipped.append(dialects.refused(name, exc, "cs231n", "no reference for it, and it "
                                        "cannot be run for the numeric oracle"))


# The parts of a CS231n sandwich name (``conv_relu_pool``), by token.
SANDWICH_TOKENS = {"conv": "conv", "relu": "relu", "pool": "max_pool", "maxpool": "max_pool",
                   "affine": "affine", "fc": "affine", "linear": "affine", "dense": "affine"}


def _tokens(prefix: str) -> list[str]:
    return [t for t in re.sub(r"max_pool", "maxpool", prefix.lower()).split("_") if t]


def _parts(prefix: str) -> int:
    """How many layer names of ``SANDWICH_TOKENS`` the name holds."""
    return sum(t in SANDWICH_TOKENS for t in _tokens(prefix))


def _sandwich(prefix: str) -> tuple[str | None, str]:
    """(kind, "") for a CS231n sandwich whose every part has a reference, e.g.
    "conv_relu_pool" -> "conv+relu+max_pool"; else (None, why it is skipped)."""
    from jaxcnn.check.catalogue import spec

    tokens = _tokens(prefix)
    parts = [SANDWICH_TOKENS.get(t) for t in tokens]
    unknown = [t for t, p in zip(tokens, parts, strict=True) if p is None]
    named = " + ".join(tokens)
    if unknown:
        return None, (f"a sandwich of layers ({named}) with a part jaxcnn has no reference "
                      f"for ({', '.join(unknown)}): check each part")
    kind = "+".join(parts)
    try:
        spec(kind)
    except ValueError as exc:
        return None, f"a sandwich of layers ({named}): {exc}; check each part"
    return kind, ""


def _jax_layers(module, file, layers, skipped):
    items = {name: unwrap(obj) for name, obj in vars(module).items()}
    checked = set()  # a custom_vjp under two names (f and f_jit = jax.jit(f)) is checked once
    for name, obj in items.items():
        if _is_custom_vjp(obj):
            if not _own(module, obj.fun) or id(obj) in checked:
                continue
            checked.add(id(obj))
            kind, kinds = _kind(name, JAX_KINDS)
            _jax_layer(kind, obj.fun, lambda k, f=obj, n=name, **kw: from_custom_vjp(
                f, k, n, file=file, **kw), name, layers, skipped)
        elif inspect.isfunction(obj) and _own(module, obj):
            fwd, bwd = items.get(f"{name}_fwd"), items.get(f"{name}_bwd")
            if callable(fwd) and callable(bwd):
                kind, _ = _kind(name, JAX_KINDS)
                _jax_layer(kind, obj, lambda k, f=obj, a=fwd, b=bwd, n=name, **kw:
                           from_jax_pair(f, a, b, k, n, file=file, **kw), name, layers,
                           skipped)


def _arity(fn) -> int:
    """How many positional arguments ``fn`` requires."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return -1
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
               for p in params)


def _first_runs(layer: Layer) -> bool:
    import jax  # a JAX layer: imported already
    import numpy as np

    s = layer.input_sets(0)[0]
    try:
        with jax.enable_x64(True), contextlib.redirect_stdout(sys.stderr):
            out = np.asarray(layer.forward(s.args, s.static), np.float64)
        return bool(np.all(np.isfinite(out)))
    except Exception:
        return False


def _jax_layer(kind, primal, make, name: str, layers: list, skipped: list) -> None:
    """A JAX layer: the catalogue's layouts of ``kind`` whose argument count is the
    signature's (never an invented argument) and that its forward runs on; else inputs
    found from its signature and a run of its forward (``function_pair.probed_inputs``);
    autodiff of its own forward is the exact oracle either way."""
    from jaxcnn.check.catalogue import spec

    arity = _arity(primal)
    if kind is not None:
        fits = [k for k in JAX_LAYOUTS.get(kind, (kind,))
                if len(spec(k).arg_names) + len(spec(k).static_names) == arity
                or len(spec(k).arg_names) + len(spec(k).input_sets(0)[0].static) == arity]
        if fits:
            try:
                layer = _pick_layout(kind, make, {kind: tuple(fits)})
                if _first_runs(layer):
                    layers.append(layer)
                    return
            except Exception:
                pass
    try:
        arg_names, inputs, static, input_sets = probed_inputs(primal)
        layers.append(make(None, arg_names=arg_names, inputs=inputs, static=static)._replace(
            input_sets=input_sets, notes=(
                ("no catalogue entry for its name" if kind is None else
                 f"no catalogue layout of {kind} fits its signature and a run of it")
                + ": inputs from its signature and a run of its forward",)))
    except Exception as exc:
        skipped.append(dialects.Refused(
            name, "its forward runs on none of the inputs tried "
                  f"({_describe(exc)}); check it from Python: "
                  "jaxcnn.check.from_custom_vjp(f, arg_names=..., inputs=[...])", "jax"))


def _pick_layout(kind: str, make, layouts: dict) -> Layer:
    """The layer built by ``make(kind)`` for the first layout of ``layouts[kind]`` whose
    reference the user's forward reproduces on its first input; else the first layout it
    runs on; else the first layout that could be built (its checks report the error).
    Raises what ``make(kind)`` raises when no layout can be built."""
    import jax
    import numpy as np

    from jaxcnn.check.autodiff import forward as reference_forward
    from jaxcnn.check.catalogue import spec
    from jaxcnn.check.compare import rel_error
    from jaxcnn.check.engine import FORWARD_TOL

    candidates, first_error = [], None
    for k in layouts.get(kind, (kind,)):
        try:
            candidates.append(make(k))
        except Exception as exc:
            first_error = first_error or exc
    if not candidates:
        raise first_error
    if len(candidates) == 1:
        return candidates[0]
    runs = []
    with jax.enable_x64(True), contextlib.redirect_stdout(sys.stderr):
        for layer in candidates:
            s = layer.input_sets(0)[0]
            try:
                raw = np.asarray(layer.forward(s.args, s.static))
                out = raw.astype(np.float64)
            except Exception:
                continue
            runs.append(layer)
            # A blog or CS231n layer's reference is already in the user's layout; a JAX
            # layer's reference is its own forward, so compare with the catalogue's.
            reference = (layer.reference if layer.style in ("blog", "cs231n")
                         else spec(layer.kind).reference)
            try:
                want = reference_forward(reference.forward, s.args, s.static)
            except Exception:
                continue
            # As the engine judges a forward: float32 code gets float32's tolerance.
            tol = FORWARD_TOL["float32" if raw.dtype == np.float32 else "float64"]
            if out.shape == want.shape and rel_error(out, want) <= tol:
                return layer
    return (runs or candidates)[0]


def find_layers(module, file: str | None = None, companions=()) -> Found:
    """Every layer of the three styles in ``module`` (see the module docstring).
    companions: the other modules checked with it (where an ``ActivationLayer(activation,
    activation_prime)`` finds its function pairs when its own file has none)."""
    layers: list[Layer] = []
    skipped: list[tuple[str, str]] = _not_layers(module)
    _blog_layers(module, file, layers, skipped)
    _cs231n_layers(module, file, layers, skipped)
    _jax_layers(module, file, layers, skipped)
    # the classes the blog finder checked or skipped for a reason of their own
    blog = {layer.name for layer in layers if layer.style == "blog"} | {n for n, _ in skipped}
    for finder in dialects.FINDERS:
        more, why = finder(module, file, _own, blog, companions)
        layers += more
        skipped += why
    return Found(layers, skipped)


__all__ = ["CheckUsageError", "Found", "find_layers", "load_file", "load_module"]
