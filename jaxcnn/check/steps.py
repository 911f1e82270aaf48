"""Below the layer: the first wrong step (line) of a hand-written backward.

A hand-derived backward is a sequence of steps (the staged batch norm's ``dxhat``,
``divar``, ``dxmu1``, ``dsqrtvar``, ...). When a layer's gradient is wrong, this module
finds the earliest step whose value is wrong while everything it was computed from was
right, the way Karpathy's makemore exercise compares every intermediate with PyTorch's
``retain_grad()``, but automatically:

1. **Record** the backward's intermediate arrays: the user's backward function is
   re-compiled from its source with a call after every assignment (``v = ...``,
   ``v += ...``, ``v[i] = ...``, ``self.dW = ...``) and at every ``return``, which records
   the value and its line. Nothing else changes: the same code runs, on the same inputs.
2. **True values.** The forward is re-compiled the same way with a *tap* on every
   assigned intermediate, every argument, every ``self.param`` it reads, and every use of
   a local on an assignment's right-hand side. A tap returns its value unchanged, except
   while one tap is being perturbed: then the cotangent of that intermediate (the
   gradient of the scalar ``<cotangent, out>`` with respect to it) is the central
   difference of the user's own forward with respect to the perturbation (kink-aware,
   ``jaxcnn.check.numeric``). A tap on a *use* gives the contribution of one path only
   (``dxmu1``, the part of dL/dxmu that flows through ``xhat = xmu * ivar``). This needs
   no reference and no JAX: the user's forward is the definition of its own intermediates.
3. **Pair** the backward's values with true quantities: by name (``dX``, ``d_X``,
   ``d_L_d_X``, ``dL_dX``, ``grad_X``, ``X_grad`` with ``X`` a forward name, an argument
   or a parameter; ``dX1`` as one path's contribution; an abbreviation such as ``t`` for
   ``totals`` when it is the only forward name of that shape it abbreviates), and for
   quantities the backward recomputes (``xhat``, ``std``) against the forward's value.
   A value that is neither named for nor equal to a true quantity is not judged.
4. **Report** the first wrong one, in the order the backward ran, with its kind
   (``jaxcnn.check.classify``'s vocabulary: ``scaled``, ``sign-flipped``,
   ``transposed``, ...), what it should have been (``dL/dsqrtvar``), and the paired steps
   before it that were right. A variable built up in place (``dW[:, j] += X[i]`` in a
   loop, ``dW /= N``, ``dW += 2 * reg * W``) holds partial values until its last write:
   those are never judged against its final value; when the final value is wrong, each
   write is judged by its contribution to it, the other writes taken as right (a
   ``sign-flipped`` regularization line; a line run in a loop by the sum of what all its
   runs added; a line without which the value is right adds a term that does not
   belong), and when none explains the error (a term left out) its last write is named,
   ``last_write`` set, the note saying what is wrong.

A whole model's ``loss(X, y) -> (loss, grads)`` is one function for both (its
parameters are true quantities through ``arguments``, perturbed where the loss reads
them); an entry of a dict of gradients (``grads["W1"] = ...``) is a variable of its own,
``grads['W1']``, paired with the parameter it is keyed for. A variable reassigned in a
loop (``dout = dout @ W.T``, layer after layer) holds its last pass's value and is not
judged, except where it is returned wrong and the values of all its passes sum to the
right gradient: ``dW = term`` where ``dW += term`` belongs, ``missing-accumulation`` at
that line; nor is a forward value whose perturbation leaves the output unchanged (returned
beside the value that was used: ``h, scores = self.forward(X)``).

Budgets are counted in forward evaluations, never in seconds, so the result is the same
at any machine load. Only Python backward passes whose source can be read are analysed.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import itertools
import linecache
import re
import textwrap
import types
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxcnn.check import classify as cls
from jaxcnn.check import numeric
from jaxcnn.check.compare import rel_error, scale

MAX_ENTRIES = 256  # entries of one intermediate differenced (a sample beyond)
MAX_EVALUATIONS = 6000  # forward evaluations per layer for all true cotangents
TOL = 1e-5  # relative, against max |true| (central differences, step 1e-6, float64)
VALUE_TOL = 1e-8  # a forward value the backward recomputes
# a factor that is a sample count n, relative: a loss with log(p + 1e-7) moves a sum's
# factor n by about 1e-5 against the true gradient of that loss
FACTOR_TOL = 1e-4
_PREFIX = "__jaxcnn_steps_"  # + tap/record + a number: the globals the re-compiled code calls


class FirstWrong(NamedTuple):
    """The first wrong step of a backward (JSON: ``first_wrong_intermediate``).

    name: the variable assigned on that line (``dsqrtvar``); line: its line number in
    ``file`` (a notebook cell's file name, ``"nb.ipynb, cell 7"``, for a notebook: the
    line of that cell); code: the line's text; kind / scale: the error's kind in ``KINDS``'
    vocabulary (``scale`` for ``scaled``); expected: what it should equal
    (``dL/dsqrtvar``); right_before: the paired steps before it that were right, in the
    order they ran; unchecked_inputs: names the wrong line reads that could not be
    paired with a true quantity (the error may enter through them); under: the ``if``
    line it runs under, when it runs under one; note: one sentence; last_write: the
    line is the last write of a variable built up in place (``dW += ...``, ``dW /= N``)
    whose final value is wrong while no single write of it could be blamed (a term
    missing): the note says what is wrong after it; window: for a wrong line that
    writes or reads a slice (a kind of ``INDEX_KINDS``), ``(line, code, forward)`` of
    the lines that compute its indices (``vert_start = h``), ``forward`` the forward's
    own different assignment of that name (``vert_start = h * stride``) or "".
    """

    name: str
    line: int
    file: str | None
    code: str
    kind: str
    scale: float | None
    expected: str
    right_before: tuple
    unchecked_inputs: tuple = ()
    under: str | None = None
    note: str = ""
    last_write: bool = False
    window: tuple = ()

    def to_json(self) -> dict:
        """The dict of ``first_wrong_intermediate``: for a notebook, ``file`` is the
        notebook and ``cell`` the cell's number (``line`` a line of that cell); else
        ``cell`` is None."""
        from jaxcnn.check.cells import split_filename

        file, cell = split_filename(self.file)
        return {"name": self.name, "line": self.line, "cell": cell, "file": file,
                "code": self.code,
                "kind": self.kind, "scale": self.scale, "expected": self.expected,
                "right_before": list(self.right_before),
                "unchecked_inputs": list(self.unchecked_inputs), "under": self.under,
                "note": self.note, "last_write": self.last_write,
                "window": [{"line": line, "code": code, "forward": other or None}
                           for line, code, other in self.window]}

    def text(self, home: str | None = None) -> str:
        """One line for the report, e.g. "first wrong step: line 29, `dsqrtvar = ...`:
        sign-flipped against dL/dsqrtvar (everything before it is right: dxhat, divar)"
        ("cell 7, line 29" in a notebook). ``home``: the file the layer is reported
        under; a line in another file is named with its file ("mylayers.py, line 9")."""
        kind = self.kind + (f" x{self.scale:.4g}" if self.kind == "scaled" and self.scale
                            is not None else "")
        from jaxcnn.check.cells import line_text

        where = f"{line_text(self.file, self.line, home)}, `{self.code}`"
        if self.under:
            where += f" (under `{self.under}`)"
        before = (f"everything before it is right: {', '.join(self.right_before)}"
                  if self.right_before else "the first step that could be checked")
        if self.last_write:
            text = (f"first wrong step: {where}: {self.name} is wrong after its last write "
                    f"({kind} against {self.expected}): {self.note} ({before})")
        else:
            text = f"first wrong step: {where}: {kind} against {self.expected}"
            if self.kind == "unclassified" and self.note:  # the note is the explanation
                text += f": {self.note}"
            text += f" ({before})"
        if self.unchecked_inputs:
            text += (f"; it reads {', '.join(self.unchecked_inputs)}, which could not be "
                     "checked: the error may enter there")
        if self.window:
            text += ("; the window it indexes comes from " + ", ".join(
                f"{line_text(self.file, line, home)} `{code}`" + (f" ({other})" if other
                                                                   else "")
                for line, code, other in self.window) + ": look there first")
        return text


# ------------------------------------------------------------------ re-compiling user code

def _function(obj) -> types.FunctionType | None:
    """The plain function behind ``obj`` (a function, bound method, staticmethod)."""
    obj = getattr(obj, "__func__", obj)
    return obj if isinstance(obj, types.FunctionType) else None


def _names_in(target) -> list[tuple[str, str]]:
    """(name, how) for each variable an assignment target binds or modifies."""
    if isinstance(target, ast.Name):
        return [(target.id, "def")]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _names_in(t)]
    if isinstance(target, ast.Starred):
        return _names_in(target.value)
    if isinstance(target, ast.Subscript):
        base = target.value
        while isinstance(base, ast.Subscript):
            base = base.value
        if isinstance(base, ast.Name):
            return [(base.id, "mod")]
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and \
                base.value.id == "self":
            return [("self." + base.attr, "mod")]
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and \
            target.value.id == "self":
        return [("self." + target.attr, "def")]
    return []


def _load(name: str, node: ast.AST) -> ast.expr:
    if name.startswith("self."):
        expr = ast.Attribute(ast.Name("self", ast.Load()), name[5:], ast.Load())
    else:
        expr = ast.Name(name, ast.Load())
    return ast.copy_location(expr, node)


def _store(name: str, node: ast.AST) -> ast.expr:
    if name.startswith("self."):
        expr = ast.Attribute(ast.Name("self", ast.Load()), name[5:], ast.Store())
    else:
        expr = ast.Name(name, ast.Store())
    return ast.copy_location(expr, node)


class _Instrument(ast.NodeTransformer):
    """After every assignment: ``v = TAP(v, key)`` and ``RECORD(name, line, how, v)``;
    on every right-hand side: each local ``u`` read becomes ``TAP(u, ("use", u, line))``,
    each ``self.p`` read becomes ``TAP(self.p, ("attr", p, 0))``; at ``return e``:
    ``return RECORD("return", line, "return", e)``."""

    def __init__(self, locals_: set[str], offset: int, tap: str, record: str,
                 params: set[str]):
        self.params = params
        self.tap, self.record = tap, record
        self.locals = locals_
        self.offset = offset  # added to the parsed source's line numbers: the file's

    def _tap_uses(self, expr: ast.expr, line: int) -> ast.expr:
        outer = self
        line += self.offset

        class Uses(ast.NodeTransformer):
            def visit_Name(self, node):
                if isinstance(node.ctx, ast.Load) and node.id in outer.locals:
                    return ast.copy_location(ast.Call(
                        ast.Name(outer.tap, ast.Load()),
                        [node, ast.Constant(("use", node.id, line))], []), node)
                return node

            def visit_Attribute(self, node):
                if (isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Name)
                        and node.value.id == "self"):
                    return ast.copy_location(ast.Call(
                        ast.Name(outer.tap, ast.Load()),
                        [node, ast.Constant(("attr", node.attr, 0))], []), node)
                return self.generic_visit(node)

            def visit_Lambda(self, node):  # its own scope
                return node

        return Uses().visit(expr)

    def _after(self, node, targets) -> list[ast.stmt]:
        line = node.lineno + self.offset
        out = []
        kind = "param" if getattr(node, "jaxcnn_param", False) else "def"
        for name, how in (n for t in targets for n in _names_in(t)):
            if how == "def" and not name.startswith("self."):
                out.append(ast.copy_location(ast.Assign(
                    [_store(name, node)],
                    ast.Call(ast.Name(self.tap, ast.Load()),
                             [_load(name, node), ast.Constant((kind, name, line))], [])),
                    node))
            out.append(ast.copy_location(ast.Expr(ast.Call(
                ast.Name(self.record, ast.Load()),
                [ast.Constant(name), ast.Constant(line), ast.Constant(how),
                 _load(name, node)], [])), node))
        return out

    def visit_Assign(self, node):
        # ``W1 = parameters["W1"]``: a parameter read from an argument, not computed
        node.jaxcnn_param = _is_load(node.value, self.params)
        node.value = self._tap_uses(node.value, node.lineno)
        return [node, *self._after(node, node.targets)]

    def visit_AnnAssign(self, node):
        if node.value is None:
            return node
        node.value = self._tap_uses(node.value, node.lineno)
        return [node, *self._after(node, [node.target])]

    def visit_AugAssign(self, node):
        node.value = self._tap_uses(node.value, node.lineno)
        after = self._after(node, [node.target])
        # ``v += e`` on a name is a new state of v (a sum built term by term); on an entry
        # (``grads["W1"] += e``) it is one when v is a dict of arrays (``_State.record``)
        for stmt in after:
            if isinstance(stmt, ast.Expr) and stmt.value.args[2].value == "def":
                stmt.value.args[2] = ast.Constant("aug")
            elif isinstance(stmt, ast.Expr) and stmt.value.args[2].value == "mod":
                stmt.value.args[2] = ast.Constant("augmod")
        return [node, *after]

    def visit_Expr(self, node):
        """``np.add.at(dW, idx, v)`` / ``np.subtract.at(...)``: an in-place add into the
        variable ``dW``, recorded as a fill of it."""
        name = _ufunc_at_target(node.value)
        if name is None:
            return node
        return [node, ast.copy_location(ast.Expr(ast.Call(
            ast.Name(self.record, ast.Load()),
            [ast.Constant(name), ast.Constant(node.lineno + self.offset),
             ast.Constant("mod"), ast.Name(name, ast.Load())], [])), node)]

    def visit_Return(self, node):
        if node.value is None:
            return node
        node.value = self._tap_uses(node.value, node.lineno)  # an output's own path
        node.value = ast.copy_location(ast.Call(
            ast.Name(self.record, ast.Load()),
            [ast.Constant("return"), ast.Constant(node.lineno + self.offset),
             ast.Constant("return"),
             node.value], []), node)
        return node

    def visit_FunctionDef(self, node):  # nested functions are left as they are
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        return node


def _ufunc_at_target(call) -> str | None:
    """``x`` for a call ``<...>.add.at(x, ...)`` or ``<...>.subtract.at(x, ...)`` on a
    plain name, else None."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr == "at" and isinstance(call.func.value, ast.Attribute)
            and call.func.value.attr in ("add", "subtract") and call.args
            and isinstance(call.args[0], ast.Name)):
        return None
    return call.args[0].id


def _is_load(value, params: set[str]) -> bool:
    """Whether ``value`` only reads arguments (``parameters["W1"]``, ``p.W``, a tuple of
    such): the quantity is a parameter of the layer, not computed."""
    if value is None:
        return False
    if isinstance(value, (ast.Tuple, ast.List)):
        return bool(value.elts) and all(_is_load(v, params) for v in value.elts)
    while isinstance(value, (ast.Subscript, ast.Attribute)):
        value = value.value
    return isinstance(value, ast.Name) and value.id in params


def _bound_locals(fn_node: ast.FunctionDef) -> set[str]:
    names = {a.arg for a in (*fn_node.args.posonlyargs, *fn_node.args.args,
                             *fn_node.args.kwonlyargs)}
    for node in ast.walk(fn_node):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _instrumented_code(fn: types.FunctionType, tap: str, record: str) -> types.CodeType:
    """``fn``'s code, re-compiled from its source with taps and records (same lines, same
    file). ValueError when the source cannot be read or compiled."""
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as exc:
        raise ValueError(f"no source for {fn.__qualname__}: {exc}") from None
    source = textwrap.dedent("".join(lines))
    tree = ast.parse(source)
    node = tree.body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != \
            fn.__code__.co_name:
        raise ValueError(f"the source of {fn.__qualname__} is not a plain def")
    node.decorator_list = []
    params = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
    first_arg = params[0] if params else None
    taps = [ast.Assign([ast.Name(p, ast.Store())],
                       ast.Call(ast.Name(tap, ast.Load()),
                                [ast.Name(p, ast.Load()),
                                 ast.Constant(("arg", p, node.lineno + first - 1))], []))
            for p in params if not (p == first_arg and p in ("self", "cls"))]
    node = _Instrument(_bound_locals(node), first - 1, tap, record,
                       set(params)).generic_visit(node)
    node.body = [*taps, *node.body]
    freevars = fn.__code__.co_freevars
    if freevars:  # compile inside a function that binds them, so that they stay free
        outer = ast.FunctionDef("__jaxcnn_outer__", ast.arguments(
            [], [ast.arg(v) for v in freevars], None, [], [], None, []),
            [node, ast.Return(ast.Name(node.name, ast.Load()))], [], None, None, [])
        tree.body = [outer]
    else:
        tree.body = [node]
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, first - 1)
    code = compile(tree, fn.__code__.co_filename, "exec")
    stack = [code]
    while stack:
        c = stack.pop()
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                if const.co_name == fn.__code__.co_name and const.co_freevars == freevars:
                    return const
                stack.append(const)
    raise ValueError(f"could not re-compile {fn.__qualname__}")


def _is_float_array(value) -> bool:
    """A float NumPy array or scalar, or a concrete JAX array (a custom_vjp's fwd and bwd
    run eagerly under ``jax.vjp``; a tracer is not a value)."""
    if isinstance(value, (float, np.floating)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind == "f"
    if type(value).__module__.startswith("jax") and hasattr(value, "dtype"):
        try:
            return np.dtype(value.dtype).kind == "f" and np.asarray(value) is not None
        except Exception:  # a tracer
            return False
    return False


class _State:
    """What the taps and records see: the tap being perturbed, and what was recorded."""

    def __init__(self):
        self.active = None  # the key being perturbed
        self.replacement = None  # its value while perturbed
        self.recording = False
        self.hits: dict = {}
        self.values: dict = {}  # key -> value, on the unperturbed forward
        # (name, line, how) -> [order, value, changed]: the last execution's order and
        # value, and the entries any execution of that line changed
        self.events: dict = {}
        self.last: dict = {}  # name -> its last recorded value
        self.dicts: dict = {}  # name -> {key: value} of a dict of arrays, as last recorded
        self.entry_lines: dict = {}  # (line, key) -> the line of that entry of a dict display
        self.runs: dict = {}  # (name, line, how) -> how many times it ran
        # (name, line, how) -> what that line's writes added to the variable, summed over
        # every time it ran (``dW[:, j] += X[i]`` in a loop: its share of the final dW)
        self.added: dict = {}
        # (name, line, "def") -> the sum of the values a plain assignment took over every
        # time it ran (``dW = term`` in a loop where ``dW += term`` belongs: the sum is
        # what it should have kept)
        self.summed: dict = {}
        self.order = 0

    def tap(self, value, key):
        if self.recording:
            self.hits[key] = self.hits.get(key, 0) + 1
            if key not in self.values and _is_float_array(value):
                self.values[key] = np.array(value, dtype=np.float64, copy=True)
        if self.active is not None and key == self.active:
            if isinstance(value, float):
                return self.replacement.reshape(()).item()
            if isinstance(value, np.floating):
                return type(value)(self.replacement.reshape(()).item())
            return self.replacement.copy()  # a NumPy or JAX array
        return value

    def record(self, name, line, how, value):
        if not self.recording:
            return value
        self.order += 1
        items = [(name, value, "mod" if how == "augmod" else how, line)]
        if how == "return":
            if isinstance(value, (tuple, list)):
                items = [(f"return[{k}]", v, how, line) for k, v in enumerate(value)]
            elif isinstance(value, dict):
                items = [(str(k), v, how, line) for k, v in value.items()]
        elif isinstance(value, dict):
            items = self._dict_items(name, how, value, line)
        for n, v, how, line in items:
            if not _is_float_array(v):
                continue
            v = np.array(v, dtype=np.float64, copy=True)
            key = (n, line, how)
            before = self.last.get(n)
            if how in ("mod", "aug") and before is not None and before.shape == v.shape:
                self.added[key] = self.added.get(key, 0.0) + (v - before)
            if how == "def":
                total = self.summed.get(key)
                self.summed[key] = v.copy() if total is None or total.shape != v.shape \
                    else total + v
            if how == "mod" and before is not None and before.shape == v.shape:
                changed = v != before
                if key in self.events and self.events[key][2].shape == changed.shape:
                    changed |= self.events[key][2]
            else:
                changed = np.ones(v.shape, bool)
            self.events[key] = [self.order, v, changed]
            self.runs[key] = self.runs.get(key, 0) + 1
            self.last[n] = v
        return value

    def _dict_items(self, name, how, value: dict, line: int) -> list:
        """The entries of a dict of arrays that this write set (``grads = {"W2": ...}``,
        ``grads["W1"] = ...``, ``grads[f"W{i}"] += ...``), each as a variable of its own,
        ``grads['W1']``: a definition, or an in-place add (``+=`` on an existing entry)."""
        before = {} if how == "def" else self.dicts.get(name, {})
        items, now = [], {}
        for k, v in value.items():
            if not _is_float_array(v):
                continue
            v = np.array(v, dtype=np.float64, copy=True)
            now[k] = v
            old = before.get(k)
            if old is None or old.shape != v.shape or not np.array_equal(old, v):
                key = "".join(map(str, k)) if isinstance(k, tuple) else k  # ("W", 1): W1
                items.append((f"{name}[{key!r}]", v,
                              "aug" if how == "augmod" and old is not None else "def",
                              self.entry_lines.get((line, k), line)))
        self.dicts[name] = now
        return items


@contextlib.contextmanager
def _instrumented(functions, state: _State):
    """Swap each function's code for its instrumented version, with the tap and record
    in its globals, for the duration of the block."""
    saved = []
    try:
        for fn in functions:
            if any(fn is f for f, _, _ in saved):
                continue
            tag = f"{id(state)}_{len(saved)}__"
            tap, record = _PREFIX + "tap_" + tag, _PREFIX + "record_" + tag
            code = _instrumented_code(fn, tap, record)
            g = fn.__globals__
            saved.append((fn, fn.__code__, (tap, record)))
            g[tap], g[record] = state.tap, state.record
            fn.__code__ = code
        yield
    finally:
        for fn, code, names in reversed(saved):
            fn.__code__ = code
            for k in names:
                fn.__globals__.pop(k, None)


# ------------------------------------------------------------------ pairing

_PREFIXES = ("d_L_d_", "dL_d_", "dL_d", "dLd", "d_loss_d_", "dloss_d", "grad_", "d_", "d")
_SUFFIXES = ("_grad", "_gradient", "grad")


def _gradient_of(name: str) -> list[str]:
    """The forward names a backward variable may be the gradient of, most specific first:
    ``dxhat`` -> ``xhat``; ``d_L_d_t`` -> ``t``; ``W_grad`` -> ``W``; ``self.dweights`` ->
    ``weights``. A Jacobian such as ``d_out_d_t`` (not of the loss) is none."""
    bare = name[5:] if name.startswith("self.") else name
    entry = re.fullmatch(r"(\w+)\[(['\"])(\w+)\2\]", bare)
    if entry:  # grads['W1'], grads['dW1']: the entry of a dict of gradients
        container, key = entry.group(1), entry.group(3)
        if "grad" not in container.lower() and container.lower() not in (
                "dparams", "d_params", "derivatives", "derivs", "dweights"):
            return []  # a config dict (dropout_param['p']) is no gradient
        return [o for o in dict.fromkeys([*_gradient_of(key), key]) if o]
    if re.fullmatch(r"d_(?!L_|loss_)[A-Za-z0-9]+_d_\w+", bare):
        return []
    out = []
    for p in _PREFIXES:
        if bare.startswith(p) and len(bare) > len(p):
            out.append(bare[len(p):].lstrip("_"))
    for s in _SUFFIXES:
        if bare.endswith(s) and len(bare) > len(s):
            out.append(bare[:-len(s)].rstrip("_"))
    return [o for o in dict.fromkeys(out) if o]


class _Truth:
    """The true quantities of one forward run: values, and cotangents on demand."""

    def __init__(self, run: Callable[[], float], state: _State, budget: int,
                 rng: np.random.Generator, judges: dict, params: list,
                 run_output: Callable[[], object]):
        self.run_output = run_output
        self.same_function = False  # the forward and the backward are one function
        # line -> the names of a loss's ``return loss, dWxh, dWhh, ...`` (None where an
        # element is no plain name): min-char-rnn's gradients returned one by one
        self.returned: dict[int, list] = {}
        self.claimed: set[str] = set()
        self.activations: dict[str, str] = {}  # forward name -> "sigmoid" / "tanh"
        self.judges = judges
        self.params = params  # the forward's argument names, in order (self excluded)
        self.run = run
        self.state = state
        self.budget = budget
        self.rng = rng
        self.cache: dict = {}
        self.externals: dict = {}  # key -> (value) -> the scalar, for ``set_arguments``

    def set_arguments(self, arguments: dict, run_with: Callable) -> None:
        """The layer's own arguments as true quantities (``("param", name, 0)``), in place
        of any tap of the same name: ``arguments`` {name: float64 array}, ``run_with(name,
        value) -> float``, the scalar with that argument replaced. For a whole model, whose
        parameters its loss reads in other methods (``self.forward(X)``), out of the
        taps' reach."""
        for name, value in arguments.items():
            for key in [k for k in self.state.values if k[1] == name]:
                del self.state.values[key]
            key = ("param", name, 0)
            self.state.values[key] = np.array(value, np.float64, copy=True)
            self.state.hits[key] = 1
            self.externals[key] = functools.partial(run_with, name)

    def usable(self, key) -> bool:
        kind = key[0]
        return key in self.state.values and (kind == "attr" or self.state.hits.get(key) == 1)

    def forward_names(self) -> dict[str, list]:
        """name -> its keys (args, defs, parameters), in line order."""
        out: dict[str, list] = {}
        # a name assigned in a loop (h = relu(h @ W), layer after layer) holds another
        # quantity each pass: no pass of it is the one a gradient named for it means
        looped = {key[1] for key in self.state.values
                  if key[0] == "def" and self.state.hits.get(key, 0) > 1}
        # an attribute the forward assigns in a loop (self.h, a sequence layer's state)
        looped |= {name[5:] for (name, _, how), n in self.state.runs.items()
                   if name.startswith("self.") and how == "def" and n > 1}
        for key in self.state.values:
            if key[0] in ("arg", "def", "attr", "param") and self.usable(key) and \
                    key[1] not in looped:
                out.setdefault(key[1], []).append(key)
        for keys in out.values():
            keys.sort(key=lambda k: (k[2], k[0]))
        # ``dlogprobs`` beside ``logprobs`` (a loss that computes its gradient in the same
        # function) is a gradient, not a forward quantity
        return {n: ks for n, ks in out.items()
                if not any(g in out for g in _gradient_of(n))}

    def sample_counts(self) -> set[float]:
        """Sizes > 1 of the forward's array arguments' axes: the sample counts a sum over
        samples may scale an intermediate by."""
        return {float(n) for k, v in self.state.values.items() if k[0] == "arg"
                for n in np.shape(v) if n > 1}

    def jacobian(self, key):
        if ("jacobian", key) not in self.cache:
            self.cache[("jacobian", key)] = _jacobian(self, key)
        return self.cache[("jacobian", key)]

    def uses(self, name: str) -> list:
        return sorted((k for k in self.state.values if k[0] == "use" and k[1] == name
                       and self.usable(k)), key=lambda k: k[2])

    def cotangent(self, key):
        """(indices, values, trusted) of dL/d(key) by central differences, or None when
        the budget is spent."""
        if key in self.cache:
            return self.cache[key]
        base = self.state.values[key]
        size = base.size
        indices = numeric.pick_indices(size, MAX_ENTRIES, None, self.rng)
        if 2 * len(indices) + 1 > self.budget:
            self.cache[key] = None
            return None
        self.budget -= 2 * len(indices) + 1

        def h(value):
            if key in self.externals:
                return self.externals[key](value.reshape(base.shape))
            self.state.active, self.state.replacement = key, value.reshape(base.shape)
            try:
                return self.run()
            finally:
                self.state.active = self.state.replacement = None

        fd = numeric.differences(h, base, indices, numeric.step_for(np.float64))
        trusted = ~fd.kink & np.isfinite(fd.values)
        if key[0] == "def" and len(indices) and np.all(fd.values == 0):
            # the output does not move at all: not on its path as the code is written
            # (``h, scores = self.forward(X)``: perturbing h after the call leaves scores
            # as they are), so there is no truth for it here
            self.cache[key] = None
            return None
        self.cache[key] = (indices, fd.values, trusted)
        return self.cache[key]


def _jacobian(truth: _Truth, key) -> np.ndarray | None:
    """The Jacobian (out.size, key.size) of the layer's output with respect to the
    intermediate ``key``, by central differences (2 key.size forward calls)."""
    base = truth.state.values[key]
    cost = 2 * base.size
    if base.size > MAX_ENTRIES or cost > truth.budget:
        return None
    truth.budget -= cost
    eps = numeric.step_for(np.float64)
    columns = []
    for j in range(base.size):
        outs = []
        for sign in (1.0, -1.0):
            bumped = base.copy().reshape(-1)
            bumped[j] += sign * eps
            truth.state.active, truth.state.replacement = key, bumped.reshape(base.shape)
            try:
                outs.append(np.asarray(truth.run_output(), np.float64).reshape(-1))
            finally:
                truth.state.active = truth.state.replacement = None
        columns.append((outs[0] - outs[1]) / (2 * eps))
    return np.stack(columns, axis=1)


def _compare(value: np.ndarray, truth, tol=TOL) -> float | None:
    """Max relative error of ``value`` against a (indices, values, trusted) truth on the
    trusted entries; None when nothing can be compared (shape, nothing trusted)."""
    indices, want, trusted = truth
    flat = np.asarray(value, np.float64).reshape(-1)
    if trusted.sum() == 0 or flat.size <= int(np.max(indices, initial=0)):
        return None
    got = flat[indices][trusted]
    want = want[trusted]
    return rel_error(got, want)


def _full(truth, shape) -> np.ndarray | None:
    indices, values, trusted = truth
    if len(indices) != int(np.prod(shape)) or not trusted.all():
        return None
    return values.reshape(shape)


# ------------------------------------------------------------------ the analysis

class _Step(NamedTuple):
    """One state of a backward variable: after a plain assignment (``how`` "def") and
    every in-place fill of it that follows (``d[i] = ...``: ``lines``, each with the
    entries it changed), or after ``v += ...`` ("aug"), or a returned value."""

    name: str
    line: int
    how: str
    value: np.ndarray
    lines: tuple = ()  # ((line, changed mask), ...), the assignment first


def _steps(events: dict) -> list[_Step]:
    """The backward's states in the order they (last) ran. In-place fills of a variable
    (``d[i, j] = ...`` in a loop) complete the state its assignment started. An all-zeros
    start of a sum built with ``+=`` is not a step of its own."""
    ordered = sorted(events.items(), key=lambda kv: kv[1][0])
    out: list[_Step] = []
    open_: dict[str, int] = {}  # name -> index in out of its state being filled
    for (name, line, how), (_, value, changed) in ordered:
        if how == "mod" and name in open_:
            k = open_[name]
            s = out[k]
            out[k] = s._replace(value=value, lines=(*s.lines, (line, changed)))
            continue
        if how in ("def", "mod"):
            open_[name] = len(out)
        else:
            open_.pop(name, None)
        out.append(_Step(name, line, how, value, ((line, changed),)))
    kept = []
    for k, s in enumerate(out):
        later = [t for t in out[k + 1:] if t.name == s.name]
        if s.how == "def" and len(s.lines) == 1 and later and not np.any(s.value):
            continue
        kept.append(s)
    return kept


def _blame(step: _Step, wrong: np.ndarray | None) -> int:
    """The line of ``step`` that wrote its wrong entries: the last in-place fill that
    changed one of them, else the assignment."""
    if wrong is None or len(step.lines) == 1:
        return step.lines[-1][0] if step.how == "mod" else step.line
    for line, changed in reversed(step.lines[1:]):
        if changed.shape == wrong.shape and np.any(changed & wrong):
            return line
    return step.lines[0][0]


def _statement(file: str | None, line: int) -> str:
    text = linecache.getline(file, line).strip() if file else ""
    return text if len(text) <= 100 else text[:97] + "..."


# kinds whose cause is often a window's index (``vert_start = h``: the stride left out)
INDEX_KINDS = ("wrong-window", "off-by-one", "unclassified", "missing-accumulation")


def _parsed(fn) -> tuple[ast.AST, int] | None:
    """(the function's AST, its first line in the file), or None."""
    try:
        lines, first = inspect.getsourcelines(fn)
        return ast.parse(textwrap.dedent("".join(lines))).body[0], first
    except (OSError, TypeError, SyntaxError, IndexError):
        return None


def _assignments(body: ast.AST, before: int | None = None) -> dict[str, list]:
    """name -> [(relative line, the Assign / AugAssign node)] in ``body`` (before line
    ``before`` when given)."""
    out: dict[str, list] = {}
    for node in ast.walk(body):
        if isinstance(node, (ast.Assign, ast.AugAssign)) and (
                before is None or node.lineno < before):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    out.setdefault(target.id, []).append((node.lineno, node))
    return out


def _window_lines(fn: types.FunctionType, line: int,
                  forward: types.FunctionType | None = None) -> tuple[tuple[int, str], ...]:
    """The lines that compute the indices of the slices of the statement at ``line``
    (``dA[i, vert_start:vert_end, ...] += ...``: the last assignments of ``vert_start``,
    ``vert_end`` before it) that ``forward`` assigns differently (its ``vert_start = h *
    stride`` for the backward's ``vert_start = h``), as ``(line, code, the forward's
    line)`` in source order: the likeliest cause; or, for slices written inline
    (``i:i+k``), the first that differs from the forward's over the same loop variables.
    () when nothing differs from the forward (an index the forward computes alike is no
    evidence), there is no separate forward, or a source cannot be read."""
    parsed = _parsed(fn)
    if parsed is None:
        return ()
    body, first = parsed
    stmt = next((n for n in ast.walk(body) if isinstance(n, ast.stmt)
                 and n.lineno + first - 1 == line and not isinstance(
                     n, (ast.For, ast.While, ast.If, ast.With, ast.FunctionDef))), None)
    if stmt is None:
        return ()
    wanted = {n.id for sub in ast.walk(stmt) if isinstance(sub, ast.Subscript)
              for sl in ast.walk(sub.slice) if isinstance(sl, ast.Slice)
              for n in ast.walk(sl) if isinstance(n, ast.Name)}
    assigned = _assignments(body, stmt.lineno)
    mine = {name: max(assigned[name], key=lambda a: a[0]) for name in wanted
            if name in assigned}
    theirs = {}
    parsed_forward = _parsed(forward) if forward is not None and forward is not fn else None
    if parsed_forward is not None:
        fbody, ffirst = parsed_forward
        for name, found in _assignments(fbody).items():
            at, node = found[-1]
            theirs[name] = (at + ffirst - 1, node)
    file = fn.__code__.co_filename
    differ = {name for name, (_, node) in mine.items() if name in theirs and ast.unparse(
        node.value) != ast.unparse(theirs[name][1].value)}
    out = []
    for name, (at, _) in sorted(mine.items(), key=lambda kv: kv[1][0]):
        if name not in differ:  # the same as the forward's, or no forward to compare:
            continue  # no evidence against it (a `pad = hparameters["pad"]` is right)
        other = ""
        if name in differ:
            from jaxcnn.check.cells import line_text

            f_at, f_file = theirs[name][0], forward.__code__.co_filename
            other = (f"the forward's {line_text(f_file, f_at, file)} "
                     f"`{_statement(f_file, f_at)}`")
        out.append((at + first - 1, _statement(file, at + first - 1), other))
    if not out and parsed_forward is not None:  # slices written inline: i:i+k
        out = _inline_slices(stmt, first, line, parsed_forward, forward, file)
    return tuple(out)


def _slices(node: ast.AST) -> list[ast.Slice]:
    return [sl for sub in ast.walk(node) if isinstance(sub, ast.Subscript)
            for sl in ast.walk(sub.slice) if isinstance(sl, ast.Slice)]


def _inline_slices(stmt, first: int, line: int, parsed_forward, forward,
                   stmt_file: str | None = None) -> list:
    """``[(line, slice, the forward's)]`` for the first slice of ``stmt`` written with
    other names' arithmetic than the forward's slices over the same loop variables
    (``i:i+k`` where the forward has ``i*s:i*s+k``: the stride left out). ``stmt_file``:
    the backward's file (the forward's line names its own file where they differ)."""
    from jaxcnn.check.cells import line_text

    fbody, ffirst = parsed_forward
    theirs = [(sl, n.lineno) for n in ast.walk(fbody) if isinstance(n, ast.stmt)
              and not isinstance(n, (ast.For, ast.While, ast.If, ast.With, ast.FunctionDef))
              for sl in _slices(n)]
    texts = {ast.unparse(sl) for sl, _ in theirs}
    f_file = forward.__code__.co_filename
    for sl in _slices(stmt):
        text = ast.unparse(sl)
        names = {n.id for n in ast.walk(sl) if isinstance(n, ast.Name)}
        if not names or text in texts:
            continue
        for other, at in theirs:
            other_names = {n.id for n in ast.walk(other) if isinstance(n, ast.Name)}
            if names < other_names:  # the same loop variables, and more (a stride)
                f_at = at + ffirst - 1
                return [(line, text, f"the forward's "
                                     f"{line_text(f_file, f_at, stmt_file)} "
                                     f"`{ast.unparse(other)}`")]
    return []


def _read_names(fn: types.FunctionType) -> tuple[dict, dict, dict]:
    """(line -> names read on the assignment starting there, line -> its ``if`` line,
    line -> names read by the ``return`` there)."""
    try:
        lines, first = inspect.getsourcelines(fn)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return {}, {}, {}
    reads: dict[int, list[str]] = {}
    under: dict[int, int] = {}
    returns = {node.lineno + first - 1: {n.id for n in ast.walk(node.value)
                                         if isinstance(n, ast.Name)}
               for node in ast.walk(tree.body[0])
               if isinstance(node, ast.Return) and node.value is not None}

    def walk(node, cond_line):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                line = child.lineno + first - 1
                value = child.value if child.value is not None else child
                names = [n.id for n in ast.walk(value) if isinstance(n, ast.Name)
                         and isinstance(n.ctx, ast.Load)]
                names += ["self." + n.attr for n in ast.walk(value) if isinstance(
                    n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"]
                if isinstance(child, ast.AugAssign):
                    names += [n for n, _ in _names_in(child.target)]
                reads[line] = list(dict.fromkeys(names))
                if cond_line is not None:
                    under[line] = cond_line
            if isinstance(child, ast.If):
                walk_block(child.body, child.lineno + first - 1)
                walk_block(child.orelse, cond_line)
            elif isinstance(child, (ast.For, ast.While, ast.With, ast.Try)):
                walk(child, cond_line)
            elif not isinstance(child, (ast.FunctionDef, ast.ClassDef, ast.Lambda)):
                walk(child, cond_line)

    def walk_block(stmts, cond_line):
        holder = ast.Module(body=stmts, type_ignores=[])
        walk(holder, cond_line)

    walk(tree.body[0], None)
    return reads, under, returns


def _returned_elements(fn: types.FunctionType) -> dict[int, list]:
    """line -> the element names of each ``return a, b, c`` of ``fn`` (None where an
    element is not a plain name); {} when its source cannot be read."""
    try:
        lines, first = inspect.getsourcelines(fn)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return {}
    return {node.lineno + first - 1: [e.id if isinstance(e, ast.Name) else None
                                      for e in node.value.elts]
            for node in ast.walk(tree.body[0])
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple)}


def _element(returned: dict, line: int, k: int) -> str | None:
    names = returned.get(line, [])
    return names[k] if 0 <= k < len(names) else None


def _returned_as_is(returned: dict, name: str) -> bool:
    """Whether a local of this name is an element of a ``return`` tuple."""
    return any(name in names for names in returned.values())


def _is_parameter(names: dict, x: str) -> bool:
    """Whether ``x`` is an argument or parameter among the forward's true quantities."""
    return any(k[0] in ("arg", "attr", "param") for k in names.get(x, ()))


def _in_place_writes(fn: types.FunctionType) -> dict:
    """line -> (names, "add" | "scale") for the writes that build a variable up in place:
    ``v += e``, ``v -= e``, ``v[i] += e`` ("add"), ``v *= c``, ``v /= c`` ("scale"), and
    ``v = v + e``, ``v = e + v``, ``v = v - e`` ("add"), ``v = v * c``, ``v = c * v``,
    ``v = v / c`` ("scale"). Other writes start a value of their own."""
    try:
        lines, first = inspect.getsourcelines(fn)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return {}
    add, scale_ = (ast.Add, ast.Sub), (ast.Mult, ast.Div)
    out: dict[int, tuple] = {}

    def same(node, name):
        return [n for n, _ in _names_in(node)] == [name] if isinstance(
            node, (ast.Name, ast.Attribute)) else False

    for node in ast.walk(tree.body[0]):
        line = getattr(node, "lineno", 0) + first - 1
        if isinstance(node, ast.Expr) and _ufunc_at_target(node.value):
            out[line] = ((_ufunc_at_target(node.value),), "add")  # np.add.at(dW, ...)
        elif isinstance(node, ast.AugAssign):
            names = tuple(n for n, _ in _names_in(node.target))
            t = node.target
            if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                names += (f"{t.value.id}[*]",)  # an entry of a dict: grads[("W", i)] += ...
            if isinstance(node.op, add):
                out[line] = (names, "add")
            elif isinstance(node.op, scale_) and not isinstance(node.target, ast.Subscript):
                out[line] = (names, "scale")
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.value, ast.BinOp):
            names = [n for n, h in _names_in(node.targets[0]) if h == "def"]
            if len(names) != 1:
                continue
            v, name = node.value, names[0]
            left, right = same(v.left, name), same(v.right, name)
            if isinstance(v.op, add) and (left or (right and isinstance(v.op, ast.Add))):
                out[line] = ((name,), "add")
            elif isinstance(v.op, scale_) and (left or (right and isinstance(v.op, ast.Mult))):
                out[line] = ((name,), "scale")
    return out


def _entry_lines(fn: types.FunctionType) -> dict:
    """(line, key) -> line of the entry: where each constant key's value starts in a dict
    display assigned on ``line`` (``grads = {"W2": ...,\n "b2": ...}``), so that an entry
    is named on its own line."""
    try:
        lines, first = inspect.getsourcelines(fn)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return {}
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(k, ast.Constant):
                    out[(node.lineno + first - 1, k.value)] = v.lineno + first - 1
    return out


def _scalar_ratio(value, before) -> float | None:
    """c when ``value`` is ``c * before`` for one scalar c, else None."""
    value, before = np.asarray(value, np.float64), np.asarray(before, np.float64)
    if value.shape != before.shape:
        return None
    norm = float(np.vdot(before, before))
    if norm == 0:
        return None
    c = float(np.vdot(value, before)) / norm
    return c if rel_error(value, c * before) <= 1e-10 else None


def _factor(hand, want, tol: float) -> float | None:
    """alpha when ``hand`` is ``alpha * want`` (entries within ``tol``), else None."""
    norm = float(np.vdot(want, want))
    if norm == 0:
        return None
    alpha = float(np.vdot(hand, want)) / norm
    return alpha if np.max(np.abs(hand - alpha * want), initial=0.0) <= tol else None


def _links(ordered: list, writes: dict, runs: dict) -> dict:
    """k -> j when state k of a variable continues its state j in place (a ``+=`` or a
    ``/=`` by one scalar; see ``_in_place_writes``): j's value is then a partial one, not
    the variable's final value. A scaling that ran more than once, or by an array (a
    mask), ends the chain: the states before it are judged on their own."""
    out: dict[int, tuple] = {}
    last: dict[str, int] = {}
    for k, s in enumerate(ordered):
        j = last.get(s.name)
        last[s.name] = k
        if j is None or s.how not in ("aug", "mod", "def") or s.name.startswith("return"):
            continue
        entry = re.sub(r"\[.*\]$", "[*]", s.name)  # grads['W1'] -> grads[*]
        ops = {writes.get(line, ((), None))[1]
               if {s.name, entry} & set(writes.get(line, ((),))[0]) else None
               for line, _ in s.lines}
        before = ordered[j].value
        if np.shape(s.value) != np.shape(before):
            continue
        if ops == {"add"}:
            out[k] = (j, "add", None)
        elif ops == {"scale"} and len(s.lines) == 1 and \
                runs.get((s.name, s.line, s.how), 1) == 1:
            c = _scalar_ratio(s.value, before)
            if c is not None:
                out[k] = (j, "scale", c)
    return out


def _line_shares(s: _Step, added: dict, runs: dict, factor: float, first: bool) -> list:
    """(line, its share of the final value) for each line of state ``s`` that wrote it
    more than once (a loop) or filled it in place (``d[i] += ...`` after ``d = zeros``):
    the sum of everything its runs added (``_State.added``) times the scalings after it.
    Empty unless every write of ``s`` is accounted for, so the shares and what the state
    started from add up to its value."""
    keys = [(s.name, line, "mod" if first and k else s.how)
            for k, (line, _) in enumerate(s.lines) if not (first and k == 0)]
    if not keys or not all(key in added for key in keys):
        return []
    if not first and all(runs.get(key, 1) == 1 for key in keys):
        return []  # one write per line: the state's own difference is its share
    return [(key[1], factor * np.asarray(added[key], np.float64)) for key in keys]


def _attribute(chain: list, links: dict, index: list, want, parts: list, x: str,
               runs: dict, file, verdict: cls.Finding | None = None, counts=(),
               added: dict | None = None):
    """Which write of a variable built up in place is wrong, judged by its contribution to
    the final value, the other writes taken as right: (state, line, Finding, expected,
    last_write), or None when none is (or ``want`` is no full array). ``chain``: the
    variable's states in order (``index``: their indices, keys of ``links``), the last one
    wrong against ``want``; ``parts``: (line, the part of dL/dx that flows through that
    line of the forward), full arrays; ``verdict``: the final value's finding;
    ``counts``: the sample counts (a division by one is a mean, not the suspect);
    ``added``: each write's sum over its runs (``_State.added``), which judges a line that
    runs in a loop by its own share (``dW[:, y[i]] += X[i]`` where ``-=`` belongs)."""
    final = np.asarray(chain[-1].value, np.float64)
    if not isinstance(want, np.ndarray) or want.shape != final.shape:
        return None
    want = np.asarray(want, np.float64)
    tol = TOL * max(scale(want), 1e-300)
    last, name = chain[-1], chain[-1].name
    # each write's contribution to the final value, latest first: an added term times the
    # scalings after it ("add"), a scaling of all before it ("scale"), the first state
    added = added or {}
    candidates, factor = [], 1.0
    for i in range(len(chain) - 1, 0, -1):
        _, op, c = links[index[i]]
        s, before = chain[i], np.asarray(chain[i - 1].value, np.float64)
        if op == "add":
            if all(runs.get((s.name, line, s.how), 1) == 1 for line, _ in s.lines):
                candidates.append((s, "add", factor * (np.asarray(s.value) - before)))
            else:  # a line run in a loop: judged by the sum of what its runs added
                candidates += [(s, ("line", line), d) for line, d in
                               _line_shares(s, added, runs, factor, False)]
        else:
            candidates.append((s, "scale", (c, factor * before)))
            factor *= c
    candidates += [(chain[0], ("line", line), d) for line, d in
                   _line_shares(chain[0], added, runs, factor, True)]
    candidates.append((chain[0], "add", factor * np.asarray(chain[0].value, np.float64)))

    def named(needed):
        for line, part in parts:
            if np.max(np.abs(needed - part)) <= tol:
                return f"the part of dL/d{x} through line {line}"
        return f"its share of dL/d{x} (the other writes of {name} taken as right)"

    def finding(alpha, what):
        if abs(alpha + 1) <= 1e-6:
            return cls.Finding("sign-flipped", scale=-1.0, note=f"it adds -1 x {what}")
        text, hint = cls.describe_scale(alpha)
        return cls.Finding("scaled", scale=alpha, note=f"it adds {text} x {what}: {hint}")

    for s, op, d in candidates:
        if op == "scale":  # final = c * (the value before, scaled later) + the rest
            c, before = d
            if any(abs(c * n - 1) <= 1e-9 for n in counts):
                continue  # dW /= N: a mean over the samples; a factor is off before it
            rest = final - c * before
            right = _factor(want - rest, before, tol)
            if right is None or abs(right) <= 1e-12 or abs(c / right - 1) <= 1e-6:
                continue
            text, hint = cls.describe_scale(c / right)
            return s, s.line, cls.Finding("scaled", scale=c / right, note=(
                f"it scales {name} by {c:.4g} where {right:.4g} is right: {text} x ({hint})")), \
                f"dL/d{x} (the other writes of {name} taken as right)", False
        if np.max(np.abs(d), initial=0.0) <= tol:
            continue  # adds nothing here (a zero regularization)
        needed = want - (final - d)
        if np.max(np.abs(needed), initial=0.0) <= tol:  # right without this write
            line = op[1] if isinstance(op, tuple) else s.line
            return s, line, cls.Finding("unclassified", note=(
                f"it adds a term that does not belong: {name} is right without this line "
                "(a term added twice?)")), f"dL/d{x}", False
        alpha = _factor(d, needed, tol)
        if alpha is None or abs(alpha - 1) <= 1e-6 or abs(alpha) <= 1e-6:
            continue
        what = named(needed)
        if isinstance(op, tuple):  # one line's share, summed over the times it ran
            line = op[1]
            how_often = sum(runs.get((s.name, line, h), 0) for h in ("mod", "aug"))
            why = finding(alpha, what)
            if how_often > 1:
                why = why._replace(note=f"{why.note} (summed over the {how_often} times "
                                        "it ran)")
            return s, line, why, what, False
        if len(s.lines) > 1:  # a sum built on several lines (a loop's fills) is off
            lines = ", ".join(str(line) for line, _ in s.lines)
            text, hint = cls.describe_scale(alpha)
            why = (cls.Finding("sign-flipped", scale=-1.0, note=(
                       f"what lines {lines} add up to is -1 x {what}"))
                   if abs(alpha + 1) <= 1e-6 else cls.Finding("scaled", scale=alpha, note=(
                       f"what lines {lines} add up to is {text} x {what}: {hint}")))
            return last, last.lines[-1][0], why, f"dL/d{x}", True
        return s, s.line, finding(alpha, what), what, False
    if all(op == "scale" for _, op, _ in candidates[:-1]) and len(chain[0].lines) == 1:
        # one assignment, then only scalings: it is the whole sum, up to their factor (a
        # sum filled in place, by a loop, may still lack a term added after it)
        first = chain[0]
        right = want / factor
        finding = cls.classify(np.asarray(first.value, np.float64), right, cls.Context(TOL))
        if finding.kind == "unclassified" and verdict is not None:
            finding = verdict  # the final value's (the oracle knows named slips)
        if finding.kind != "correct":
            wrong = np.abs(np.asarray(first.value, np.float64) - right) > TOL * max(
                scale(right), 1e-300)
            lines = ", ".join(str(s.line) for s in chain[1:])
            return first, _blame(first, wrong), finding, \
                f"dL/d{x} before its scaling on line {lines}", False
    # one path of the forward whose part is missing, or enters with a wrong factor
    error = final - want
    for line, part in parts:
        beta = _factor(error, part, tol)
        if beta is None or abs(beta) <= 1e-6:
            continue
        alpha, code = 1 + beta, _statement(file, line)
        if abs(alpha) <= 1e-6:
            return last, last.lines[-1][0], cls.Finding("missing-accumulation", note=(
                f"it lacks the part of dL/d{x} that flows through line {line} (`{code}`): "
                "a term is missing here or later")), f"dL/d{x}", True
        text, _ = cls.describe_scale(alpha)
        return last, last.lines[-1][0], cls.Finding("scaled", scale=alpha, note=(
            f"the part of dL/d{x} that flows through line {line} (`{code}`) is {text} "
            "what it should be")), f"dL/d{x}", True
    return None


def _subset_sums(parts: list[np.ndarray], limit: int = 4):
    for r in range(2, min(len(parts), limit) + 1):
        for combo in itertools.combinations(range(len(parts)), r):
            yield combo, sum(parts[c] for c in combo)


def first_wrong(forward_fn, backward_fn, run_forward: Callable[[], object],
                run_backward: Callable[[], object], cotangent: np.ndarray,
                arg_judges: dict | None = None, seed: int = 0,
                budget: int = MAX_EVALUATIONS, arguments: dict | None = None,
                run_with: Callable | None = None) -> FirstWrong | None:
    """The first wrong step of ``backward_fn``, or None (all paired steps right, or
    nothing could be paired).

    forward_fn, backward_fn: the user's functions (plain functions or methods) whose
    source is re-compiled (see the module docstring); they may be the same function (a
    loss returning its value and gradient together).
    run_forward: ``() -> out``, runs the user's forward (through ``forward_fn``) on the
    chosen inputs; run_backward: ``() -> anything``, runs the forward and the backward
    (through ``backward_fn``) on the same inputs with ``cotangent``.
    arg_judges: ``{name: judge}`` for the layer's arguments and parameters (the
    forward's argument names, ``self`` attributes by attribute name): ``judge(hand) ->
    Finding`` against the engine's exact oracle (which knows the valid tie rules and the
    layer's known wrong rules); other quantities are judged by central differences.
    arguments, run_with: the layer's arguments as true quantities (``_Truth.set_arguments``:
    ``run_with(name, value) -> out`` runs the forward with that one replaced); for a
    whole model, whose loss reads its parameters where no tap reaches.
    ValueError when a function's source cannot be re-compiled.
    """
    f_fn, b_fn = _function(forward_fn), _function(backward_fn)
    if f_fn is None or b_fn is None:
        raise ValueError("the forward or backward is not a Python function")
    ct = np.asarray(cotangent, np.float64)
    forward_state, backward_state = _State(), _State()
    forward_state.entry_lines = backward_state.entry_lines = _entry_lines(b_fn)

    def loss() -> float:
        out = np.asarray(run_forward(), np.float64)
        return float(np.sum(ct * out)) if out.shape == ct.shape else float("nan")

    with _instrumented([f_fn], forward_state):
        forward_state.recording = True
        loss()
        forward_state.recording = False
        with _instrumented([b_fn], backward_state) if b_fn is not f_fn else \
                contextlib.nullcontext():
            if b_fn is f_fn:
                backward_state = forward_state
                forward_state.events.clear()
                forward_state.runs.clear()
                forward_state.added.clear()
                forward_state.summed.clear()
                forward_state.recording = True
                hits, values = dict(forward_state.hits), dict(forward_state.values)
                run_backward()
                forward_state.hits, forward_state.values = hits, values
                forward_state.recording = False
            else:
                backward_state.recording = True
                run_backward()
                backward_state.recording = False
        params = [p for p in inspect.signature(f_fn).parameters][:]
        if params and params[0] in ("self", "cls"):
            params = params[1:]
        truth = _Truth(loss, forward_state, budget, np.random.default_rng(seed),
                       arg_judges or {}, params, run_forward)
        truth.same_function = b_fn is f_fn
        truth.returned = _returned_elements(b_fn) if truth.same_function else {}
        truth.activations = _activations_of(f_fn)
        if arguments and run_with is not None:
            truth.set_arguments(arguments, lambda name, value: float(np.sum(
                ct * np.asarray(run_with(name, value), np.float64))))
        return _analyse(truth, backward_state.events, b_fn, backward_state.runs,
                        backward_state.added, f_fn, backward_state.summed)


def _analyse(truth: _Truth, events: dict, b_fn, runs: dict | None = None,
             added: dict | None = None, f_fn=None,
             summed: dict | None = None) -> FirstWrong | None:
    names = truth.forward_names()
    values = truth.state.values
    file = b_fn.__code__.co_filename
    reads, under, returns = _read_names(b_fn)
    runs = runs or {}
    right: list[str] = []
    status: dict[str, str] = {}
    # Steps that are n x their true value, n a sample count: a sum over samples whose mean
    # is taken later (the specialisation's dZ = A - Y) once a step computed from them is
    # right; until then, the origin of a factor n that a later step still carries.
    pending: dict[str, tuple] = {}  # name -> (step, finding, want)
    convention = False
    ordered = _steps(events)
    # a variable built up in place (dW = ...; dW += ...; dW /= N): its states before the
    # last are partial values, judged only through the final one
    links = _links(ordered, _in_place_writes(b_fn), runs)
    continued = {j for j, _, _ in links.values()}
    # forward names a backward variable is named for exactly (dprev_c for prev_c): an
    # abbreviation (dc) is not read as one of them
    truth.claimed = {x for step in ordered for x in _gradient_of(step.name) if x in names}

    def found(step, expected, finding, want, line=None, last_write=False):
        if line is None:
            line = _blame(step, _wrong_entries(step.value, want))
        read = [n for n in reads.get(line, []) if n != step.name]
        unchecked = tuple(n for n in read if status.get(n) == "unknown")
        cond = under.get(line)
        window = _window_lines(b_fn, line, f_fn) if finding.kind in INDEX_KINDS else ()
        return FirstWrong(step.name, line, file, _statement(file, line), finding.kind,
                          finding.scale, expected, tuple(right), unchecked,
                          _statement(file, cond) if cond else None, finding.note,
                          last_write, window)

    def read_later(k, name):
        return any(name in reads.get(t.line, []) or
                   (t.how == "return" and name in returns.get(t.line, ()))
                   for t in ordered[k + 1:])

    def in_place(k, step, expected, finding, want):
        """The first wrong step when the final value of a variable built up in place is
        wrong: the write whose contribution is wrong, else its last write."""
        chain = [k]
        while chain[-1] in links:
            chain.append(links[chain[-1]][0])
        chain.reverse()
        states = [ordered[i] for i in chain]
        if isinstance(want, tuple):
            want = _full(want, np.shape(step.value))
        x = expected[4:] if expected.startswith("dL/d") else None
        parts = []
        if x is not None and isinstance(want, np.ndarray):
            for u in truth.uses(x):
                t = truth.cotangent(u)
                full = _full(t, want.shape) if t is not None else None
                if full is not None and np.any(full != 0):
                    parts.append((u[2], full))
        got = _attribute(states, links, chain, want, parts, x or step.name, runs, file,
                         finding, truth.sample_counts(), added or {})
        if got is not None:
            s, line, why, what, last_write = got
            return found(s, what, why, None, line, last_write)
        lines = sorted({line for s in states for line, _ in s.lines})
        what = ", ".join(map(str, lines[:-1])) + f" or {lines[-1]}"
        return found(step, expected, finding._replace(
            note=f"a term is missing, or one of its writes (lines {what}) is wrong"),
            None, step.lines[-1][0], True)

    def kept_one_run(step, expected, want):
        """A wrong returned value last written by a plain assignment that ran several
        times in a loop (``dW = term``) whose runs sum to the true value: that line,
        ``missing-accumulation`` (``=`` where ``+=`` belongs); else None."""
        if step.how != "return" or want is None:
            return None
        k = int(step.name[7:-1]) if step.name.endswith("]") else 0
        element = _element(truth.returned, step.line, k) or (
            step.name if not step.name.startswith("return") else None)
        writes = [(events[key][0], key) for key in (summed or {})
                  if key[0] == element and runs.get(key, 1) > 1
                  and np.array_equal(events[key][1], step.value)]
        if not writes:
            return None
        key = max(writes)[1]
        total = summed[key]
        err = (_compare(total, want) if isinstance(want, tuple) else
               rel_error(total, want) if np.shape(want) == total.shape else None)
        if err is None or err > TOL:
            return None
        s = next(t for t in ordered if (t.name, t.line, t.how) == key)
        n = runs[key]
        return found(s, f"{expected} (the sum of the line's {n} runs)", cls.Finding(
            "missing-accumulation", note=f"`=` where `+=` belongs: line {key[1]} runs {n} "
            f"times and {element} keeps its last run's value; the sum of all {n} is the "
            "right gradient"), None, key[1])._replace(unchecked_inputs=())  # (sum right)

    for k, step in enumerate(ordered):
        later = any(t.name == step.name for t in ordered[k + 1:])
        if step.how == "def" and runs.get((step.name, step.line, "def"), 1) > 1:
            # reassigned in a loop (dout = dout @ W.T, layer after layer): its value is
            # the last pass's, and a forward name it is named for may be any pass's
            status.setdefault(step.name, "unknown")
            continue
        verdict = _judge(step, names, values, truth, later)
        if verdict is None:
            status.setdefault(step.name, "unknown")
            continue
        ok, expected, finding, want = verdict
        if k in continued and (not ok or finding is not None):
            status[step.name] = "partial"  # not its final value: judged at its last write
            continue
        read = set(reads.get(step.lines[-1][0], [])) | set(reads.get(step.line, []))
        if (not ok and not pending and not convention and finding is not None and
                finding.kind == "scaled" and
                finding.scale is not None and step.how != "return" and
                any(abs(finding.scale - n) <= FACTOR_TOL * n for n in truth.sample_counts()) and
                read_later(k, step.name)):
            ok = True  # a sum over samples, named for an argument: the same convention
        if ok and finding is not None:  # n x the true value: pending, unless the
            if not convention:  # convention was seen to hold already
                pending[step.name] = (step, finding, want, expected)
            status[step.name] = "right"
            continue
        if ok:
            if read & set(pending):  # computed from a pending sum, and right: a convention
                pending.clear()
                convention = True
            status[step.name] = "right"
            if expected.startswith("dL/d") and step.name not in right and k not in continued:
                right.append(step.name)
            continue
        if pending:
            # the factor n started at the first pending step
            origin, why, origin_want, origin_expected = next(iter(pending.values()))
            n = why.scale
            again = _judge(step._replace(value=np.asarray(step.value) / n), names, values,
                           truth, later)
            # right once divided by n (up to rounding: the exact oracle's "imprecise")
            if again is not None and (again[0] or (again[2] is not None and
                                                   again[2].kind == "imprecise")):
                right[:] = [r for r in right if r not in pending]
                if step.how == "return" and np.array_equal(step.value, origin.value):
                    # the sum itself is returned: the mean is never taken
                    return found(step, expected, why._replace(
                        note=f"{why.note}; it returns {origin.name} (line {origin.line}), "
                             f"the gradient of the sum over samples, as it is: the {n:g} "
                             "samples' mean is never taken (a division by the sample count "
                             "missing here?)"), want)
                return found(origin, origin_expected, why._replace(
                    note=f"{why.note}; every step computed from it carries the factor "
                         f"{n:g} (first seen wrong at line {step.line}): a division by the "
                         "sample count missing?"), origin_want)
        if k in links:
            return in_place(k, step, expected, finding, want)
        kept = kept_one_run(step, expected, want)
        if kept is not None:
            return kept
        return found(step, expected, finding, want)
    return None


def _local(step: _Step) -> bool:
    """A plain local variable's assignment (not a return, not an attribute)."""
    return step.how == "def" and not step.name.startswith(("return", "self."))


def _regrouped(shape: tuple, other: tuple) -> bool:
    """Whether ``shape`` regroups ``other``'s entries (a reshape for the arithmetic, such
    as a group norm's (N, G, m) for (N, C, H, W)) rather than adding or dropping axes of
    size 1 ((N,) for (N, 1): a keepdims lost, which broadcasting then misaligns)."""
    return tuple(d for d in shape if d != 1) != tuple(d for d in other if d != 1)


def _relu_input_gradient(hand: np.ndarray, truth, x: np.ndarray) -> bool:
    """Whether ``hand`` is the gradient of the input of the ReLU whose output is ``x``
    (``x = max(z, 0)``, non-negative with exact zeros): dL/dx times the mask ``x > 0``,
    0 wherever x is. CS231n's ``dhidden = (dscores @ W2.T) * (hidden > 0)`` names the
    gradient of the pre-activation after the activation."""
    x = np.asarray(x, np.float64)
    if x.shape != hand.shape or not (np.all(x >= 0) and np.any(x == 0)):
        return False
    if np.any(hand[x == 0] != 0):
        return False
    indices, values, trusted = truth
    masked = (indices, values * (x.reshape(-1)[indices] > 0), trusted)
    err = _compare(hand, masked)
    return err is not None and err <= TOL


ACTIVATION_CALLS = {"sigmoid": "sigmoid", "tanh": "tanh", "expit": "sigmoid"}


def _activations_of(fn: types.FunctionType | None) -> dict[str, str]:
    """{name: "sigmoid" | "tanh"} of the forward's assignments ``name = sigmoid(...)`` /
    ``name = np.tanh(...)``: the gate ``ot`` whose backward's ``dot`` is, by the
    deep-learning specialisation's convention, the gradient of the gate's input. {} when
    the source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return {}
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ACTIVATION_CALLS:
                out[node.targets[0].id] = ACTIVATION_CALLS[called]
    return out


def _activation_input_gradient(hand: np.ndarray, truth, y: np.ndarray, act: str) -> bool:
    """Whether ``hand`` is the gradient of the input of the activation ``act`` whose
    output is ``y``: dL/dy times sigmoid' = y (1 - y), or tanh' = 1 - y^2 (the
    specialisation's ``dot = da_next * np.tanh(c_next) * ot * (1 - ot)`` for ``ot =
    sigmoid(...)``)."""
    y = np.asarray(y, np.float64)
    if y.shape != hand.shape:
        return False
    slope = y * (1 - y) if act == "sigmoid" else 1 - y ** 2
    indices, values, trusted = truth
    scaled_truth = (indices, values * slope.reshape(-1)[indices], trusted)
    err = _compare(hand, scaled_truth)
    return err is not None and err <= TOL


def _wrong_entries(value, want) -> np.ndarray | None:
    """Where ``value`` differs from ``want`` (an array, or a sampled truth), as a mask."""
    hand = np.asarray(value, np.float64)
    if want is None:
        return None
    if isinstance(want, tuple):
        indices, values, trusted = want
        mask = np.zeros(hand.size, bool)
        off = np.abs(hand.reshape(-1)[indices] - values) > TOL * max(scale(values), 1e-300)
        mask[indices[off & trusted]] = True
        return mask.reshape(hand.shape)
    if np.shape(want) != hand.shape:
        return None
    return np.abs(hand - want) > TOL * max(scale(want), 1e-300)


def _judge(step: _Step, names: dict, values: dict, truth: _Truth, later: bool):
    """(right?, what it should equal, Finding, the true value) for one step, or None
    when it cannot be paired with a true quantity. ``later``: the backward assigns this
    name again later (a sum built term by term may hold one path's part first)."""
    value = step.value
    hand = np.asarray(value, np.float64)
    bare = step.name[5:] if step.name.startswith("self.") else step.name
    # A forward quantity the backward recomputes (xhat, std): its forward value.
    if bare in names and step.how == "def" and not truth.same_function and \
            not step.name.startswith(("return", "self.")):
        keys = [k for k in names[bare] if values[k].shape == hand.shape]
        if keys:
            want = values[keys[-1]]
            if rel_error(hand, want) <= VALUE_TOL:
                return True, bare, None, None
            return False, f"{bare} (its forward value)", cls.classify(
                hand, want, cls.Context(VALUE_TOL)), want
    jacobian = _jacobian_of(step.name, names, hand.shape)
    if jacobian is not None:
        return _judge_row(hand, jacobian, names, truth)
    wanted = _gradient_of(step.name)
    if step.name.startswith("return"):  # return[i]: the gradient of argument i
        k = int(step.name[7:-1]) if step.name.endswith("]") else 0
        element = _element(truth.returned, step.line, k)
        if truth.same_function:  # a loss's (value, gradient, ...): the value comes first
            k -= 1
        wanted = [truth.params[k]] if 0 <= k < len(truth.params) else []
        by_name = [x for x in _gradient_of(element or "") if _is_parameter(names, x)]
        if by_name:  # dWhh returned for the parameter Whh the loss reads from outside
            wanted = by_name
    targets, suffixed = [], False
    for x in wanted:
        targets += [(x, k) for k in names.get(x, []) if values[k].shape == hand.shape]
    if not targets:
        for x in wanted:
            stem = x.rstrip("0123456789")
            if stem != x:
                suffixed = True
                targets += [(stem, k) for k in names.get(stem, [])
                            if values[k].shape == hand.shape]
    if not targets:  # an abbreviation: the only forward name of this shape it shortens
        for x in wanted:
            found = [(n, ks[-1]) for n, ks in names.items() if n != x and
                     n not in truth.claimed and (n.startswith(x) or (len(n) > 1 and x.startswith(n))
                      or x in n.split("_")[1:])  # c for next_c
                     and values[ks[-1]].shape == hand.shape]
            if len(found) == 1:
                targets = found
                break
    if not targets and any(values[k].shape == hand.shape for ks in names.values()
                           for k in ks if k[0] in ("arg", "param", "attr")):
        # the shape of an argument, not of the quantity it is named for: a name that
        # misleads (``dout`` holding dL/dimage), not a sum over the wrong axis: not judged
        return _by_value(step, names, values, truth)
    if not targets:
        # named for a forward quantity of another shape: right if it broadcasts as that
        # quantity would ((D,) for (1, D)); the right values in the wrong layout ((N,) for
        # (N, 1), a keepdims lost) are a wrong step
        for x in wanted:
            for k in names.get(x, [])[::-1]:
                shape = values[k].shape
                if values[k].size != hand.size:
                    try:
                        np.broadcast_shapes(hand.shape, shape)
                        fits = np.broadcast_shapes(hand.shape, shape) == shape
                    except ValueError:
                        fits = False
                    if not fits and not later:
                        return False, f"dL/d{x}", cls.Finding(
                            "wrong-shape", note=f"shape {hand.shape} where {x} has "
                            f"{shape}: a sum over the wrong axis?"), None
                    continue
                t = truth.cotangent(k)
                if t is None:
                    continue
                try:
                    aligned = np.broadcast_to(hand, shape)
                except ValueError:
                    aligned = None
                if aligned is not None and (_compare(aligned, t) or 0.0) <= TOL and \
                        _compare(aligned, t) is not None:
                    return True, f"dL/d{x}", None, None
                err = _compare(hand.reshape(shape), t)
                if err is not None and err <= TOL and _regrouped(hand.shape, shape) and \
                        _local(step):
                    return True, f"dL/d{x}, reshaped", None, None  # (N, G, m) for (N, C, H, W)
                if err is not None and err <= TOL:
                    return False, f"dL/d{x}", cls.Finding(
                        "wrong-shape", note=f"the right values in shape {hand.shape} where "
                        f"{x} has {shape}: broadcasting pairs them with the wrong axis (a "
                        "keepdims=True lost?)"), None
        # the final value of a parameter's gradient, in another shape than the parameter
        other = [(x, k) for x in wanted for k in names.get(x, [])
                 if k[0] in ("arg", "attr", "param")]
        if other and not later:
            x, k = other[-1]
            if values[k].size == hand.size and _local(step) and "[" not in step.name \
                    and k not in truth.externals:
                # a local reshaped for its arithmetic whose values are wrong (the loop above
                # takes a right one): not judged by its shape, the steps after it are
                return None
            judge = truth.judges.get(x)
            finding = judge(hand) if judge is not None else None
            if finding is not None and finding.kind != "correct":  # transposed, say
                return False, f"dL/d{x}", finding, None
            return False, f"dL/d{x}", cls.Finding(
                "wrong-shape", note=f"shape {hand.shape} where {x} has "
                f"{values[k].shape}: a sum over the wrong axis, or a missing reshape?"), None
        return _by_value(step, names, values, truth)
    x, key = targets[-1]
    if key in truth.externals and "[" not in step.name and not step.name.startswith(
            "return") and not _returned_as_is(truth.returned, step.name):
        # a model's local dW2 (its data term, before grads["W2"] adds the regularization's):
        # only what the loss returns is judged against the whole dL/dW2 (a local the loss
        # returns as it is, min-char-rnn's dWhh, is judged at its own lines)
        return None
    expected = f"dL/d{x}"
    judge = truth.judges.get(x) if key[0] in ("arg", "attr", "param") else None
    finding = t = None
    if judge is not None:
        finding = judge(hand)
        if finding is None and key in truth.externals:
            judge = None  # not the value the check judged: central differences
        elif finding is None:
            return None
        elif finding.kind == "correct":
            return True, expected, None, None
    if judge is None:
        for x_, k in reversed(targets):  # the def it is named for whose cotangent it matches
            tk = truth.cotangent(k)
            err = _compare(value, tk) if tk is not None else None
            if err is not None and err <= TOL:
                return True, f"dL/d{x_}", None, None
        t = truth.cotangent(key)
        if t is None:
            return None
        if _relu_input_gradient(hand, t, values[key]):
            return True, f"dL/d{x} with the ReLU's mask (the gradient of its input)", None, None
        act = truth.activations.get(x)
        if act is not None and _activation_input_gradient(hand, t, values[key], act):
            return True, f"dL/d{x} times {act}' (the gradient of its input)", None, None
    # one path's contribution (dxmu1), or a sum of some of them (dx = dx1 + dx2)
    uses = [u for u in truth.uses(x) if truth.cotangent(u) is not None]
    parts = [truth.cotangent(u) for u in uses]
    # One term of a sum over paths needs two paths that carry gradient: with one (a
    # shape read is a use that carries none), the only "part" is the whole, and at a
    # kink its central differences are no truth to pair a named finding against.
    carrying = sum(1 for p in parts if np.any(p[1][p[2]] != 0))
    path = None
    for u, p in zip(uses, parts, strict=True) if carrying >= 2 else ():
        err = _compare(value, p)
        if err is not None and err <= TOL and np.any(p[1][p[2]] != 0):
            path = (u[2],)
            break
    if path is None and carrying >= 2 and all(
            np.array_equal(p[0], parts[0][0]) for p in parts):
        for combo, total in _subset_sums([p[1] for p in parts]):
            err = _compare(value, (parts[0][0], total, np.all([p[2] for p in parts], axis=0)))
            if err is not None and err <= TOL:
                path = tuple(uses[c][2] for c in combo)
                break
    if path is not None:
        if suffixed or later:
            return True, f"{expected} through line {', '.join(map(str, path))}", None, None
        missing = [u[2] for u, p in zip(uses, parts, strict=True)
                   if u[2] not in path and np.any(p[1][p[2]] != 0)]
        rest = (f"the part through line {', '.join(map(str, missing))}" if missing else
                "the rest")
        return False, expected, cls.Finding(
            "missing-accumulation", note=f"it holds only the part of {expected} that flows "
            f"through line {', '.join(map(str, path))}; {rest} is missing (a sum over "
            "paths kept one term)"), None
    if finding is not None:
        against = finding.against
        if against is None and key in truth.externals:  # a whole model's verdict: its truth
            against = truth.cotangent(key)
        return False, expected, finding, against
    if _compare(value, t) is None:
        return None
    full = _full(t, hand.shape)
    if full is not None:
        finding = cls.classify(hand, full, cls.Context(TOL))
        if finding.kind == "correct":  # within TOL on the whole array after all
            return True, expected, None, None
    else:
        finding = _sampled_finding(hand, t)
    if (finding.kind == "scaled" and key[0] == "def" and finding.scale is not None
            and any(abs(finding.scale - n) <= FACTOR_TOL * n for n in truth.sample_counts())):
        # dZ = A - Y of the deep-learning specialisation: the gradient of the summed
        # loss, the 1/m of a mean applied where the parameter gradients are formed; or a
        # 1/m forgotten: decided by the steps computed from it (see _analyse)
        return True, expected, finding, t
    return False, expected, finding, t


_OUTPUT_NAMES = ("out", "output", "outputs", "y", "probs", "p", "s", "a", "h", "z")


def _jacobian_of(name: str, names: dict, shape) -> tuple | None:
    """(output name, forward key) when ``name`` is a Jacobian row of the layer's output
    with respect to a forward quantity: ``d_out_d_t`` is d out_i / d t for one i (the
    blog's softmax), not a gradient of the loss."""
    bare = name[5:] if name.startswith("self.") else name
    m = re.fullmatch(r"d_?([A-Za-z][A-Za-z0-9]*)_d_?([A-Za-z]\w*)", bare)
    if m is None or m.group(1).lower() in ("l", "loss") or m.group(1) in names:
        return None
    if m.group(1).lower() not in _OUTPUT_NAMES:
        return None
    x = m.group(2)
    keys = names.get(x) or next((ks for n, ks in names.items()
                                 if n.startswith(x) or (len(n) > 1 and x.startswith(n))), None)
    if not keys:
        return None
    return m.group(1), x, keys[-1]


def _judge_row(hand, jacobian, names, truth):
    """A Jacobian row ``d out_i / d x`` is right when it equals some row of the output's
    Jacobian with respect to ``x`` (central differences of the output); else wrong
    against the row it is closest to."""
    out_name, x, key = jacobian
    rows = truth.jacobian(key)
    if rows is None or rows.shape[1] != hand.size:
        return None
    flat = hand.reshape(-1)
    denominators = np.maximum(np.max(np.abs(rows), axis=1), 1e-300)
    errors = np.max(np.abs(rows - flat), axis=1) / denominators
    expected = f"d {out_name}_i / d {x}"
    if np.any(errors <= TOL * 10):
        return True, expected, None, None
    cos = rows @ flat / np.maximum(np.linalg.norm(rows, axis=1) * np.linalg.norm(flat), 1e-300)
    i = int(np.argmax(cos))
    want = rows[i].reshape(hand.shape)
    finding = cls.classify(hand, want, cls.Context(TOL * 10))
    return False, f"d {out_name}_{i} / d {key[1]} (a row of the output's Jacobian)", finding, \
        want


def _sampled_finding(hand, truth) -> cls.Finding:
    """Scale or sign from a sample of entries (the intermediate was too large to take
    every entry)."""
    indices, want, trusted = truth
    got = hand.reshape(-1)[indices][trusted]
    want = want[trusted]
    norm = float(np.vdot(want, want))
    if norm > 0:
        alpha = float(np.vdot(got, want)) / norm
        if alpha != 0 and rel_error(got, alpha * want, abs(alpha) * scale(want)) <= TOL:
            if abs(alpha + 1) <= 1e-6:
                return cls.Finding("sign-flipped", scale=-1.0, note="hand = -true value")
            text, hint = cls.describe_scale(alpha)
            return cls.Finding("scaled", scale=alpha, note=f"hand = {text} x true value: {hint}")
    return cls.Finding("unclassified", note="differs on the sampled entries")


def _by_value(step: _Step, names: dict, values: dict, truth: _Truth):
    """A step not named for any forward quantity is right when it equals one (a forward
    value, or a cotangent already computed); otherwise it is not judged."""
    value = np.asarray(step.value, np.float64)
    for keys in names.values():
        for k in keys:
            if values[k].shape == value.shape and rel_error(value, values[k]) <= VALUE_TOL:
                return True, k[1], None, None
    for key, t in truth.cache.items():
        if t is not None and values[key].shape == value.shape:
            err = _compare(value, t)
            if err is not None and err <= TOL:
                return True, f"dL/d{key[1]}", None, None
    return None


__all__ = ["FirstWrong", "first_wrong"]
