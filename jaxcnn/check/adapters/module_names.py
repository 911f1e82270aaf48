"""Where a module-style class keeps things, and how one is built (``module_style``).

By name: its parameters (float array attributes, a ``params`` dict or list; not caches,
optimizer buffers or gradients), the output its forward stores (``self.output``), the
input gradient its backward stores (``self.dinputs``), each parameter's gradient
(``self.dweights``, ``self.dW``, ``self.dLdW``, ``self.grad_W``, ``self.grads["W"]``,
a ``grads`` list parallel to ``params``, also to the attributes that list holds), the
method pairs a class defines, and the values its constructor is given (``SIZE_NAMES``:
small, distinct sizes).
"""

from __future__ import annotations

import copy
import inspect
import re
from typing import NamedTuple

import numpy as np

from jaxcnn.check.adapters import probe

LR_NAMES = ("lr", "learning_rate", "learn_rate", "eta", "alpha", "step_size", "learningrate")

OUTPUT_NAMES = ("output", "out", "outputs", "y", "Y", "a", "A", "activation", "activations",
                "h", "z", "Z", "result")

INPUT_GRAD_NAMES = ("dinputs", "dinput", "d_inputs", "d_input", "dx", "dX", "d_x", "dA_prev",
                    "grad_input", "grad_inputs", "input_grad", "dL_dx", "dLdx", "dLdX",
                    "delta", "dA", "dZ", "dz", "grad_x", "dx_")

GRAD_DICTS = ("grads", "gradients", "grad", "param_grads", "dparams")

PARAM_DICTS = ("params", "parameters", "weights_dict")

BUFFER_NAME = re.compile(r"(^_|^last|cache|momentum|velocity|^m_|^v_|^vel|_m$|_v$|^opt)",
                     re.IGNORECASE)

GRAD_NAME = re.compile(r"^(d[A-Z_]|d(?:L|l)?d|grad|delta|g_)|_grad$|^d(weight|bias|input|"
                        r"filter|kernel|w|b|x|gamma|beta)", re.IGNORECASE)

LOSS_NAME = re.compile(r"loss|cross_?entropy|crossentropy|mse|nll|hinge|criterion",
                        re.IGNORECASE)

class Slot(NamedTuple):
    """Where a parameter lives on the object: ``attr`` or ``attr[key]`` (a dict), on the
    object itself or on a sub-layer it holds (``path``: ``("w_q",)`` for
    ``self.w_q.weights``, ``("heads", 0)`` for ``self.heads[0].W``)."""

    attr: str
    key: str | int | None = None
    path: tuple = ()

    @property
    def name(self) -> str:
        return self.attr if self.key is None else str(self.key)

    @property
    def shown(self) -> str:
        """The row's name: the attribute, a dict parameter's key (W), or params[0]; a
        sub-layer's prefixed with its path (``w_q.weights``, ``heads[0].W``)."""
        if self.key is None:
            own = self.attr
        else:
            own = self.key if isinstance(self.key, str) else f"{self.attr}[{self.key}]"
        prefix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return f"{prefix[1:]}.{own}" if prefix else own

    def owner(self, obj):
        """The object (or sub-layer) that holds the parameter."""
        for p in self.path:
            obj = obj[p] if isinstance(p, int) else getattr(obj, p)
        return obj

    def get(self, obj):
        value = getattr(self.owner(obj), self.attr)
        return value if self.key is None else value[self.key]

    def set(self, obj, value) -> None:
        if self.key is None:
            setattr(self.owner(obj), self.attr, value)
        else:
            getattr(self.owner(obj), self.attr)[self.key] = value

def float_array(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size > 0

SUB_LAYER_METHODS = ("forward", "backward", "__call__")


def sub_layers(obj) -> list[tuple]:
    """The layers ``obj`` holds, as paths: attributes (``self.w_q = Linear(...)``) and
    entries of lists of them (``self.heads = [Head(...), ...]``) whose class is the
    user's own and has a forward, a backward or ``__call__`` (not an optimizer, not an
    activation function)."""
    def layer(v) -> bool:
        cls = type(v)
        return (hasattr(v, "__dict__") and not isinstance(v, type)
                and cls.__module__ not in ("builtins", "numpy", "functools")
                and not cls.__module__.startswith(("numpy.", "jax", "torch", "jaxcnn"))
                and any(callable(getattr(cls, m, None)) and m in vars(cls) or any(
                    m in vars(base) for base in cls.__mro__[1:-1])
                        for m in SUB_LAYER_METHODS))
    out = []
    for attr, v in vars(obj).items():
        if OPTIMIZER_NAME.search(attr):
            continue
        if layer(v):
            out.append((attr,))
        elif isinstance(v, (list, tuple)) and v and len(v) <= 16 and all(layer(e) for e in v):
            out += [(attr, i) for i in range(len(v))]
    return out


OPTIMIZER_NAME = re.compile(r"opt|solver|updater|schedul|loss|criterion", re.IGNORECASE)


def candidate_slots(obj, depth: int = 2) -> list[Slot]:
    """Float array attributes (and entries of a ``params`` dict) that may be parameters:
    not caches, optimizer buffers or gradients (by name); also those of the layers it
    holds (``sub_layers``), ``depth`` levels down."""
    slots = _own_slots(obj)
    if depth > 0:
        for path in sub_layers(obj):
            sub = Slot("", path=path).owner(obj)
            if sub is obj:
                continue
            slots += [s._replace(path=(*path, *s.path))
                      for s in candidate_slots(sub, depth - 1)]
    return slots


# constants a forward adds, not parameters: sinusoidal positional encodings
CONSTANT_NAME = re.compile(r"_?(pe|pos(itional)?_?enc(oding)?s?|encodings?|sinusoids?|"
                           r"pos(ition(al)?)?_?table|positional_?encodings?)", re.IGNORECASE)


def _buffer(attrs, attr: str) -> bool:
    """Whether ``attr`` names an optimizer buffer or a cache (``BUFFER_NAME``); ``W_v``
    beside ``W_q`` or ``W_k`` is an attention's value projection, not a velocity."""
    if not BUFFER_NAME.search(attr):
        return False
    stem = attr[:-2]
    return not (attr[-2:].lower() == "_v" and (f"{stem}_q" in attrs or f"{stem}_k" in attrs
                                               or f"{stem}_Q" in attrs or f"{stem}_K" in attrs))


def _own_slots(obj) -> list[Slot]:
    slots = []
    attrs = vars(obj)
    for attr, v in attrs.items():
        if attr in GRAD_DICTS or attr in OUTPUT_NAMES or attr in INPUT_GRAD_NAMES:
            continue
        if float_array(v) and not _buffer(attrs, attr) and not GRAD_NAME.search(attr) \
                and not CONSTANT_NAME.fullmatch(attr) \
                and attr not in ("inputs", "input", "x", "X"):
            slots.append(Slot(attr))
        elif attr in PARAM_DICTS and isinstance(v, dict):
            slots += [Slot(attr, k) for k, a in v.items()
                      if isinstance(k, str) and float_array(a) and not GRAD_NAME.search(k)]
        elif attr in PARAM_DICTS and isinstance(v, list):  # params = [W, b], grads parallel
            slots += [Slot(attr, i) for i, a in enumerate(v) if float_array(a)]
    return slots

def positional_params(fn) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

def required_params(fn) -> list[inspect.Parameter]:
    return [p for p in positional_params(fn) if p.default is p.empty]

class SameAsInput:
    """The value of an attention's ``key`` / ``value`` argument: the input itself (the
    forward is called as self-attention, ``forward(x, x, x)``)."""

    def __repr__(self) -> str:
        return "the input (self-attention)"


class NoMask:
    """The value of an attention's required ``mask`` argument: nothing masked. None, or,
    for a forward that indexes its mask, all ones of (N, T, T), (T, T) or (N, 1, T): the
    first the forward runs with (``masks``), kept in ``chosen``."""

    def __init__(self):
        self.chosen = 0

    def __repr__(self) -> str:
        return "no mask" if self.chosen == 0 else "all ones (nothing masked)"

    @staticmethod
    def masks(x) -> list:
        n, t = (np.shape(x) + (1, 1))[:2]
        return [None, np.ones((n, t, t)), np.ones((t, t)), np.ones((n, 1, t))]


KEY_VALUE = re.compile(r"k|v|keys?|values?|key_?input|value_?input|kv", re.IGNORECASE)
MASK = re.compile(r"(src_|tgt_|attn_|attention_|padding_|key_padding_)?mask", re.IGNORECASE)


def extra_value(p: inspect.Parameter):
    """A value for a required argument beyond the input: ``training=True`` (a dropout's
    mask is then drawn, the same for every call: see ``seeded``), ``mode="train"``; an
    attention's ``key`` and ``value``: the input itself (``SameAsInput``), its ``mask``:
    None (no mask)."""
    if re.fullmatch(r"mode", p.name, re.IGNORECASE):
        return "train"
    if re.search(r"train", p.name, re.IGNORECASE):
        return True
    if KEY_VALUE.fullmatch(p.name):
        return SameAsInput()
    if MASK.fullmatch(p.name):
        return NoMask()
    raise ValueError(f"cannot guess its argument {p.name!r}; give it a default")


def with_input(extra, x) -> list:
    """``extra`` with each ``SameAsInput`` replaced by ``x``, each ``NoMask`` by its
    chosen mask for ``x``."""
    return [x if isinstance(e, SameAsInput) else NoMask.masks(x)[e.chosen]
            if isinstance(e, NoMask) else e for e in extra]


def self_input_grad(ret, extra, x):
    """The input's gradient of a forward called as ``forward(x, x, x)`` (``extra`` holding
    ``SameAsInput`` twice) whose backward returns ``(dquery, dkey, dvalue)``: their sum,
    since x enters three times. None when the backward returns something else."""
    uses = 1 + sum(isinstance(e, SameAsInput) for e in extra)
    if uses == 1 or not isinstance(ret, (tuple, list)) or len(ret) < uses:
        return None
    parts = ret[:uses]
    if not all(isinstance(g, np.ndarray) and g.shape == np.shape(x) for g in parts):
        return None
    return sum(np.asarray(g, np.float64) for g in parts)

def is_loss(cls_name: str, forward) -> bool:
    """A loss: its name says so, or its forward takes (prediction, target)."""
    req = required_params(forward)
    if LOSS_NAME.search(cls_name):
        return len(req) >= 2 or len(req) == 1
    names = [p.name.lower() for p in req]
    return len(req) == 2 and any(re.search(r"true|target|label|^y$|^t$|^y_?$", n)
                                 for n in names[1:])

def as_array(value, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{what} is a {type(value).__name__}, not an array")
    return arr

def output_of(obj, ret, method: str) -> np.ndarray:
    """What the forward produced: its return value, or the array it stored on self."""
    if isinstance(ret, (tuple, list)) and ret and isinstance(ret[0], np.ndarray):
        ret = ret[0]  # (out, cache)
    if ret is not None and not isinstance(ret, (dict, str)):
        return as_array(ret, f"what {method} returned")
    for name in OUTPUT_NAMES:
        v = getattr(obj, name, None)
        if isinstance(v, np.ndarray):
            return v
    raise ValueError(f"{method} returns nothing and stores no self.output (or self.out, "
                     "self.A, ...): return the output")

def input_grad(obj, ret, method: str):
    """dL/dinput: the return value (or its first entry), else the stored attribute."""
    if isinstance(ret, (tuple, list)) and ret and isinstance(ret[0], np.ndarray):
        return ret[0]
    if isinstance(ret, np.ndarray) or (ret is not None and np.ndim(ret) > 0):
        return ret
    for name in INPUT_GRAD_NAMES:
        v = getattr(obj, name, None)
        if isinstance(v, np.ndarray):
            return v
    return None

def grad_attr_names(key: str) -> list[str]:
    """Attribute names a gradient of parameter ``key`` is stored under."""
    names = [f"d{key}", f"d_{key}", f"dL{key}", f"dLd{key}", f"dL_d{key}", f"dJd{key}",
             f"grad_{key}", f"{key}_grad", f"grad{key}", f"{key}_gradient", f"g{key}",
             f"delta_{key}", f"d{key[:1].upper()}{key[1:]}",
             f"gradient_{key}", f"_gradient_{key}"]  # a course framework's property
    shorts = {"weights": "W", "weight": "W", "biases": "b", "bias": "b", "kernel": "K",
              "filters": "F", "kernels": "K", "embedding_matrix": "EW",
              "embeddings": "EW", "embedding": "EW", "embedding_weights": "EW",
              "table": "EW", "lookup": "EW", "lookup_table": "EW"}.get(key, "")
    for short in shorts:
        names += [f"d{short}", f"dL_d{short}", f"dLd{short}", f"grad_{short}",
                  f"d{short.lower()}", f"d_{short}", f"d_{short.lower()}"]
    return names

ZERO_GRAD = ("zero_grad", "zero_grads", "zerograd", "clear_grad", "clear_grads",
             "reset_grad", "reset_grads", "zero_gradients", "clear_gradients")


def accumulates_by_design(obj) -> bool:
    """Whether ``obj``'s class resets its gradients itself (a ``zero_grad()`` method, as
    PyTorch's modules have): its backward may add into them, the caller zeroing them
    between steps."""
    return any(callable(getattr(type(obj), n, None)) for n in ZERO_GRAD)


def grad_state(obj) -> dict:
    """Copies of ``obj``'s gradient containers (``self.gradients`` dicts, ``self.dW``
    arrays): ``restore_grads`` puts them back, as its ``zero_grad()`` would between two
    steps without also clearing the forward's cache."""
    return {k: copy.deepcopy(v) for k, v in vars(obj).items()
            if (k in GRAD_DICTS and isinstance(v, (dict, list))) or (
                float_array(v) and GRAD_NAME.search(k))}


def restore_grads(obj, state: dict) -> None:
    """Put ``grad_state``'s copies back on ``obj`` (each call its own copy)."""
    for k, v in state.items():
        setattr(obj, k, copy.deepcopy(v))


def container_stores(obj, slot: Slot, position: int | None = None) -> list[tuple[str, object]]:
    """``(label, array)`` for each entry of a grads dict or list that holds ``slot``'s
    gradient (``self.grads['W']``, ``self.grads[0]``), as ``stored_grad`` finds them (a
    sub-layer's parameter: on the sub-layer)."""
    if slot.path:
        obj, slot, position = slot.owner(obj), slot._replace(path=()), None
    found = []
    for dname in GRAD_DICTS:
        d = getattr(obj, dname, None)
        if isinstance(d, dict):
            for key in (slot.name, f"d{slot.name}", f"d_{slot.name}", slot.shown):
                if float_array(d.get(key)):
                    found.append((f"self.{dname}[{key!r}]", d[key]))
                    break
            else:  # a key named as an attribute would be (``dLdW`` for weights,
                # ``dLdGamma``), in any case, of the parameter's shape
                lowered = {k.lower(): k for k in d if isinstance(k, str)}
                for name in grad_attr_names(slot.name):
                    key = lowered.get(name.lower())
                    if key is not None and float_array(d[key]) and np.shape(
                            d[key]) == np.shape(slot.get(obj)):
                        found.append((f"self.{dname}[{key!r}]", d[key]))
                        break
        elif isinstance(d, (list, tuple)):
            at = slot.key if isinstance(slot.key, int) else position
            if at is not None and at < len(d) and float_array(d[at]) \
                    and np.shape(d[at]) == np.shape(slot.get(obj)):
                found.append((f"self.{dname}[{at}]", d[at]))
    return found


def stale_container(obj, slot: Slot, before: dict[str, np.ndarray],
                    position: int | None = None) -> tuple[str, str, object] | None:
    """``(container label, attribute label, the container's array)`` where the backward
    wrote ``slot``'s gradient to an attribute (``self.dW = ...``, a rebinding) and left
    the grads list or dict entry an optimizer reads (``self.grads = [self.dW, self.db]``,
    built in the constructor) as it was: the optimizer steps with the old values. None
    otherwise. ``before``: ``container_stores``' arrays copied before the backward."""
    if slot.path:  # a sub-layer's parameter: its labels are not the top object's
        return None
    attrs = [(name, getattr(obj, name, None)) for name in grad_attr_names(slot.name)
             if name != slot.attr]
    attrs = [(f"self.{name}", v) for name, v in attrs if float_array(v)]
    for label, held in container_stores(obj, slot, position):
        named = attrs or [(f"self.{k}", v) for k, v in vars(obj).items() if float_array(v)
                          and GRAD_NAME.search(k) and np.shape(v) == np.shape(held)]
        old = before.get(label)
        if old is None or np.shape(old) != np.shape(held) or not np.array_equal(old, held):
            continue  # written by the backward (or new): not stale
        differ = [(attr, value) for attr, value in named if value is not held
                  and np.shape(value) == np.shape(held) and not np.array_equal(value, held)]
        if len(differ) == 1 or (differ and attrs):
            return label, differ[0][0], held
    return None


def stored_grad(obj, slot: Slot, before: dict, index: int | None,
                position: int | None = None):
    """The gradient the backward stored for ``slot``, or None: an attribute named after
    it, an entry of a grads dict, or the parallel entry of a ``grads`` list: the slot's
    own index (``params[i]``), or ``position``, where an attribute parameter (``self.W``)
    sits in the object's ``params`` list (``self.params = [self.W, self.b]`` beside
    ``self.grads = [dW, db]``). A sub-layer's parameter: the gradient the sub-layer
    stored (by name, or its own ``grads`` list's entry)."""
    if slot.path:
        owner = slot.owner(obj)
        return stored_grad(owner, slot._replace(path=()), dict.fromkeys(vars(owner)), None)
    for name in grad_attr_names(slot.name):
        v = getattr(obj, name, None)
        if float_array(v) and name != slot.attr:
            return v
    stores = container_stores(obj, slot, position)
    if stores:
        return stores[0][1]
    # else: the one array the backward stored with the parameter's shape and a gradient's
    # name (self.W_gradient, self.delta_w)
    stored = [v for k, v in vars(obj).items() if float_array(v) and k != slot.attr
              and k not in before and GRAD_NAME.search(k) and v.shape == np.shape(
                  slot.get(obj))]
    return stored[0] if len(stored) == 1 else None

class Built(NamedTuple):
    """A constructed object and what the output should say about its construction."""

    obj: object
    note: str

HEADS = re.compile(r"^(n_?heads?|num_?heads?|heads_?num|heads|number_?of_?heads)$")  # attention

# Sizes a constructor may ask for, by argument name (small and distinct: a transpose or
# a swapped axis changes the shape or the values).
SIZE_NAMES = (
    (r"^(n_?inputs?|in_?features|input_?size|input_?dim|in_?dim|fan_?in|n_?in|nin|"
     r"input_?len|inputs?|d_?in|dim_?in|n_?x|num_?inputs|in_?size|input_?nodes|"
     r"n_?features|num_?features|features|n_?inputs?|in_?units|input_?units|"
     r"num_?inputs?|inputs_?num|input_?dimension|n_?input)$", probe.FEATURES),
    (r"^(n_?neurons|out_?features|output_?size|output_?dim|out_?dim|n_?out|nout|units|"
     r"neurons|outputs?|num_?classes|n_?classes|classes|nodes|d_?out|dim_?out|n_?h|"
     r"hidden(_?size|_?dim)?|n_?hidden|num_?outputs|out_?size|output_?nodes|n_?units|"
     r"fan_?out|n_?outputs?|out_?units|hidden_?units|num_?hidden|num_?units|dim_?hidden|"
     r"units_?num|output_?dimension|hidden_?dimension|d_?ff|d_?hidden|ff_?dim|"
     r"d_?inner|ffn_?dim|hidden_?features)$",
     probe.HIDDEN),
    (r"^(in_?channels|channels|n_?channels|num_?channels|input_?channels|c_?in|depth_?in)$",
     2),
    (r"^(num_?groups|groups|n_?groups|g)$", 2),  # a group norm's: 2 channels per group
    (r"^(out_?channels|num_?filters|n_?filters?|filters|num_?kernels|kernels|depth|"
     r"n_?kernels|c_?out|filter_?num)$", 3),
    (r"^(n_?units)$", probe.HIDDEN),
    # shapes as tuples: a conv's (C, kh, kw) and a (kh, kw) window, a stride per axis
    (r"^(convolution_?shape|conv_?shape)$", (2, 3, 3)),
    (r"^(filter_?shape|kernel_?shape)$", (3, 3)),
    (r"^(pooling_?shape|pool_?shape)$", (2, 2)),
    (r"^(stride_?shape)$", None),  # (1, 1) for a conv, the window for a pool
    (r"^(x_?dim|image_?shape|img_?shape)$", (2, 6, 8)),  # one (C, H, W) image
    (r"^(h_?filter|w_?filter|filter_?h|filter_?w|kh|kw)$", 3),
    (r"^(pool_?h|pool_?w|pool_?height|pool_?width)$", 2),
    (r"^(kernel_?size|filter_?size|kernel|k|f|ksize|size|window|window_?size|pool_?size|"
     r"pool|field|receptive_?field)$", None),  # 3 for a conv, 2 for a pool
    (r"^(stride|strides|step)$", None),  # 1 for a conv, the window for a pool
    (r"^(pad|padding)$", 0),
    (r"^(alpha|slope|negative_?slope|leak|leakiness)$", 0.1),
    (r"^(rate|p|dropout|drop_?rate|drop_?prob|keep_?prob|prob|p_?drop|probability)$", 0.5),
    (r"^(lr|learning_?rate|learn_?rate|eta)$", 0.1),
    (r"^(input_?shape|in_?shape)$", (2, 5, 6)),
    (r"^(d_?model|normali[sz]ed_?shape|model_?dim|embed_?dim|embedding_?dim|"
     r"wordvec_?size|word_?vec_?size|embed_?size|embedding_?size|d_?embed|n_?embed|"
     r"n_?embd|emb_?dim|d_?emb|embed_?dims?)$",
     probe.FEATURES),  # a layer norm's or a transformer block's width
    (r"^(vocab_?size|n_?vocab|vocab|vocabulary_?size|num_?embeddings|n_?words|"
     r"num_?words|n_?tokens|num_?tokens)$", 6),  # an embedding table's rows
    (HEADS.pattern, 2),
    # a transformer's longest sequence (a positional table, a causal mask): more steps
    # than any input tried
    (r"^(max_?(seq_?)?len(gth)?|n_?timesteps|seq_?len(gth)?|block_?size|n_?ctx|"
     r"context_?(len(gth)?|size)|max_?positions?|max_?position_?embeddings|n_?positions|"
     r"max_?tokens|time_?steps|n_?steps|num_?steps)$", 8),
    (r"^(axis|dim)$", -1),
    (r"^(eps|epsilon)$", 1e-5),
)

def construct(cls, square: bool = False, given: dict | None = None) -> Built:
    """An instance of ``cls``: required constructor arguments chosen by name (sizes
    small and distinct, see ``SIZE_NAMES``; ``square``: output sizes equal to the input
    sizes); ``given``: values for arguments by name (the functions an
    ``ActivationLayer(activation, activation_prime)`` takes: see ``function_args``),
    shown by their ``__name__``. ValueError naming an argument that cannot be guessed."""
    pool = bool(re.search(r"pool", cls.__name__, re.IGNORECASE))
    args, kwargs, chosen = [], {}, []
    given = given or {}
    large = _large_defaults(cls, pool, given)
    for p in inspect.signature(cls).parameters.values():
        if p.name in given and p.default is not p.empty:  # a setting other than its default
            chosen.append(f"{p.name}={given[p.name]!r}")
            kwargs[p.name] = given[p.name]
            continue
        if p.name in large:  # a transformer's d_model=512: small, as a required size
            kwargs[p.name] = large[p.name]
            chosen.append(f"{p.name}={large[p.name]!r} (default {p.default!r})")
            continue
        if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in given:
            value = given[p.name]
            shown = (f"array {value.shape}" if isinstance(value, np.ndarray)
                     else getattr(value, "__name__", None) or repr(value))
            chosen.append(f"{p.name}={shown}")
            if p.kind == p.KEYWORD_ONLY:
                kwargs[p.name] = value
            else:
                args.append(value)
            continue
        value = size_for(p.name, pool)
        if value == -1 and re.search(r"norm|embed", cls.__name__, re.IGNORECASE):
            value = probe.FEATURES  # LayerNorm(dim), Embedding(V, dim): a width, no axis
        if re.search(r"group_?norm", cls.__name__, re.IGNORECASE) and re.fullmatch(
                r"(in_?|num_?|n_?)?channels|c", p.name, re.IGNORECASE):
            value = probe.FEATURES  # GroupNorm(G, C): C = 4, 2 groups of 2 channels
        if square and value == probe.HIDDEN:
            value = probe.FEATURES
        if value is None:
            value = recurrent_array_for(p.name, cls.__name__)
            if value is None:
                value = array_for(p.name, bool(re.search(r"conv", cls.__name__,
                                                         re.IGNORECASE)))
        if value is None:
            raise ValueError(f"cannot guess its constructor argument {p.name!r}; give it a "
                             "default")
        chosen.append(f"{p.name}=" + (f"array {value.shape}" if isinstance(value, np.ndarray)
                                      else repr(value)))
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    _divisible_heads(cls, args, kwargs, chosen)
    try:
        obj = cls(*args, **kwargs)
    except Exception:
        # a size whose default is None that the constructor needs after all
        # (Dense(units_num, inputs_num=None) computing 1 / sqrt(inputs_num))
        sizes = {p.name: size_for(p.name, pool) for p in inspect.signature(
            cls).parameters.values() if p.default is None and p.kind in (
                p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in kwargs}
        sizes = {k: v for k, v in sizes.items() if type(v) is int}
        if not sizes:
            raise
        obj = cls(*args, **kwargs, **sizes)
        chosen += [f"{k}={v!r}" for k, v in sizes.items()]
    return Built(obj, f"built as {cls.__name__}({', '.join(chosen)})" if chosen else "")

LARGE = 64  # a default size above this makes every check slow (d_model=512, d_ff=2048)


def _large_defaults(cls, pool: bool, given: dict) -> dict:
    """Small sizes for the sizes ``cls`` defaults to (``d_model=512, heads=8``) when one of
    them is larger than ``LARGE``: every default size by name (``SIZE_NAMES``), so that
    they stay consistent (the heads dividing the width). {} when none is large."""
    sizes = {}
    for p in inspect.signature(cls).parameters.values():
        if p.name in given or type(p.default) is not int or p.kind not in (
                p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        value = size_for(p.name, pool)
        if type(value) is int and value > 0:
            sizes[p.name] = (p.default, value)
    if not any(default > LARGE for default, _ in sizes.values()):
        return {}
    return {name: value for name, (_, value) in sizes.items()}


def _divisible_heads(cls, args: list, kwargs: dict, chosen: list) -> None:
    """One head where 2 would not divide every width chosen (``hidden_dim`` 5): a
    multi-head layer asserts ``d_model % num_heads == 0``. Changes ``args``, ``kwargs``
    and the ``chosen`` texts in place."""
    positional = [p.name for p in inspect.signature(cls).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                         p.POSITIONAL_OR_KEYWORD)]
    values = {**dict(zip(positional, args, strict=False)), **kwargs}
    heads = [n for n in values if HEADS.fullmatch(n.lower())]
    widths = [v for n, v in values.items() if n not in heads and type(v) is int
              and v in (probe.FEATURES, probe.HIDDEN)]
    if not heads or all(w % 2 == 0 for w in widths):
        return
    for n in heads:
        if n in kwargs:
            kwargs[n] = 1
        else:
            args[positional.index(n)] = 1
        chosen[:] = [f"{n}=1" + c[len(f"{n}=2"):] if c.startswith(f"{n}=2") else c
                     for c in chosen]


STRIDE = re.compile(r"strides?|step", re.IGNORECASE)
PADDING = re.compile(r"pad|padding", re.IGNORECASE)


def setting_variants(cls, name: str | None = None) -> list[dict]:
    """Constructor settings besides the defaults that a conv or pool class is checked at
    too, where its constructor takes them by those names (``stride``, ``padding``,
    ``pad``): a conv's stride 2 and padding 1 (1 and 0 where those are its defaults;
    ``"same"`` for a ``"valid"`` default, and the other way round), a pool's stride 1
    (overlapping windows). A backward that leaves out the stride or the padding is right
    at stride 1 and no padding, the only settings built otherwise. In order of
    preference: both settings at once, then each alone (``setting_rows`` tries them);
    ``[]`` for other classes.
    ``cls`` may be a forward function too (``conv_forward(X, W, b, stride=1, padding=1)``),
    ``name``: the name that says conv or pool (default ``cls.__name__``)."""
    name = name or cls.__name__
    conv = bool(re.search(r"conv", name, re.IGNORECASE))
    pool = not conv and bool(re.search(r"pool", name, re.IGNORECASE))
    if not (conv or pool):
        return []
    try:
        params = [p for p in inspect.signature(cls).parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        return []
    def number(p, otherwise):
        d = p.default
        return d if isinstance(d, int) and not isinstance(d, bool) else \
            otherwise if d is p.empty or d is None else None

    chosen = {}
    for p in params:
        if STRIDE.fullmatch(p.name) and number(p, 1 if conv else 2) is not None:
            chosen[p.name] = 2 if number(p, 1 if conv else 2) == 1 else 1
        elif conv and PADDING.fullmatch(p.name) and number(p, 0) is not None:
            chosen[p.name] = 1 if number(p, 0) == 0 else 0
        elif conv and PADDING.fullmatch(p.name) and isinstance(p.default, str) \
                and p.default.lower() in ("valid", "same"):  # Keras's names
            chosen[p.name] = "same" if p.default.lower() == "valid" else "valid"
    if not chosen:
        return []
    extra = {}
    if conv:  # one sample's shape the constructor requires (X_dim): odd sizes,
        for p in params:  # which a 3x3 window at stride 2 tiles exactly
            if p.default is p.empty and SAMPLE_SHAPE.fullmatch(p.name):
                extra[p.name] = (2, 7, 9)
    # both settings at once; each alone after it, tried where the code refuses both
    # (a conv that takes a padding but refuses stride 2 is still checked padded)
    alone = [{k: v, **extra} for k, v in chosen.items()] if len(chosen) > 1 else []
    return [{**chosen, **extra}, *alone]


SAMPLE_SHAPE = re.compile(r"x_?dim|image_?shape|img_?shape|input_?shape|in_?shape",
                          re.IGNORECASE)


def setting_label(setting: dict) -> str:
    """``"stride=2, padding=1"``: the settings of a ``setting_variants`` entry a row is
    named by (a sample shape it also sets is said in the row's "built as" note)."""
    return ", ".join(f"{k}={v}" for k, v in setting.items() if not SAMPLE_SHAPE.fullmatch(k))


def array_for(name: str, conv: bool):
    """A parameter array a constructor takes (``Affine(W, b)``), by its name: W (4, 5) or a
    conv's (3, 2, 3, 3), b (5,) or (3,), gamma ones, beta zeros (drawn afresh later)."""
    r = probe.role(name)
    rng = np.random.default_rng(0)
    if r == "weight":
        return rng.standard_normal((3, 2, 3, 3) if conv else (probe.FEATURES, probe.HIDDEN))
    if r == "bias":
        return np.zeros(3 if conv else probe.HIDDEN)
    if r in ("scale", "shift"):
        return (np.ones if r == "scale" else np.zeros)(probe.FEATURES)
    return None

RECURRENT_GATES = ((r"lstm", 4), (r"gru", 3), (r"rnn", 1))


def recurrent_array_for(name: str, cls_name: str):
    """A recurrent layer's weights by name, for a class named LSTM / GRU / RNN
    (``TimeLSTM(Wx, Wh, b)``): Wx (D, G H), Wh (H, G H), b (G H,) with G its gates (4, 3,
    1), D = probe.FEATURES, H = probe.HIDDEN (so that Wh is square and Wx is not); None
    for other names or classes."""
    gates = next((g for pattern, g in RECURRENT_GATES
                  if re.search(pattern, cls_name, re.IGNORECASE)), None)
    if gates is None:
        return None
    rng = np.random.default_rng(0)
    width = gates * probe.HIDDEN
    # a numbered or directed copy too (a bidirectional layer's Wx1, Wx2 / Wx_f, Wx_b)
    copy = r"(_?\d|_?(f|b|fw|bw|fwd|bwd|forward|backward))?"
    if re.fullmatch(r"(w_?x|w_?ih|w_?xh|w_?in(put)?)" + copy, name, re.IGNORECASE):
        return rng.standard_normal((probe.FEATURES, width)) / 2
    if re.fullmatch(r"(w_?h|w_?hh|w_?rec(urrent)?|u)" + copy, name, re.IGNORECASE):
        return rng.standard_normal((probe.HIDDEN, width)) / 2
    if re.fullmatch(r"(b|bias(es)?|b_?h)" + copy, name, re.IGNORECASE):
        return np.zeros(width)
    return None


def size_for(name: str, pool: bool):
    lowered = name.lower()
    for pattern, value in SIZE_NAMES:
        if re.fullmatch(pattern, lowered):
            if value is None:
                if lowered.replace("_", "") == "strideshape":
                    return (2, 2) if pool else (1, 1)
                if re.search(r"stride|step", lowered):
                    return 2 if pool else 1
                return 2 if pool else 3
            return value
    return None

INPUT_NAME = re.compile(r"^(x|X|inputs?|in_?data|input_?data|a|A|a_?prev|z|Z|data)$")

def method_pairs(cls) -> list[tuple[str, str, str]]:
    """(layer name, forward method, backward method) pairs a class defines: ``forward``
    / ``backward`` (or ``__call__`` / ``backward``), and ``X_forward`` / ``X_backward``
    (not a private ``_X_forward`` beside a whole-class pair: its helper)."""
    pairs = []
    has = {n for n in dir(cls) if callable(getattr(cls, n, None))}
    if "backward" in has:
        if "forward" in has:
            pairs.append((cls.__name__, "forward", "backward"))
        elif "__call__" in vars(cls) or any("__call__" in vars(b) for b in cls.__mro__[1:-1]):
            pairs.append((cls.__name__, "__call__", "backward"))
    for fwd, bwd in METHOD_PAIRS:  # forward_propagation / backward_propagation, ...
        if fwd in has and bwd in has and not pairs:
            pairs.append((cls.__name__, fwd, bwd))
    whole = bool(pairs)
    for n in sorted(has):
        m = re.fullmatch(r"(.+?)_forward", n)
        if whole and n.startswith("_"):
            continue  # a helper of the class's own pair (``_pool_forward``, ``__forward``)
        if m and f"{m.group(1)}_backward" in has:
            pairs.append((f"{cls.__name__}.{n}", n, f"{m.group(1)}_backward"))
    return pairs

# Whole-class method pairs under other names.
METHOD_PAIRS = (("forward_propagation", "backward_propagation"), ("forward_prop", "backward_prop"),
                ("forward_pass", "backward_pass"), ("fprop", "bprop"),
                ("forward_propagate", "backward_propagate"))


__all__ = ["GRAD_DICTS", "INPUT_GRAD_NAMES", "LR_NAMES", "METHOD_PAIRS", "OUTPUT_NAMES",
           "SIZE_NAMES", "Built", "Slot", "candidate_slots", "construct", "extra_value",
           "grad_attr_names", "input_grad", "is_loss", "method_pairs", "output_of",
           "stored_grad", "container_stores", "stale_container", "setting_variants",
           "setting_label"]
