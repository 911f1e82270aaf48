"""Discovery of the dialects beyond the report's, CS231n's and JAX's (``discover.py``).

One finder per dialect, each ``(module, file, own, taken, companions) -> (layers,
skipped)`` (``companions``: the other modules checked with it), listed in
``FINDERS``; ``discover.find_layers`` runs them after its own three:

* ``module_classes``: classes with ``forward``/``backward`` (or ``__call__``/``backward``,
  or ``X_forward``/``X_backward`` method pairs): ``adapters.module_style``; and
  ``forward``/``backprop`` classes whose name names no catalogue kind (checked
  numerically instead of skipped); a class whose constructor takes functions
  (``ActivationLayer(tanh, tanh_prime)``) once per ``f`` / ``f_prime`` pair:
  ``adapters.function_args``;
* ``specialisation``: the deep-learning specialisation's NHWC functions with an
  ``hparameters`` dict, ``mode`` or ``activation`` argument: ``adapters.specialisation``;
  its RNN / LSTM cells and sequences with a ``parameters`` dict
  (``rnn_cell_forward(xt, a_prev, parameters)``): ``adapters.specialisation_rnn``;
* ``logistic_propagates``: its logistic regression's ``propagate(w, b, X, Y) -> (grads,
  cost)``: ``adapters.logistic``;
* ``network_pairs``: ``forward_propagation`` with ``backward_propagation`` (a whole
  network's cost and gradients dict): ``adapters.network_pair``;
* ``model_losses``: classes with ``loss(X, y) -> (loss, grads)`` and a ``self.params``
  dict (CS231n's ``TwoLayerNet``): ``adapters.model_loss``; with ``loss(X_batch,
  y_batch, reg) -> (loss, dW)`` on ``self.W`` (``LinearSVM``):
  ``adapters.linear_loss.from_linear_classifier``;
* ``linear_losses``: CS231n assignment 1's ``svm_loss_naive(W, X, y, reg) -> (loss, dW)``
  and its kin (``softmax_loss_vectorized``): ``adapters.linear_loss``;
* ``torch_functions``: ``torch.autograd.Function`` subclasses:
  ``adapters.torch_function``;
* ``derivative_pairs``: a function and its derivative beside it (``tanh`` /
  ``tanh_prime``, ``mse`` / ``mse_prime``), checked numerically (relu, sigmoid, tanh
  against the catalogue too);
* ``derivative_classes``: a class holding a function and its derivative as methods
  (``Sigmoid.__call__`` / ``gradient``, ``SquareLoss.loss`` / ``gradient``), checked as
  ``derivative_pairs``;
* ``explicit_pairs``: ``f(*args) -> out`` with ``f_backward(dout, *args)`` or
  ``fBackward`` (no cache: the backward takes the forward's inputs), beside it or in a
  file checked with it: ``adapters.explicit_pair``;
* ``whole_functions``: a function returning the loss and the gradients of parameters it
  reads from outside (min-char-rnn's ``lossFun`` on module globals or ``self``), and
  Nielsen's ``Network.backprop(x, y) -> (nabla_b, nabla_w)``: ``adapters.whole_function``;
* ``scalar_engines``: hand-written scalar autograd engines (micrograd's ``Value``: a
  ``backward`` method, operations storing ``_backward`` closures) and networks built on
  one (micrograd's ``MLP``): ``adapters.scalar_engine``.

A finder never raises for the user's code: what cannot be built is skipped with the
reason.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys

from jaxcnn.check import limits
from jaxcnn.check.layer import Layer
from jaxcnn.check.refusals import NotALayer, Refused, refused


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_torch_function(obj) -> bool:
    return inspect.isclass(obj) and any(
        b.__name__ == "Function" and b.__module__.startswith("torch.autograd")
        for b in obj.__mro__[1:])


def module_classes(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """Module-style classes (see ``adapters.module_style``); ``taken``: class names the
    blog finder already checks. A class whose constructor takes functions
    (``ActivationLayer(activation, activation_prime)``) is built with each ``f`` /
    ``f_prime`` pair of the module, or else of the ``companions`` (the other modules
    checked with it): ``adapters.function_args``."""
    layers, skipped = [], []
    activations = None  # the f / f_prime pairs, found once a class needs them
    # a snapshot: running the user's code may add to its module's globals (a warning
    # adds __warningregistry__)
    for name, obj in list(vars(module).items()):
        if not (inspect.isclass(obj) and own(module, obj)) or name in taken \
                or is_torch_function(obj):
            continue
        # JAX: only once there is a class
        from jaxcnn.check.adapters import function_args, module_style

        pairs = module_style.method_pairs(obj)
        if not pairs and callable(getattr(obj, "forward", None)) and callable(
                getattr(obj, "backprop", None)):
            pairs = [(name, "forward", "backprop")]
        takes = function_args.function_params(obj) if pairs else []
        if takes and activations is None:
            activations = _activation_pairs(module, own, companions)
        for layer_name, fwd, bwd in pairs:
            if takes:
                more, why = function_args.make_all(
                    obj, layer_name, fwd, bwd, file, takes, *activations,
                    heirs=function_args.heirs_of(obj, [module, *companions], file))
                layers += more
                skipped += why
                continue
            if is_stub(getattr(obj, fwd, None)) and is_stub(getattr(obj, bwd, None)):
                skipped.append((layer_name, f"a base class: its {fwd} and {bwd} do nothing "
                                            "(pass); the classes built on it are checked"))
                continue
            if inspect.isabstract(obj):  # an abc.ABC with abstract methods: no instance
                skipped.append((layer_name, "an abstract base class (abstract methods: "
                                + ", ".join(sorted(obj.__abstractmethods__))
                                + "); the classes built on it are checked"))
                continue
            try:
                with contextlib.redirect_stdout(sys.stderr), \
                        limits.item(f"finding the layer {layer_name}"):
                    layers.append(module_style.make(obj, layer_name, fwd, bwd, file))
            except Exception as exc:
                text = _describe(exc)
                skipped.append((layer_name, text.partition(": ")[2]) if "an abstract class"
                               in text else refused(layer_name, exc, "module"))
                continue
            more, why = setting_rows(  # a conv's stride 2, padding 1, ...
                module_style.setting_variants(obj), layer_name,
                lambda setting, shown, obj=obj, fwd=fwd, bwd=bwd: module_style.make(
                    obj, shown, fwd, bwd, file, given=setting))
            layers += more
            skipped += why
    return layers, skipped


def setting_rows(variants: list[dict], name: str, make) -> tuple[list[Layer], list]:
    """The rows of a layer at its second settings (``module_names.setting_variants``,
    in order of preference): the first that the code runs at (``make(setting, shown)``,
    then its forward on its first input set); where the first (both settings at once) is
    refused, each of the others that runs, so that one the code refuses (stride 2) does
    not take the other (padding) with it. The refused are listed as skipped."""
    from jaxcnn.check.adapters.module_names import setting_label

    layers, skipped = [], []
    for k, setting in enumerate(variants):
        shown = f"{name} ({setting_label(setting)})"
        try:
            with contextlib.redirect_stdout(sys.stderr), \
                    limits.item(f"finding the layer {shown}"):
                layers.append(runs_or_raises(make(setting, shown)))
        except Exception as exc:
            skipped.append((shown, setting_refused(exc)))
            continue
        if k == 0:
            break
    return layers, skipped


def runs_or_raises(layer: Layer) -> Layer:
    """``layer`` when its forward runs on its first input set; else what it raises (a
    second setting's row that the code refuses: ``setting_refused``)."""
    import numpy as np

    s = layer.input_sets(0)[0]
    with np.errstate(all="ignore"):
        layer.forward(s.args, s.static)
    return layer


def setting_refused(exc: BaseException) -> str:
    """Why a second setting's row (``adapters.module_names.setting_variants``) is not
    checked: the code refuses those settings, which is its own choice, not a bug."""
    return ("not checked at these settings: the code refuses them (" + _describe(exc)[:160]
            + "); the default settings' row is checked")


def is_stub(fn) -> bool:
    """Whether ``fn``'s body does nothing: only a docstring, ``pass``, ``...``, or
    ``raise NotImplementedError`` (a base class's placeholder). False when its source
    cannot be read."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return False
    body = tree.body[0].body if tree.body and isinstance(
        tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if not body:
        return False
    for stmt in body:
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(
                stmt.value, ast.Constant)):
            continue
        if isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.dump(stmt):
            continue
        return False
    return True


def _activation_pairs(module, own, companions) -> tuple[list, str]:
    """(the ``f`` / ``f_prime`` pairs of one argument, where they come from): the
    module's own (defined or imported from beside it), else the companions'."""
    from jaxcnn.check.adapters.function_args import activation_pairs

    pairs = activation_pairs(_functions(module, own))
    if pairs:
        return pairs, "a function pair of its file"
    seen, found, origin = set(), [], []
    for other in companions:
        if other is module:
            continue
        for pair in activation_pairs(_functions(other, own)):
            if pair.name not in seen:
                seen.add(pair.name)
                found.append(pair)
                label = os.path.basename(getattr(other, "__file__", None) or other.__name__)
                if label not in origin:
                    origin.append(label)
    return found, f"a function pair of {', '.join(origin)}"


def is_model(cls) -> bool:
    """A class with ``loss(X, y)`` (``adapters.model_loss``), whatever else it has."""
    from jaxcnn.check.adapters.model_loss import is_model as model

    return model(cls)


def is_nielsen(cls) -> bool:
    """Nielsen's ``Network``: ``feedforward(a)`` with ``backprop(x, y)``
    (``adapters.whole_function``)."""
    from jaxcnn.check.adapters.whole_function import is_nielsen as nielsen

    return nielsen(cls)


def has_module_pairs(cls) -> bool:
    from jaxcnn.check.adapters import module_style

    return bool(module_style.method_pairs(cls))


def unwrap(obj):
    """What a wrapper such as ``jax.jit`` (anything with ``__wrapped__``) wraps: a plain
    function, or a ``jax.custom_vjp`` (not unwrapped further: its VJP is what is checked).
    ``obj`` itself when it wraps nothing."""
    seen = 0
    jax = sys.modules.get("jax")  # no JAX imported: nothing can be a custom_vjp
    while (not (jax is not None and isinstance(obj, jax.custom_vjp))
           and getattr(obj, "__wrapped__", None) is not None
           and seen < 10):
        obj, seen = obj.__wrapped__, seen + 1
    return obj


def _params(fn) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _required(fn) -> list[str]:
    """``fn``'s positional arguments that have no default (all of them if none has)."""
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in ps if p.default is p.empty and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _functions(module, own) -> dict:
    return {n: f for n, f in ((n, unwrap(o)) for n, o in vars(module).items())
            if inspect.isfunction(f) and own(module, f)}


def specialisation_pairs(functions: dict) -> list[tuple[str, str, str, dict]]:
    """(dialect kind, forward name, backward name, options) of the deep-learning
    specialisation's functions in ``functions`` (name -> function)."""
    from jaxcnn.check.adapters.specialisation_rnn import is_char_rnn, rnn_kind

    out = []
    char = [n for n, f in functions.items() if re.fullmatch(r"rnn_forward", n)
            and "rnn_backward" in functions
            and is_char_rnn([p.lower() for p in _params(f)],
                            [p.lower() for p in _params(functions["rnn_backward"])])]
    if char:  # Dinosaur Island's utils.py: its step functions are checked through it
        out.append(("char_rnn", "rnn_forward", "rnn_backward", {}))
        if {"rnn_step_forward", "rnn_step_backward"} <= set(functions):
            out.append(("char_rnn_step", "rnn_step_forward", "rnn_step_backward", {}))
    for name, fn in functions.items():
        params = _params(fn)
        lowered = [p.lower() for p in params]
        m = re.fullmatch(r"(.*?)_?forward(.*)", name)
        back = f"{m.group(1)}_backward{m.group(2)}" if m else f"{name}_backward"
        if back not in functions:
            continue
        if char and name in ("rnn_forward", "rnn_step_forward"):
            continue
        first = lowered[0] if lowered else ""
        recurrent = rnn_kind(name, lowered)
        if recurrent is not None:
            out.append((recurrent, name, back, {}))
            continue
        hparams = any(p in ("hparameters", "hparams", "hyperparameters") for p in lowered)
        if hparams and "pool" in name.lower():
            out.append(("pool", name, back, {"mode": "mode" in lowered}))
        elif hparams and "conv" in name.lower():
            out.append(("conv", name, back, {}))
        elif "activation" in lowered and first in ("a_prev", "a", "x", "a_previous"):
            out.append(("linear_activation", name, back, {}))
        elif m and "linear" in name.lower() and first in ("a_prev", "a", "a_previous") \
                and len(params) == 3:
            out.append(("linear", name, back, {}))
        elif not m and name.lower() in ("relu", "sigmoid", "tanh") and len(params) == 1 \
                and _explicit_map(fn, functions[back]) is None:  # relu_backward(dA, cache)
            out.append(("activation", name, back, {}))
    return out


def specialisation(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """The deep-learning specialisation's functions (``adapters.specialisation``)."""
    functions = _functions(module, own)
    layers, skipped = [], []
    pairs = specialisation_pairs(functions)
    if not pairs:
        return layers, skipped
    from jaxcnn.check.adapters import from_cs231n
    from jaxcnn.check.adapters import specialisation as sp

    for kind, fwd_name, bwd_name, opts in pairs:
        fwd, bwd = functions[fwd_name], functions[bwd_name]
        try:
            if kind == "char_rnn":
                from jaxcnn.check.adapters.specialisation_rnn import from_char_rnn

                layers.append(from_char_rnn(fwd, bwd, fwd_name, file))
            elif kind == "char_rnn_step":
                skipped.append((fwd_name, "a step of rnn_forward / rnn_backward beside it "
                                "(the character-level model): checked through them"))
            elif kind in ("rnn_cell", "lstm_cell", "rnn_columns", "lstm_columns"):
                from jaxcnn.check.adapters.specialisation_rnn import from_rnn

                layers.append(from_rnn(fwd, bwd, kind, fwd_name, file))
            elif kind == "conv":
                layers.append(sp.from_conv(fwd, bwd, fwd_name, file))
            elif kind == "pool":
                for mode in (("max", "average") if opts["mode"] else ("max",)):
                    layers.append(sp.from_pool(fwd, bwd, mode, fwd_name, file,
                                               mode_given=opts["mode"]))
            elif kind == "linear_activation":
                takes = _params(bwd)
                if len(takes) > 3:  # (dA_curr, W_curr, b_curr, Z_curr, A_prev, activation)
                    raise ValueError(
                        f"its backward {bwd_name}({', '.join(takes)}) takes the forward's "
                        "inputs and outputs one by one, not the specialisation's (dA, cache, "
                        "activation); such a pair is not checked yet: check it from Python "
                        "(jaxcnn.check.from_function_pair)")
                for act in _activations(fwd, bwd):
                    layers.append(sp.from_linear(fwd, bwd, act, fwd_name, file))
            elif kind == "linear":
                layers.append(sp.from_linear(fwd, bwd, None, fwd_name, file))
            else:  # relu(Z): rows named by the user's argument (Z), not the catalogue's x
                layer = from_cs231n(fwd, bwd, fwd_name.lower(), fwd_name, file)
                own_names = tuple(_params(fwd)[:len(layer.arg_names)])
                layers.append(layer._replace(arg_names=own_names, axis_names={
                    **dict(zip(own_names, (layer.axis_names or {}).values(), strict=False)),
                    "out": (layer.axis_names or {}).get("out")}))
        except Exception as exc:
            skipped.append(refused(fwd_name, exc, "specialisation"))
    return layers, skipped


def _activations(*functions) -> list[str]:
    """The activation names a linear_activation pair handles: the string literals among
    "relu", "sigmoid", "tanh" in its source (relu and sigmoid when none is found)."""
    text = ""
    for fn in functions:
        with contextlib.suppress(OSError, TypeError):
            text += inspect.getsource(fn)
    found = [a for a in ("relu", "sigmoid", "tanh") if re.search(rf"""['"]{a}['"]""", text)]
    return found or ["relu", "sigmoid"]


def specialisation_names(module, own) -> set[str]:
    """Function names the specialisation finder checks (the CS231n finder leaves them)."""
    return {n for _, f, b, _ in specialisation_pairs(_functions(module, own)) for n in (f, b)}


def network_pairs(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """``forward_propagation(X, Y, parameters)`` with ``backward_propagation(X, Y,
    cache)`` (any suffix: ``_n``): ``adapters.network_pair``."""
    from jaxcnn.check.adapters.network_pair import from_model_pair, from_network_pair

    functions = _functions(module, own)
    layers, skipped = [], []
    cost = next((functions[n] for n in ("compute_cost", "cost", "compute_loss")
                 if n in functions), None)
    for name, fn in functions.items():
        m = re.fullmatch(r"(.*)model_forward(.*)", name, re.IGNORECASE)
        back = m and f"{m.group(1)}model_backward{m.group(2)}"
        if m and back in functions and cost is not None:  # L_model_forward, compute_cost
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    layers.append(from_model_pair(fn, functions[back], cost, name, file))
            except Exception as exc:
                skipped.append(refused(name, exc, "network"))
            continue
        m = re.fullmatch(r"(.*)forward_prop(?:agation|agate)?(.*)", name)
        if not m:
            continue
        back = next((b for b in (f"{m.group(1)}backward_propagation{m.group(2)}",
                                 f"{m.group(1)}backward_prop{m.group(2)}",
                                 f"{m.group(1)}backward_propagate{m.group(2)}")
                     if b in functions), None)
        params = [p.lower() for p in _params(fn)]
        if back is None or not any(p in ("parameters", "params") for p in params):
            if back is not None and name not in specialisation_names(module, own):
                skipped.append((name, "a forward/backward propagation pair without a "
                                      "parameters dict argument: check it from Python"))
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):
                layers.append(from_network_pair(fn, functions[back], name, file,
                                                cost_fn=cost))
        except Exception as exc:
            skipped.append(refused(name, exc, "network"))
    return layers, skipped


def logistic_propagates(module, file, own, taken: set, companions=()) -> tuple[list[Layer],
                                                                               list]:
    """The specialisation's ``propagate(w, b, X, Y) -> (grads, cost)`` (logistic
    regression): ``adapters.logistic``."""
    from jaxcnn.check.adapters.logistic import from_propagate, is_propagate

    layers, skipped = [], []
    for name, fn in _functions(module, own).items():
        if name in taken or not is_propagate(name, _required(fn)):
            continue
        try:
            layers.append(from_propagate(fn, name, file))
        except Exception as exc:
            skipped.append(refused(name, exc, "logistic"))
    return layers, skipped


def network_pair_names(module, own) -> set[str]:
    """``L_model_forward`` / ``L_model_backward`` the network finder checks (with a
    ``compute_cost`` beside them): the CS231n finder leaves them."""
    functions = _functions(module, own)
    if not any(n in functions for n in ("compute_cost", "cost", "compute_loss")):
        return set()
    out = set()
    for name in functions:
        m = re.fullmatch(r"(.*)model_forward(.*)", name, re.IGNORECASE)
        back = m and f"{m.group(1)}model_backward{m.group(2)}"
        if m and back in functions:
            out |= {name, back}
    return out


def model_losses(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """Classes with ``loss(X, y) -> (loss, grads)`` and a ``self.params`` dict (CS231n's
    ``TwoLayerNet``, ``FullyConnectedNet``, ``ThreeLayerConvNet``), once per configuration
    (``model_loss.variants``: batch or layer norm, dropout): ``adapters.model_loss``."""
    layers, skipped = [], []
    for name, obj in list(vars(module).items()):  # a snapshot: user code may add
        if not (inspect.isclass(obj) and own(module, obj)) or name in taken:
            continue
        from jaxcnn.check.adapters import model_loss

        if not model_loss.is_model(obj) or inspect.isabstract(obj):
            continue
        from jaxcnn.check.adapters import linear_loss

        if linear_loss.is_linear_classifier(obj):  # CS231n's LinearSVM: loss on self.W
            if is_stub(obj.loss):
                skipped.append((name, "a base class: its loss does nothing (pass); the "
                                      "classes built on it are checked"))
                continue
            try:
                layers.append(linear_loss.from_linear_classifier(obj, name, file))
            except Exception as exc:
                skipped.append(refused(name, exc, "cs231n"))
            continue
        for overrides in model_loss.variants(obj):
            shown = model_loss.variant_name(name, overrides)
            try:
                layers.append(model_loss.from_model(obj, shown, file, overrides))
            except Exception as exc:
                skipped.append(refused(shown, exc, "model"))
            if not layers or layers[-1].name != shown and not overrides:
                break  # its defaults do not run: no variant will
    return layers, skipped


def linear_loss_names(module, own) -> set[str]:
    """Function names the linear-loss finder checks (the CS231n finder leaves them: a
    ``softmax_loss(W, X, y, reg)`` is no ``softmax_loss(x, y)``)."""
    from jaxcnn.check.adapters.linear_loss import is_linear_loss

    return {n for n, f in _functions(module, own).items() if is_linear_loss(n, f)}


def linear_losses(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """A linear classifier's ``loss(W, X, y, reg) -> (loss, dW)`` (CS231n assignment 1's
    ``svm_loss_naive``, ``softmax_loss_vectorized``): ``adapters.linear_loss``."""
    layers, skipped = [], []
    names = linear_loss_names(module, own)
    if not names:
        return layers, skipped
    from jaxcnn.check.adapters.linear_loss import from_linear_loss

    functions = _functions(module, own)
    for name in sorted(names, key=list(functions).index):
        try:
            layers.append(from_linear_loss(functions[name], name, file))
        except Exception as exc:
            skipped.append(refused(name, exc, "cs231n"))
    return layers, skipped


def torch_functions(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """``torch.autograd.Function`` subclasses: ``adapters.torch_function``."""
    from jaxcnn.check.adapters.torch_function import from_torch_function

    layers, skipped = [], []
    for name, obj in list(vars(module).items()):  # a snapshot: user code may add
        if not (is_torch_function(obj) and own(module, obj)):
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):
                layers.append(from_torch_function(obj, name, file))
        except Exception as exc:
            skipped.append(refused(name, exc, "torch"))
    return layers, skipped


def derivative_pairs(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """A function and its derivative beside it, as blogs write them: ``tanh(x)`` with
    ``tanh_prime(x)`` (elementwise: the derivative times the cotangent), ``mse(y_true,
    y_pred)`` with ``mse_prime(y_true, y_pred)`` (a loss: its gradient with respect to the
    prediction, the argument named like one, else the second). Checked against the numeric
    oracle of the function itself, and for ``relu``, ``sigmoid`` and ``tanh`` against the
    catalogue's exact oracle too (its kink inputs and classic mistakes); other names of a
    catalogue kind (``gelu``, ``leaky_relu``, ``elu``, ``softplus``; ``mse``, ``mae``,
    ``binary_cross_entropy``) too, where the function reproduces its reference
    (``adapters.module_catalogue``)."""
    import numpy as np

    from jaxcnn.check.adapters import probe
    from jaxcnn.check.adapters.function_args import DERIVATIVE_SUFFIXES

    functions = _functions(module, own)
    layers, skipped = [], []
    for name, fn in functions.items():
        for suffix in DERIVATIVE_SUFFIXES:
            d = functions.get(name + suffix)
            if d is None or name.endswith(DERIVATIVE_SUFFIXES):
                continue
            # the arguments without defaults: leaky_relu(x, alpha=0.01) is elementwise
            params = _required(fn)
            try:
                layers.append(_derivative_layer(fn, d, params, name, file, np, probe)._replace(
                    names=(name + suffix,)))
            except Exception as exc:
                skipped.append(refused(name, exc, "derivative",
                                       f"cannot run it with {name + suffix}"))
            break
    return layers, skipped


# A class holding a function and its derivative as methods (ML-From-Scratch's
# ``Sigmoid.__call__`` / ``gradient``, ``SquareLoss.loss`` / ``gradient``).
CLASS_FUNCTIONS = ("__call__", "function", "fn", "activation", "loss", "forward")
CLASS_DERIVATIVES = ("gradient", "derivative", "deriv", "prime", "grad", "df")


def derivative_classes(module, file, own, taken: set, companions=()) -> tuple[list[Layer],
                                                                               list]:
    """Classes with a function and its derivative as methods, and no backward:
    ``Sigmoid()(x)`` with ``Sigmoid().gradient(x)`` (elementwise), ``SquareLoss().loss(y,
    y_pred)`` with ``.gradient(y, y_pred)``; built with no arguments (defaults kept) and
    checked as ``derivative_pairs`` checks a function pair, a loss that returns one value
    per entry as their sum (its gradient per entry is that sum's)."""
    import numpy as np

    from jaxcnn.check.adapters import probe
    from jaxcnn.check.adapters.module_names import method_pairs  # (no JAX)

    layers, skipped = [], []
    for name, obj in vars(module).items():
        if not (inspect.isclass(obj) and obj.__module__ == module.__name__) \
                or name in taken or is_torch_function(obj) \
                or method_pairs(obj) or callable(getattr(obj, "backprop", None)):
            continue  # (defined here: one imported from beside it is checked in its file)
        fname = next((f for f in CLASS_FUNCTIONS if f in _defined(obj)), None)
        dname = next((f for f in CLASS_DERIVATIVES if f in _defined(obj)), None)
        if fname is None or dname is None or is_model(obj) or _needs_arguments(obj):
            continue  # a model's loss(x, t) and gradient(x, t): ``model_losses``
        if is_stub(getattr(obj, fname)) and is_stub(getattr(obj, dname)):
            skipped.append((name, f"a base class: its {fname} and {dname} do nothing; the "
                                  "classes built on it are checked"))
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):
                inst = obj()
                fn, d = getattr(inst, fname), getattr(inst, dname)
                layer = _derivative_layer(fn, d, _params(fn), name, file, np, probe,
                                          reduce="auto")
            layers.append(layer._replace(names=(f"{name}.{dname}",), notes=(
                *layer.notes, f"its {fname} and its {dname} (the derivative), as a "
                              "function pair")))
        except Exception as exc:
            if "NotImplementedError" in f"{type(exc).__name__} {exc}":
                skipped.append((name, f"a base class: its {fname} or {dname} is not "
                                      "implemented; the classes built on it are checked"))
                continue
            skipped.append(refused(name, exc, "derivative",
                                   f"cannot run its {fname} with its {dname}"))
    return layers, skipped


def _needs_arguments(cls) -> bool:
    """Whether the constructor requires arguments (a function object needs none)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in params)


def _defined(cls) -> set[str]:
    """Method names ``cls`` defines itself or inherits from its own bases (not object)."""
    return {n for b in cls.__mro__[:-1] for n, v in vars(b).items() if callable(v)}


def _derivative_layer(fn, d, params, name, file, np, probe, reduce: str = "mean") -> Layer:
    from jaxcnn.check.layer import InputSet

    if len(params) == 1:
        def forward(args, static):
            return np.asarray(fn(np.array(args[0], copy=True)), np.float64)

        def vjp(args, static):
            out = forward(args, static)
            return out, lambda ct: (np.asarray(ct) * np.asarray(d(np.array(args[0],
                                                                           copy=True))),)

        def raw(args, static):  # on the array itself: a prime that zeroes its x shows
            out = fn(args[0])
            return out, lambda ct: (np.asarray(ct) * np.asarray(d(args[0])),)

        def input_sets(seed):
            r = np.random.default_rng(seed)
            return [InputSet("random", f"random {params[0]} (3, 4)", (r.standard_normal(
                (3, 4)),))]
        forward((np.zeros((3, 4)),), ())
        kind = name.lower()
        if kind in ("relu", "sigmoid", "tanh", "softmax"):  # the exact oracle, its kinks
            # and mistakes (a softmax "derivative" applied elementwise: its diagonal only)
            from jaxcnn.check.catalogue import spec

            known = spec(kind)
            return Layer(name, kind, "derivative", (params[0],), forward, vjp,
                         known.reference, known.input_sets, file=file, raw=raw)
        import types

        from jaxcnn.check.adapters import module_catalogue

        # gelu, leaky_relu, elu, softplus ...: the catalogue kind whose reference the
        # function reproduces (its usual settings tried: a leaky ReLU's slope)
        known = module_catalogue.find(name, types.SimpleNamespace(), [], [], (3, 4), forward)
        if known is not None:
            return Layer(name, known.kind, "derivative", (params[0],), forward, vjp,
                         known.reference, known.input_sets, file=file, raw=raw,
                         notes=(known.note,))
        return Layer(name, "custom", "derivative", (params[0],), forward, vjp, None,
                     input_sets, file=file, raw=raw)
    if len(params) != 2:
        raise ValueError("a function of more than two arguments")
    lowered = [p.lower() for p in params]
    i = next((k for k, p in enumerate(lowered)
              if re.search(r"pred|output|^a$|^al$|hat|^p$|prob|logit", p)), 1)

    def order(x, y):
        return (x, y) if i == 0 else (y, x)

    def total(value, like):  # "auto": a loss of one value per entry is their sum
        value = np.asarray(value, np.float64)
        if reduce == "auto" and value.shape == np.shape(like):
            return np.asarray(np.sum(value))
        return np.asarray(np.mean(value))

    def forward(args, static):
        return total(fn(*order(np.array(args[0], copy=True), _c(static[0]))), args[0])

    def vjp(args, static):
        out = forward(args, static)
        g = d(*order(np.array(args[0], copy=True), _c(static[0])))
        # a prime that returns the per-entry derivative of a mean, or of a sum (scaled)
        return out, lambda ct: (np.asarray(ct) * np.asarray(g, np.float64),)

    def raw(args, static):  # on the arrays themselves
        out = total(fn(*order(args[0], static[0])), args[0])
        return out, lambda ct: (np.asarray(ct) * np.asarray(d(*order(args[0], static[0])),
                                                             np.float64),)

    def input_sets(seed):
        r = np.random.default_rng(seed)
        y_pred = probe.random_like(r, (3, 4), "probabilities")
        y_true = np.eye(4)[r.integers(0, 4, 3)]
        return [InputSet("random", f"random {params[i]} (3, 4) (probabilities), "
                         f"{params[1 - i]} one-hot (3, 4)", (y_pred,), (y_true,))]
    s0 = input_sets(0)[0]
    forward(s0.args, s0.static)
    from jaxcnn.check.adapters import module_catalogue

    known = module_catalogue.find_loss(name, s0.static[0], forward)  # mse, bce, ...
    if known is not None:
        return Layer(name, known.kind, "derivative", (params[i],), forward, vjp,
                     known.reference, known.input_sets, file=file, raw=raw,
                     static_names=(params[1 - i],),
                     notes=(f"a loss and its derivative: checked as the mean of {name}",
                            known.note))
    summed = np.shape(fn(*order(np.array(s0.args[0], copy=True), _c(s0.static[0])))) == \
        np.shape(s0.args[0])
    return Layer(name, "loss", "derivative", (params[i],), forward, vjp, None, input_sets,
                 file=file, raw=raw, static_names=(params[1 - i],),
                 notes=(f"a loss and its derivative: checked as the "
                        f"{'sum' if reduce == 'auto' and summed else 'mean'} of {name}, "
                        "against finite differences",))


def _c(v):
    import numpy as np

    return np.array(v, copy=True) if isinstance(v, np.ndarray) else v


def _explicit_map(forward, backward):
    from jaxcnn.check.adapters.explicit_pair import argument_map

    return argument_map(forward, backward)


# The backward of ``f`` in the explicit dialect: ``f_backward``, camelCase ``fBackward``.
EXPLICIT_BACKWARD = re.compile(r"(.+?)(?:_backward|Backward)")
EXPLICIT_KINDS = ("relu", "sigmoid", "tanh")  # names with an exact oracle of one argument


def explicit_candidates(module, own, companions=()) -> list[tuple[str, object, object]]:
    """(forward name, forward, backward) of the explicit dialect in ``module``: a backward
    ``f_backward`` / ``fBackward`` of the module whose ``f`` (here, else in a companion)
    takes the arguments it is given after the upstream gradient (``f_forward`` beside it
    makes it CS231n's instead)."""
    functions = _functions(module, own)
    others = [_functions(m, own) for m in companions if m is not module]
    out = []
    for name, bwd in functions.items():
        m = EXPLICIT_BACKWARD.fullmatch(name)
        if not m or f"{m.group(1)}_forward" in functions:
            continue
        base = m.group(1)
        fwd = functions.get(base) or next((fs[base] for fs in others if base in fs), None)
        if fwd is not None and _explicit_map(fwd, bwd) is not None:
            out.append((base, fwd, bwd))
    return out


def explicit_names(module, own) -> set[str]:
    """Function names the explicit finder checks (the CS231n finder leaves them)."""
    return {n for base, f, b in explicit_candidates(module, own)
            for n in (base, b.__name__)}


def explicit_pairs(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """``f(*args) -> out`` with ``f_backward(dout, *args)`` / ``fBackward``:
    ``adapters.explicit_pair``."""
    layers, skipped = [], []
    candidates = explicit_candidates(module, own, companions)
    if not candidates:
        return layers, skipped
    from jaxcnn.check.adapters.explicit_pair import from_explicit_pair

    for base, fwd, bwd in candidates:
        kind = base.lower() if base.lower() in EXPLICIT_KINDS else None
        try:
            with contextlib.redirect_stdout(sys.stderr):
                layers.append(from_explicit_pair(fwd, bwd, base, file, kind))
        except Exception as exc:
            skipped.append(refused(base, exc, "explicit"))
    return layers, skipped


def whole_functions(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """Whole functions returning the loss and every gradient, their parameters read from
    outside (``adapters.whole_function``): min-char-rnn's ``lossFun(inputs, targets,
    hprev)`` on module globals or ``self`` attributes, and Nielsen's ``Network`` with
    ``feedforward`` / ``backprop(x, y) -> (nabla_b, nabla_w)``, once per cost class of its
    file."""
    from jaxcnn.check.adapters import whole_function as wf

    layers, skipped = [], []
    candidates = [(n, f, None) for n, f in _functions(module, own).items()
                  if wf.is_global_loss(f)]
    for cname, obj in list(vars(module).items()):  # a snapshot: user code may add
        if not (inspect.isclass(obj) and own(module, obj)) or cname in taken:
            continue
        for mname, meth in vars(obj).items():
            if inspect.isfunction(meth) and wf.is_global_loss(meth):
                candidates.append((f"{cname}.{mname}", meth, obj))
        if wf.is_nielsen(obj):
            for overrides in wf.nielsen_variants(obj, module):
                shown = wf.nielsen_name(cname, overrides)
                try:
                    layers.append(wf.from_nielsen(obj, shown, file, overrides))
                except Exception as exc:
                    skipped.append(refused(shown, exc, "whole"))
    for name, fn, owner in candidates:
        try:
            layers.append(wf.from_global_loss(fn, name, file, owner))
        except Exception as exc:
            skipped.append(refused(name, exc, "whole"))
    functions = _functions(module, own)
    for name, fn in functions.items():
        if not wf.is_function_model(fn):
            continue
        init = wf.init_for(fn, functions)
        if init is None:
            skipped.append((name, "a loss of a parameters dict without an init_* function "
                                  "beside it to build that dict: check it from Python"))
            continue
        try:
            layers.append(wf.from_function_model(fn, init, name, file))
        except Exception as exc:
            skipped.append(refused(name, exc, "model"))
    return layers, skipped


def scalar_engines(module, file, own, taken: set, companions=()) -> tuple[list[Layer], list]:
    """Hand-written scalar autograd engines (micrograd's ``Value``: a ``backward``
    method, arithmetic dunders storing ``_backward`` closures, a ``grad``), one layer per
    operation and per engine-level property, and a network built on one (micrograd's
    ``MLP`` with ``parameters()``): ``adapters.scalar_engine``."""
    from jaxcnn.check.adapters import scalar_engine as se  # (no JAX)

    layers, skipped = [], []
    engines = []
    for name, obj in list(vars(module).items()):  # a snapshot: user code may add
        # defined here, or imported from a file beside it (micrograd's nn.py imports its
        # engine: the engine's operations are checked with the network)
        if not (inspect.isclass(obj) and own(module, obj)) \
                or name in taken or not se.is_engine(obj) or obj in engines:
            continue
        engines.append(obj)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                more, why = se.from_engine(obj, _source_file(obj) or file)
        except Exception as exc:
            skipped.append(refused(name, exc, "scalar"))
            continue
        layers += more
        skipped += why
    engines += [o for o in vars(module).values() if inspect.isclass(o) and o not in engines
                and se.is_engine(o)]  # imported from beside it (micrograd's nn.py)
    for name, obj in list(vars(module).items()):
        if not (inspect.isclass(obj) and own(module, obj)
                and getattr(obj, "__module__", None) == module.__name__) \
                or obj in engines or name in taken or not se.is_network(obj):
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):
                layer = se.from_network(obj, engines, name, file)
        except Exception as exc:
            skipped.append(refused(name, exc, "scalar"))
            continue
        if layer is not None:
            layers.append(layer)
    return layers, skipped


def _source_file(obj) -> str | None:
    try:
        return inspect.getsourcefile(obj)
    except TypeError:
        return None


FINDERS = (module_classes, specialisation, network_pairs, logistic_propagates, model_losses,
           linear_losses, torch_functions, derivative_pairs, explicit_pairs,
           derivative_classes, whole_functions, scalar_engines)

__all__ = ["FINDERS", "NotALayer", "Refused", "has_module_pairs", "is_torch_function",
           "module_classes", "refused"]
