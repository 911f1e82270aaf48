"""Models whose ``loss(X, y)`` returns ``(loss, grads)``: CS231n's classifiers.

The form of the assignments' ``TwoLayerNet`` (assignment 1: ``loss(X, y=None,
reg=0.0)``; assignment 2: ``loss(X, y=None)`` with ``self.reg``), ``FullyConnectedNet``
and ``ThreeLayerConvNet``::

    class TwoLayerNet:
        def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10,
                     weight_scale=1e-3, reg=0.0):
            self.params = {"W1": ..., "b1": ..., "W2": ..., "b2": ...}
            self.reg = reg
        def loss(self, X, y=None):          # scores (N, C) when y is None
            ...
            return loss, grads              # grads: the params' keys -> arrays

How the engine sees it (``from_model``): the differentiable arguments are the entries of
``self.params`` (in its order; a tuple key ``("W", 1)`` is shown ``W1``), ``X``, ``y``
and the regularisation strength are static; the layer's output is the loss, and each
entry of ``grads`` is checked against finite differences of the model's own loss (the
numeric oracle: the user's loss is the reference, regularisation included). The model
is built small by its constructor's argument names, defaults overridden (``input_dim``
4, or ``(2, 4, 4)`` where the default is an image shape; ``hidden_dim`` 5,
``hidden_dims`` ``[5, 4]``; ``num_classes`` 3; ``num_filters`` 3, ``filter_size`` 3;
``dtype`` float64; ``seed`` 0), on 6 samples, with every parameter drawn afresh per
input set (weights scaled by 1/sqrt(fan-in), biases not zero). The first input set has
no regularisation (``reg`` 0), the second ``reg`` 0.25; a regularisation gradient left
out, halved, doubled or of the wrong sign is ``wrong-derivative`` with the rule naming
it (the L2 term's gradient, ``2 c W`` for a loss term ``c * sum(W ** 2)``, is measured
on the user's own loss: its change with ``reg``, probed along each parameter).

A model on images whose source names a pool (``windows.max``, ``max_pool_forward``)
gets a third input set (``reg`` 0) where every pool window ties: ``X`` all zeros and
every bias positive, so each conv output is its bias, equal across each window, and
moving a parameter moves a whole window together (the loss stays differentiable and
finite differences are exact). A backward that gives each tied maximum the full
upstream gradient (``mask = windows == pooled``) is then k times too large in every
parameter before the pool (k = 4 for a 2x2 window): ``tie-overcount``, named so only
there (``extra``); random inputs never tie.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
import sys

import numpy as np

from jaxcnn.check.layer import Alternate, InputSet, Layer

SAMPLES = 6
REG = 0.25
X_NAME = re.compile(r"^(x|X|inputs?|data|x_?batch|X_?batch)$")
POOL = re.compile(r"pool", re.IGNORECASE)

# constructor arguments set by name, defaults overridden: (pattern, value for an int or
# None default, value for a tuple/list default)
SIZES = (
    (r"input_?(size|dim)|d_?in|n_?inputs?|num_?inputs|input_?shape", 4, (2, 4, 4)),
    (r"hidden_?(sizes|dims)|hidden_?layers|layer_?dims|hidden_?size_?list", [5, 4], [5, 4]),
    (r"hidden_?(size|dim)|hidden|n_?hidden|num_?hidden", 5, [5, 4]),
    (r"output_?(size|dim)|num_?classes|n_?classes|classes|n_?out", 3, 3),
    (r"num_?filters|n_?filters|filters|filter_?num", 3, 3),
    (r"filter_?size|kernel_?size", 3, 3),
)


def _params_of(fn) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []


def is_model(cls) -> bool:
    """A class with ``loss(X, y...)``: a first argument named like the data, a second
    named ``y`` (labels)."""
    loss = getattr(cls, "loss", None)
    if not callable(loss) or not inspect.isfunction(loss):
        return False
    names = [p.name for p in _params_of(loss)]
    return len(names) >= 3 and X_NAME.match(names[1]) is not None and names[2] in (
        "y", "Y", "labels", "y_batch", "targets", "t", "T", "label")


# Where a model whose ``loss(x, t)`` returns the loss alone computes its gradients: the
# "Deep Learning from Scratch" book's ``gradient(x, t) -> grads`` (beside its
# ``numerical_gradient(x, t)``).
GRADIENT_METHODS = ("gradient", "gradients", "compute_gradients", "backprop_gradient")


def gradient_method(cls) -> str | None:
    """The name of the model's ``gradient(x, t)`` method, or None."""
    for name in GRADIENT_METHODS:
        fn = getattr(cls, name, None)
        if inspect.isfunction(fn) and len(_params_of(fn)) >= 3:
            return name
    return None


def _value_for(p: inspect.Parameter):
    """(value, shown) for a constructor argument, or None to leave it to its default."""
    name = p.name.lower()
    default = p.default
    if name == "dtype":
        return np.float64, "float64"
    if name == "seed":
        return 0, "0"
    if name == "reg":
        return 0.0, None
    if isinstance(default, dict):  # a config dict (conv_param={"filter_num": 30, ...}):
        value = {k: next((scalar for pattern, scalar, _ in SIZES  # its sizes made small
                          if isinstance(k, str) and re.fullmatch(pattern, k.lower())
                          and isinstance(v, int)), v) for k, v in default.items()}
        return (value, repr(value)) if value != default else None
    for pattern, scalar, sequence in SIZES:
        if re.fullmatch(pattern, name):
            value = sequence if isinstance(default, (tuple, list)) else scalar
            return copy.copy(value), repr(value)
    return None


def variants(cls) -> list[dict]:
    """The configurations a model is checked in: its defaults, then each normalization
    its source names (``normalization="batchnorm"``, ``"layernorm"``, or
    ``use_batchnorm=True``) and dropout (``dropout_keep_ratio=0.5``, ``dropout=0.5``,
    ``use_dropout=True``) where its constructor takes them."""
    names = {p.name for p in _params_of(cls)}
    source = ""
    for fn in (cls.__init__, cls.loss):  # a method's source is found by its code's file,
        try:                             # a class's only through sys.modules
            source += inspect.getsource(fn)
        except (OSError, TypeError):
            pass
    out = [{}]
    if "normalization" in names:
        out += [{"normalization": v} for v in ("batchnorm", "layernorm")
                if re.search(rf"""['"]{v}['"]""", source)]
    if "use_batchnorm" in names:
        out.append({"use_batchnorm": True})
    for dropout in ("dropout_keep_ratio", "dropout", "keep_prob"):
        if dropout in names:
            out.append({dropout: 0.5, **({"use_dropout": True} if "use_dropout" in names
                                         else {})})
            break
    return out


def variant_name(cls_name: str, overrides: dict) -> str:
    """``FullyConnectedNet(normalization='batchnorm')``; the class's name for defaults."""
    if not overrides:
        return cls_name
    return f"{cls_name}({', '.join(f'{k}={v!r}' for k, v in overrides.items())})"


def build(cls, overrides: dict | None = None):
    """(an instance of ``cls``, what to say about it, the arguments given): sizes set by
    name (see the module docstring), ``overrides`` by name. ValueError naming a required
    argument that cannot be guessed."""
    kwargs, shown = {}, []
    overrides = overrides or {}
    for p in _params_of(cls):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in overrides:
            kwargs[p.name] = overrides[p.name]
            shown.append(f"{p.name}={overrides[p.name]!r}")
            continue
        chosen = _value_for(p)
        if chosen is None:
            if p.default is p.empty:
                raise ValueError(f"cannot guess its constructor argument {p.name!r}; give it "
                                 "a default")
            continue
        kwargs[p.name] = chosen[0]
        if chosen[1] is not None:
            shown.append(f"{p.name}={chosen[1]}")
    with contextlib.redirect_stdout(sys.stderr):
        obj = cls(**kwargs)
    return obj, f"built as {cls.__name__}({', '.join(shown)})", kwargs


def key_name(key) -> str:
    """A params key as a row name: ``W1``; a tuple key ``("W", 1)`` is ``W1`` too."""
    if isinstance(key, str):
        return key
    if isinstance(key, tuple):
        return "".join(str(k) for k in key)
    return str(key)


def _draw(rng, key, shape: tuple) -> np.ndarray:
    """A weight scaled by 1/sqrt(fan-in); a scale (gamma) near 1; other vectors small."""
    name = key_name(key).lower()
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        return rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))
    if name.startswith("gamma"):
        return 1.0 + 0.1 * rng.standard_normal(shape)
    return 0.1 * rng.standard_normal(shape)


def _what(value) -> str:
    """A value's type and shape, for a message: ``list of 4``, ``ndarray (6, 3)``."""
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, np.ndarray):
        return f"an array {value.shape}"
    return f"a {type(value).__name__}"


def from_model(cls, name: str | None = None, file: str | None = None,
               overrides: dict | None = None) -> Layer:
    """A ``Layer`` for a model class with ``loss(X, y) -> (loss, grads)`` (see the module
    docstring), built with ``overrides`` (constructor arguments by name, see
    ``variants``). Raises ValueError when it cannot be built, holds no ``params`` dict of
    float arrays, or its loss runs on no input tried (saying what it raised)."""
    name = name or variant_name(cls.__name__, overrides or {})
    template, note, kwargs = build(cls, overrides)
    params = getattr(template, "params", None)
    if not isinstance(params, dict) or not params:
        raise ValueError("its constructor sets no self.params dict of the parameters")
    keys = [k for k, v in params.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    if not keys:
        raise ValueError("self.params holds no float arrays")
    loss_params = [p.name for p in _params_of(cls.loss)]
    reg_arg = "reg" in loss_params
    reg_attr = not reg_arg and isinstance(getattr(template, "reg", None), (int, float))
    shapes = [np.shape(params[k]) for k in keys]
    dtypes = [params[k].dtype for k in keys]
    x_shape = _input_shape(kwargs, shapes)

    def fresh(args, reg):
        o = copy.deepcopy(template)
        for k, value, dtype in zip(keys, args, dtypes, strict=True):
            if isinstance(o.params[k], np.ndarray) and o.params[k].shape == np.shape(value):
                o.params[k][...] = value  # in place: the layers holding it see it too
            else:
                o.params[k] = np.array(value, dtype=dtype, copy=True)
        if reg_attr:
            o.reg = reg
        return o

    grad_name = gradient_method(cls)
    # loss(x, t, train_flg=False): a gradient method calls it in training mode
    train = {p.name: True for p in _params_of(cls.loss)[3:]
             if grad_name is not None and re.search(r"train", p.name, re.IGNORECASE)
             and p.default is False}
    grad_reg = grad_name is not None and "reg" in [
        p.name for p in _params_of(getattr(cls, grad_name))]

    def call(o, x, y, reg, own=False):
        """``o.loss`` on copies of ``x`` and ``y``, or (``own``) on the arrays themselves;
        ``(loss, grads)`` from ``loss`` and a ``gradient(x, t)`` method beside it (called
        on a twin of ``o``) when ``loss`` returns the loss alone."""
        from jaxcnn.check.adapters.probe import seeded

        extra = {"reg": reg} if reg_arg else {}
        extra.update(train)  # the mode its gradient method computes in
        twin = copy.deepcopy(o) if grad_name is not None and y is not None else None
        again = (np.array(x, copy=True), np.array(y, copy=True)) if twin else None
        if not own:
            x, y = np.array(x, copy=True), None if y is None else np.array(y, copy=True)
        with seeded(), contextlib.redirect_stdout(sys.stderr):
            result = o.loss(x, y, **extra)
        if twin is None or (isinstance(result, (tuple, list)) and len(result) >= 2):
            return result
        with seeded(), contextlib.redirect_stdout(sys.stderr):
            grads = getattr(twin, grad_name)(*again, **({"reg": reg} if grad_reg else {}))
        return _WithGradient((result, grads))

    def value_of(result) -> np.ndarray:
        value = result[0] if isinstance(result, (tuple, list)) else result
        return np.asarray(value, dtype=np.float64).reshape(())

    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(x_shape)
    args0 = [_draw(rng, k, s) for k, s in zip(keys, shapes, strict=True)]
    try:
        scores = np.asarray(call(fresh(args0, 0.0), x0, None, 0.0))
        classes = int(scores.shape[-1]) if scores.ndim == 2 and scores.shape[0] == SAMPLES \
            else 3
    except Exception:
        classes = 3
    y0 = np.arange(SAMPLES) % classes
    try:
        result = call(fresh(args0, 0.0), x0, y0, 0.0)
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise ValueError(f"its loss raised on X {x_shape} with {classes} classes: "
                         f"{type(exc).__name__}{': ' * bool(text)}{text}") from None
    result_first = result
    if not (isinstance(result, (tuple, list)) and len(result) >= 2):
        from jaxcnn.check.refusals import NotALayer  # scores or a loss alone: no backward

        raise NotALayer("its loss(X, y) returns no (loss, grads) pair with a grads dict")
    if not (isinstance(result[1], dict) and np.size(result[0]) == 1):
        shown = ", ".join(_what(r) for r in result[:4]) + (", ..." if len(result) > 4 else "")
        raise ValueError(
            f"its loss(X, y) returns ({shown}), not (loss, grads) with a scalar loss and "
            "grads a dict keyed like self.params")
    returned_more = ([f"its loss(X, y) returns {len(result)} values: the first two are read as "
              "(loss, grads), the rest is not checked"] if len(result) > 2 else [])
    regs = (0.0, REG) if (reg_arg or reg_attr) else (0.0,)
    stray = stray_keys(result[1], params, keys)
    pools = len(x_shape) == 4 and _pools(cls)

    def input_sets(seed):
        sets = []
        if pools:  # last: a bug seen on random inputs too is named there first
            r = np.random.default_rng([seed, 4])
            args = tuple(_draw(r, key, s) for key, s in zip(keys, shapes, strict=True))
            args = tuple(np.abs(a) + 0.5 if a.ndim == 1 and not key_name(k).lower()
                         .startswith("gamma") else a for k, a in zip(keys, args, strict=True))
            y = r.permutation(np.arange(SAMPLES) % classes)
            tied = [InputSet("flat", f"X {x_shape} all zeros, biases positive (every pool "
                                     f"window tied), labels {y.tolist()}", args,
                             (np.zeros(x_shape), y, 0.0),
                             note="every pool window ties: a tie-overcount shows")]
        for k, reg in enumerate(regs):
            r = np.random.default_rng(seed * 1000 + k)
            args = tuple(_draw(r, key, s) for key, s in zip(keys, shapes, strict=True))
            x = r.standard_normal(x_shape)
            y = r.permutation(np.arange(SAMPLES) % classes)
            what = f"random X {x_shape}, labels {y.tolist()}" + (
                f", reg {reg:g}" if len(regs) > 1 else "")
            sets.append(InputSet("random" if reg == 0 else "regularized", what, args,
                                 (x, y, reg)))
        return sets + tied if pools else sets

    def forward(args, static):
        x, y, reg = static
        return value_of(call(fresh(args, reg), x, y, reg))

    def vjp(args, static):
        x, y, reg = static
        result = call(fresh(args, reg), x, y, reg)
        grads = result[1] if isinstance(result, (tuple, list)) and len(result) > 1 else None

        def back(ct):
            if not isinstance(grads, dict):
                raise TypeError(f"loss returned a {type(grads).__name__} where a grads dict "
                                "belongs")
            return tuple(None if grads.get(k) is None
                         else float(ct) * np.asarray(grads[k], np.float64) for k in keys)
        return value_of(result), back

    def grads_of(result):
        grads = result[1] if isinstance(result, (tuple, list)) and len(result) > 1 else None
        if not isinstance(grads, dict):
            raise TypeError(f"loss returned a {type(grads).__name__} where a grads dict "
                            "belongs")
        return grads

    def raw(args, static):
        """The user's model on the caller's arrays (``jaxcnn.check.sanity``): its params
        are ``args`` themselves (float64 ones), its loss gets ``X`` and ``y`` themselves.
        The first backward returns that call's grads; each later one calls the loss
        again on the same object, on copies of ``X`` and ``y`` as they were given (a
        model that accumulates grads or keeps state across calls answers differently)."""
        x, y, reg = static
        o = copy.deepcopy(template)
        for k, value, dtype in zip(keys, args, dtypes, strict=True):
            o.params[k] = value if dtype == np.float64 else np.array(value, dtype=dtype)
        if reg_attr:
            o.reg = reg
        again = (np.array(x, copy=True), np.array(y, copy=True))
        result = call(o, x, y, reg, own=True)
        calls = []

        def back(ct):
            r = result if not calls else call(o, *(np.array(a, copy=True) for a in again),
                                              reg, own=True)
            calls.append(1)
            grads = grads_of(r)
            return tuple(None if grads.get(k) is None
                         else float(ct) * np.asarray(grads[k], np.float64) for k in keys)
        return value_of(result), back

    def extra(args, static, ct):
        """On the set whose pool windows all tie (``X`` all zeros), a gradient too large
        by a factor is a tie overcount (the engine names only such a finding by it)."""
        x = static[0]
        if not pools or np.any(x):
            return []
        return [(key_name(k), "tie-overcount", "every pool window ties here (X all zeros: "
                 "each conv output is its bias) and this gradient is k times too large: "
                 "each tied maximum gets the FULL upstream gradient (an `==` mask, "
                 "`windows == pooled`), which is not a subgradient; give each window's "
                 "gradient to one maximum (argmax), or split it among the ties")
                for k in keys]

    def offsets(args, static, ct):
        """The L2 term's gradient on the user's own loss, and its classic slips."""
        x, y, reg = static
        if reg == 0:
            return []
        reg_grads = _l2_gradients(forward, args, x, y, reg)
        if reg_grads is None or not any(g is not None for g in reg_grads):
            return []
        g = [None if r is None else float(ct) * r for r in reg_grads]

        def times(f):
            return tuple(None if r is None else f * r for r in g)
        return [Alternate("regularization left out", times(1.0), False, "wrong-derivative",
                          "the regularization term's gradient is left out (the loss has "
                          "reg * sum(W ** 2) or 0.5 * reg * sum(W ** 2); its gradient "
                          "belongs in grads too)"),
                Alternate("regularization halved", times(0.5), False, "wrong-derivative",
                          "half the regularization term's gradient: reg * W where the loss "
                          "has reg * sum(W ** 2) (its gradient is 2 * reg * W)"),
                Alternate("regularization doubled", times(-1.0), False, "wrong-derivative",
                          "twice the regularization term's gradient: 2 * reg * W where the "
                          "loss has 0.5 * reg * sum(W ** 2) (its gradient is reg * W)"),
                Alternate("regularization sign-flipped", times(2.0), False,
                          "wrong-derivative", "the regularization term's gradient is "
                          "subtracted where it is added")]

    if grad_name is not None and not _returns_pair(result_first):
        shown = ", ".join(p.name for p in _params_of(getattr(cls, grad_name))[1:3])
        source = f"its {grad_name}({shown}) returns"
    else:
        source = "its loss(X, y) returns"
    notes = [*returned_more, *stray, note,
             f"a whole model: each entry of the grads {source} is "
                   "checked against finite differences of that loss"
                   + (f" (regularization included: reg 0, then {REG:g})"
                      if len(regs) > 1 else "")]
    if pools:
        notes.append("it pools: also checked on X all zeros with positive biases, where "
                     "every pool window ties (a tie-overcount shows there only)")
    return Layer(name, "model", "model", tuple(key_name(k) for k in keys), forward, vjp,
                 None, input_sets, file=file, notes=tuple(notes),
                 offsets=offsets, raw=raw, static_names=("X", "y", "reg"), extra=extra,
                 sources=(cls.loss, cls.loss))


def _returns_pair(result) -> bool:
    """Whether ``result`` came from a ``loss`` returning ``(loss, grads)`` itself."""
    return isinstance(result, (tuple, list)) and len(result) >= 2 and isinstance(
        result[1], dict) and not isinstance(result, _WithGradient)


class _WithGradient(tuple):
    """``(loss, grads)`` made of a ``loss`` value and a ``gradient`` method's grads."""


def _pools(cls) -> bool:
    """Whether the model's source (its class, or its file, where a pool helper such as
    ``max_pool_forward_fast`` is defined or imported) names a pool."""
    for obj in (cls, inspect.getmodule(cls)):
        try:
            if POOL.search(inspect.getsource(obj)):
                return True
        except (OSError, TypeError):
            continue
    return False


def stray_keys(grads: dict, params: dict, keys: list) -> list[str]:
    """Notes on the keys of ``grads`` that are not keys of ``params`` (never checked, so
    never silent): each named, with the parameter it was likely meant for (one whose
    gradient is missing, equal but for case, else a close spelling)."""
    import difflib

    missing = {key_name(k): k for k in keys if k not in grads}
    notes = []
    for k in grads:
        if k in params:
            continue
        shown = key_name(k)
        meant = next((m for m in missing if m.lower() == shown.lower()), None) or next(
            iter(difflib.get_close_matches(shown, list(missing), n=1, cutoff=0.6)), None)
        if meant is not None:
            notes.append(f"grads[{k!r}] is not a key of self.params, so it is not checked: "
                         f"did you mean {missing[meant]!r}? (its gradient is missing)")
        else:
            notes.append(f"grads[{k!r}] is not a key of self.params ("
                         f"{', '.join(map(repr, params)) or 'none'}), so it is not checked")
    return notes


def _input_shape(kwargs: dict, shapes: list) -> tuple:
    """X's shape: (6, D) or (6, C, H, W) from the constructor's input size, else from the
    first parameter (a matrix's rows)."""
    for k, v in kwargs.items():
        if re.fullmatch(SIZES[0][0], k.lower()):
            return (SAMPLES, *v) if isinstance(v, (tuple, list)) else (SAMPLES, int(v))
    if shapes and len(shapes[0]) == 2:
        return (SAMPLES, shapes[0][0])
    raise ValueError("no input size among its constructor's arguments (input_dim, "
                     "input_size)")


def _l2_gradients(forward, args, x, y, reg) -> list | None:
    """Per parameter, the gradient of the loss's regularization term: with ``D(p) =
    loss(reg) - loss(0)`` at ``p`` scaled by 0, 1 and 2, a term ``c * sum(p ** 2)`` gives
    ``D(1) - D(0) = c |p|^2`` and ``D(2) - D(0) = 4 c |p|^2``; its gradient is ``2 c p``
    (None for a parameter it leaves alone). None when the term is not such an L2."""
    def d(i, factor):
        moved = tuple(a * factor if j == i else a for j, a in enumerate(args))
        return float(forward(moved, (x, y, reg))) - float(forward(moved, (x, y, 0.0)))

    out = []
    for i, a in enumerate(args):
        norm = float(np.sum(np.asarray(a) ** 2))
        d0, d1, d2 = d(i, 0.0), d(i, 1.0), d(i, 2.0)
        c = (d1 - d0) / norm if norm > 0 else 0.0
        scale = max(abs(d2 - d0), abs(d0), 1e-12)
        if abs((d2 - d0) - 4 * (d1 - d0)) > 1e-6 * scale:
            return None  # not an L2 term in this parameter
        out.append(None if abs(c) * norm <= 1e-9 * max(abs(d0), 1e-12) or c == 0
                   else 2 * c * np.asarray(a, np.float64))
    return out


__all__ = ["build", "from_model", "is_model", "key_name", "variant_name", "variants"]
