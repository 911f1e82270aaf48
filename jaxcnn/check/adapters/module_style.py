"""Module style: classes whose ``backward`` returns or *stores* the gradients.

The style of the "Neural Networks from Scratch" book, of university course frameworks
and of most blog MLPs::

    class Layer_Dense:                       # weights (n_inputs, n_neurons), biases (1, n)
        def __init__(self, n_inputs, n_neurons): ...
        def forward(self, inputs):           # returns the output, or stores self.output
            self.inputs = inputs
            self.output = inputs @ self.weights + self.biases
        def backward(self, dvalues):         # returns dL/dinput, or stores self.dinputs
            self.dweights = self.inputs.T @ dvalues       # parameter gradients: attributes
            self.dbiases = dvalues.sum(axis=0, keepdims=True)
            self.dinputs = dvalues @ self.weights.T

    class Loss_CategoricalCrossentropy:      # a loss: forward(y_pred, y_true) -> losses
        def forward(self, y_pred, y_true): ...
        def backward(self, dvalues, y_true): ...   # dvalues: the predictions

Also: ``__call__`` as the forward; ``backward(grad, lr)`` that updates the parameters in
place (their gradients are recovered from the update on a copy, ``(before - after) /
lr``, as for the report's ``backprop``); method pairs ``conv_forward`` /
``conv_backward`` on one class (one layer per pair); parameter gradients in a
``self.grads`` / ``self.gradients`` dict (keyed by the parameter's name, or ``"d" +``
it) or a ``grads`` list parallel to a ``params`` list; parameters in a ``self.params``
dict.

How the engine sees it (``from_module``):

* the differentiable arguments are the input and the float array parameters its
  forward depends on (gradient and optimizer buffers are not), in the object's own
  dtype; each input set draws them afresh (random, tie-free): a constructor that sets
  them to zeros or ones would hide a transpose or a sign, and the output says so;
* the input's shape comes from the parameters (``probe.input_candidates``) or a probe of
  the forward with small shapes; a loss gets rows of probabilities and integer labels
  (static; one-hot or float targets when the forward refuses integer labels) and is
  checked as the mean of what its forward returns (its ``backward(dvalues, y_true)``
  receives the predictions, or the ``self.output`` its forward stored: a combined
  softmax and cross-entropy's probabilities);
* the oracle: ``jax.vjp`` of the catalogue reference where the name and the forward
  match one (ReLU, sigmoid, tanh, softmax, a dense layer ``x @ W + b`` in its stored
  layout, a stride-1 valid NCHW conv holding OIHW filters, a 2x2 stride-2 max pool with
  the catalogue's tie-rich inputs); otherwise the numeric oracle, central differences
  of your own forward.

Where things live on the object, and how it is built: ``module_names``.

Every call works on deep copies: the object you pass is never modified.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.check.adapters import probe, recorder
from jaxcnn.check.adapters.module_names import (
    GRAD_NAME,
    INPUT_NAME,
    LR_NAMES,
    Slot,
    candidate_slots,
    construct,
    container_stores,
    extra_value,
    float_array,
    input_grad,
    is_loss,
    method_pairs,
    output_of,
    positional_params,
    required_params,
    setting_label,
    setting_variants,
    stale_container,
    stored_grad,
)
from jaxcnn.check.adapters.probe import seeded
from jaxcnn.check.layer import InputSet, Layer, Reference

LEARN_RATE = 0.5  # a power of two: (before - after) / lr is exact
ELEMENTWISE = {"relu": "relu", "sigmoid": "sigmoid", "logistic": "sigmoid", "tanh": "tanh"}


def _max_pool_spec(template, method: str, extra):
    """The catalogue's 2x2 max pool whose reference the forward reproduces on its first
    input (NCHW, or the report's (H, W, C)), with its tie-rich inputs; None if none."""
    from jaxcnn.check.adapters import module_catalogue

    return module_catalogue.find_max_pool(
        lambda x: _run_forward(copy.deepcopy(template), method, x, extra))


def _reference_for(kind: str | None, layout: str, slots: list[Slot], params: list,
                   loss: bool, conv: tuple[int, int] = (1, 0)) -> Reference | None:
    """The exact oracle where the name and the parameters say what the layer is;
    ``conv``: a conv's (stride, padding), as its object keeps them."""
    if loss or kind is None:
        return None
    if kind in ("relu", "sigmoid", "tanh") and not slots:
        from jaxcnn.check.catalogue import spec

        return spec(kind).reference
    if kind == "softmax" and not slots:
        def softmax(args, static):  # a column vector (n, 1): over its n entries
            column = args[0].ndim == 2 and args[0].shape[-1] == 1
            return jax.nn.softmax(args[0], axis=0 if column else -1)
        from jaxcnn.check.catalogue import spec

        rows = spec("softmax").reference.alternates  # over the last axis

        def alternates(args, static, cotangent):  # its known wrong Jacobians, named
            x, g = np.asarray(args[0]), np.asarray(cotangent)
            if x.ndim == 2 and x.shape[-1] == 1:  # a column: over its entries
                return [a._replace(grads=tuple(np.asarray(d).T for d in a.grads))
                        for a in rows((x.T,), static, g.T)]
            return rows(args, static, cotangent)
        return Reference("jax.nn.softmax (last axis; a column (n, 1) over its entries)",
                         softmax, alternates)
    if kind == "conv" and params and params[0].ndim == 4 and layout in ("nchw", "chw") and len(
            params) <= 2 and (len(params) == 1 or params[1].size == params[0].shape[0]):
        from jaxcnn.check.catalogue.conv import conv_nchw

        stride, pad = conv
        setting = {"stride": stride, "pad": pad}

        def conv_forward(args, static):  # its own settings: a mismatch falls back
            x, w = args[0], args[1]
            b = jnp.reshape(args[2], (-1,)) if len(args) > 2 else jnp.zeros(w.shape[0])
            if layout == "chw":  # one (C, H, W) image
                return conv_nchw(x[None], w, b, setting)[0]
            return conv_nchw(x, w, b, setting)

        from jaxcnn.check.catalogue import spec

        known = spec("conv").reference.alternates  # overwrites, the stride left out

        def alternates(args, static, cotangent):
            x, w = np.asarray(args[0]), np.asarray(args[1])
            b = np.reshape(args[2], (-1,)) if len(args) > 2 else np.zeros(w.shape[0])
            g = np.asarray(cotangent)
            if layout == "chw":
                x, g = x[None], g[None]
            found = known((x, w, b), (setting,), g)
            return [a._replace(grads=(None if a.grads[0] is None else (
                a.grads[0][0] if layout == "chw" else a.grads[0]), a.grads[1],
                *([None] if len(args) > 2 else []))) for a in found]

        return Reference(f"lax.conv_general_dilated ({layout.upper()}, OIHW, stride {stride}, "
                         + (f"padding {pad}" if pad else "no padding") + ")"
                         + (" + b" if len(params) == 2 else ""), conv_forward, alternates)
    if kind == "dense" and params and params[0].ndim == 2 and len(params) <= 2 and \
            layout in ("rows", "rows_t", "cols"):
        out_size = params[0].shape[0 if layout == "cols" else 1 if layout == "rows" else 0]
        if len(params) == 2 and params[1].size != out_size:
            return None
        text = {"rows": "x @ W", "rows_t": "x @ W.T", "cols": "W @ x"}[layout]

        def forward(args, static):
            x, w = args[0], args[1]
            y = x @ w if layout == "rows" else x @ w.T if layout == "rows_t" else w @ x
            if len(args) > 2:
                b = args[2]
                y = y + (jnp.reshape(b, (-1, 1)) if layout == "cols" else jnp.reshape(b, -1))
            return y

        def alternates(args, static, cotangent):
            """dx with the weight matrix the wrong way round (square W only)."""
            from jaxcnn.check.layer import Alternate

            w, g = np.asarray(args[1], np.float64), np.asarray(cotangent, np.float64)
            if w.shape[0] != w.shape[1]:
                return []
            dx = g @ w if layout == "rows" else g @ w.T if layout == "rows_t" else w @ g
            return [Alternate("W the wrong way round in dx", (dx,), False, "transposed",
                              "dL/dinput uses the weight matrix the wrong way round "
                              "(dvalues @ W where dvalues @ W.T belongs, or the reverse)")]

        return Reference(text + (" + b" if len(params) == 2 else ""), forward, alternates)
    return None


def layer_kind(name: str) -> str | None:
    lowered = name.lower()
    if re.search(r"softmax", lowered):
        return "softmax"
    for token, kind in ELEMENTWISE.items():
        if token in lowered and "leaky" not in lowered and "elu" != token:
            return kind
    # FC as a word of a CamelCase name too (BatchFCLayer: Batch, FC, Layer)
    words = [w.lower() for w in re.findall(r"[A-Z]+(?=[A-Z][a-z]|[^A-Za-z]|$)|[A-Z]?[a-z]+",
                                           name)]
    if re.search(r"dense|linear|affine|fully_?connected|^fc|_fc|fc_?\d*$", lowered) or \
            "fc" in words:
        return "dense"
    if re.search(r"conv", lowered):
        return "conv"
    return None


def from_module(obj, name: str | None = None, file: str | None = None,
                forward: str = "forward", backward: str = "backward", note: str = "",
                input_shape: tuple | None = None, kind_from: str | None = None) -> Layer:
    """A ``Layer`` for a constructed module-style object (see the module docstring).

    forward, backward: the method names (``"__call__"``, ``"conv_forward"``, ...).
    note: what to say about how it was built. input_shape: the shape of its input
    (e.g. ``(2, 1, 28, 28)``) when the probe finds none. kind_from: the name the kind
    is read from (default: the class's, or the ``X_forward`` method's); an
    ``ActivationLayer(tanh, tanh_prime)`` is a tanh by its function's name. Raises
    ValueError when no input shape tried runs its forward (saying what it raised).
    """
    cls_name = type(obj).__name__
    name = name or cls_name
    fwd_method = getattr(obj, forward)
    bwd_method = getattr(obj, backward)
    loss = is_loss(forward if forward.endswith("_forward") else cls_name, fwd_method)
    if loss and two_inputs(forward if forward.endswith("_forward") else cls_name,
                           fwd_method, bwd_method):
        names = ", ".join(p.name for p in required_params(fwd_method))
        raise ValueError(f"its {forward}({names}) takes two inputs and its {backward} only "
                         "the upstream gradient: a layer of two inputs (returning the "
                         "gradient of each), not a loss; such layers are not checked yet: "
                         "check it from Python (jaxcnn.check.from_function_pair)")
    if not loss and input_shape is None:
        from jaxcnn.check.adapters import module_step

        if module_step.states(fwd_method):  # forward(x, h_prev[, c_prev]): one time step
            return module_step.from_step_module(copy.deepcopy(obj), name, file, forward,
                                                backward, [note] if note else [])
    fwd_extra = [extra_value(p) for p in required_params(fwd_method)[2 if loss else 1:]]
    bwd_req = required_params(bwd_method)
    bwd_pos = positional_params(bwd_method)
    takes_lr = (len(bwd_pos) >= 2 and bwd_pos[1].name.lower() in LR_NAMES
                and not loss)
    template = copy.deepcopy(obj)
    slots = candidate_slots(template)
    notes = [note] if note else []
    # an optimizer object its backward updates through (``recorder``): its gradients
    rec = recorder.recorder_of(template)
    fwd_named = required_params(fwd_method)[2 if loss else 1:]
    if fwd_named:
        notes.append(f"its {forward} is called with " + ", ".join(
            f"{p.name}={v!r}" for p, v in zip(fwd_named, fwd_extra, strict=True)))

    if not loss and input_shape is None and not takes_lr and rec is None:
        from jaxcnn.check.adapters import module_index

        ndim = module_index.index_shape(template, forward, fwd_extra)
        if ndim is not None:  # an embedding: integer indices in, rows of a table out
            return module_index.from_index_module(template, name, file, forward, backward,
                                                  notes, fwd_extra, ndim)
    rng = np.random.default_rng(0)
    labels = None
    if loss:
        shape, layout = (probe.BATCH, probe.FEATURES), "loss"
        y_pred = probe.random_like(rng, shape, "probabilities")
        labels, why = _labels(template, fwd_method.__name__, y_pred, fwd_extra, rng)
        if labels is not None and not _loss_backward_ok(template, forward, backward, bwd_req,
                                                        y_pred, labels, fwd_extra):
            # a binary loss (DLFS2's SigmoidWithLoss): one value per sample, targets 0 / 1
            binary = _binary_labels(template, forward, backward, bwd_req, fwd_extra, rng)
            if binary is not None:
                (y_pred, labels), shape = binary, np.shape(binary[0])
                notes.append(f"its {backward} refuses rows of probabilities "
                             f"{(probe.BATCH, probe.FEATURES)} "
                             "with class labels: checked as a binary loss, one prediction "
                             f"per sample {shape} with targets 0 / 1")
        if labels is None:  # a sequence's loss (DLFS2's TimeSoftmaxWithLoss): (N, T, V)
            seq = probe.random_like(rng, SEQUENCE_LOSS, "probabilities")
            seq_labels, _ = _labels(template, fwd_method.__name__, seq, fwd_extra, rng)
            if seq_labels is not None:
                y_pred, labels, shape = seq, seq_labels, SEQUENCE_LOSS
        if labels is None:
            raise ValueError(f"its {forward} refused every target tried (integer labels, "
                             f"one-hot, float targets): {why}")
        slots = []
    else:
        shape, layout, why = None, None, ""
        params_now = [s.get(template) for s in slots]
        forward_only = None  # the first shape the forward takes, if the backward takes none
        candidates = ([(_layout_of(tuple(input_shape), params_now), tuple(input_shape))]
                      if input_shape is not None else probe.input_candidates(params_now))
        disagrees: list[tuple] = []  # lone shapes whose backward disagrees with the forward
        first_run = None  # the first lone shape both run on, whatever they say
        for lay, cand in candidates:
            x = probe.random_like(rng, cand)
            o = copy.deepcopy(template)
            ok, why_here = probe.runs(lambda x=x, o=o: _run_forward(o, forward, x, fwd_extra))
            if ok:
                forward_only = forward_only or (cand, lay)
                # a per-sample layer (bias -= lr * grad with a (1, n) bias) runs its forward
                # on a batch but not its backward: the shape must suit both
                out = _run_forward(copy.deepcopy(template), forward, x, fwd_extra)
                ct = probe.random_like(rng, np.shape(out))
                ok, why_here = probe.runs(lambda o=o, ct=ct, x=x: _backward_runs(
                    getattr(o, backward)(*_backward_args(bwd_req, takes_lr, x, ct,
                                                         LEARN_RATE))))
                if ok and lay == "any":  # no parameter says the shape: the forward and
                    # the backward must agree on it (a backward written for (n, 1) columns
                    # runs on (n,) but answers wrongly there)
                    verdict = agrees(template, forward, backward, bwd_req, takes_lr, x,
                                     fwd_extra, rng)
                    if verdict == CONSTANT:  # a degenerate shape: never the one checked
                        continue
                    first_run = first_run or (cand, lay)
                    if verdict is False:
                        disagrees.append(cand)
                        continue
                if ok:
                    shape, layout = cand, lay
                    break
            why = why or why_here
        if shape is None and first_run is not None:
            shape, layout = first_run  # it disagrees everywhere: checked on the first
            disagrees = []
        if disagrees and shape is not None:
            notes.append(shape_note(shape, disagrees))
        if shape is None and forward_only is not None:
            shape, layout = forward_only  # the backward's error is then reported
            notes.append(BACKWARD_REFUSED)
        if shape is None and why.startswith("NotImplementedError"):
            raise ValueError(f"an abstract class: its {forward} raises NotImplementedError")
        if shape is None:
            tried = ", ".join(str(s) for _, s in probe.input_candidates(params_now)[:4])
            raise ValueError(f"its {forward} refused every input shape tried ({tried}, ...): "
                             f"{why}; give the shape from Python: jaxcnn.check.from_module("
                             f"{cls_name}(...), input_shape=(...))")
        slots = _used_by_forward(template, forward, slots, shape, fwd_extra)
    params = [np.asarray(s.get(template)) for s in slots]
    dtypes = [p.dtype for p in params]
    # where each parameter sits in a ``self.params`` list holding the arrays themselves
    # (a backward returning ``dx, [dW, db]`` follows that list's order)
    plist = getattr(template, "params", None)
    list_order = ([next((j for j, p in enumerate(plist) if p is s.get(template)), None)
                   for s in slots] if isinstance(plist, (list, tuple)) else None)
    hidden = [f"{s.shown} {probe.constant(p)}" for s, p in zip(slots, params, strict=True)
              if probe.constant(p) and p.size > 1 or (probe.constant(p) and p.size == 1
                                                       and float(p.reshape(-1)[0]) == 0)]
    if hidden:
        notes.append(f"its constructor sets {', '.join(hidden)}; checked with random values "
                     "instead (a constant parameter hides a transpose or a wrong sign)")
    kind = None if loss else layer_kind(kind_from or (
        forward if forward.endswith("_forward") else cls_name))
    # Samples in columns (W @ x, the deep-learning specialisation's layout): its dW and db
    # carry 1/m and its dx does not, as in its linear_backward; checked as m * dW, m * db.
    per_column = layout == "cols" and bool(slots) and not takes_lr
    if per_column:
        notes.append("samples in columns (W @ x): the deep-learning specialisation's "
                     "convention, dW and db carry 1/m (m = columns) and dx does not; they "
                     "are checked as m * dW, m * db")
    from jaxcnn.check.adapters.module_catalogue import conv_settings

    reference = _reference_for(kind, layout, slots, params, loss,
                               conv_settings(template) if kind == "conv" else (1, 0))
    pool_spec = None
    if reference is None and not slots and not loss and re.search(
            r"pool", forward if forward.endswith("_forward") else cls_name, re.IGNORECASE):
        pool_spec = _max_pool_spec(template, forward, fwd_extra)
        if pool_spec is not None:  # its tie rules and mistakes are named as for CS231n's
            reference, kind = pool_spec.reference, pool_spec.kind
    # the input row is named by the forward's own argument (inputs, x, A_prev)
    own = [p.name for p in positional_params(fwd_method)]
    first = own[0] if own and own[0] not in {s.shown for s in slots} else None
    arg_names = (first or ("y_pred" if loss else "input"), *(s.shown for s in slots))

    def fresh(args):
        o = copy.deepcopy(template)
        for slot, value, dtype in zip(slots, args[1:], dtypes, strict=True):
            slot.set(o, np.array(value, dtype=dtype, copy=True))
        return o

    def layer_forward(args, static):
        o = fresh(args)
        if loss:
            return _loss_value(o, forward, args[0], static[0], fwd_extra)
        return _run_forward(o, forward, np.array(args[0], copy=True), fwd_extra)

    catalogued = None  # a class of a catalogue kind by its name (module_catalogue)
    if reference is None and not loss and not per_column:
        from jaxcnn.check.adapters import module_catalogue

        catalogued = module_catalogue.find(
            kind_from or (forward.removesuffix("_forward") if forward.endswith("_forward")
                          else cls_name), template, slots, params, shape, layer_forward)
        if catalogued is not None:
            reference, kind = catalogued.reference, catalogued.kind
            notes.append(catalogued.note)
    elif loss and reference is None:
        from jaxcnn.check.adapters import module_catalogue

        catalogued = module_catalogue.find_loss(kind_from or cls_name, labels, layer_forward,
                                                len(shape))
        if catalogued is not None:
            reference, kind = catalogued.reference, catalogued.kind
            notes.append(catalogued.note)

    def run_backward(o, x, ct, static, learn_rate=LEARN_RATE, own=False, stale=None):
        """``own``: the user's code gets ``x``, ``ct`` and the target themselves (no
        copies: ``raw``). A gradient written to an attribute while the grads list or dict
        entry an optimizer reads was left as it was is the entry's (stale) value; with a
        dict ``stale``, its ``(entry, attribute)`` labels are kept there by the slot's
        shown name."""
        before = [np.array(s.get(o), dtype=np.float64, copy=True) for s in slots]
        if loss:
            stored = getattr(o, "output", None)
            dvalues = (stored if isinstance(stored, np.ndarray) and stored.shape == x.shape
                       else x if own else np.array(x, copy=True))
            ret = bwd_method_of(o)(*_loss_backward_args(bwd_req, dvalues, static[0], own))
            dx = input_grad(o, ret, backward)
            return (None if dx is None else np.asarray(ct) * np.asarray(dx, np.float64),)
        names_before = {k: v for k, v in vars(o).items() if not float_array(v) or not
                        GRAD_NAME.search(k)}
        held = [s.get(o) for s in slots]  # the arrays themselves, as the optimizer gets them
        positions = [None if list_order is None else list_order[i] for i in range(len(slots))]
        entries = [{label: np.array(v, copy=True) for label, v in container_stores(o, s, at)}
                   for s, at in zip(slots, positions, strict=True)]
        if rec is not None:  # a real step, as in training (an update-before-use shows);
            rec.calls.clear()  # none on the caller's arrays (``raw``: called again)
            rec.lr = 0.0 if own else learn_rate
        ret = bwd_method_of(o)(*_backward_args(bwd_req, takes_lr, x, ct, learn_rate, own))
        dx = input_grad(o, ret, backward)
        grads = []
        returned = _grads_list(ret, list_order)  # dx, [dW, db]
        if returned is None and isinstance(ret, (tuple, list)) and len(ret) == len(slots) + 1:
            returned = list(ret[1:])  # dx, dW, db
        for i, (slot, b, dtype) in enumerate(zip(slots, before, dtypes, strict=True)):
            g = returned[i] if returned is not None else stored_grad(
                o, slot, names_before, i, positions[i])
            lagging = None if returned is not None else stale_container(
                o, slot, entries[i], positions[i])
            if lagging is not None:
                g = lagging[2]
                if stale is not None:
                    stale[slot.shown] = lagging[:2]
            if g is None and rec is not None:  # handed to the optimizer object
                g = rec.grad_for(held[i])
            if g is None and takes_lr:
                g = ((b - np.asarray(slot.get(o), np.float64)) / learn_rate).astype(
                    np.float32 if dtype == np.float32 else np.float64)
            if g is not None and per_column:  # the dialect's 1/m (see from_module)
                g = np.asarray(g, np.float64) * np.shape(x)[1]
            grads.append(g)
        return (dx, *grads)

    def bwd_method_of(o):
        return getattr(o, backward)

    def vjp(args, static):
        o = fresh(args)
        if loss:
            out = _loss_value(o, forward, args[0], static[0], fwd_extra)
        else:
            out = _run_forward(o, forward, np.array(args[0], copy=True), fwd_extra)
        return out, lambda ct: run_backward(copy.deepcopy(o), args[0], ct, static)

    def raw(args, static):
        """The user's object on the caller's arrays (the input, the target, the upstream
        gradient, and its parameters where it keeps them in float64 and updates none),
        one object across calls (``jaxcnn.check.sanity``: arrays written into, a second
        step that answers differently, e.g. gradients accumulated into a buffer never
        reset). Each backward after the first follows a forward of its own on the same
        input, as a training loop's next step does (a cache kept as a stack, pushed by
        the forward and popped by the backward, is right). A ``backward(grad, lr)``
        updates its parameters by design: they are copies, restored before every call."""
        o = copy.deepcopy(template)
        for slot, value, dtype in zip(slots, args[1:], dtypes, strict=True):
            own = not takes_lr and dtype == np.float64 and isinstance(value, np.ndarray)
            slot.set(o, value if own else np.array(value, dtype=dtype, copy=True))
        x = args[0]
        again = (np.array(x, copy=True), copy.deepcopy(static))  # as given, for a next step

        def run_forward_on(x_, static_, own):
            if loss:
                return _loss_value(o, forward, x_, static_[0], fwd_extra, own=own)
            return _run_forward(o, forward, x_, fwd_extra)
        out = run_forward_on(x, static, True)
        calls = []

        def backward(ct):
            if takes_lr:  # each call starts from the parameters the forward saw
                for slot, value, dtype in zip(slots, args[1:], dtypes, strict=True):
                    slot.set(o, np.array(value, dtype=dtype, copy=True))
            x_, static_ = x, static
            if calls:  # the next step: the forward again, on the input as it was given
                x_, static_ = np.array(again[0], copy=True), copy.deepcopy(again[1])
                run_forward_on(x_, static_, False)
            calls.append(1)
            return run_backward(o, x_, ct, static_, own=True)
        return out, backward

    def input_sets(seed):
        if catalogued is not None:
            return catalogued.input_sets(seed)
        if pool_spec is not None:
            return pool_spec.input_sets(seed)
        if reference is not None and kind in ("relu", "sigmoid", "tanh") and not slots:
            from jaxcnn.check.catalogue import spec

            return spec(kind).input_sets(seed)
        sets = []
        for k in range(2):
            r = np.random.default_rng(seed * 1000 + k)
            if loss:
                x = (probe.random_like(r, shape, "probabilities") if len(shape) > 1
                     else r.uniform(0.1, 0.9, shape))  # binary: one probability each
                lab = _relabel(labels, r)
                sets.append(InputSet("random", f"random probabilities {shape}, targets "
                                               f"{_describe_targets(lab)}", (x,), (lab,)))
                continue
            x = probe.random_like(r, shape)
            ps = [probe.random_like(r, p.shape, "param") for p in params]
            what = f"random x {shape}" + (f"; {', '.join(s.shown for s in slots)} random"
                                          if slots else "")
            sets.append(InputSet("random", what, (x, *ps), ()))
        return sets

    recovered = frozenset(s.shown for s in slots) if takes_lr else frozenset()

    def extra(args, static, ct):
        """A backward(grad, lr), or one updating through an optimizer object, whose input
        gradient changes with the learning rate used the updated parameters
        (``update-before-use``), as for the report's ``backprop``."""
        o = fresh(args)
        listed = not loss and any(container_stores(o, s, at) for s, at in zip(
            slots, [None] * len(slots) if list_order is None else list_order, strict=True))
        if not listed and not takes_lr and rec is None:
            return []
        from jaxcnn.check.adapters.blog import SECOND_LEARN_RATE, _differ

        _run_forward(o, forward, np.array(args[0], copy=True), fwd_extra)
        stale = {}
        first = run_backward(copy.deepcopy(o), args[0], ct, static, stale=stale)
        found = [(name, "stale-gradient",
                  f"{entry} still holds the array it held before the backward, which wrote "
                  f"{attr} = ... (a new array): an optimizer reading {entry} steps with the "
                  f"old values; write into the array ({attr}[...] = ...) or store the new "
                  f"one in {entry} too") for name, (entry, attr) in stale.items()]
        if not takes_lr and rec is None:
            return found
        second = run_backward(copy.deepcopy(o), args[0], ct, static, SECOND_LEARN_RATE)
        if _differ(first[0], second[0]):
            return [(arg_names[0], "update-before-use",
                     f"dL/d{arg_names[0]} changes with the learning rate ({LEARN_RATE} vs "
                     f"{SECOND_LEARN_RATE}): it is computed with parameters already updated "
                     "in this step; compute it before the update"), *found]
        return found
    # the first-wrong-step analysis reads the methods' source; not under the 1/m
    # convention (the checked gradients are m x what the backward holds) nor for a
    # backward that updates in place (its gradients are recovered from the update)
    sources = () if per_column or takes_lr else (getattr(type(obj), forward, None),
                                                 getattr(type(obj), backward, None))
    return Layer(name, kind or ("loss" if loss else "custom"), "module", arg_names,
                 layer_forward, vjp, reference, input_sets,
                 optional=frozenset(), recovered=recovered, extra=extra, file=file,
                 notes=tuple(notes), sources=sources if all(sources) else (),
                 raw=raw, static_names=(_target_name(fwd_method),) if loss else ())


def sample_shape(cls, given: dict | None = None) -> tuple | None:
    """One sample's shape, where the constructor requires it (``X_dim``, ``input_shape``:
    ``construct`` gives it one, or ``given`` names it): the input is then a batch of such
    samples."""
    from jaxcnn.check.adapters.module_names import SAMPLE_SHAPE, size_for

    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    for p in params:
        if p.default is p.empty and SAMPLE_SHAPE.fullmatch(p.name):
            value = (given or {}).get(p.name, size_for(p.name, False))
            return tuple(value) if isinstance(value, tuple) else None
    return None


def _grads_list(ret, order: list | None) -> list | None:
    """The parameter gradients of a backward returning ``(dx, [dW, db])``: the list in
    the order of the object's ``params`` list (``order``: each parameter's place in it,
    None where it is not there), else in the parameters' own order; None for another
    return."""
    if not (isinstance(ret, tuple) and len(ret) == 2 and isinstance(ret[1], (list, tuple))
            and ret[1] and (order is None or len(ret[1]) == len(order))):
        return None
    grads = list(ret[1])
    if order is not None and None not in order and sorted(order) == list(range(len(grads))):
        return [grads[j] for j in order]
    return grads


def _layout_of(shape: tuple, params: list) -> str:
    """The layout the parameters give a given input shape (``rows`` for (3, 4) beside a
    (4, 5) weight: an exact oracle may then fit), else "given"."""
    return next((lay for lay, cand in probe.input_candidates(params) if cand == shape
                 and lay != "any"), "given")


def two_inputs(name: str, fwd_method, bwd_method) -> bool:
    """Whether a class taken for a loss by its forward's arguments alone (``forward(x,
    y)``, ``y`` read as a target) is a layer of two inputs instead (the "Deep Learning
    from Scratch" book's ``MulLayer``): its name says no loss, and its backward takes one
    argument that is no target (``backward(dout)``)."""
    from jaxcnn.check.adapters.module_names import LOSS_NAME

    if LOSS_NAME.search(name):
        return False
    req = required_params(bwd_method)
    return len(req) == 1 and not re.search(r"true|target|label|^y$|^t$", req[0].name,
                                           re.IGNORECASE)


def _backward_args(required, takes_lr: bool, x, ct, learn_rate, own: bool = False) -> list:
    """What a module-style backward is called with: ``(dout)``, ``(dout, lr)``, or
    ``(input, dout)`` when its first argument is named like the input (``backward(self,
    x, grad)``); further required arguments by name (``training=False``). Copies of
    ``x`` and ``ct``, or (``own``) the arrays themselves."""
    def give(a):
        return a if own else np.array(a, copy=True)
    if len(required) >= 2 and INPUT_NAME.fullmatch(required[0].name) and not takes_lr:
        return [give(x), give(ct), *[extra_value(p) for p in required[2:]]]
    head = [give(ct)] + ([learn_rate] if takes_lr else [])
    return head + [extra_value(p) for p in required[len(head):]]


CONSTANT = "constant"  # ``agrees``: the forward does not depend on its input there


def agrees(template, forward: str, backward: str, bwd_req, takes_lr: bool, x, fwd_extra,
           rng) -> bool | str | None:
    """Whether the backward's input gradient at ``x`` agrees with central differences of
    the forward along one random direction (relative 1e-4); None when it returns no input
    gradient of ``x``'s shape or raises (nothing to tell); ``CONSTANT`` when the forward
    does not move at all along it (a softmax over an axis of one, on (n, 1): there every
    backward that returns 0 would agree, so the shape tells nothing either)."""
    try:
        with contextlib.redirect_stdout(sys.stderr), np.errstate(all="ignore"):
            o = copy.deepcopy(template)
            out = _run_forward(o, forward, np.array(x, copy=True), fwd_extra)
            ct = probe.random_like(rng, np.shape(out))
            g = getattr(o, backward)(*_backward_args(bwd_req, takes_lr, x, ct, LEARN_RATE))
            if not isinstance(g, np.ndarray) or g.shape != np.shape(x):
                return None
            v = rng.standard_normal(np.shape(x))

            def f(z):
                return float(np.sum(ct * _run_forward(copy.deepcopy(template), forward, z,
                                                      fwd_extra)))
            eps = 1e-6
            fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
            hand = float(np.sum(np.asarray(g, np.float64) * v))
    except Exception:
        return None
    if not (np.isfinite(fd) and np.isfinite(hand)):
        return None
    if fd == 0:
        return CONSTANT
    size = float(np.linalg.norm(g) * np.linalg.norm(v)) + abs(fd)
    return abs(fd - hand) <= 1e-4 * max(size, 1e-12)


def shape_note(shape: tuple, disagrees: list[tuple]) -> str:
    """What to say of a layer checked on ``shape`` after its backward disagreed with its
    forward on the lone shapes ``disagrees`` tried first."""
    others = ", ".join(str(s) for s in disagrees)
    column = " (column vectors)" if len(shape) == 2 and shape[1] == 1 else ""
    return (f"checked on input {shape}{column}: its forward also runs on {others}, where "
            f"its backward disagrees with finite differences of its forward (written for "
            f"{shape}-shaped inputs?); give another shape from Python: "
            "jaxcnn.check.from_module(..., input_shape=(...))")


def _backward_runs(ret) -> float:
    """0.0: for ``probe.runs``, a backward that returned (whatever it returned)."""
    return 0.0


def _run_forward(o, method: str, x, extra) -> np.ndarray:
    with seeded():
        ret = getattr(o, method)(x, *extra)
    return output_of(o, ret, method)


def _loss_value(o, method: str, y_pred, target, extra, own: bool = False) -> np.ndarray:
    """The loss as a scalar: the mean of what the forward returns (per-sample losses, as
    the book's ``Loss.calculate`` averages them), or the scalar it returns. The forward
    gets copies of ``y_pred`` and ``target``, or (``own``) the arrays themselves."""
    with seeded():
        ret = getattr(o, method)(y_pred if own else np.array(y_pred, copy=True),
                                 target if own else _copy(target), *extra)
    if ret is None:
        ret = getattr(o, "loss", None) if isinstance(getattr(o, "loss", None), (float,
                                                                               np.ndarray)) \
            else output_of(o, None, method)
    value = np.asarray(ret, dtype=np.float64)
    return np.asarray(value.mean()) if value.ndim else value


SEQUENCE_LOSS = (2, 3, 4)  # (N, T, V) predictions of a loss over a sequence


def _loss_backward_ok(template, forward: str, backward: str, bwd_req, y_pred, target,
                      extra) -> bool:
    """Whether the loss's backward runs (returning a gradient of the predictions' shape)
    after its forward on ``y_pred`` and ``target``."""
    def run():
        o = copy.deepcopy(template)
        _loss_value(o, forward, y_pred, target, extra)
        stored = getattr(o, "output", None)
        dvalues = stored if isinstance(stored, np.ndarray) and stored.shape == np.shape(
            y_pred) else np.array(y_pred, copy=True)
        g = input_grad(o, getattr(o, backward)(*_loss_backward_args(bwd_req, dvalues,
                                                                    target)), backward)
        if g is None or np.shape(g) != np.shape(y_pred):
            raise ValueError("no gradient of the predictions' shape")
        return g
    return probe.runs(run)[0]


def _binary_labels(template, forward: str, backward: str, bwd_req, extra, rng):
    """(predictions (N,) in (0, 1), targets (N,) in {0, 1}, integers or floats) that the
    loss's forward and backward both take; None if none."""
    n = 2 * probe.BATCH
    y_pred = rng.uniform(0.1, 0.9, n)
    ints = np.array([0, 1, 1, 0, 1, 0])[:n]
    for target in (ints, ints.astype(float)):
        if _loss_backward_ok(template, forward, backward, bwd_req, y_pred, target, extra):
            return y_pred, target
    return None


def _loss_backward_args(required, dvalues, target, own: bool = False) -> list:
    """What a loss's backward is called with: ``(dvalues, y_true)`` (the book's), nothing
    (a course framework's ``backward()`` that reads what its forward stored), the target
    alone, or the upstream gradient of the loss alone (1.0). Copies, or (``own``) the
    arrays themselves."""
    target = target if own else _copy(target)
    if len(required) >= 2:
        return [dvalues if own else np.array(dvalues, copy=True), target,
                *[extra_value(p) for p in required[2:]]]
    if not required:
        return []
    if re.search(r"true|target|label|^y$|^t$", required[0].name, re.IGNORECASE):
        return [target]
    return [np.array(1.0)]


def _target_name(fwd_method) -> str:
    """A loss forward's target argument, by its own name (``y_true``)."""
    own = [p.name for p in positional_params(fwd_method)]
    return own[1] if len(own) >= 2 else "target"


def _copy(v):
    return np.array(v, copy=True) if isinstance(v, np.ndarray) else v


def _labels(obj, method, y_pred, extra, rng):
    """Targets the loss's forward accepts: integer labels (N,), one-hot (N, C), or float
    targets of the predictions' shape (for a sequence's (N, T, V): labels (N, T), one-hot
    (N, T, V), floats); (None, why) when it takes none of them."""
    c = y_pred.shape[-1]
    ints = np.arange(int(np.prod(y_pred.shape[:-1]))) % c
    rng.shuffle(ints)
    ints = ints.reshape(y_pred.shape[:-1])
    one_hot = np.eye(c)[ints]
    floats = rng.standard_normal(y_pred.shape)
    why = ""
    for target in (ints, one_hot, floats):
        ok, why_here = probe.runs(lambda t=target: _loss_value(copy.deepcopy(obj), method,
                                                               y_pred, t, extra))
        if ok:
            return target, ""
        why = why or why_here
    return None, why


def _relabel(template: np.ndarray, rng) -> np.ndarray:
    """New targets of the same form as ``template``."""
    if template.dtype.kind in "iu":
        lab = template.copy()
        rng.shuffle(lab)
        return lab
    if template.ndim == 2 and np.all((template == 0) | (template == 1)):
        return template[rng.permutation(len(template))]
    return rng.standard_normal(template.shape)


def _describe_targets(t: np.ndarray) -> str:
    if t.dtype.kind in "iu":
        return f"integer labels {t.tolist()}"
    if t.ndim == 2 and np.all((t == 0) | (t == 1)):
        return f"one-hot {t.shape}"
    return f"float {t.shape}"


def _used_by_forward(template, method, slots: list[Slot], shape, extra) -> list[Slot]:
    """The slots whose values the forward depends on (a scratch or buffer array is not a
    parameter). A slot whose change makes the forward fail is kept."""
    rng = np.random.default_rng(1)
    x = probe.random_like(rng, shape)
    try:
        base = np.asarray(_run_forward(copy.deepcopy(template), method, x.copy(), extra),
                          np.float64)
    except Exception:
        return slots
    used = []
    for slot in slots:
        o = copy.deepcopy(template)
        value = np.asarray(slot.get(o))
        bump = (1.0 + float(np.max(np.abs(value), initial=0.0))) * rng.standard_normal(
            value.shape)
        slot.set(o, (value + 0.1 * bump).astype(value.dtype))
        try:
            out = np.asarray(_run_forward(o, method, x.copy(), extra), np.float64)
        except Exception:
            used.append(slot)
            continue
        if out.shape != base.shape or not np.array_equal(out, base, equal_nan=True):
            used.append(slot)
    return used


BACKWARD_REFUSED = "its backward raised on every input shape tried"


def make(cls, layer_name: str, fwd: str, bwd: str, file: str | None,
         given: dict | None = None, kind_from: str | None = None) -> Layer:
    """Construct ``cls`` (sizes chosen by name; ``given``: arguments by name, e.g. the
    functions of an ``ActivationLayer``) and adapt its method pair (``kind_from``: see
    ``from_module``). When its backward raises on every shape (a matrix used
    untransposed: ``dvalues @ W`` for a (4, 5) ``W``), it is built again with square
    sizes, where such a backward runs and its mistake can be named on each gradient.
    Raises ValueError (or what the constructor raises) when it cannot be built or run."""
    if recorder.needs_initialize(cls) or callable(getattr(cls, "set_input_shape", None)):
        # initialize(optimizer), set_input_shape(shape): ML-From-Scratch's layers
        return _make_initialized(cls, layer_name, fwd, bwd, file, given, kind_from)
    try:
        return _make(cls, layer_name, fwd, bwd, file, given, kind_from)
    except Exception:
        out_in = _weights_out_in(cls, given)  # Dense(w, b) with w stored (out, in)
        if out_in is None:
            raise
        try:
            return _make(cls, layer_name, fwd, bwd, file, out_in, kind_from)
        except Exception:
            pass
        raise


def _weights_out_in(cls, given: dict | None) -> dict | None:
    """``given`` with a (HIDDEN, FEATURES) weight for a required weight argument of the
    constructor (stored ``(out, in)``, as PyTorch's ``Linear`` keeps it, beside a bias of
    ``out`` entries); None when the constructor takes no weight array."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in params if p.default is p.empty and probe.role(p.name) ==
             "weight" and p.name not in (given or {})]
    if len(names) != 1 or re.search(r"conv", cls.__name__, re.IGNORECASE):
        return None
    rng = np.random.default_rng(0)
    return {**(given or {}), names[0]: rng.standard_normal((probe.HIDDEN, probe.FEATURES))}


def _make(cls, layer_name, fwd, bwd, file, given, kind_from) -> Layer:
    built = construct(cls, given=given)
    if recorder.install(built.obj) is not None:
        built = built._replace(note=_joined(built.note, "its optimizer is a recorder of the "
                                            "gradients handed to it"))
    sample = sample_shape(cls, given)  # Conv(X_dim=(2, 6, 8), ...): input (N, 2, 6, 8)
    try:
        layer = from_module(copy.deepcopy(built.obj), layer_name, file, fwd, bwd,
                            built.note, kind_from=kind_from,
                            input_shape=None if sample is None else (probe.BATCH, *sample))
    except Exception:
        if sample is None:
            raise
        layer = from_module(built.obj, layer_name, file, fwd, bwd, built.note,
                            kind_from=kind_from)
    if BACKWARD_REFUSED not in layer.notes:
        return layer
    try:
        square = construct(cls, square=True, given=given)
        again = from_module(square.obj, layer_name, file, fwd, bwd, square.note,
                            kind_from=kind_from)
    except Exception:
        return layer
    if BACKWARD_REFUSED in again.notes or square.note == built.note:
        return layer
    return again._replace(notes=(*again.notes, "its backward raises with the sizes "
                                 f"{built.note.removeprefix('built as ')}: checked with "
                                 "square sizes, where it runs"))


# One sample's shape given to ``set_input_shape`` before ``initialize(optimizer)``: a
# vector of features, else one (C, H, W) image, else a sequence of 3 steps.
INIT_SHAPES = ((probe.FEATURES,), (2, 6, 8), (3, probe.FEATURES))


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _make_initialized(cls, layer_name, fwd, bwd, file, given, kind_from) -> Layer:
    """A layer given one sample's shape by ``set_input_shape``, or its parameters by
    ``initialize(optimizer)`` (after ``set_input_shape``, when it has one): built for
    each of ``INIT_SHAPES`` in turn, the first its forward and backward run on wins.
    Raises the first shape's error."""
    first_error, refused = None, None
    shaped = callable(getattr(cls, "set_input_shape", None))
    for shape in INIT_SHAPES if shaped else (None,):
        try:
            built = construct(cls, given=given)
            installed = recorder.install(built.obj, shape) is not None
            note = _joined(built.note, f"set_input_shape({shape})" if shaped else "",
                           "its optimizer is a recorder of the gradients handed to it"
                           if installed else "")
            layer = from_module(built.obj, layer_name, file, fwd, bwd, note,
                                input_shape=(probe.BATCH, *shape) if shaped else None,
                                kind_from=kind_from)
        except Exception as exc:
            first_error = first_error or exc
            continue
        if BACKWARD_REFUSED not in layer.notes:
            return layer
        refused = refused or layer  # its backward raised: another shape may suit it
    if refused is not None:
        return refused
    raise first_error


__all__ = ["candidate_slots", "construct", "from_module", "is_loss", "make", "method_pairs",
           "setting_label", "setting_variants"]
