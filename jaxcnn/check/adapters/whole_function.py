"""Whole functions that return the loss and every gradient, their parameters read from
outside the function (module globals, ``self`` attributes).

Two famous dialects:

* **Karpathy's min-char-rnn**: ``lossFun(inputs, targets, hprev) -> (loss, dWxh, dWhh,
  dWhy, dbh, dby, hs[len(inputs) - 1])``. ``inputs`` and ``targets`` are lists of integer
  tokens (one-hot inside), ``hprev`` the ``(H, 1)`` hidden state, and the parameters
  ``Wxh, Whh, Why, bh, by`` are module globals (the gist) or ``self`` attributes (the
  many class rewrites). The parameters are the float arrays the function reads whose
  gradient it returns under the name ``d<name>`` (the names of its ``return`` tuple);
  other returned values (the last hidden state) are not gradients and are not checked.
  ``from_global_loss`` checks each against finite differences of the function's own
  loss (the numeric oracle), on token sequences of ``STEPS`` tokens (or the file's
  ``seq_length`` when the function loops over ``range(seq_length)``), a random ``hprev``
  (so that a gradient from the wrong time step, ``hs[t]`` for ``hs[t-1]``, shows at the
  first step too) and parameters drawn afresh (weights scaled by 1/sqrt(fan-in), biases
  not zero), of the shapes the file gave them, the hidden size made ``SMALL_HIDDEN`` when
  the function never reads it by name. Where the five shapes are a vanilla RNN's and the
  loss its summed cross-entropy (``rnn_gradients`` reproduces it), the classic slips
  (``RNN_SLIPS``) are named through ``offsets``, and ``Whh`` untransposed is placed at
  its line (``Layer.locate``).

  **A backward part that raises**: the backward part starts at the first statement that
  writes a returned gradient (``_backward_start``); when the returned loss is written
  only before it, an exception raised at or after that line is the backward's: the
  forward is the loss the function had computed, read from its frame
  (``_loss_before_backward``), and the check reports an ``error`` row naming the line
  (exit 1). Raised earlier, or with no such split, the function could not be run.

  **A clip inside the function** (``np.clip(dparam, -5, 5, out=dparam)``, against
  exploding gradients) is not part of the gradient, and the gradient before it cannot be
  read. The inputs are chosen so that the clip changes nothing and the function is
  judged exactly (the note names the clip): on ``STEPS`` tokens every true gradient entry
  is at most ``STEPS``; on a longer sequence a vanilla RNN's weights are halved until
  every true gradient entry lies inside 0.8 of the bound. A clip that still changes
  values is its own kind, ``clipped`` (named for a vanilla RNN, whose right gradient is
  known); for another network the note says that a gradient found wrong may be the
  clip's doing.

* **Michael Nielsen's "Neural Networks and Deep Learning"**: a ``Network`` class with
  ``self.biases`` and ``self.weights`` (lists of arrays, ``b`` ``(n, 1)`` and ``W``
  ``(n_out, n_in)``, samples in columns), ``feedforward(a)`` and ``backprop(x, y) ->
  (nabla_b, nabla_w)``. The loss is the one the network's cost defines: the cost object
  it holds (``network2.py``'s ``self.cost``, whose ``fn(a, y)`` is the loss and
  ``delta(z, a, y)`` the output error), else the quadratic ``0.5 * ||a - y||^2`` that
  ``network.py``'s ``cost_derivative`` (``a - y``) differentiates. ``from_nielsen``
  checks ``nabla_b[l]`` and ``nabla_w[l]`` against finite differences of that loss of
  ``feedforward(x)`` with respect to ``biases[l]`` and ``weights[l]``, on a network of
  sizes ``NIELSEN_SIZES`` (``SHALLOW_SIZES`` for a class that builds one hidden layer
  whatever it is given, the note saying so), one column ``x`` and a one-hot ``y``; a
  network given a cost class is checked once per cost class of its file (``QuadraticCost``,
  ``CrossEntropyCost``), one row set each. For a sigmoid network the output error's
  slips are named (``_nielsen_offsets``). Only ``feedforward`` and the cost must run
  for the network to be checked: a ``backprop`` that raises is an ``error`` row.

* **A function of a parameters dict** (CS231n 2015's ``two_layer_net(X, model, y=None,
  reg=0.0) -> (loss, grads)`` with ``init_two_layer_model(input_size, hidden_size,
  output_size)`` beside it): ``from_function_model`` checks it as ``model_loss`` checks
  a class whose ``loss(X, y)`` returns ``(loss, grads)``.

Errors: ``ValueError`` (with the reason, for the finder's error row) when the function
(before its backward part) or the network's ``feedforward`` cannot be run on the inputs
built; ``NotALayer`` when what looked like one
returns no gradients.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import inspect
import linecache
import re
import sys
import textwrap
from collections.abc import Callable

import numpy as np

from jaxcnn.check.layer import Alternate, InputSet, Layer
from jaxcnn.check.refusals import NotALayer

STEPS = 4  # tokens per checked sequence: every true gradient entry is at most this large
# Three hidden layers, every width distinct: the backward loop's index ``l`` then takes
# every role (the last hidden layer, a middle one, the first, which reads ``x``), and a
# wrong index or a missing transpose cannot meet a layer of the same shape. With one
# hidden layer ``l`` is only 2, where ``weights[-1]`` is ``weights[-l + 1]`` and ``x`` is
# ``activations[-l - 1]``: such a slip would pass.
NIELSEN_SIZES = [4, 5, 6, 7, 3]
SHALLOW_SIZES = [4, 5, 3]  # for a class that builds one hidden layer whatever it is given
TOKENS = re.compile(r"^(inputs?|x|xs|X|seq|sequence|input_ids|ix|ixs)$")
LABELS = re.compile(r"^(targets?|y|ys|Y|labels?|t)$")
STATE = re.compile(r"^(h|c)(_?prev|_?0|_?init|s)?$|^hidden|^prev_?h|^hprev|^cprev",
                   re.IGNORECASE)
VOCAB = ("vocab_size", "vocab", "V", "n_chars", "num_chars", "char_size", "input_size",
         "n_vocab", "vocabulary_size")


def _tree(fn) -> ast.FunctionDef | None:
    """The function's own AST node, or None when its source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def returned_names(fn) -> list[str | None]:
    """The names of the function's last ``return a, b, c`` (None where an entry is not a
    plain name: ``hs[len(inputs) - 1]``); [] when it returns no tuple or has no source."""
    node = _tree(fn)
    if node is None:
        return []
    returns = [n for n in ast.walk(node) if isinstance(n, ast.Return) and isinstance(
        n.value, ast.Tuple)]
    if not returns:
        return []
    last = max(returns, key=lambda n: n.lineno)
    return [e.id if isinstance(e, ast.Name) else None for e in last.value.elts]


def _self_reads(fn) -> set[str]:
    """Attribute names ``fn`` reads from its first argument (``self.Wxh``)."""
    node = _tree(fn)
    if node is None or not node.args.args:
        return set()
    me = node.args.args[0].arg
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == me}


def _float_array(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.ndim in (1, 2)


def gradient_positions(fn, holder) -> dict[str, int]:
    """``{parameter name: position in the returned tuple}``: the ``d<name>`` entries of
    the function's return whose ``<name>`` is a float array of ``holder`` (a dict: the
    module's globals, an instance's attributes) that the function reads."""
    names = returned_names(fn)
    if len(names) < 2:
        return {}
    reads = set(fn.__code__.co_names) | _self_reads(fn)
    out = {}
    for i, n in enumerate(names):
        if i == 0 or n is None or not n.startswith("d") or len(n) < 2:
            continue
        param = n[1:].lstrip("_")
        if param in reads and _float_array(holder.get(param)):
            out[param] = i
    return out


def is_global_loss(fn) -> bool:
    """Whether ``fn`` (a plain function, or a method taking ``self`` first) looks like
    min-char-rnn's ``lossFun(inputs, targets, hprev)``: token and target arguments, a
    hidden state argument after them, and a return tuple with at least two ``d<name>``
    entries after the loss."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    if params and params[0] == "self":
        params = params[1:]
    if len(params) < 3 or not TOKENS.match(params[0]) or not LABELS.match(params[1]) \
            or not any(STATE.search(p) for p in params[2:]):
        return False  # (inputs, targets, hprev): a loss of data without a state is not one
    names = returned_names(fn)
    return sum(1 for n in names[1:] if n and re.fullmatch(r"d_?[A-Za-z]\w*", n)) >= 2


def _clip_bound(fn) -> float | None:
    """The smallest bound of a ``np.clip(g, lo, hi, ...)`` with literal bounds in ``fn``
    (its absolute value), or None when it clips nothing."""
    node = _tree(fn)
    if node is None:
        return None
    bounds = []
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and (getattr(n.func, "attr", None) == "clip" or getattr(
                n.func, "id", None) == "clip") and len(n.args) >= 3:
            for b in n.args[1:3]:
                with contextlib.suppress(ValueError, TypeError):
                    bounds.append(abs(float(ast.literal_eval(b))))
    return min(bounds) if bounds else None


SEQUENCE = ("seq_length", "seq_len", "sequence_length", "seqlength", "T", "n_steps")


def _sequence_length(fn, holder: dict) -> int:
    """The tokens per sequence: the int ``seq_length`` (or kin) the function reads from
    its globals or ``self`` (a loop over ``range(seq_length)`` needs that many), else
    ``STEPS``."""
    reads = set(fn.__code__.co_names) | _self_reads(fn)
    for name in SEQUENCE:
        v = holder.get(name)
        if name in reads and isinstance(v, (int, np.integer)) and not isinstance(
                v, bool) and v > 0:
            return int(v)
    return STEPS


def _vocab(holder: dict, params: dict) -> int:
    """The token count: an int ``vocab_size`` (or kin) of the holder, else the columns
    of the first matrix parameter (``Wxh`` ``(H, V)``)."""
    for name in VOCAB:
        v = holder.get(name)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0:
            return int(v)
    first = next(v for v in params.values() if v.ndim == 2)
    return int(first.shape[1])


def _hidden(params: dict) -> int:
    """The hidden size: the side of the first square parameter (``Whh``), else the rows
    of the first matrix."""
    for v in params.values():
        if v.ndim == 2 and v.shape[0] == v.shape[1]:
            return int(v.shape[0])
    return int(next(v for v in params.values() if v.ndim == 2).shape[0])


SMALL_HIDDEN = 5  # the hidden size checked when the file's may change
HIDDEN_NAMES = ("hidden_size", "H", "hidden", "n_hidden", "hidden_dim", "num_hidden",
                "hidden_units")


def _smaller(fn, shapes: dict, hidden: int, vocab: int) -> tuple[dict, int]:
    """(the parameters' shapes with the hidden size made ``SMALL_HIDDEN``, that size) when
    the function never reads the hidden size by name (it comes from ``hprev`` and the
    parameters: finite differences of a (100, 100) ``Whh`` cost 10,000 entries' worth),
    else ``(shapes, hidden)`` unchanged. Also unchanged when ``hidden`` equals ``vocab``
    or is small already (an axis of that size is then ambiguous or harmless)."""
    reads = set(fn.__code__.co_names) | _self_reads(fn)
    small = SMALL_HIDDEN if vocab != SMALL_HIDDEN else SMALL_HIDDEN + 1
    if hidden <= small or hidden == vocab or reads & set(HIDDEN_NAMES):
        return shapes, hidden
    return {k: tuple(small if d == hidden else d for d in s) for k, s in shapes.items()}, small


def _draw(rng, shape: tuple) -> np.ndarray:
    """A weight scaled by 1/sqrt(fan-in), or a small bias (a column or a vector)."""
    if len(shape) == 2 and min(shape) > 1:
        return rng.standard_normal(shape) / np.sqrt(shape[1])
    return 0.1 * rng.standard_normal(shape)


def from_global_loss(fn: Callable, name: str, file: str | None = None,
                     owner=None) -> Layer:
    """A ``Layer`` for min-char-rnn's ``lossFun(inputs, targets, hprev)`` (see the module
    docstring). ``fn``: the module-level function, or the class's function when
    ``owner`` is the class (its parameters are then ``self`` attributes, set on an
    instance made without its constructor: ``owner.__new__(owner)``). Differentiable
    arguments: the parameters, in the order of the return tuple (float64 arrays of the
    file's shapes); static: the tokens ``(STEPS,)`` ints, the targets, the hidden states.
    ValueError when it does not run on them; NotALayer when it returns no gradient of a
    parameter it reads."""
    guess = {} if owner is None else _attribute_guess(owner, fn)  # built once
    if owner is None:
        holder = fn.__globals__
        template = holder
    else:
        template = {**{k: v for c in reversed(owner.__mro__[:-1])
                       for k, v in vars(c).items()}, **guess}
        holder = None
    positions = gradient_positions(fn, template)
    if not positions:
        raise NotALayer("it returns no d<name> for a float array it reads (min-char-rnn's "
                        "dWxh for Wxh)")
    keys = list(positions)
    shapes = {k: np.shape(template[k]) for k in keys}
    vocab = _vocab(template, {k: template[k] for k in keys})
    hidden = _hidden({k: template[k] for k in keys})
    file_shapes = dict(shapes)
    shapes, hidden = _smaller(fn, shapes, hidden, vocab)
    params = list(inspect.signature(fn).parameters)[1 if owner is not None else 0:]
    states = [p for p in params[2:] if STATE.search(p)]
    # train(inputs, targets, vocab_size, hprev): the vocabulary size as an argument
    sizes = {p: vocab for p in params[2:] if p in VOCAB}
    if len(params) - 2 != len(states) + len(sizes):
        raise ValueError(f"its arguments after the tokens and targets ({', '.join(params[2:])}) "
                         "are not hidden states (hprev, cprev) or the vocabulary size")
    clip = _clip_bound(fn)
    steps = _sequence_length(fn, template)
    roles = rnn_roles({k: shapes[k] for k in keys}, vocab, hidden)

    def call(args, static, own=False):
        tokens, labels, *hs = static
        values = dict(zip(keys, args, strict=True))
        if not own:
            values = {k: np.array(v, copy=True) for k, v in values.items()}
            hs = [np.array(h, copy=True) for h in hs]
            tokens, labels = list(tokens), list(labels)
        given = iter(hs)
        hs = [sizes[p] if p in sizes else next(given) for p in params[2:]]
        with contextlib.redirect_stdout(sys.stderr):
            if owner is None:
                saved = {k: holder[k] for k in keys}
                holder.update(values)
                try:
                    return fn(tokens, labels, *hs)
                finally:
                    holder.update(saved)
            inst = owner.__new__(owner)
            for k, v in guess.items():
                setattr(inst, k, copy.copy(v))
            for k, v in values.items():
                setattr(inst, k, v)
            return fn(inst, tokens, labels, *hs)

    def loss_of(result) -> np.ndarray:
        value = result[0] if isinstance(result, (tuple, list)) else result
        return np.asarray(value, np.float64).reshape(())

    def input_sets(seed):
        sets = []
        for k in range(2):
            r = np.random.default_rng([seed, 31, k])
            args = tuple(_draw(r, shapes[key]) for key in keys)
            tokens = [int(t) for t in r.integers(0, vocab, steps)]
            labels = [int(t) for t in r.integers(0, vocab, steps)]
            hs = tuple(0.5 * np.tanh(r.standard_normal((hidden, 1))) for _ in states)
            args, shrunk = _inside_clip(args, (tokens, labels, *hs))
            what = (f"tokens {tokens}, targets {labels}, "
                    + ", ".join(f"{s} {h.shape} random" for s, h in zip(states, hs,
                                                                         strict=True))
                    + "; " + ", ".join(f"{key} {shapes[key]}" for key in keys)
                    + (f", weights scaled by {shrunk:g} (so that the clip changes nothing)"
                       if shrunk != 1 else ""))
            sets.append(InputSet("random", what, args, (tokens, labels, *hs)))
        return sets

    def _inside_clip(args, static) -> tuple[tuple, float]:
        """(args, the factor their matrices were scaled by): a vanilla RNN's weights
        halved until every true gradient entry (``rnn_gradients``) is inside 0.8 of the
        clip's bound, so that a clip in the function changes nothing (at most 6 times;
        only where the function's loss is the vanilla RNN's)."""
        if clip is None or roles is None or len(states) != 1:
            return args, 1.0
        factor = 1.0
        for _ in range(6):
            moved = tuple(a * factor if a.ndim == 2 and min(a.shape) > 1 else a
                          for a in args)
            p = {role: moved[keys.index(k)] for role, k in roles.items()}
            try:
                loss, right = rnn_gradients(p, static[0], static[1], static[2])
                if not np.isclose(loss, float(forward(moved, static)), rtol=1e-9):
                    return args, 1.0  # not the vanilla RNN's loss
            except Exception:
                return args, 1.0
            if max(float(np.max(np.abs(g))) for g in right.values()) < 0.8 * clip:
                return moved, factor
            factor /= 2
        return args, 1.0

    split = _backward_start(fn, [returned_names(fn)[i] for i in positions.values()])

    def forward(args, static):
        try:
            return loss_of(call(args, static))
        except Exception as exc:
            value = _loss_before_backward(fn, split, exc)
            if value is None:
                raise
            return value  # its backward part raised: the loss it had computed

    def vjp(args, static, own=False):
        result = call(args, static, own)  # raises where its backward part raises: an error

        def back(ct):
            if not isinstance(result, (tuple, list)):
                raise TypeError(f"{name} returned a {type(result).__name__}, not (loss, "
                                "gradients, ...)")
            return tuple(None if positions[k] >= len(result) or result[positions[k]] is None
                         else float(ct) * np.asarray(result[positions[k]], np.float64)
                         for k in keys)
        return loss_of(result), back

    s0 = input_sets(0)[0]
    try:
        result = call(s0.args, s0.static)
    except Exception as exc:
        if _loss_before_backward(fn, split, exc) is None:  # else its backward's error: a row
            text = " ".join(str(exc).split())[:300]
            raise ValueError(f"it raised on {s0.name} before its loss was computed: "
                             f"{type(exc).__name__}{': ' * bool(text)}{text}") from None
        result = (np.zeros(()),)
    if not (isinstance(result, (tuple, list)) and np.size(result[0]) == 1):
        raise ValueError("it returns no (loss, gradients, ...) tuple with a scalar loss first")
    offsets = None if roles is None else _rnn_offsets(roles, keys, forward, len(states),
                                                      clip)
    where = "module globals" if owner is None else f"attributes of {owner.__name__}"
    notes = [f"a whole function: the loss and the gradients of {', '.join(keys)} "
             f"({where}), each d<name> checked against finite differences of its own "
             f"loss on {steps} tokens of {vocab} (one-hot inside), with a random "
             f"{', '.join(states) or 'state'}",
             "parameters drawn afresh in the file's shapes ("
             + ", ".join(f"{k} {shapes[k]}" for k in keys) + ")"
             + (f", the hidden size made {hidden} (the file's is "
                f"{file_shapes[keys[0]][0] if shapes != file_shapes else hidden}; the "
                "function never reads it by name)" if shapes != file_shapes else "") + "; "
             "the other returned values (the last hidden state) are not gradients"]
    if clip is not None:
        vanilla = roles is not None and len(states) == 1
        notes.append(
            f"it clips its gradients (at {clip:g}): a clip is not part of the gradient, "
            + (f"and on these inputs (true gradient entries at most {steps}) it changes "
               "nothing, so the gradients are judged exactly" if clip >= steps else
               "and the weights are scaled down where needed so that every true gradient "
               "entry lies inside it (a gradient it still changes is `clipped`)" if vanilla
               else f"and on these inputs (true gradient entries up to {steps}) it may "
               "change values: a gradient found wrong may be the clip's doing"))
    skipped = getattr(inspect.getmodule(fn), "__jaxcnn_skipped_loops__", ())
    if skipped:
        notes.append(f"its file's top-level `while` loop{'s' * (len(skipped) > 1)} "
                     f"({'; '.join(map(str, skipped))}: the training script) was not run")
    return Layer(name, "whole", "whole", tuple(keys), forward, vjp, None, input_sets,
                 file=file, notes=tuple(notes), offsets=offsets,
                 static_names=("inputs", "targets", *states),
                 raw=lambda args, static: vjp(args, static, own=True),
                 sources=(fn, fn), locate=None if roles is None else _rnn_locator(
                     fn, roles["Whh"], split))


def _backward_start(fn, gradients: list[str]) -> tuple[str, int] | None:
    """(the loss's name, the file line where the function's backward part starts): the
    first statement that writes one of the returned ``gradients`` (min-char-rnn's
    ``dWxh, dWhh, dWhy = np.zeros_like(Wxh), ...``), when the returned loss is a name
    written only before that line (the forward's ``loss += ...``); else None (a function
    whose loss and gradients are not computed in two parts)."""
    node = _tree(fn)
    names = returned_names(fn)
    if node is None or not names or names[0] is None:
        return None
    loss = names[0]

    def written(stmt) -> set[str]:
        targets = (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                   if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) else [])
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}

    writes = [(n.lineno, written(n)) for n in ast.walk(node) if isinstance(n, ast.stmt)]
    starts = [line for line, w in writes if w & set(gradients)]
    if not starts:
        return None
    start = min(starts)
    if any(loss in w and line >= start for line, w in writes):
        return None
    return loss, start + fn.__code__.co_firstlineno - 1  # (the source's first line)


def _loss_before_backward(fn, split, exc: BaseException):
    """The loss ``fn`` had computed when ``exc`` was raised in its backward part (at or
    after ``split``'s line, with the loss a finite scalar local of its frame), as a float64
    scalar; None when it was raised before (the forward's error) or ``split`` is None."""
    if split is None:
        return None
    loss, start = split
    frame = line = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == fn.__code__.co_name and code.co_filename == \
                fn.__code__.co_filename:
            frame, line = tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next
    if frame is None or line < start:
        return None
    try:
        value = np.asarray(frame.f_locals.get(loss), np.float64)
    except (TypeError, ValueError):
        return None
    if value.size != 1 or not np.isfinite(value).all():
        return None
    return value.reshape(())


RNN_ROLES = ("Wxh", "Whh", "Why", "bh", "by")


def rnn_roles(shapes: dict, vocab: int, hidden: int) -> dict | None:
    """``{role: parameter name}`` of a vanilla RNN's five parameters, found by shape
    (``Wxh`` ``(H, V)``, ``Whh`` ``(H, H)``, ``Why`` ``(V, H)``, ``bh`` ``(H, 1)``, ``by``
    ``(V, 1)``); None when the shapes are not exactly those, or ``H == V`` (ambiguous)."""
    if hidden == vocab or len(shapes) != 5:
        return None
    want = {"Wxh": (hidden, vocab), "Whh": (hidden, hidden), "Why": (vocab, hidden),
            "bh": (hidden, 1), "by": (vocab, 1)}
    roles = {}
    for role, shape in want.items():
        match = [k for k, s in shapes.items() if tuple(s) == shape]
        if len(match) != 1:
            return None
        roles[role] = match[0]
    return roles


def rnn_gradients(p: dict, tokens, labels, h0, slip: str | None = None):
    """(the summed cross-entropy, ``{role: gradient}``) of min-char-rnn's vanilla RNN,
    float64, with one of its classic slips when ``slip`` names it: ``"1 - h"`` (tanh' as
    1 - h), ``"no tanh'"``, ``"recurrence dropped"`` (dhnext not added), ``"h[t]"`` (Whh's
    gradient from the step's own hidden state), ``"no one-hot"`` (dy = p),
    ``"last state first"`` (the initial state read as the last step's, a list's
    ``hs[-1]`` overwritten), ``"first step only"`` / ``"last step only"`` (``=`` where
    ``+=`` belongs: each gradient that step's term alone), ``"Whh untransposed"``
    (``dhnext = Whh @ dhraw``)."""
    vocab = p["Wxh"].shape[1]
    hs, xs, ps, loss = {-1: np.asarray(h0, np.float64)}, {}, {}, 0.0
    for t, tok in enumerate(tokens):
        xs[t] = np.zeros((vocab, 1))
        xs[t][tok] = 1.0
        hs[t] = np.tanh(p["Wxh"] @ xs[t] + p["Whh"] @ hs[t - 1] + p["bh"])
        z = p["Why"] @ hs[t] + p["by"]
        e = np.exp(z - z.max())
        ps[t] = e / e.sum()
        loss -= float(np.log(ps[t][labels[t], 0]))
    g = {r: np.zeros_like(p[r]) for r in RNN_ROLES}
    dnext = np.zeros_like(hs[0])
    last = len(tokens) - 1
    kept = {"first step only": 0, "last step only": last}.get(slip)
    for t in reversed(range(len(tokens))):
        dy = ps[t].copy()
        if slip != "no one-hot":
            dy[labels[t]] -= 1
        dh = p["Why"].T @ dy + (0 if slip == "recurrence dropped" else dnext)
        draw = {"1 - h": (1 - hs[t]) * dh, "no tanh'": dh}.get(slip, (1 - hs[t] ** 2) * dh)
        prev = hs[t] if slip == "h[t]" else hs[last] if (slip == "last state first"
                                                          and t == 0) else hs[t - 1]
        terms = {"Why": dy @ hs[t].T, "by": dy, "bh": draw, "Wxh": draw @ xs[t].T,
                 "Whh": draw @ prev.T}
        for role, term in terms.items():
            if kept is None:
                g[role] += term
            elif t == kept:  # `=` where `+=` belongs: one step's term is what remains
                g[role] = term
        dnext = (p["Whh"] if slip == "Whh untransposed" else p["Whh"].T) @ draw
    return loss, g


RNN_SLIPS = (
    ("1 - h", "wrong-derivative", "tanh's derivative written 1 - h where 1 - h ** 2 "
     "belongs (dhraw = (1 - hs[t]) * dh)"),
    ("no tanh'", "wrong-derivative", "the tanh's derivative left out: dhraw = dh where "
     "(1 - hs[t] ** 2) * dh belongs"),
    ("recurrence dropped", "missing-accumulation", "the gradient from the next time step "
     "is not added: dh = Why.T @ dy where dh = Why.T @ dy + dhnext belongs"),
    ("h[t]", "wrong-derivative", "the hidden state of the wrong time step: dWhh takes "
     "hs[t] where hs[t - 1] (the state the step read) belongs"),
    ("no one-hot", "wrong-derivative", "the softmax's gradient without the one-hot: dy = p "
     "where dy = p - onehot(target) belongs (dy[targets[t]] -= 1 missing)"),
    ("last state first", "wrong-derivative", "at the first step dWhh reads the LAST hidden "
     "state where the initial one (hprev) belongs: hs kept in a list whose hs[-1] "
     "(hprev) the last step overwrites"),
    ("first step only", "missing-accumulation", "`=` where `+=` belongs: the gradient, a "
     "sum over the time steps, keeps one step's term (the first step's, the last one a "
     "backward loop runs)"),
    ("last step only", "missing-accumulation", "`=` where `+=` belongs: the gradient, a "
     "sum over the time steps, keeps one step's term (the last step's, the last one a "
     "forward loop runs)"),
    ("Whh untransposed", "wrong-derivative", "the gradient sent to the previous step is "
     "Whh @ dhraw where Whh.T @ dhraw belongs (dhnext = np.dot(Whh.T, dhraw)): the "
     "recurrence's matrix not transposed"),
)


def _rnn_offsets(roles: dict, keys: list, forward, n_states: int, clip: float | None):
    """``offsets`` naming min-char-rnn's classic slips (``RNN_SLIPS``), for a function
    whose loss is the vanilla RNN's (checked per input set: its value must equal
    ``rnn_gradients``'); with one hidden state only. ``clip``: the bound of a clip in
    the function: a gradient equal to the right one clipped there, where the clip
    changes it, is ``clipped``."""
    if n_states != 1:
        return None

    def offsets(args, static, ct):
        tokens, labels, h0 = static
        p = {role: np.asarray(args[keys.index(k)], np.float64) for role, k in roles.items()}
        loss, right = rnn_gradients(p, tokens, labels, h0)
        if not np.isclose(loss, float(forward(args, static)), rtol=1e-9, atol=1e-12):
            return []  # not the vanilla RNN's loss: no named slips
        out = []
        by_key = {k: role for role, k in roles.items()}
        if clip is not None and any(np.any(np.abs(g) > clip) for g in right.values()):
            out.append(Alternate(
                "clipped", tuple(float(ct) * (right[by_key[k]] - np.clip(
                    right[by_key[k]], -clip, clip)) for k in keys), False, "clipped",
                f"the right gradient clipped at {clip:g}: the clip in the function changed "
                "it (a clip is not part of the gradient; the gradient before it is right)"))
        for slip, kind, why in RNN_SLIPS:
            wrong = rnn_gradients(p, tokens, labels, h0, slip)[1]
            diff = {role: right[role] - wrong[role] for role in RNN_ROLES}
            if not any(np.any(d) for d in diff.values()):
                continue
            out.append(Alternate(slip, tuple(float(ct) * diff[by_key[k]] for k in keys),
                                 False, kind, why))
        return out
    return offsets


def _untransposed_products(fn, matrix: str, after: int) -> list[tuple[int, str]]:
    """(file line, target) of the statements at or after line ``after`` whose right-hand
    side multiplies by ``matrix`` (a global or ``self`` attribute of that name) untransposed
    on the left: ``np.dot(Whh, dhraw)``, ``Whh @ dhraw``."""
    node = _tree(fn)
    if node is None:
        return []
    first = fn.__code__.co_firstlineno - 1

    def bare(e) -> bool:
        return (isinstance(e, ast.Name) and e.id == matrix) or (
            isinstance(e, ast.Attribute) and e.attr == matrix and isinstance(e.value, ast.Name))

    out = []
    for stmt in ast.walk(node):
        if not isinstance(stmt, (ast.Assign, ast.AugAssign)) or stmt.lineno + first < after:
            continue
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
        for e in ast.walk(stmt.value):
            left = (e.left if isinstance(e, ast.BinOp) and isinstance(e.op, ast.MatMult)
                    else e.args[0] if isinstance(e, ast.Call) and e.args and getattr(
                        e.func, "attr", getattr(e.func, "id", None)) in ("dot", "matmul")
                    else None)
            if left is not None and bare(left):
                out.append((stmt.lineno + first, ast.unparse(target)))
                break
    return out


def _rnn_locator(fn, whh: str, split):
    """``Layer.locate`` of a vanilla RNN's function: for the named slip "Whh untransposed",
    the backward part's one line that multiplies by the recurrence's matrix untransposed
    (``dhnext = np.dot(Whh, dhraw)``); None otherwise (the line-by-line analysis)."""
    from jaxcnn.check.steps import FirstWrong

    def locate(checks):
        wrong = next((c for c in checks if c.kind != "correct"), None)
        if wrong is None or wrong.rule != "Whh untransposed" or split is None:
            return None
        found = _untransposed_products(fn, whh, split[1])
        if len(found) != 1:
            return None
        line, target = found[0]
        code = linecache.getline(fn.__code__.co_filename, line).strip()
        return FirstWrong(target, line, fn.__code__.co_filename, code, wrong.kind,
                          wrong.scale, f"dL/dh of the step before (through {whh}.T)", (),
                          note=f"{whh} where {whh}.T belongs: the gradient sent to the step "
                          "before goes back through the recurrence's transpose (named by "
                          "the slip, the only untransposed product by "
                          f"{whh} in the backward part)")
    return locate


def _attribute_guess(owner, fn) -> dict:
    """Values for the ``self`` attributes ``fn`` reads, for an instance made without its
    constructor: an instance built with no arguments when its constructor allows it
    (its arrays), else nothing."""
    inst = None
    for kwargs in ({}, _constructor_sizes(owner)):
        try:
            with contextlib.redirect_stdout(sys.stderr):
                inst = owner(**kwargs)
            break
        except Exception:
            continue
    if inst is None:
        return {}
    reads = _self_reads(fn)
    return {k: v for k, v in vars(inst).items() if k in reads}


CONSTRUCTOR_SIZES = ((r"vocab\w*|n_?chars|input_?size|char_?size", 7),
                     (r"hidden\w*|n_?hidden|h_?size", 5),
                     (r"learning_?rate|lr|alpha|eta", 0.1),
                     (r"seq\w*|n_?steps|steps|length", STEPS))


def _constructor_sizes(owner) -> dict:
    """Small sizes for the constructor's required arguments, by name (``vocab_size`` 7,
    ``hidden_size`` 5, ``learning_rate`` 0.1, ``seq_length`` ``STEPS``)."""
    try:
        ps = inspect.signature(owner).parameters.values()
    except (TypeError, ValueError):
        return {}
    out = {}
    for p in ps:
        if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = next((v for pat, v in CONSTRUCTOR_SIZES if re.fullmatch(pat, p.name,
                                                                         re.IGNORECASE)), None)
        if value is not None:
            out[p.name] = value
    return out


# -- Michael Nielsen's Network ----------------------------------------------------------


def is_nielsen(cls) -> bool:
    """A class with ``feedforward(a)`` and ``backprop(x, y)`` (Nielsen's ``Network``)."""
    ff, bp = getattr(cls, "feedforward", None), getattr(cls, "backprop", None)
    if not (inspect.isfunction(ff) and inspect.isfunction(bp)):
        return False
    try:
        return len(inspect.signature(bp).parameters) == 3
    except (TypeError, ValueError):
        return False


def cost_classes(module) -> list[tuple[str, type]]:
    """``(name, class)`` of the module's cost classes: ``fn(a, y)`` and ``delta(z, a,
    y)`` (network2.py's ``QuadraticCost``, ``CrossEntropyCost``)."""
    out = []
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and callable(getattr(obj, "fn", None)) and callable(
                getattr(obj, "delta", None)) and obj.__module__ == module.__name__:
            out.append((name, obj))
    return out


def nielsen_variants(cls, module) -> list[dict]:
    """The constructions a Nielsen network is checked in: ``{}`` (its default), or one
    ``{"cost": C}`` per cost class of its module when its constructor takes a ``cost``."""
    try:
        takes = "cost" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes = False
    costs = cost_classes(module) if takes else []
    return [{"cost": c} for _, c in costs] or [{}]


def _nielsen_loss(net, a, y) -> float:
    """The loss the network's cost defines: ``self.cost.fn(a, y)``, else 0.5 ||a - y||^2."""
    cost = getattr(net, "cost", None)
    if cost is not None and callable(getattr(cost, "fn", None)):
        return float(cost.fn(a, y))
    return float(0.5 * np.sum((np.asarray(a, np.float64) - y) ** 2))


def from_nielsen(cls, name: str, file: str | None = None, overrides: dict | None = None
                 ) -> Layer:
    """A ``Layer`` for Nielsen's ``Network`` (see the module docstring), built as
    ``cls(NIELSEN_SIZES, **overrides)`` (else ``SHALLOW_SIZES``). Differentiable
    arguments: ``biases[0..]`` then ``weights[0..]``; static: ``x`` ``(4, 1)`` and ``y``
    one-hot ``(3, 1)``. ValueError when it cannot be built, or its feedforward run."""
    overrides = overrides or {}
    sizes = failed = None
    for tried in (NIELSEN_SIZES, SHALLOW_SIZES):  # a class built for one depth: the other
        with contextlib.redirect_stdout(sys.stderr):
            try:
                net0 = cls(list(tried), **overrides)
            except Exception as exc:
                failed = failed or ValueError(f"{cls.__name__}({tried}) raised: "
                                              f"{type(exc).__name__}: {exc}")
                continue
        layers = len(tried) - 1
        if len(getattr(net0, "biases", ())) == layers == len(getattr(net0, "weights", ())):
            sizes = tried
            break
        failed = failed or NotALayer(
            "a feedforward/backprop class without Nielsen's self.biases and self.weights "
            "lists (one array per layer): not checked")
    if sizes is None:
        raise failed from None
    shapes = [np.shape(b) for b in net0.biases] + [np.shape(w) for w in net0.weights]
    keys = [f"biases[{i}]" for i in range(layers)] + [f"weights[{i}]" for i in range(layers)]
    order = returned_names(cls.backprop)
    w_first = len(order) == 2 and order[0] is not None and "w" in order[0].lower()

    def build(args, own=False):
        net = copy.copy(net0)
        vals = list(args) if own else [np.array(a, copy=True) for a in args]
        net.biases, net.weights = vals[:layers], vals[layers:]
        return net

    def forward(args, static):
        x, y = static
        net = build(args)
        with contextlib.redirect_stdout(sys.stderr):
            a = net.feedforward(np.array(x, copy=True))
            return np.asarray(_nielsen_loss(net, a, np.array(y, copy=True)), np.float64)

    def vjp(args, static, own=False):
        x, y = static
        net = build(args, own)
        with contextlib.redirect_stdout(sys.stderr):
            result = net.backprop(x if own else np.array(x, copy=True),
                                  y if own else np.array(y, copy=True))
        out = forward(args, static)

        def back(ct):
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise TypeError("backprop returned no (nabla_b, nabla_w) pair")
            nb, nw = (result[1], result[0]) if w_first else result
            grads = [*list(nb)[:layers], *list(nw)[:layers]]
            return tuple(float(ct) * np.asarray(g, np.float64) for g in grads)
        return out, back

    def input_sets(seed):
        sets = []
        for k in range(2):
            r = np.random.default_rng([seed, 37, k])
            args = tuple(_draw(r, s) if len(s) == 2 and min(s) > 1 else
                         0.5 * r.standard_normal(s) for s in shapes)
            x = r.uniform(0, 1, (sizes[0], 1))
            y = np.zeros((sizes[-1], 1))
            y[int(r.integers(0, sizes[-1]))] = 1.0
            sets.append(InputSet("random", f"random x {x.shape} in [0, 1], one-hot y "
                                 f"{y.shape} (class {int(np.argmax(y))})", args, (x, y)))
        return sets

    s0 = input_sets(0)[0]
    try:  # the forward alone: a backprop that raises where feedforward runs is checked,
        forward(s0.args, s0.static)  # an error row naming its line (exit 1)
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise ValueError(f"its feedforward or cost raised on {s0.name}: "
                         f"{type(exc).__name__}{': ' * bool(text)}{text}") from None
    offsets = _nielsen_offsets(net0, forward, layers)
    cost = overrides.get("cost") or type(getattr(net0, "cost", None))
    loss = (f"its cost {cost.__name__}.fn(a, y)" if getattr(net0, "cost", None) is not None
            else "the quadratic cost 0.5 * ||a - y||^2 (the one cost_derivative's a - y "
                 "differentiates)")
    note = (f"a whole network: built as {cls.__name__}({sizes}"
            + "".join(f", {k}={getattr(v, '__name__', v)}" for k, v in overrides.items())
            + f"); backprop(x, y)'s nabla_b and nabla_w checked against finite differences "
            f"of {loss} of feedforward(x)"
            + (f" (it builds no {cls.__name__}({NIELSEN_SIZES}) with one list entry per "
               "layer: checked with one hidden layer only, where a slip in the loop's "
               "layer index may not show)" if sizes is SHALLOW_SIZES else ""))
    return Layer(name, "whole", "whole", tuple(keys), forward, vjp, None, input_sets,
                 file=file, notes=(note,), static_names=("x", "y"), offsets=offsets,
                 raw=lambda args, static: vjp(args, static, own=True))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _backprop(biases, weights, x, delta_out) -> list:
    """The gradients ``[*nabla_b, *nabla_w]`` of a sigmoid network (Nielsen's layout)
    whose output error is ``delta_out(z, a)`` ``(n_L, 1)``."""
    acts, zs = [x], []
    for b, w in zip(biases, weights, strict=True):
        zs.append(w @ acts[-1] + b)
        acts.append(_sigmoid(zs[-1]))
    n = len(biases)
    gb, gw = [None] * n, [None] * n
    d = delta_out(zs[-1], acts[-1])
    gb[-1], gw[-1] = d, d @ acts[-2].T
    for back in range(2, n + 1):
        d = (weights[-back + 1].T @ d) * _sigmoid(zs[-back]) * (1 - _sigmoid(zs[-back]))
        gb[-back], gw[-back] = d, d @ acts[-back - 1].T
    return gb + gw


def _nielsen_offsets(net0, forward, layers: int):
    """``offsets`` naming the classic slips of the output error, for a network whose
    loss is a sigmoid network's (its forward reproduces ``_backprop``'s): sigmoid' left
    out (``delta = dC/da``), taken at the activation (``sigmoid'(a)``), and the quadratic
    cost's delta ``(a - y) * sigmoid'(z)`` kept for another cost. None otherwise."""
    cost = getattr(net0, "cost", None)
    fn = cost.fn if cost is not None and callable(getattr(cost, "fn", None)) else None

    def dcda(a, y):
        if fn is None:
            return a - y
        g = np.zeros_like(a)
        for i in range(a.shape[0]):
            e = np.zeros_like(a)
            e[i] = 1e-6
            g[i] = (float(fn(a + e, y)) - float(fn(a - e, y))) / 2e-6
        return g

    def offsets(args, static, ct):
        x, y = (np.asarray(v, np.float64) for v in static)
        biases, weights = list(args[:layers]), list(args[layers:])
        a = x
        for b, w in zip(biases, weights, strict=True):
            a = _sigmoid(w @ a + b)
        want = float(np.asarray(forward(args, static)))
        mine = float(fn(a, y)) if fn is not None else float(0.5 * np.sum((a - y) ** 2))
        if not np.isclose(want, mine, rtol=1e-9, atol=1e-12):
            return []  # not a sigmoid network with this loss: no named slips

        def sp(v):
            return _sigmoid(v) * (1 - _sigmoid(v))
        right = _backprop(biases, weights, x, lambda z, o: dcda(o, y) * sp(z))
        slips = [("sigmoid' left out of the output error",
                  lambda z, o: dcda(o, y),
                  "the output error delta is dC/da without sigmoid'(z) (the cross-entropy "
                  "cost's delta a - y used for the quadratic cost)"),
                 ("sigmoid' at the activation",
                  lambda z, o: dcda(o, y) * sp(o),
                  "sigmoid'(a) where sigmoid'(z) belongs: the derivative taken at the "
                  "activation instead of the weighted input z")]
        if fn is not None:
            slips.append(("the quadratic cost's delta",
                          lambda z, o: (o - y) * sp(z),
                          "the output error is the quadratic cost's (a - y) * sigmoid'(z), "
                          "not this cost's delta (for the cross-entropy: a - y)"))
        out = []
        for name, delta, why in slips:
            wrong = _backprop(biases, weights, x, delta)
            if all(np.allclose(r, w) for r, w in zip(right, wrong, strict=True)):
                continue  # the same as the right one for this cost
            out.append(Alternate(name, tuple(float(ct) * (r - w) for r, w in zip(
                right, wrong, strict=True)), False, "wrong-derivative", why))
        return out
    return offsets


# -- A function of a parameters dict: CS231n 2015's two_layer_net(X, model, y, reg) ------

MODEL_ARG = re.compile(r"^(model|params|parameters|weights|net|theta)$")


def is_function_model(fn) -> bool:
    """``f(X, model, y=None, reg=0.0)`` returning ``loss, grads`` (CS231n 2015's
    ``two_layer_net``, ``two_layer_convnet``): data first, a parameters dict second,
    labels third, and a ``return`` of two names."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    if len(names) < 3 or not re.match(r"^(X|x|inputs?|data)$", names[0]) or not \
            MODEL_ARG.match(names[1]) or not LABELS.match(names[2]):
        return False
    returned = returned_names(fn)
    return len(returned) == 2 and all(returned)


def init_for(fn, functions: dict):
    """The ``init_*`` function of ``functions`` (name -> function) that builds ``fn``'s
    parameters dict: the one whose name shares the longest start with ``fn``'s after
    ``init_`` (``init_two_layer_model`` for ``two_layer_net``), or the only one; None."""
    inits = {n: f for n, f in functions.items() if n.lower().startswith("init")}
    if len(inits) == 1:
        return next(iter(inits.values()))

    def shared(n):
        a, b = n.lower().removeprefix("init").lstrip("_"), fn.__name__.lower()
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        return k
    best = max(inits, key=shared, default=None)
    return inits[best] if best is not None and shared(best) >= 3 else None


def from_function_model(fn, init, name: str, file: str | None = None) -> Layer:
    """A ``Layer`` for ``fn(X, model, y=None, reg=0.0) -> (loss, grads)`` with ``model``
    built by ``init(sizes...)``: checked as ``adapters.model_loss`` checks a class whose
    ``loss(X, y, reg)`` returns ``(loss, grads)`` (a stand-in class holds ``init``'s dict
    as ``self.params``; sizes by ``init``'s argument names), its first wrong step read
    from ``fn`` itself. ValueError as ``model_loss.from_model``."""
    from jaxcnn.check.adapters import model_loss

    names = list(inspect.signature(fn).parameters)
    takes_reg = "reg" in names

    def __init__(self, *args, **kwargs):
        self.params = init(*args, **kwargs)

    def loss(self, X, y=None, reg=0.0):  # noqa: N803 (the dialect's name)
        kwargs = {"reg": reg} if takes_reg else {}
        return fn(X, self.params, y, **kwargs)

    stand_in = type(name, (), {"__init__": __init__, "loss": loss,
                               "__signature__": inspect.signature(init)})
    layer = model_loss.from_model(stand_in, name, file)
    shown = f"{init.__name__}(" if callable(init) else ""
    notes = tuple(n.replace(f"built as {name}(", f"its parameters built as {shown}")
                  .replace("self.params", f"the {names[1]} dict")
                  for n in layer.notes)
    return layer._replace(sources=(fn, fn), notes=notes, style="model")


def nielsen_name(name: str, overrides: dict) -> str:
    """The row name of one construction: ``Network(cost=CrossEntropyCost)``."""
    if not overrides:
        return name
    return f"{name}(" + ", ".join(f"{k}={getattr(v, '__name__', v)}"
                                  for k, v in overrides.items()) + ")"


__all__ = ["from_function_model", "from_global_loss", "from_nielsen", "gradient_positions",
           "init_for", "is_function_model", "is_global_loss", "is_nielsen", "nielsen_name",
           "nielsen_variants", "returned_names"]
