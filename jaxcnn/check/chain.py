"""A chain of layers, like stax's ``serial``: name the FIRST layer whose backward is wrong.

The hand chain runs as a training loop would: every layer's forward in order, then each
hand backward fed the cotangent the next layer's hand backward produced. At each layer
two comparisons are made:

* **local**: the layer's hand gradients against ``jax.vjp`` of its reference *for the
  cotangent it actually received*; a local error is this layer's own mistake;
* **global**: its parameter gradients against the exact gradient of the whole chain; a
  global error may be inherited from a later layer. (The cotangents between layers are
  not compared globally: at tied maxima any valid subgradient rule gives another one.)

Walking backwards from the loss, the first layer with a local error is *the first wrong
layer*; what it breaks downstream shows in the global comparisons of earlier layers.
On MNIST digits with the report's max-pool rule: the pool is the first wrong layer
(``tie-overcount``), and the conv's filter gradient, locally correct, is globally ~3x
too large.

Two networks are built from a file's layers: the report's (``blog_chain_inputs``:
Conv3x3 -> MaxPool2 -> Softmax) and CS231n's convnet (``cs231n_chain`` and
``cs231n_chain_inputs``: conv -> relu -> max_pool -> affine -> softmax_loss, on batches
of 2 and of 1). A user's forward that raises on a chain's input makes that layer the
first wrong one (kind ``error``), without running the layers after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.autodiff import (
    bind,
    compiled,
    forward_keys,
    keep,
    recall,
    source_digest,
    types_of,
)
from jaxcnn.check.compare import as_float64, cosine, rel_error
from jaxcnn.check.engine import (
    EXACT_TOL,
    FORWARD_TOL,
    RECOVERED_TOL,
    _error_text,
    classify_gradient,
)
from jaxcnn.check.layer import InputSet, Layer


class ChainInput(NamedTuple):
    """One input of a chain: the image and every layer's parameters and static args."""

    name: str
    family: str
    x: np.ndarray
    params: tuple  # per layer: a tuple of its parameter arrays
    statics: tuple  # per layer: its static arguments
    label: int | None = None


def _compose(layers: Sequence[Layer], start: int, statics):
    """f(x_start, *params of layers start..) -> chain output, from the references."""
    counts = [len(layer.arg_names) - 1 for layer in layers]

    def fun(x, *params):
        k = 0
        for i in range(start, len(layers)):
            p = params[k:k + counts[i]]
            k += counts[i]
            x = layers[i].reference.forward((x, *p), statics[i])
        return x

    return fun


def vjp_inside(fun, args: tuple, cotangent) -> tuple:
    """``jax.vjp`` of ``fun`` at ``args`` along ``cotangent``, to be traced inside a larger
    program (``autodiff.compiled``)."""
    out, pullback = jax.vjp(fun, *args)
    return pullback(cotangent.astype(out.dtype))


def _layer_keys(layers, xs, params, statics, cotangent) -> list[str] | None:
    """Each layer's reference forward at the input the hand chain gave it as a key
    (``autodiff.forward_keys``), when each one's output has exactly the type of the next
    layer's input (the last one's, the hand chain's output, of the cotangent's shape):
    then every composition of the chain's program traces each layer as here, and the
    program's result is a function of these forwards and the values
    (``autodiff.recall``). Else None: not recalled."""
    got = forward_keys([(bind(layer.reference.forward, statics[k]), (xs[k], *params[k]))
                        for k, layer in enumerate(layers)])
    if got is None:
        return None
    keys, avals = got
    for k, out in enumerate(avals):
        if len(out) != 1 or getattr(out[0], "weak_type", False) or (
                (tuple(out[0].shape), out[0].dtype) != (xs[k + 1].shape, xs[k + 1].dtype)):
            return None
    return keys if np.shape(cotangent) == xs[-1].shape else None


def _helper(name: str) -> str:
    """A ``recall`` helper name: ``name`` and the source of the code that computes it."""
    from jaxcnn.check import autodiff

    return f"chain.{name} {source_digest(__file__)} {source_digest(autodiff.__file__)}"


def _locals(layers, statics, visits, keys) -> list:
    """Every visited layer's reference VJP for the cotangent it received, as one program
    (per visit, its gradients), recalled from the store when the layers' forwards have
    keys (``_layer_keys``; a layer's inputs there are those of its visit)."""
    cts = [np.asarray(v[2], np.float64) for v in visits]

    def program(cts, *a):
        return [vjp_inside(bind(layers[k].reference.forward, statics[k]), a[j], cts[j])
                for j, (k, *_) in enumerate(visits)]

    key = stored = None
    if keys is not None:
        key, stored = recall(_helper(f"locals {[v[0] for v in visits]}"),
                             [keys[v[0]] for v in visits],
                             [*cts, *(a for v in visits for a in v[1])],
                             types_of([a for v in visits for a in v[1]]))
    if stored is not None:
        out = []
        for v in visits:
            out.append(tuple(stored[:len(v[1])]))
            stored = stored[len(v[1]):]
        return out
    out = compiled(program, cts, *(v[1] for v in visits), stored=key is None)
    keep(key, [g for gs in out for g in gs])
    return out


def _norm_ratio(hand, want) -> float | None:
    d = float(np.linalg.norm(want))
    return float(np.linalg.norm(hand)) / d if d > 0 else None


def check_chain(layers: Sequence[Layer], inputs: Sequence[ChainInput], seed: int = 0) -> dict:
    """Run the hand chain on each input; JSON-ready dict with ``first_wrong`` per input and
    ``ok`` overall. Layers need a reference; the last layer's ``cotangent`` rule (else 1
    for a scalar output, else standard normal) seeds the backward pass."""
    rng = np.random.default_rng(seed)
    results = []
    with jax.enable_x64(True):
        for inp in inputs:
            # each layer's parameters as it holds them (a float32 layer's, rounded)
            params = tuple(tuple(layer.held((None, *p))[1:]) if layer.held and p else p
                           for layer, p in zip(layers, inp.params, strict=True))
            results.append(_one(layers, inp._replace(params=params), rng))
    first = [r["first_wrong"] for r in results if r["first_wrong"]]
    return {"layers": [layer.name for layer in layers], "ok": not first,
            "first_wrong": first[0] if first else None, "inputs": results}


def _one(layers, inp: ChainInput, rng) -> dict:
    xs = [as_float64(inp.x)]
    for k, (layer, params, static) in enumerate(zip(layers, inp.params, inp.statics,
                                                    strict=True)):
        try:
            out = layer.forward((xs[-1].copy(), *(np.array(p, copy=True) for p in params)),
                                static)
            xs.append(as_float64(out))
        except Exception as exc:  # the user's forward refused this input: say so, go on
            return {"inputs": inp.name, "family": inp.family, "forward_matches": False,
                    "first_wrong": {"layer": layer.name, "quantity": None, "kind": "error"},
                    "layers": [{"name": layer.name, "error": _error_text(exc, "forward")}],
                    "note": f"{layer.name}'s forward raised on this input (layer {k + 1} of "
                            f"{len(layers)}); the layers after it were not run"}
    out = xs[-1]
    last = layers[-1]
    # The cotangent depends on the hand chain's output only: drawn first, so that the
    # references' forwards and the whole chain's gradients are one program.
    if last.cotangent is not None:
        probe = InputSet(inp.family, inp.name, (), label=inp.label)
        ct = as_float64(last.cotangent(out, probe, rng))
    else:
        ct = np.ones(out.shape) if out.size == 1 else rng.standard_normal(out.shape)
    final_ct = ct
    n = len(layers)
    params = [tuple(as_float64(p) for p in ps) for ps in inp.params]
    suffixes = [(xs[k], *(p for j in range(k, n) for p in params[j])) for k in range(n)]

    def forwards(a):  # every layer's reference on the input the hand chain gave it
        return [layer.reference.forward((a[k], *a[n + k]), inp.statics[k])
                for k, layer in enumerate(layers)]

    def gradients(cts, suffixes):  # the whole chain's gradient from each layer on
        return [vjp_inside(_compose(layers, k, inp.statics), suffixes[k], cts)
                for k in range(n)]

    final_ct = np.asarray(final_ct, np.float64)
    keys = _layer_keys(layers, xs, params, inp.statics, final_ct)
    # the program's result, stored: every reference's output, then per layer k the
    # gradients of the chain from k on (as many as suffixes[k], of their shapes)
    types = types_of(xs[1:]) + types_of([a for sfx in suffixes for a in sfx])
    key, stored = (None, None) if keys is None else recall(
        _helper("all"), keys, [*xs[:-1], *(p for ps in params for p in ps), final_ct], types)
    if stored is not None:
        wants, flat = stored[:n], stored[n:]
        fulls = []
        for sfx in suffixes:
            fulls.append(tuple(flat[:len(sfx)]))
            flat = flat[len(sfx):]
    else:
        try:
            wants, fulls = compiled(lambda a, cts, sfx: (forwards(a), gradients(cts, sfx)),
                                    (*xs[:-1], *params), final_ct, suffixes,
                                    stored=key is None)
            keep(key, [*wants, *(g for gs in fulls for g in gs)])
        except Exception:  # noqa: BLE001 - the references' output is not the hand chain's
            # shape (then the forward check below fails): their forwards alone
            wants, fulls = compiled(forwards, (*xs[:-1], *params)), None
    forward_ok = True
    for k, want in enumerate(wants):
        want = as_float64(want)
        if want.shape != xs[k + 1].shape or rel_error(xs[k + 1], want) > FORWARD_TOL["float64"]:
            forward_ok = False
    report = {"inputs": inp.name, "family": inp.family, "forward_matches": forward_ok,
              "first_wrong": None, "layers": []}
    # 1. The hand chain, from the loss down: only the user's code, in a training loop's
    # order (each backward, then its second call for the sanity checks).
    visits = []  # (k, args, ct received, raw, grads, extra)
    stop = None  # why the walk ended early: ("error", k, text) or ("no-input-grad", k)
    for k in range(len(layers) - 1, -1, -1):
        layer = layers[k]
        args = (xs[k], *(as_float64(p) for p in inp.params[k]))
        try:
            _, backward = layer.vjp(tuple(a.copy() for a in args), inp.statics[k])
            raw = backward(ct.copy())
        except Exception as exc:
            stop = ("error", k, _error_text(exc, "backward"))
            break
        raw = tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)
        grads = [None if g is None else as_float64(g) for g in raw]
        grads += [None] * (len(args) - len(grads))
        extra = {}
        if forward_ok and layer.extra is not None:
            try:
                extra = {n: (kind, note) for n, kind, note in
                         layer.extra(tuple(a.copy() for a in args), inp.statics[k], ct)}
            except Exception:  # the per-layer check reports it
                extra = {}
        visits.append((k, args, ct, raw, grads, extra))
        if k > 0:
            if grads[0] is None:
                stop = ("no-input-grad", k)
                break
            ct = grads[0]
    # 2. Every visited layer's reference VJP for the cotangent it received: one program.
    if forward_ok and visits:
        locals_ = _locals(layers, inp.statics, visits, keys)
    # 3. Judge each layer, from the loss down.
    for j, (k, args, ct, raw, grads, extra) in enumerate(visits):
        layer = layers[k]
        entry = {"name": layer.name, "local": {}, "global": {}}
        if forward_ok:
            local = tuple(as_float64(g) for g in locals_[j])
            alternates = (layer.reference.alternates(args, inp.statics[k], ct)
                          if layer.reference.alternates else [])
            for i, name in enumerate(layer.arg_names):
                if grads[i] is None:
                    if name not in layer.optional:  # a chain never passes a missing gradient
                        entry["local"][name] = {"kind": "missing", "rule": None,
                                                "note": "no gradient returned"}
                        report["first_wrong"] = report["first_wrong"] or {
                            "layer": layer.name, "quantity": name, "kind": "missing"}
                    continue
                # a gradient the hand returns in float32 gets float32's tolerance
                precision = ("float32" if i < len(raw) and getattr(raw[i], "dtype", None)
                             == np.float32 else "float64")
                tol = (RECOVERED_TOL if name in layer.recovered else EXACT_TOL)[precision]
                finding = classify_gradient(layer, args, inp.statics[k], ct, i, grads[i],
                                            local[i], alternates, tol, None, extra.get(name),
                                            local)
                entry["local"][name] = {"kind": finding.kind, "rule": finding.rule,
                                        "note": finding.note}
                if finding.kind != "correct" and report["first_wrong"] is None:
                    report["first_wrong"] = {"layer": layer.name, "quantity": name,
                                             "kind": finding.kind}
            full = tuple(as_float64(g) for g in fulls[k])
            for i, name in enumerate(layer.arg_names):
                # Parameters only: at tied maxima the cotangent between layers is not
                # unique (any subgradient rule is right), the parameter gradient is.
                if i == 0 or grads[i] is None or grads[i].shape != full[i].shape:
                    continue
                entry["global"][name] = {"max_rel_error": rel_error(grads[i], full[i]),
                                         "cosine": cosine(grads[i], full[i]),
                                         "norm_ratio": _norm_ratio(grads[i], full[i]),
                                         "_abs": (float(np.max(np.abs(grads[i] - full[i]),
                                                               initial=0.0)),
                                                  float(np.max(np.abs(full[i]),
                                                               initial=0.0)))}
        report["layers"].insert(0, entry)
    if stop is not None and stop[0] == "error":
        _, k, text = stop
        report["layers"].insert(0, {"name": layers[k].name, "error": text})
        report["first_wrong"] = report["first_wrong"] or {"layer": layers[k].name,
                                                          "quantity": None, "kind": "error"}
    elif stop is not None:  # a layer that returns no input gradient
        layer = layers[stop[1]]
        if layer.arg_names[0] not in layer.optional:
            report["first_wrong"] = report["first_wrong"] or {
                "layer": layer.name, "quantity": layer.arg_names[0], "kind": "missing"}
        report["note"] = (f"{layer.name} returns no input gradient, so the layers "
                          "before it cannot be checked in this chain")
    _zero_gradients(report)
    return report


def _zero_gradients(report: dict) -> None:
    """A parameter whose whole-chain gradient is zero up to rounding (an affine bias
    before a batch norm, which removes the mean) is measured against the chain's largest
    parameter gradient: rounding noise on both sides is no error."""
    entries = [g for e in report["layers"] for g in e.get("global", {}).values()]
    big = max((g["_abs"][1] for g in entries), default=0.0)
    for g in entries:
        err, size = g.pop("_abs")
        if size < 1e-8 * big:
            g["max_rel_error"] = err / big


def summary(chain: dict) -> list[str]:
    """Lines for the table: first wrong layer, and global effects on earlier layers."""
    names = " -> ".join(chain["layers"])
    lines = [f"chain {names}:"]
    if chain.get("error"):  # past the time limit, or its inputs could not be built
        lines.append(f"  not judged: {chain['error']}")
    for r in chain["inputs"]:
        fw = r["first_wrong"]
        if fw:
            what = f"{fw['quantity']}: {fw['kind']}" if fw["quantity"] else fw["kind"]
            head = f"  {r['inputs']}: first wrong layer: {fw['layer']} ({what})"
        elif chain.get("rows_not_ok"):
            head = (f"  {r['inputs']}: not passed: the own checks of "
                    f"{', '.join(chain['rows_not_ok'])} fail (see their rows), though this "
                    "input does not show it in the chain")
        elif not r["forward_matches"]:
            head = (f"  {r['inputs']}: not judged: a forward differs from its reference, so "
                    "the chain has no exact oracle (see the layers' own checks)")
        else:
            head = f"  {r['inputs']}: every layer correct"
        lines.append(head)
        if r.get("note"):
            lines.append(f"    {r['note']}")
        for entry in r["layers"]:
            if entry.get("error"):  # the user's error, with its file and line
                lines.append(f"    {entry['name']}: {entry['error']}")
            for q, g in entry.get("global", {}).items():
                if g["max_rel_error"] is not None and g["max_rel_error"] > 1e-8:
                    ratio = g["norm_ratio"]
                    lines.append(f"    {entry['name']} {q}: off by max rel error "
                                 f"{g['max_rel_error']:.2g} against the whole chain's "
                                 f"gradient (norm ratio "
                                 f"{'-' if ratio is None else f'{ratio:.2f}'}, cosine "
                                 f"{g['cosine']:.3f})")
    return lines


def blog_chain_inputs(count: int = 2, seed: int = 0) -> list[ChainInput]:
    """Real digits through Conv3x3 -> MaxPool2 -> Softmax, the report's network."""
    from jaxcnn.check.catalogue import digits

    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((8, 3, 3)) / 9
    weights = rng.standard_normal((13 * 13 * 8, 10)) / (13 * 13 * 8)
    biases = np.zeros(10)
    images, labels = digits(count)
    return [ChainInput(f"MNIST digit {k} (label {labels[k]})", "digits", images[k],
                       ((filters,), (), (weights, biases)), ((), (), ()), int(labels[k]))
            for k in range(count)]


# A CS231n network, in the order of the assignment's convnets: conv - relu - 2x2 max pool
# - affine - softmax loss. Kinds that a file lacks are left out; affine and a loss are
# needed, and a conv or a max pool (else it is no network of these layers).
CS231N_ORDER = ("conv", "relu", "max_pool", "affine", "loss")
CS231N_LOSSES = ("softmax_loss", "softmax_loss_sum")


def cs231n_chain(layers: Sequence[Layer]) -> list[Layer] | None:
    """The CS231n layers of one file as a network (``CS231N_ORDER``, the first layer of
    each kind), or None when the file holds no such network."""
    def first(kinds):
        return next((layer for layer in layers if layer.style == "cs231n"
                     and layer.kind in kinds), None)

    picked = {k: first(CS231N_LOSSES if k == "loss" else (k,)) for k in CS231N_ORDER}
    if not (picked["affine"] and picked["loss"] and (picked["conv"] or picked["max_pool"])):
        return None
    return [picked[k] for k in CS231N_ORDER if picked[k] is not None]


def cs231n_chain_inputs(layers: Sequence[Layer], seed: int = 0) -> list[ChainInput]:
    """Inputs of a ``cs231n_chain``: a batch of 2 random non-square samples with 2
    channels (tie-free), a batch of 2 MNIST crops (tied pool windows) and a batch of ONE
    sample (N = 1: code that squeezes or assumes N > 1 shows). Conv 3x3, stride 1, pad 1,
    3 filters; pool 2x2, stride 2; 5 classes. Shapes follow from the references."""
    from jaxcnn.check.catalogue import digits

    rng = np.random.default_rng(seed)
    images, _ = digits(2)
    batches = [("random", "random batch x (2, 2, 6, 8)", rng.standard_normal((2, 2, 6, 8))),
               ("digits", "MNIST crops x (2, 1, 8, 8)", images[:, None, 10:18, 10:18].copy()),
               ("random", "random batch of one x (1, 2, 6, 8)", rng.standard_normal((1, 2, 6, 8)))]
    classes = 5
    out = []
    with jax.enable_x64(True):
        for family, name, x in batches:
            params, statics, shape = [], [], x.shape
            for layer in layers:
                if layer.kind == "conv":
                    p = (rng.standard_normal((3, shape[1], 3, 3)) / np.sqrt(9 * shape[1]),
                         0.1 * rng.standard_normal(3))
                    s = ({"stride": 1, "pad": 1},)
                elif layer.kind == "max_pool":
                    p, s = (), ({"pool_height": 2, "pool_width": 2, "stride": 2},)
                elif layer.kind == "affine":
                    d = int(np.prod(shape[1:]))
                    p, s = (rng.standard_normal((d, classes)) / np.sqrt(d),
                            0.1 * rng.standard_normal(classes)), ()
                elif layer.kind in CS231N_LOSSES:
                    p, s = (), (rng.integers(classes, size=shape[0]),)
                else:
                    p, s = (), ()
                params.append(p)
                statics.append(s)
                shape = jax.eval_shape(  # shapes only: nothing is compiled
                    lambda *a, layer=layer, s=s: layer.reference.forward(a, s),
                    *(jax.ShapeDtypeStruct(np.shape(a), jnp.float64) for a in (
                        np.empty(shape), *p))).shape
            out.append(ChainInput(name, family, x, tuple(params), tuple(statics)))
    return out


# A CS231n FullyConnectedNet (assignment 2's fc_net.py): {affine - [batch/layer norm] -
# relu - [dropout]} x (L - 1) - affine - softmax loss, through the file's own layer
# functions. With both norms in the file, the first hidden layer uses batch norm and the
# second layer norm, so that one chain checks both.
FC_HIDDEN = 2
FC_NORMS = ("batchnorm", "layernorm")


def cs231n_fc_chain(layers: Sequence[Layer]) -> list[Layer] | None:
    """The CS231n layers of one file as a FullyConnectedNet with ``FC_HIDDEN`` hidden
    layers (affine -> norm -> relu -> dropout, each part when the file has it, -> affine
    -> softmax_loss), or None when the file lacks affine, relu or a softmax loss, or is a
    convnet's (``cs231n_chain``) without a norm or dropout. A layer used more than once is
    named by its place (``affine[2]``)."""
    def first(kinds):
        return next((layer for layer in layers if layer.style == "cs231n"
                     and layer.kind in kinds), None)

    affine, relu, loss = first(("affine",)), first(("relu",)), first(CS231N_LOSSES)
    if not (affine and relu and loss):
        return None
    norms = [n for n in (first((k,)) for k in FC_NORMS) if n is not None]
    dropout = first(("dropout",))
    if not (norms or dropout) and cs231n_chain(layers) is not None:
        return None  # a convnet's file: its chain has these parts already
    net = []
    for i in range(FC_HIDDEN):
        net += [affine] + ([norms[i % len(norms)]] if norms else []) + [relu]
        net += [dropout] if dropout else []
    net += [affine, loss]
    counts: dict[str, int] = {}
    named = []
    for layer in net:
        counts[layer.name] = counts.get(layer.name, 0) + 1
        total = sum(other is layer for other in net)
        named.append(layer._replace(name=f"{layer.name}[{counts[layer.name]}]")
                     if total > 1 else layer)
    return named


def _output_shape(layer: Layer, shape: tuple, params: tuple, static: tuple) -> tuple:
    """The shape of ``layer``'s reference output on an input of ``shape``: traced
    abstractly (nothing compiled or run), or, for a reference that needs values (NumPy
    on its input), run on ones."""
    try:
        return jax.eval_shape(
            lambda *a: layer.reference.forward(a, static),
            *(jax.ShapeDtypeStruct(np.shape(a), jnp.float64) for a in (
                np.empty(shape), *params))).shape
    except Exception:  # noqa: BLE001 - not traceable: run it, as it runs
        return np.shape(layer.reference.forward(
            (jnp.ones(shape), *(jnp.asarray(a) for a in params)), static))


def cs231n_fc_chain_inputs(layers: Sequence[Layer], seed: int = 0) -> list[ChainInput]:
    """Inputs of a ``cs231n_fc_chain``: a batch x (4, 6) and a batch of 3-d samples
    x (3, 2, 5) (flattened by the first affine), 5 hidden units, 3 classes; batch norm in
    train mode, dropout in train mode with keep probability 0.6 and a fixed seed. Shapes
    follow from the references."""
    rng = np.random.default_rng([seed, 18])
    batches = [("random", "random batch x (4, 6)", rng.standard_normal((4, 6))),
               ("random", "random batch x (3, 2, 5)", rng.standard_normal((3, 2, 5)))]
    hidden, classes = 5, 3
    out = []
    with jax.enable_x64(True):
        for family, name, x in batches:
            params, statics, shape = [], [], x.shape
            affines = sum(layer.kind == "affine" for layer in layers)
            seen = 0
            for layer in layers:
                if layer.kind == "affine":
                    seen += 1
                    d, m = int(np.prod(shape[1:])), classes if seen == affines else hidden
                    p, s = (rng.standard_normal((d, m)) / np.sqrt(d),
                            0.1 * rng.standard_normal(m)), ()
                elif layer.kind in FC_NORMS:
                    p = (1 + 0.3 * rng.standard_normal(shape[1]),
                         0.3 * rng.standard_normal(shape[1]))
                    s = ({"mode": "train"} if layer.kind == "batchnorm" else {},)
                elif layer.kind == "dropout":
                    p, s = (), ({"mode": "train", "p": 0.6, "seed": int(rng.integers(1000))},)
                elif layer.kind in CS231N_LOSSES:
                    p, s = (), (rng.integers(classes, size=shape[0]),)
                else:
                    p, s = (), ()
                params.append(p)
                statics.append(s)
                shape = _output_shape(layer, shape, p, s)
            out.append(ChainInput(name, family, x, tuple(params), tuple(statics)))
    return out


def across_files(layers: Sequence[Layer], seed: int = 0) -> list[tuple[list[Layer], list]]:
    """The networks the layers of several files make together (a network split over
    ``conv.py``, ``maxpool.py``, ``softmax.py``): the report's (the first blog conv,
    max-pool and softmax layer, in the order the files were given) and CS231n's. A list
    of (layers, inputs) for ``check_chain``."""
    out = []
    blog = [layer for layer in layers if layer.style == "blog"]
    trio = [next((layer for layer in blog if layer.kind == kind), None)
            for kind in ("conv3x3", "maxpool2", "dense_softmax")]
    if all(trio):
        out.append((trio, blog_chain_inputs(2, seed)))
    network = cs231n_chain(layers)
    if network:
        out.append((network, cs231n_chain_inputs(network, seed)))
    return out
