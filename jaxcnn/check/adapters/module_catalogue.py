"""Module-style classes matched to a catalogue kind: ``class BatchNorm`` with
``forward(x)`` / ``backward(dout)`` and ``self.dgamma``, ``class Dropout``, ``class
LeakyReLU(alpha)``, ``class GlobalAveragePool`` ... checked against the catalogue's
reference, its inputs and its named mistakes instead of finite differences only.

A class is a candidate for every kind whose ``Spec.names["module"]`` pattern its whole
lower-cased name matches (``catalogue.matches``), each kind with its ``layouts``; the first
whose reference, with the settings tried below, reproduces the user's forward on the
first input set (or reproduces one of its known wrong forwards: the engine then reports
the forward's bug) wins. Nothing matched: ``find`` returns None and the class is checked
against finite differences of its own forward, as before.

How the object's arrays become the kind's arguments:

* the input is the kind's ``x`` (a layer norm's ``(..., D)`` input is normalised over
  its last axis: rows ``(-1, D)`` for the reference, reshaped back);
* parameters are matched by name (``ROLES``): ``gamma`` / ``weight`` / ``scale`` / ``g``
  is gamma, ``beta`` / ``bias`` / ``shift`` / ``b`` is beta, each of any shape with one
  entry per feature or channel (``(D,)``, ``(1, D)``, ``(1, C, 1, 1)``); ``Wx`` / ``Wh``
  / ``b`` a recurrent layer's, ``W`` / ``b`` a time-distributed affine's; parameters held
  in a list (``self.params = [Wx, Wh, b]``) are taken in the kind's order. A missing
  gamma, beta or h0 is the constant 1, 0 or zeros (a norm without affine parameters, a
  sequence that starts from h = 0); an array the kind has no place for, or a required
  one missing, rules the kind out;
* a sequence's input is ``(N, T, D)``; the inputs are drawn at the object's own sizes
  (its running statistics and gradient buffers have them) with several N (and T), and a
  batch of one;
* the static settings come from the object where it names them (``eps`` / ``epsilon``,
  ``alpha`` / ``negative_slope``, ``p`` / ``rate`` / ``keep_prob``, a pool's
  ``kernel_size`` / ``pool_size`` / ``f`` and ``stride``, a conv's ``stride`` and
  ``pad`` / ``padding`` ("valid", "same" or a number), an upsampling's
  ``scale_factor`` / ``size``), else from the usual
  values (eps 1e-5, 1e-8, ...; alpha 0.01, 0.1, 0.2, 0.3 ...), the first that
  reproduces the forward; a dropout's mask is read from the user's forward itself
  (``Spec.from_user``).

Losses (``find_loss``): a class whose name matches a ``Spec.names["module_loss"]``
pattern (``SoftmaxWithLoss``, ``Loss_CategoricalCrossentropy``, ``MSELoss``) and whose
forward's mean reproduces the kind's reference on its inputs (rows (N, C), targets in
the class's own format: indices or one-hot rows). Also used for a function and its
derivative beside it (``dialects.derivative_pairs``: ``gelu`` / ``gelu_prime``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxcnn.check.layer import InputSet, Reference

EPS = (1e-5, 1e-8, 1e-6, 1e-7, 1e-3, 1e-4, 1e-9, 1e-10, 1e-12, 0.0)
ALPHAS = {"leaky_relu_alpha": (0.01, 0.1, 0.2, 0.3, 0.02, 0.05, 0.001),
          "elu_alpha": (1.0, 0.1, 0.2, 0.3, 0.5, 0.01)}
EPS_ATTR = re.compile(r"_?(eps|epsilon)")
ALPHA_ATTR = re.compile(r"_?(alpha|negative_slope|slope|leak|leakage|a)")
P_ATTR = re.compile(r"_?(p|prob|rate|drop_?rate|dropout|keep_?prob|p_?keep|drop_?prob|"
                    r"probability)")
GROUPS_ATTR = re.compile(r"_?(num_?groups|groups|n_?groups|g)", re.IGNORECASE)  # self.G
SIZE_ATTR = re.compile(r"_?(kernel_?size|pool_?size|size|f|k|window(_?size)?|pool|field)")
STRIDE_ATTR = re.compile(r"_?(stride|s|step)")
SCALE_ATTR = re.compile(r"_?(scale(_?factor)?|factor|size|up_?scale|stride|s)")
GAMMA = re.compile(r"_?(gamma|weights?|scale|g|w)")
BETA = re.compile(r"_?(beta|bias(es)?|shift|b)")


class Match(NamedTuple):
    """A class's catalogue kind: ``reference`` takes the module's own arguments (the
    input, then its parameters in their own shapes); ``input_sets`` are the kind's
    inputs for it (static part empty: the settings are the object's)."""

    kind: str
    reference: Reference
    input_sets: Callable[[int], list[InputSet]]
    note: str


def _attr(obj, pattern: re.Pattern):
    """The number an attribute named by ``pattern`` holds (a square size ``(2, 2)`` as 2),
    or None."""
    for k, v in vars(obj).items():
        if isinstance(v, (tuple, list)) and len(v) > 0 and len(set(v)) == 1:
            v = v[0]
        if pattern.fullmatch(k) and isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _statics(spec, obj) -> list[tuple]:
    """The settings to try for ``spec`` on ``obj``, most likely first."""
    names = spec.static_names
    if not names:
        return [()]
    if names in (("bn_param",), ("ln_param",)):
        own = _attr(obj, EPS_ATTR)
        eps = ([own] if own is not None else []) + [e for e in EPS if e != own]
        mode = {"mode": "train"} if names == ("bn_param",) else {}
        return [({**mode, "eps": e},) for e in eps]
    if names == ("alpha",):
        own = _attr(obj, ALPHA_ATTR)
        alphas = ALPHAS.get(spec.kind, ())
        return [(a,) for a in ([own] if own is not None else []) + [
            a for a in alphas if a != own]]
    if names == ("G", "gn_param"):
        g = _attr(obj, GROUPS_ATTR)
        own = _attr(obj, EPS_ATTR)
        eps = ([own] if own is not None else []) + [e for e in EPS if e != own]
        return [(int(g), {"eps": e}) for e in eps] if g else []
    if names == ("conv_param",):
        stride = int(_attr(obj, STRIDE_ATTR) or 1)
        pads = _pads(obj)
        return [({"stride": stride, "pad": p},) for p in pads]
    if names == ("pool_param",):
        size, stride = _attr(obj, SIZE_ATTR), _attr(obj, STRIDE_ATTR)
        return [({"pool_height": int(k), "pool_width": int(k),
                  "stride": int(stride or k)},) for k in ([size] if size else [2, 3])]
    if names == ("scale",):
        own = _attr(obj, SCALE_ATTR)
        return [(int(k),) for k in ([own] if own else []) + [k for k in (2, 3) if k != own]]
    if names == ("heads", "causal", "transposed"):  # a self-attention module's
        own = _attr(obj, HEADS_ATTR)
        heads = ([int(own)] if own else []) + [h for h in (1, 2) if h != own]
        flag = next((v for k, v in vars(obj).items() if CAUSAL_ATTR.fullmatch(k)
                     and isinstance(v, bool)), None)
        causal = [flag] if flag is not None else [False, True]
        return [(h, c, t) for t in (False, True) for h in heads for c in causal]
    if names == ("dropout_param",):
        p = _attr(obj, P_ATTR)
        return [({"mode": "train", **({"p": p} if p is not None else {})},)]
    return []


def conv_settings(obj) -> tuple[int, int]:
    """A conv object's ``(stride, padding)``, read as the bridge reads them (``_statics``:
    ``self.stride``, ``self.pad`` / ``self.padding``; 1 and 0 where it keeps none)."""
    stride = _attr(obj, STRIDE_ATTR)
    return int(stride or 1), _pads(obj)[0]


ROLES = {"gamma": GAMMA, "beta": BETA,
         "w": re.compile(r"_?(w|weights?|kernels?|filters?)"),
         "b": re.compile(r"_?(b|bias(es)?)"),
         "Wx": re.compile(r"_?(w_?x|w_?ih|w_?xh|w_?in(put)?)"),
         "Wh": re.compile(r"_?(w_?h|w_?hh|w_?rec(urrent)?|u)")}


def _projection(letter: str, word: str) -> str:
    """An attention projection's name: ``W_q``, ``q``, ``query``, ``q_proj``, ``q_linear``,
    ``w_query``, ``query_layer``."""
    tail = r"(proj(ection)?|linear|lin|dense|layer|fc|net|w|weights?|mat(rix)?)"
    return (rf"(w_?{letter}|{letter}|{word}|{letter}_?{tail}|w_?{word}|{word}_?{tail}|"
            rf"{letter}_?w)")


_OUT = (r"(w_?o|o|out(put)?|w_?out|o_?(proj|linear|dense|layer|fc|w)|out(put)?_?(proj(ection)?|"
        r"linear|dense|layer|fc)|proj(ection)?|c_?proj|w_?proj|residual_?proj|w_?0|dense|"
        r"linear_?out|fc_?out)")
_QKV = (r"(w_?qkv|qkv|c_?attn|in_?proj|qkv_?(proj|linear|layer|dense|w|net)|w_?attn|attn|"
        r"w_?in)")
_MATRIX = r"(\.(w|weights?|kernel|mat(rix)?))?"
_BIAS = r"\.(b|bias(es)?)"
for _l, _word in (("q", "query"), ("k", "key"), ("v", "value")):
    ROLES[f"W{_l}"] = re.compile(rf"_?{_projection(_l, _word)}{_MATRIX}")
    ROLES[f"b{_l}"] = re.compile(rf"_?(b_?{_l}|{_l}_?b(ias)?|bias_?{_l}|"
                                 rf"{_projection(_l, _word)}{_BIAS})")
ROLES["Wo"] = re.compile(rf"_?{_OUT}{_MATRIX}")
ROLES["bo"] = re.compile(rf"_?(b_?(o|out|proj)|o_?b(ias)?|bias_?o|out_?bias|{_OUT}{_BIAS})")
ROLES["Wqkv"] = re.compile(rf"_?({_QKV}{_MATRIX}|in_?proj_?weight)")
ROLES["bqkv"] = re.compile(rf"_?(b_?(qkv|attn|in)|qkv_?b(ias)?|in_?proj_?bias|{_QKV}{_BIAS})")
OPTIONAL = {"gamma": "ones", "beta": "zeros", "h0": "zeros",  # a missing one: a constant
            "Wo": "identity", **dict.fromkeys(("bq", "bk", "bv", "bo", "bqkv"), "zeros")}
HEADS_ATTR = re.compile(r"_?(n_?heads?|num_?heads?|heads_?num|heads|h|nh|n_?head)")
CAUSAL_ATTR = re.compile(r"_?(causal|is_?causal|masked|use_?mask|decoder|autoregressive)")


def _pads(obj) -> list[int]:
    """A conv's padding: its ``pad`` / ``padding`` number, 0 for "valid", 1 or 2 for
    "same" (3x3 or 5x5 windows), else 0 then 1."""
    for k, v in vars(obj).items():
        if re.fullmatch(r"_?(pad|padding|p)", k):
            if isinstance(v, (tuple, list)) and v and len(set(v)) == 1:
                v = v[0]
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                return [int(v)]
            if isinstance(v, str):
                return [0] if v.lower() == "valid" else [1, 2, 0]
    return [0, 1]


def _param_roles(spec, slots) -> list[str] | None:
    """Each slot's argument of ``spec``, by its name, or in order for parameters held in a
    list (``self.params = [Wx, Wh, b]``); None if one has no place, or an argument that
    is not optional (``OPTIONAL``) has no slot."""
    extra = spec.arg_names[1:]
    if not extra:
        return [] if not slots else None
    required = [a for a in extra if a not in OPTIONAL]
    if slots and all(s.name.isdigit() for s in slots):  # a params list: in order
        return list(required) if len(slots) == len(required) else None
    roles = []
    for s in slots:
        name = s.shown.lower()  # a sub-layer's with its path: w_q.weights, q_proj.b
        role = next((r for r in extra if r in ROLES and ROLES[r].fullmatch(name)), None)
        if role is None or role in roles:
            return None
        roles.append(role)
    return roles if set(required) <= set(roles) else None


def _width(given: dict, static: tuple) -> int:
    """An attention module's projection width: the value projection's outputs (a third of
    the packed one's); its weights stored (out, in) where ``static[2]`` says so."""
    w = given.get("Wv", given.get("Wqkv"))
    width = np.shape(w)[0 if static[2] else 1]
    return width if "Wv" in given else width // 3


def _adapt(spec, roles: list[str], static: tuple) -> Reference:
    """``spec``'s reference on the module's arguments ``(x, *params)``."""
    import jax.numpy as jnp

    from jaxcnn.check.autodiff import as_np

    ref = spec.reference
    rows = spec.kind == "layernorm"  # over the last axis of any input: rows of D
    extra = spec.arg_names[1:]

    def to_spec(args, xp):
        x = args[0]
        d = x.shape[-1] if rows else (x.shape[1] if x.ndim > 1 else x.shape[0])
        if rows:
            x = xp.reshape(x, (-1, d))
        given = dict(zip(roles, args[1:], strict=True))
        shape = (1, d, 1, 1) if spec.kind == "spatial_groupnorm" else (d,)
        out = [x]
        for name in extra:
            if name in ("gamma", "beta"):  # one entry per feature, in any shape
                out.append(xp.reshape(given[name], shape) if name in given else
                           (xp.ones if name == "gamma" else xp.zeros)(shape))
            elif name == "h0" and name not in given:  # a sequence from zeros
                out.append(xp.zeros((x.shape[0], given["Wh"].shape[0]), x.dtype))
            elif name == "b":  # a bias (M,) held as (1, M)
                out.append(xp.reshape(given[name], (-1,)))
            elif name in OPTIONAL and OPTIONAL[name] == "identity" and name not in given:
                width = _width(given, static)  # no output projection
                out.append(xp.eye(width))
            elif name in OPTIONAL and name not in given:  # a projection without bias
                out.append(xp.zeros(_width(given, static) * (3 if name == "bqkv" else 1)))
            elif name in ("bq", "bk", "bv", "bo", "bqkv"):
                out.append(xp.reshape(given[name], (-1,)))
            else:
                out.append(given[name])
        return tuple(out)

    def back(args, grads):
        """The spec's gradients (x, gamma, beta) as the module's (x, *params)."""
        pos = {name: i + 1 for i, name in enumerate(extra)}
        out = [None if grads[0] is None else np.reshape(as_np(grads[0]), np.shape(args[0]))]
        for role, p in zip(roles, args[1:], strict=True):
            g = grads[pos[role]] if pos[role] < len(grads) else None
            out.append(None if g is None else np.reshape(as_np(g), np.shape(p)))
        return tuple(out)

    def forward(args, _static):
        out = ref.forward(to_spec(args, jnp), static)
        return jnp.reshape(out, jnp.shape(args[0])) if rows else out

    alternates = kinks = subgradient = wrong_forwards = None
    if ref.alternates is not None:
        def alternates(args, _static, cotangent):
            ct = np.reshape(as_np(cotangent), (-1, np.shape(args[0])[-1])) if rows \
                else cotangent
            return [a._replace(grads=back(args, a.grads)) for a in
                    ref.alternates(to_spec(args, np), static, ct)]
    if ref.kinks is not None and not extra:
        def kinks(s: InputSet):
            return ref.kinks(s._replace(static=static))
    if ref.subgradient is not None and not extra:
        def subgradient(args, _static, cotangent, i, hand, tol):
            return ref.subgradient(args, static, cotangent, i, hand, tol)
    if ref.wrong_forwards is not None:
        def wrong_forwards(args, _static):
            return [(name, np.reshape(as_np(out), np.shape(args[0])), note)
                    for name, out, note in ref.wrong_forwards(to_spec(args, np), static)]
    if spec.static_names == ("alpha",):  # the name of the spec's own slope, replaced
        a = float(static[0])
        name = {"leaky_relu_alpha": f"max(x, {a:g} x)",
                "elu_alpha": f"x > 0 ? x : {a:g} (e^x - 1)"}.get(spec.kind, ref.name)
        return Reference(name, forward, alternates, kinks, subgradient, wrong_forwards)
    shown = ", ".join(", ".join(f"{k}={v}" for k, v in item.items()) if isinstance(
        item, dict) else f"{name}={item:g}" for name, item in zip(spec.static_names, static,
                                                                   strict=False))
    return Reference(ref.name + (f" ({shown})" if shown else ""), forward, alternates,
                     kinks, subgradient, wrong_forwards)


def _own_sets(spec, roles: list[str], x_shape: tuple, param_shapes: list[tuple]):
    """Inputs at the object's own sizes (its running statistics, its gradient buffers
    have them): several batch sizes (N != D) and, for a sequence (N, T, D), numbers of
    steps; a batch of one where the kind allows it (not a batch norm over N alone:
    one value per statistic)."""
    n0 = x_shape[0]
    seq = len(x_shape) == 3
    sizes = [(n0, "random"), (n0 + 2, "random")]
    if spec.kind != "batchnorm":
        sizes.append((1, "batch-of-one"))

    def value(rng, role, shape):
        if role == "gamma":
            return 1 + 0.5 * rng.standard_normal(shape)
        if role in ("beta", "b"):
            return 0.5 * rng.standard_normal(shape)
        return rng.standard_normal(shape) / np.sqrt(shape[0])  # a weight: tanh unsaturated

    def input_sets(seed):
        rng = np.random.default_rng([seed, 18, 3])
        sets = []
        for k, (n, family) in enumerate(sizes):
            shape = (n, x_shape[1] + k, *x_shape[2:]) if seq else (n, *x_shape[1:])
            x = (1 + 2 * rng.standard_normal(shape)) if spec.kind.endswith("norm") else \
                rng.standard_normal(shape)
            params = [value(rng, role, p) for role, p in zip(roles, param_shapes, strict=True)]
            sets.append(InputSet(family, f"random x {shape}" + (
                ": a batch of one (N = 1)" if n == 1 else ""), (x, *params), (),
                note="N != D; several samples and a batch of one"))
        return sets
    return input_sets


def _shape_free_sets(spec, static_ok: Callable[[tuple], bool]):
    def input_sets(seed):
        return [s._replace(static=(), name=s.name.split(", train")[0].split(", test")[0])
                for s in spec.input_sets(seed) if static_ok(s.static)]
    return input_sets


def forward_agrees(reference: Reference, user_forward, s: InputSet) -> str | None:
    """"forward" if the reference reproduces the user's forward on ``s``, "wrong
    forward" if one of its known wrong forwards does, else None."""
    import jax

    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = np.asarray(user_forward(s.args, ()))
        out = raw.astype(np.float64)
        with jax.enable_x64(True):
            want = np.asarray(reference.forward(s.args, ()), np.float64)
            wrongs = (reference.wrong_forwards(s.args, ()) if reference.wrong_forwards
                      is not None else [])
    except Exception:
        return None
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    tol = 1e-5 if raw.dtype == np.float32 or any(  # a float32 forward rounds
        np.asarray(a).dtype == np.float32 for a in s.args) else 1e-9

    def close(a):
        a = np.asarray(a, np.float64)
        return a.shape == out.shape and bool(np.all(np.isfinite(out))) and float(
            np.max(np.abs(a - out), initial=0.0)) <= tol * scale
    if close(want):
        return "forward"
    return "wrong forward" if any(close(w) for _, w, _ in wrongs) else None


def find(name: str, obj, slots, params: list, x_shape: tuple, user_forward) -> Match | None:
    """The catalogue kind of module-style class ``name`` (see the module docstring), or
    None. ``obj``: the built object (its settings are read, never changed); ``slots`` /
    ``params``: its parameters and their values; ``x_shape``: an input shape its forward
    runs on; ``user_forward(args, static)``: its forward on ``(x, *params)``."""
    from jaxcnn.check import catalogue

    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    kinds = []
    for k in catalogue.matches(name, "module") + catalogue.matches(words, "module"):
        for layout in catalogue.layouts(k):
            if layout not in kinds:
                kinds.append(layout)
    for kind in kinds:
        spec = catalogue.spec(kind)
        roles = _param_roles(spec, slots)
        if roles is None:
            continue
        if spec.from_user is not None:
            spec = spec._replace(reference=spec.from_user(
                lambda args, static: user_forward(args, ())))
        for static in _statics(spec, obj):
            ref = _adapt(spec, roles, static)
            if len(spec.arg_names) > 1:
                sets = _own_sets(spec, roles, x_shape, [np.shape(p) for p in params])
                if kind == "layernorm" and len(x_shape) == 2:  # as a transformer calls it
                    tokens = _own_sets(spec, roles, (x_shape[0], 3, x_shape[1]),
                                       [np.shape(p) for p in params])
                    if forward_agrees(ref, user_forward, tokens(0)[0]) == "forward":
                        sets = tokens
            else:
                def ok(st, static=static,
                       pool=spec.static_names in (("pool_param",), ("scale",))):
                    if pool:  # the object's own window, or scale
                        return st == static
                    return not (st and isinstance(st[0], dict) and st[0].get("mode") == "test")
                sets = _shape_free_sets(spec, ok)
            first = sets(0)
            if not first:
                continue
            agreed = forward_agrees(ref, user_forward, first[0])
            if agreed is None:
                continue
            note = (f"matched to the catalogue's {kind}: {ref.name}" + (
                "; its forward reproduces a known wrong forward" if agreed != "forward"
                else ""))
            return Match(kind, ref, sets, note)
    return None



# max pools by layout (NCHW: CS231n's; (H, W, C): the report's; one (C, H, W) image;
# (N, H, W, C): channels last) and (window, stride): the catalogue's tie-rich 2x2 stride-2
# pools first, then the settings whose overlapping or strided windows it has inputs for
MAX_POOLS = ("max_pool_nchw", "maxpool2", "max_pool_chw", "max_pool_nhwc")
POOL_SETTINGS = ((2, 1), (3, 2))


def _max_pool_specs():
    from jaxcnn.check.catalogue import spec
    from jaxcnn.check.catalogue.pool import max_pool_at

    for kind in MAX_POOLS:
        yield spec(kind)
    for window, stride in POOL_SETTINGS:
        for layout in ("nchw", "chw", "nhwc"):
            s = max_pool_at(layout, window, stride)
            if s is not None:
                yield s


def find_max_pool(run: Callable[[np.ndarray], object]) -> Match | None:
    """The catalogue's max pool whose reference ``run(x) -> out`` (the user's forward on
    a copy of ``x``) reproduces on its first input, in any layout (``MAX_POOLS``) and at
    2x2 stride 2 or a setting of ``POOL_SETTINGS``, with that setting's inputs (the
    tie-rich ones at 2x2 stride 2, so an ``==`` mask's tie-overcount is named; the
    overlapping ones elsewhere, so a window that overwrites is missing-accumulation);
    None if none. A forward that raises on a layout's input is not that layout."""
    from jaxcnn.check.adapters import probe

    for s in _max_pool_specs():
        first = s.input_sets(0)[0]
        with probe.seeded():
            agreed = forward_agrees(s.reference, lambda args, static: run(
                np.array(args[0], copy=True)), first)
        if agreed == "forward":
            return Match(s.kind, s.reference, s.input_sets,
                         f"matched to the catalogue's {s.kind}: {s.reference.name}, checked "
                         "on its inputs (tie-rich where the windows do not overlap)")
    return None


# ------------------------------------------------------------------ losses

INT_LABELS = ("softmax_loss", "cross_entropy_probs", "cross_entropy_probs_sum")  # y: indices


def _spec_label(kind: str, label):
    """The module's target as ``kind``'s static y: class indices from one-hot rows."""
    label = np.asarray(label)
    if kind in INT_LABELS and label.ndim == 2:
        return np.argmax(label, axis=1)
    return label


def _module_label(y, template, classes: int):
    """``kind``'s y in the module's own format (one-hot rows of ``classes`` where it
    takes them)."""
    y, template = np.asarray(y), np.asarray(template)
    if y.ndim == 1 and template.ndim == 2 and np.issubdtype(y.dtype, np.integer):
        return np.eye(classes, dtype=template.dtype)[y]
    if np.issubdtype(template.dtype, np.integer) and y.dtype.kind == "f" and np.all(
            (y == 0) | (y == 1)):  # binary targets as the class takes them: 0 / 1 integers
        return y.astype(template.dtype)
    return y


def _adapt_loss(spec) -> Reference:
    ref = spec.reference

    def forward(args, static):
        return ref.forward(args, (_spec_label(spec.kind, static[0]),))

    def own(static):
        return (_spec_label(spec.kind, static[0]),)

    alternates = kinks = subgradient = None
    if ref.alternates is not None:
        def alternates(args, static, cotangent):
            return ref.alternates(args, own(static), cotangent)
    if ref.kinks is not None:
        def kinks(s: InputSet):
            return ref.kinks(s._replace(static=own(s.static)))
    if ref.subgradient is not None:
        def subgradient(args, static, cotangent, i, hand, tol):
            return ref.subgradient(args, own(static), cotangent, i, hand, tol)
    variants = None
    if ref.variants is not None:
        def variants(args, static):
            return ref.variants(args, own(static))
    return Reference(ref.name, forward, alternates, kinks, subgradient, variants=variants)


def find_loss(name: str, labels, user_forward, ndim: int = 2) -> Match | None:
    """The catalogue loss kind of module-style loss class ``name`` (its
    ``Spec.names["module_loss"]`` pattern, then the layouts), whose reference reproduces
    the mean of what the class's forward returns; None if none. ``labels``: a target the
    forward took (its format: class indices, one-hot rows, float targets);
    ``user_forward(args, static)``: the loss's value on ``(y_pred,)``, static ``(target,)``.
    Its inputs are the kind's rows (N, C) (``ndim`` 1: its vectors (N,), a binary loss
    probed so), targets given in the class's own format."""
    from jaxcnn.check import catalogue

    def keep(s: InputSet) -> bool:
        """Rows (N, C), as the class was probed with; no scores far apart (a loss that
        clips its probabilities, np.clip(p, 1e-7, 1 - 1e-7), is another function there,
        flat, and its backward rightly ignores the clip)."""
        return np.ndim(s.args[0]) == ndim and s.family != "large-gap"

    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    kinds = []
    for k in catalogue.matches(name, "module_loss") + catalogue.matches(words, "module_loss"):
        for layout in catalogue.layouts(k):
            if layout not in kinds:
                kinds.append(layout)
    for kind in kinds:
        spec = catalogue.spec(kind)
        ref = _adapt_loss(spec)

        def input_sets(seed, spec=spec):
            return [s._replace(static=(_module_label(s.static[0], labels,
                                                     np.shape(s.args[0])[-1]),))
                    for s in spec.input_sets(seed) if keep(s)]
        first = input_sets(0)
        if not first or _agrees_loss(ref, user_forward, first[0]) is None:
            continue
        return Match(kind, ref, input_sets, f"matched to the catalogue's {kind}: {ref.name}")
    return None


def _agrees_loss(reference: Reference, user_forward, s: InputSet) -> str | None:
    import jax

    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = np.asarray(user_forward(s.args, s.static), np.float64)
        with jax.enable_x64(True):
            want = np.asarray(reference.forward(s.args, s.static), np.float64)
    except Exception:
        return None
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    # a clipped log (np.clip(p, 1e-7, 1 - 1e-7)) changes nothing on these inputs
    ok = out.shape == want.shape and bool(np.all(np.isfinite(out))) and float(
        np.max(np.abs(out - want), initial=0.0)) <= 1e-6 * scale
    return "forward" if ok else None


__all__ = ["Match", "find", "find_loss", "forward_agrees"]
