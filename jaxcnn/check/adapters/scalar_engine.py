"""Scalar autograd engines written by hand, in the style of Karpathy's micrograd.

A ``Value`` class holds a number (``data``, ``value`` or ``val``), its gradient
(``grad``), the nodes it was made from (``_prev``, ``_children``, ``parents``), and each
operation (``__add__``, ``__mul__``, ``__pow__``, ``tanh``, ``relu``, ``exp``, ...)
stores a ``_backward`` closure on its output that adds the local derivative times
``out.grad`` to its inputs' ``grad``; ``backward()`` sorts the graph topologically, sets
its own grad to 1 and calls every closure in reverse order::

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other), '*')
        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

The attribute names are read from the object (``probe``), not assumed. Each operation
the class defines is one layer, its own row: small expressions (``a * b``, ``a ** 3``,
``1.5 / a``, ``tanh(a)``) over leaves of random float64 data (away from kinks and out
of a domain's edge), one independent graph per entry, the engine's ``backward()``
called on each and every leaf's ``.grad`` read, against ``jax.vjp`` of the same
expression (the exact oracle; the catalogue's ReLU, sigmoid and tanh with their kinks
and classic mistakes). ReLU is also run at exact zeros: any slope in [0, 1] there is a
valid subgradient (micrograd's ``(out.data > 0)`` gives 0). A method of one argument
jaxcnn knows no reference for is checked against finite differences of the engine's
own forward.

Engine-level rows: a node used twice (``a * a``, ``a + a``, a shared subexpression)
must get both contributions (an ``=`` where ``+=`` belongs keeps one:
``missing-accumulation``); a neuron and a two-layer network of neurons (nodes with
several consumers: ``backward`` must run a node's closure after all of them,
``wrong-order`` otherwise); a second forward and backward from the same leaves after
their grads are zeroed must answer the same (``not-reentrant``). Where a row is wrong
the report names a line (``Layer.locate``): the line of the operation's closure that
updates that argument's grad, the ``=`` line of a closure that overwrites (found by
calling the closure a second time and seeing its inputs' grads unchanged), or
``backward``'s own line when running the same closures in a topological order of our
own gives another answer. A rule, not a step-by-step re-run: honest about which line.

A network built on the engine (micrograd's ``nn.py``: ``MLP(nin, nouts)`` with
``parameters()``, ``layers`` of ``neurons`` holding ``w`` and ``b``) is one more layer:
its parameters' gradients of the sum of its outputs over a batch, against ``jax.vjp`` of
the same network (weights read from its neurons; the activation the one whose network
reproduces its forward), or finite differences of its forward when none does.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import textwrap
import types
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxcnn.check.layer import Alternate, InputSet, Layer, Reference

DATA_NAMES = ("data", "value", "val", "v", "x", "item")
GRAD_NAMES = ("grad", "gradient", "g", "_grad", "dx", "d")
PREV_NAMES = ("_prev", "_children", "prev", "children", "parents", "_parents", "_prev_nodes",
              "inputs", "_inputs", "_ctx", "ctx", "deps")
SAMPLES = 6  # independent graphs per row and input set
CONSTANT = 1.5  # the number of a reflected operation (1.5 - a) and of a power's base


class Engine(NamedTuple):
    """What ``probe`` read from a ``Value`` class: the attribute names of the number
    (``data``), its gradient (``grad``), the nodes a node was made from (``prev``, or
    None) and the closure an operation stores on its output (``closure``, or None)."""

    cls: type
    data: str
    grad: str
    prev: str | None
    closure: str | None

    def leaf(self, x: float):
        return self.cls(float(x))

    def value(self, node) -> float:
        return float(getattr(node, self.data))

    def gradient(self, node) -> float:
        g = getattr(node, self.grad)
        return 0.0 if g is None else float(np.asarray(g, np.float64).reshape(()))

    def zero(self, node) -> None:
        setattr(node, self.grad, 0.0)


def is_node(x, cls) -> bool:
    """``x`` is a node of ``cls``: an instance, or one of a class of the same qualified
    name (a file whose operations ``import engine`` again loads a second copy of it)."""
    return isinstance(x, cls) or (type(x).__qualname__ == cls.__qualname__
                                  and type(x).__name__ == cls.__name__)


def _own_methods(cls) -> dict:
    """name -> function defined by ``cls`` or its bases other than ``object``."""
    found = {}
    for base in reversed(cls.__mro__[:-1]):
        for n, v in vars(base).items():
            v = getattr(v, "__func__", v)
            if inspect.isfunction(v):
                found[n] = v
    return found


def _makes_closure(fn) -> bool:
    """Whether ``fn`` defines a function or lambda inside it (a per-operation closure)."""
    return any(isinstance(c, types.CodeType) for c in fn.__code__.co_consts)


def is_engine(cls) -> bool:
    """A hand-written autograd class: a ``backward`` method, ``__add__`` or ``__mul__``, a
    name with ``grad`` in its code, and a ``backward`` of its own or its bases'
    (``probe`` then tells whether its nodes are made so; operations may store a closure
    or an operation object). No JAX."""
    if not inspect.isclass(cls):
        return False
    methods = _own_methods(cls)
    if "backward" not in methods or not ({"__add__", "__mul__"} & set(methods)):
        return False
    # (by the methods' code: inspect.getsource of a class whose module has left
    # sys.modules fails)
    return any("grad" in n.lower() for f in methods.values() for n in _names(f.__code__))


def _names(code: types.CodeType) -> set:
    """The attribute and global names ``code`` and the functions inside it use."""
    found = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            found |= _names(c)
    return found


def _number(v) -> float | None:
    try:
        a = np.asarray(v, np.float64)
    except (TypeError, ValueError):
        return None
    return float(a.reshape(())) if a.size == 1 and not isinstance(v, (str, bool)) else None


def probe(cls) -> Engine:
    """The attribute names of ``cls``'s nodes, read from two leaves and their product.
    ``NotALayer`` (naming what is missing) when ``cls(0.75)`` cannot be made, holds no
    0.75 or no gradient of 0, or the product of two is not a node."""
    from jaxcnn.check.refusals import NotALayer

    try:
        return _probe(cls)
    except Exception as exc:
        raise NotALayer(f"not an autograd engine's node after all: "
                        f"{type(exc).__name__}: {exc}") from exc


def _probe(cls) -> Engine:
    a = cls(0.75)
    names = list(vars(a)) if hasattr(a, "__dict__") else []
    data = next((n for n in (*DATA_NAMES, *names) if _number(getattr(a, n, None)) == 0.75),
                None)
    if data is None:
        raise ValueError(f"{cls.__name__}(0.75) keeps 0.75 in no attribute")
    grad = next((n for n in (*GRAD_NAMES, *[m for m in names if "grad" in m.lower()])
                 if n != data and hasattr(a, n) and (getattr(a, n) is None
                                                     or _number(getattr(a, n)) == 0.0)), None)
    if grad is None:
        raise ValueError(f"{cls.__name__}(0.75) has no gradient attribute set to 0")
    b = cls(-1.25)
    out = a * b if hasattr(cls, "__mul__") else a + b
    if not is_node(out, cls):
        raise ValueError(f"the product of two {cls.__name__} is a {type(out).__name__}")
    prev = closure = None
    for n, v in (vars(out).items() if hasattr(out, "__dict__") else ()):
        if prev is None and isinstance(v, (set, frozenset, tuple, list)) and any(
                x is a for x in v):
            prev = n
        if closure is None and inspect.isfunction(v) and "<locals>" in v.__qualname__:
            closure = n
    prev = prev or next((n for n in PREV_NAMES if hasattr(out, n)), None)
    return Engine(cls, data, grad, prev, closure)


# ------------------------------------------------------------------ rows

class Row(NamedTuple):
    """One expression checked: ``build(*leaves) -> node`` on the engine, ``fun(*arrays)``
    the same in JAX for one sample, ``method``: the operation it checks (its closure's
    lines are named), ``ops``: the methods it runs."""

    name: str
    args: tuple
    build: Callable
    fun: Callable
    domains: tuple  # per argument: "any", "positive", "away" (from 0)
    method: str | None
    ops: tuple
    alternates: Callable | None = None
    shapes: tuple = ()  # per argument, one sample's shape (() for a scalar)
    swapped: Callable | None = None  # the same with its operands swapped (a known wrong
    # forward of a reflected operation: ``__rsub__`` returning ``self - other``)


def _jnp():
    import jax.numpy as jnp

    return jnp


def _wrong(name, grads, note, kind="wrong-derivative") -> Alternate:
    return Alternate(name, grads, False, kind, note)


def _binary_rows() -> list[Row]:
    c = CONSTANT

    def div_alts(args, static, g):
        a, b = args
        return [_wrong("-1/b^2", (None, -g / b ** 2), "d(a/b)/db without its a: -1/b^2 "
                                                      "where -a/b^2 belongs"),
                _wrong("-a/b", (None, -g * a / b), "d(a/b)/db = -a/b: b squared missing")]

    def pow_alts(n):
        def alts(args, static, g):
            a = args[0]
            return [_wrong("n x^n", (g * n * a ** n,), f"n * x**n where n * x**(n-1) belongs "
                                                       f"(n = {n:g}): the exponent not reduced"),
                    _wrong("x^(n-1)", (g * a ** (n - 1),), f"x**(n-1) without the factor n "
                                                            f"(n = {n:g})")]
        return alts

    def add_alts(args, static, g):
        a, b = args
        return [_wrong("the product's derivatives", (g * b, g * a), "other.data and "
                       "self.data, the derivatives of a * b, where a + b's are 1 and 1")]

    def mul_alts(args, static, g):
        return [_wrong("the sum's derivatives", (g, g), "1 and 1, the derivatives of "
                       "a + b, where a * b's are other.data and self.data")]

    return [
        Row("a + b", ("a", "b"), lambda a, b: a + b, lambda a, b: a + b, ("any", "any"),
            "__add__", ("__add__",), add_alts),
        Row("a - b", ("a", "b"), lambda a, b: a - b, lambda a, b: a - b, ("any", "any"),
            "__sub__", ("__sub__",)),
        Row("a * b", ("a", "b"), lambda a, b: a * b, lambda a, b: a * b, ("any", "any"),
            "__mul__", ("__mul__",), mul_alts),
        Row("a / b", ("a", "b"), lambda a, b: a / b, lambda a, b: a / b, ("any", "away"),
            "__truediv__", ("__truediv__",), div_alts),
        Row("a ** b", ("a", "b"), lambda a, b: a ** b, lambda a, b: a ** b,
            ("positive", "any"), "__pow__", ("__pow__",)),
        Row("a ** 3", ("a",), lambda a: a ** 3, lambda a: a ** 3, ("any",), "__pow__",
            ("__pow__",), pow_alts(3)),
        Row("a ** -1", ("a",), lambda a: a ** -1, lambda a: a ** -1, ("away",), "__pow__",
            ("__pow__",), pow_alts(-1)),
        Row("a ** 0.5", ("a",), lambda a: a ** 0.5, lambda a: a ** 0.5, ("positive",),
            "__pow__", ("__pow__",), pow_alts(0.5)),
        Row(f"{c} + a", ("a",), lambda a: c + a, lambda a: c + a, ("any",), "__radd__",
            ("__radd__",)),
        Row(f"{c} - a", ("a",), lambda a: c - a, lambda a: c - a, ("any",), "__rsub__",
            ("__rsub__",), swapped=lambda a: a - c),
        Row(f"{c} * a", ("a",), lambda a: c * a, lambda a: c * a, ("any",), "__rmul__",
            ("__rmul__",)),
        Row(f"{c} / a", ("a",), lambda a: c / a, lambda a: c / a, ("away",), "__rtruediv__",
            ("__rtruediv__",), swapped=lambda a: a / c),
        Row(f"{c} ** a", ("a",), lambda a: c ** a, lambda a: c ** a, ("any",), "__rpow__",
            ("__rpow__",), swapped=lambda a: a ** c),
        Row("-a", ("a",), lambda a: -a, lambda a: -a, ("any",), "__neg__", ("__neg__",)),
        Row("abs(a)", ("a",), abs, lambda a: _jnp().abs(a), ("away",), "__abs__",
            ("__abs__",)),
    ]


def _unary_alts(kind):
    def alts(args, static, g):
        x = args[0]
        out = {"exp": np.exp, "log": np.log}.get(kind, np.exp)(x)
        found = [_wrong("no derivative", (g,), "out.grad passed through unchanged: the "
                                               "local derivative is never multiplied in")]
        if kind == "log":
            found.append(_wrong("x", (g * x,), "multiplied by x where divided by x belongs"))
        if kind == "exp":
            found.append(_wrong("exp at the output", (g * np.exp(out),),
                                "exp(out) where out (= exp(x)) belongs"))
        return found
    return alts


# name (lowercased, underscores dropped) -> (JAX function, domain, catalogue kind)
UNARY = {
    "relu": (None, "away", "relu"), "sigmoid": (None, "any", "sigmoid"),
    "tanh": (None, "any", "tanh"),
    "exp": (lambda x: _jnp().exp(x), "any", None),
    "log": (lambda x: _jnp().log(x), "positive", None),
    "ln": (lambda x: _jnp().log(x), "positive", None),
    "sqrt": (lambda x: _jnp().sqrt(x), "positive", None),
    "sin": (lambda x: _jnp().sin(x), "any", None),
    "cos": (lambda x: _jnp().cos(x), "any", None),
    "softplus": (lambda x: _jnp().logaddexp(x, 0.0), "any", None),
    "square": (lambda x: x * x, "any", None),
    "abs": (lambda x: _jnp().abs(x), "away", None),
    "silu": (lambda x: x / (1 + _jnp().exp(-x)), "any", None),
    "swish": (lambda x: x / (1 + _jnp().exp(-x)), "any", None),
}


def _unary_methods(cls, eng: Engine) -> list[tuple[str, bool]]:
    """(name, whether it ran on a leaf and returned a node) of the methods of ``self``
    alone that store a closure, or have a name of ``UNARY``: the engine's activations
    and functions (``relu``, ``tanh``, ``exp``, ``log``, ``sigmoid``...). One that
    raises is kept (its row is an error: micrograd clones that call ``math.exp`` without
    importing ``math``); one that returns something else than a node is left out."""
    found = []
    for name, fn in _own_methods(cls).items():
        known = name.lower().replace("_", "") in UNARY  # (may build an operation object)
        if name.startswith("__") or name in ("backward", "zero_grad") or not (
                known or _makes_closure(fn)):
            continue
        try:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                             p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            continue
        if len(params) != 1:
            continue
        try:
            out = getattr(eng.leaf(0.5), name)()
        except Exception:
            found.append((name, False))
            continue
        if is_node(out, cls):
            found.append((name, True))
    return found


def _unary_row(name: str) -> Row:
    key = name.lower().replace("_", "")
    fun, domain, _ = UNARY.get(key, (None, "any", None))
    return Row(f"{name}(a)", ("a",), lambda a: getattr(a, name)(), fun, (domain,), name,
               (name,), _unary_alts(key) if key in ("exp", "log", "ln") else None)


def _engine_rows(has: set, act: str | None) -> list[Row]:
    """The engine-level rows the class's operations allow: a node used twice, a shared
    subexpression, a neuron, a two-layer network, a second backward."""
    jnp = _jnp

    def half(args, static, g):  # a node used twice keeping one of two equal contributions
        return [_wrong("one contribution", tuple(g * np.asarray(e) for e in static[0]),
                       "the node gets one of its two equal contributions: an = where += "
                       "belongs in its operation's closure", "missing-accumulation")]

    rows = []
    if "__mul__" in has:
        rows.append(Row("a * a (a used twice)", ("a",), lambda a: a * a, lambda a: a * a,
                        ("any",), "__mul__", ("__mul__",),
                        lambda args, static, g: half(args, ((args[0],),), g)))
    if "__add__" in has:
        rows.append(Row("a + a (a used twice)", ("a",), lambda a: a + a, lambda a: a + a,
                        ("any",), "__add__", ("__add__",),
                        lambda args, static, g: half(args, ((np.ones_like(args[0]),),), g)))
    if not {"__add__", "__mul__"} <= has:
        return rows

    def shared(a, b):  # c's consumers at depths 1 and 3: a breadth-first order fails
        c = a * b
        return c * ((c + a) * b)

    rows.append(Row("c = a * b; c * ((c + a) * b) (shared)", ("a", "b"), shared, shared,
                    ("any", "any"), None, ("__mul__", "__add__")))
    acts = {"tanh": lambda x: jnp().tanh(x), "relu": lambda x: jnp().maximum(x, 0.0),
            "sigmoid": lambda x: 1 / (1 + jnp().exp(-x))}
    jact = acts.get(act, lambda x: x)

    def neuron(w, x, b):
        out = b
        for wi, xi in zip(w, x, strict=True):
            out = out + wi * xi
        return getattr(out, act)() if act else out

    def jneuron(w, x, b):
        return jact(b + jnp().sum(w * x))

    shown = f"{act}(" if act else "("
    rows.append(Row(f"neuron {shown}w . x + b)", ("w", "x", "b"), neuron, jneuron,
                    ("any", "any", "any"), None, ("__add__", "__mul__", *([act] if act
                                                                          else [])),
                    shapes=((4,), (4,), ())))

    def net(w1, b1, w2, b2, x):  # x feeds both hidden neurons, each feeds both outputs,
        # and the first one the sum too (consumers at different depths)
        hidden = [neuron(w1[k], x, b1[k]) for k in range(len(b1))]
        outs = [_linear(w2[j], hidden, b2[j]) for j in range(len(b2))]
        return outs[0] + outs[1] + hidden[0]

    def _linear(w, x, b):
        out = b
        for wi, xi in zip(w, x, strict=True):
            out = out + wi * xi
        return out

    def jnet(w1, b1, w2, b2, x):
        hidden = jact(b1 + w1 @ x)
        return jnp().sum(b2 + w2 @ hidden) + hidden[0]

    uses = ("__add__", "__mul__", *([act] if act else []))
    rows.append(Row("two-layer net with a skip (topological order)",
                    ("w1", "b1", "w2", "b2", "x"), net, jnet, ("any",) * 5, None, uses,
                    shapes=((2, 3), (2,), (2, 2), (2,), (3,))))
    rows.append(Row("second backward after zeroing grads", ("w", "x", "b"), neuron,
                    jneuron, ("any", "any", "any"), "backward", uses,
                    shapes=((4,), (4,), ())))
    return rows


# a number on the left needs the reflected method: without it, `1.5 + a` (and `sum()`
# of nodes, which starts at 0) raises TypeError in the user's own code
# (micrograd has these three and __rtruediv__; a number to the power of a node is rare)
REFLECTED = {"__radd__": "__add__", "__rsub__": "__sub__", "__rmul__": "__mul__",
             "__rtruediv__": "__truediv__"}


def rows_for(cls, eng: Engine, skipped: list | None = None) -> list[Row]:
    """The rows ``cls`` supports: each operation it defines (tried once on leaves), then
    the engine-level ones. Into ``skipped``, ``(row name, why)`` for an operation tried
    that raises (but for an ``assert`` or ``NotImplementedError``, a refusal by design:
    micrograd's power of a ``Value`` exponent), and for a number on the left of an
    operation the class has but whose reflected method (``REFLECTED``) it lacks."""
    methods = _own_methods(cls)
    skipped = [] if skipped is None else skipped
    rows = []
    for row in _binary_rows():
        if row.method not in methods:
            if REFLECTED.get(row.method) in methods:
                skipped.append((row.name, f"not checked: {cls.__name__} defines no "
                                          f"{row.method}, so `{row.name}` raises TypeError"
                                          + (" (as `sum()` of nodes does, which starts at 0)"
                                             if row.method == "__radd__" else "")))
            continue
        try:
            row.build(*(eng.leaf(1.25) for _ in row.args))
        except (AssertionError, NotImplementedError):
            continue  # refused by design (micrograd: "only supporting int/float powers")
        except Exception as exc:
            text = " ".join(f"{type(exc).__name__}: {exc}".split()).rstrip(": ")[:160]
            skipped.append((row.name, f"not checked: `{row.name}` raises {text}"))
            continue
        rows.append(row)
    unary = _unary_methods(cls, eng)
    rows += [_unary_row(n) for n, _ in unary]
    act = next((a for a in ("tanh", "relu", "sigmoid") if (a, True) in unary), None)
    return rows + _engine_rows(set(methods), act)


# ------------------------------------------------------------------ running the engine

def _draw(rng, domain: str, shape) -> np.ndarray:
    if domain == "positive":
        return rng.uniform(0.3, 2.0, shape)
    if domain == "away":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 1.5, shape)
    return rng.uniform(-1.5, 1.5, shape)


def _leaves(eng: Engine, sample: tuple) -> tuple[list, list]:
    """(one list of leaves per argument, what ``build`` is given: a leaf for a scalar,
    else nested lists of leaves of the sample's shape)."""
    flat, given = [], []
    for x in sample:
        x = np.asarray(x, np.float64)
        made = [eng.leaf(v) for v in x.ravel()]
        flat.append(made)
        given.append(made[0] if x.ndim == 0 else
                     np.array(made, dtype=object).reshape(x.shape).tolist())
    return flat, given


def run(eng: Engine, row: Row, args: tuple, passes: int = 1, order: Callable | None = None,
        differentiate: bool = True) -> tuple[np.ndarray, tuple]:
    """(outputs, gradients): each sample (the leading axis) an independent graph built
    by ``row.build``, its ``backward()`` called (``order``: our own ``(node) -> None``
    instead), each leaf's grad read. ``passes=2``: the leaves' grads zeroed and the
    expression built and differentiated again from the same leaves.
    ``differentiate=False``: the outputs alone (no backward: finite differences call the
    forward many times), the gradients zero. Raises what the user's code raises."""
    args = tuple(np.asarray(a, np.float64) for a in args)
    n = len(args[0])
    outs = np.zeros(n)
    grads = tuple(np.zeros(a.shape) for a in args)
    for s in range(n):
        flat, given = _leaves(eng, tuple(a[s] for a in args))
        for p in range(passes):
            if p:
                for leaf in (x for xs in flat for x in xs):
                    eng.zero(leaf)
            out = row.build(*given)
            if not is_node(out, eng.cls):
                raise TypeError(f"{row.name} returns a {type(out).__name__}, not a "
                                f"{eng.cls.__name__}: no gradient can flow back through it")
            outs[s] = eng.value(out)
            if not differentiate:
                break
            (order or (lambda node: node.backward()))(out)
        for j, xs in enumerate(flat):
            grads[j][s] = np.array([eng.gradient(x) for x in xs]).reshape(args[j].shape[1:])
    return outs, grads


def _elementwise(forward_run):
    """A run on samples of one scalar per argument, over arrays of any shape (the
    catalogue's activation inputs): flattened, run, reshaped."""
    def wrapped(args, **kw):
        shape = np.shape(args[0])
        outs, grads = forward_run(tuple(np.ravel(a) for a in args), **kw)
        return outs.reshape(shape), tuple(g.reshape(shape) for g in grads)
    return wrapped


def _nodes(eng: Engine, root) -> list:
    """The graph under ``root`` in a topological order (inputs first), by our own
    depth-first search over ``eng.prev``."""
    topo, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            topo.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in list(getattr(node, eng.prev, ()) or ()):
            if id(child) not in seen:
                stack.append((child, False))
    return topo


def topological(eng: Engine) -> Callable:
    """``(root) -> None``: the engine's own closures run in a topological order of ours,
    the root's grad set to 1 (the reference order for ``wrong-order``)."""
    def backward(root):
        topo = _nodes(eng, root)
        setattr(root, eng.grad, 1.0)
        for node in reversed(topo):
            fn = getattr(node, eng.closure, None)
            if callable(fn):
                fn()
    return backward


# ------------------------------------------------------------------ closures and lines

def overwrites(eng: Engine, method: str, row: Row, rng) -> tuple | None:
    """(closure, its ``=`` line number, the line's text) when ``method``'s closure
    overwrites its inputs' grads: called a second time after ``backward()``, it leaves
    them as they were instead of adding its share again. None when it accumulates, or
    cannot be told (no closure, an input whose share is 0)."""
    if eng.closure is None:
        return None
    try:
        flat, given = _leaves(eng, tuple(_draw(rng, d, ()) for d in row.domains))
        out = row.build(*given)
        fn = getattr(out, eng.closure, None)
        if not callable(fn) or f".{method}.<locals>" not in fn.__qualname__:
            return None
        out.backward()
        first = [eng.gradient(x[0]) for x in flat]
        fn()
        second = [eng.gradient(x[0]) for x in flat]
    except Exception:
        return None
    if not any(f != 0 and math.isclose(f, s, rel_tol=1e-12) for f, s in zip(first, second,
                                                                          strict=True)):
        return None
    line = next(((n, text) for n, text, aug, _ in grad_updates(fn, eng) if not aug),
                (fn.__code__.co_firstlineno, ""))
    return (fn, *line)


def grad_updates(fn, eng: Engine) -> list[tuple[int, str, bool, str]]:
    """(line number, text, whether it is ``+=``, the name whose grad it updates) of each
    statement of ``fn`` (a closure) that writes ``NAME.<grad>``. [] without source."""
    try:
        lines, start = inspect.getsourcelines(fn)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AugAssign):
            targets, aug = [node.target], True
        elif isinstance(node, ast.Assign):
            targets, aug = node.targets, False
        else:
            continue
        for t in targets:
            if isinstance(t, ast.Attribute) and t.attr == eng.grad and isinstance(
                    t.value, ast.Name):
                n = start + node.lineno - 1
                found.append((n, lines[node.lineno - 1].strip(), aug, t.value.id))
    return sorted(found)


def _closure_of(eng: Engine, row: Row, rng):
    """The closure ``row``'s output node holds when it is ``row.method``'s own (a
    delegating ``__sub__`` that returns ``self + (-other)`` holds ``__add__``'s)."""
    if eng.closure is None or row.method is None:
        return None
    try:
        _, given = _leaves(eng, tuple(_draw(rng, d, s) for d, s in zip(
            row.domains, row.shapes or ((),) * len(row.args), strict=True)))
        fn = getattr(row.build(*given), eng.closure, None)
    except Exception:
        return None
    return fn if callable(fn) and f".{row.method}.<locals>" in getattr(
        fn, "__qualname__", "") else None


def _first_wrong(name, line, file, code, check, expected, note, fn=None):
    """The ``FirstWrong`` of ``line``, in ``fn``'s file (an engine imported from another
    file than the one checked), else in ``file``."""
    from jaxcnn.check.steps import FirstWrong

    return FirstWrong(name, line, _file_of(fn, file), code, check.kind, check.scale,
                      expected, (), note=note)


def _file_of(fn, file):
    """The file ``fn``'s code is in (a notebook cell's file name for a cell), else
    ``file``."""
    name = getattr(getattr(getattr(fn, "__func__", fn), "__code__", None), "co_filename", None)
    return name if isinstance(name, str) and not name.startswith("<") else file


def _line_at(fn, line, file) -> str:
    """``line N`` of ``fn``'s code, with its file named where it is not ``file``."""
    from jaxcnn.check.cells import line_text

    return line_text(_file_of(fn, file), line, file)


def _no_closure(eng: Engine, row: Row, file, wrong):
    """The ``def`` line of ``row``'s operation when it stores no closure at all (a tanh
    written without its ``_backward``): nothing flows back through its output. None
    when it stores one, or delegates to other operations."""
    fn = _own_methods(eng.cls).get(row.method) if row.method else None
    if fn is None or _makes_closure(fn) or wrong.kind != "zero" or eng.closure is None:
        return None
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    return _first_wrong(row.method, start, file, lines[0].strip(), wrong,
                        f"d({row.name})/d{wrong.quantity}", f"{row.method} stores no "
                        f"{eng.closure} on its output: no gradient flows back through it", fn)


def locator(eng: Engine, row: Row, file, over: dict, rng) -> Callable:
    """``(checks) -> FirstWrong | None`` for ``row`` (see the module docstring): the
    ``=`` line of an overwriting closure for ``missing-accumulation``, ``backward``'s
    line for ``wrong-order``, else the line of the row's own closure that updates the
    first wrong argument's grad."""
    closure = _closure_of(eng, row, rng)
    params = []
    if row.method:
        fn = _own_methods(eng.cls).get(row.method)
        try:
            params = list(inspect.signature(fn).parameters) if fn else []
        except (TypeError, ValueError):
            params = []

    def locate(checks):
        wrong = next((c for c in checks if c.kind != "correct"), None)
        if wrong is None:
            return None
        if wrong.kind == "missing-accumulation":
            for op in row.ops:
                if op in over:
                    fn, line, code = over[op]
                    return _first_wrong(f"{op}'s closure", line, file, code, wrong,
                                        "+= of its share", f"{op}'s {fn.__name__} assigns "
                                        "(=) the grad it should add to (+=): a node used "
                                        "twice keeps one contribution (found by calling the "
                                        "closure twice)", fn)
        if wrong.kind in ("wrong-order", "not-reentrant"):
            fn = _own_methods(eng.cls).get("backward")
            try:
                lines, start = inspect.getsourcelines(fn)
            except (OSError, TypeError):
                return None
            return _first_wrong("backward", start, file, lines[0].strip(), wrong,
                                "a topological order" if wrong.kind == "wrong-order" else
                                "the same gradient again",
                                "the line of backward() itself: its closures are right "
                                "when run in a topological order of ours"
                                if wrong.kind == "wrong-order" else "backward() itself", fn)
        if closure is None:
            return _no_closure(eng, row, file, wrong)
        j = row.args.index(wrong.quantity) if wrong.quantity in row.args else 0
        who = params[j] if j < len(params) and len(row.args) > 1 else (params[0] if params
                                                                       else None)
        updates = [u for u in grad_updates(closure, eng) if u[3] == who] or \
            grad_updates(closure, eng)
        if not updates:
            return None
        line, code, _, target = updates[0]
        return _first_wrong(f"{target}.{eng.grad}", line, file, code, wrong,
                            f"d({row.name})/d{wrong.quantity}",
                            f"the line of {row.method}'s closure that updates {target}."
                            f"{eng.grad} (named by rule, not re-run step by step)", closure)
    return locate


# ------------------------------------------------------------------ layers

def _reference(row: Row, catalogue_kind: str | None):
    """The exact oracle of ``row`` (``row.fun`` over the leading sample axis), the
    catalogue's for relu, sigmoid and tanh; None when ``row.fun`` is None."""
    if catalogue_kind is not None:
        from jaxcnn.check.catalogue import spec

        return spec(catalogue_kind).reference
    if row.fun is None:
        return None
    import jax

    batched = jax.vmap(row.fun)
    wrong = None
    if row.swapped is not None:
        swapped = jax.vmap(row.swapped)

        def wrong(args, static):
            return [("its operands swapped", swapped(*args), f"{row.method} computes "
                     "self <op> other where other <op> self belongs")]
    return Reference(f"jax: {row.name}", lambda args, static: batched(*args),
                     row.alternates, wrong_forwards=wrong)


def _input_sets(row: Row, catalogue_kind: str | None):
    def sets(seed):
        if catalogue_kind is not None:
            from jaxcnn.check.catalogue import spec

            return [s._replace(name=s.name.replace(" x ", " a ", 1))
                    for s in spec(catalogue_kind).input_sets(seed)]
        rng = np.random.default_rng(seed)
        shapes = row.shapes or ((),) * len(row.args)
        args = tuple(_draw(rng, d, (SAMPLES, *s)) for d, s in zip(row.domains, shapes,
                                                                   strict=True))
        return [InputSet("random", f"{SAMPLES} graphs, random leaves"
                         + ("" if not any(d != "any" for d in row.domains) else
                            " (" + ", ".join(f"{n} {d}" for n, d in zip(
                                row.args, row.domains, strict=True) if d != "any") + ")"),
                         args)]
    return sets


def make_row(eng: Engine, row: Row, file: str | None, over: dict, seed: int = 0,
             wrong_ops: Callable | None = None) -> Layer:
    """The ``Layer`` of one row: forward and backward run the user's engine on float64
    leaves, one graph per sample, the gradient of each output times its cotangent.
    ``over``: method -> what ``overwrites`` found; ``wrong_ops``: see ``_explain``.
    ValueError when the engine cannot build the row's expression."""
    key = row.method.lower().replace("_", "") if row.method else ""
    kind_ = UNARY.get(key, (None, None, None))[2] if row.name == f"{row.method}(a)" \
        else None  # relu, sigmoid, tanh: the catalogue's
    twice = row.method == "backward"
    engine_level = row.method is None or "used twice" in row.name or twice
    runner = functools.partial(run, eng, row)
    if kind_ is not None:
        runner = _elementwise(runner)

    def forward(args, static):
        return runner(args, differentiate=False)[0]

    def vjp(args, static):
        out, grads = runner(args, passes=2 if twice else 1)
        return out, lambda ct: tuple(_per_sample(ct, g) for g in grads)

    def extra(args, static, ct):
        return [(n, kind, note) for n in row.args
                for kind, note in [_explain(eng, row, runner, args, over, wrong_ops, file)]
                if kind]

    rng = np.random.default_rng(seed)
    sets = _input_sets(row, kind_)
    s0 = sets(seed)[0]
    forward(s0.args, ())  # raises here for an expression the engine cannot build
    reference = _reference(row, kind_)
    notes = []
    if reference is None:
        notes.append(f"{row.method}: no reference known for this name; checked against "
                     "finite differences of your engine's own forward")
    if row.method in over and row.method is not None and "used twice" not in row.name:
        fn, line, code = over[row.method]
        notes.append(f"{row.method}'s closure overwrites its inputs' grads "
                     f"({_line_at(fn, line, file)}: "
                     f"`{code}`): right here, where each leaf is used once; see the rows "
                     "of a node used twice")
    if kind_ == "relu":
        notes.append("relu at a = 0 (the boundary sets): any slope in [0, 1] is a valid "
                     "subgradient; micrograd's (out.data > 0) gives 0")
    return Layer(f"{eng.cls.__name__}: {row.name}",
                 kind_ or ("scalar-engine" if engine_level else "scalar-op"), "scalar",
                 row.args, forward, vjp, reference, sets,
                 cotangent=lambda out, s, r: np.ones(np.shape(out)),
                 extra=extra if engine_level else None,
                 file=file, notes=tuple(notes), locate=locator(eng, row, file, over, rng),
                 names=(row.name, eng.cls.__name__))


def _per_sample(ct, g: np.ndarray) -> np.ndarray:
    """Each sample's gradient ``g[s]`` times its output's cotangent ``ct[s]``."""
    ct = np.asarray(ct, np.float64)
    return ct.reshape(ct.shape + (1,) * (g.ndim - ct.ndim)) * g


def _explain(eng: Engine, row: Row, runner, args, over: dict,
             wrong_ops: Callable | None = None, file: str | None = None) -> tuple:
    """(kind, note) for an engine-level row found wrong: a second backward that answers
    differently, an operation of the row whose closure overwrites, an operation whose
    own row is wrong (``wrong_ops() -> set`` of method names: ``unclassified``, the note
    naming it), or ``backward``'s order (our topological order of the same closures
    answers differently); (None, "") when none of these is seen."""
    if row.method == "backward":
        once = runner(args, passes=1)[1]
        again = runner(args, passes=2)[1]
        if any(not np.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(
                once, again, strict=True)):
            return ("not-reentrant", "a second forward and backward from the same leaves, "
                                     "their grads set to 0 in between, answers differently "
                                     "from the first")
    bad = [op for op in row.ops if op in over]
    named = [op for op in row.ops if op in wrong_ops()] if wrong_ops is not None else []
    also = (f"built from {', '.join(named)}, whose own rows are wrong: see them"
            if named else "")
    if bad:
        return ("missing-accumulation", ", ".join(
            f"{op}'s closure assigns (=) where it should add (+=): "
            f"{_line_at(over[op][0], over[op][1], file)}"
            for op in bad) + (f"; also {also}" if also else ""))
    if also:
        return ("unclassified", also)
    if eng.prev is not None and eng.closure is not None:
        try:
            mine = runner(args, passes=1, order=topological(eng))[1]
            theirs = runner(args, passes=1)[1]
        except Exception:
            return (None, "")
        if any(not np.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(
                mine, theirs, strict=True)):
            return ("wrong-order", "backward() does not run the closures in a topological "
                                   "order: the same closures run in one give another "
                                   "gradient (a node's closure ran before all its "
                                   "consumers had added to its grad)")
    return (None, "")


def _wrong_operations(pairs: list, seed: int) -> set:
    """The methods whose operation rows (``pairs``: (row, layer), engine-level ones left
    out) disagree with their exact oracle on their first input set by more than 1e-8."""
    import jax

    from jaxcnn.check.autodiff import vjp

    wrong = set()
    with jax.enable_x64(True):
        for row, layer in pairs:
            if layer.kind == "scalar-engine" or layer.reference is None:
                continue
            s = layer.input_sets(seed)[0]
            try:
                out, back = layer.vjp(s.args, s.static)
                ct = np.ones(np.shape(out))
                ref = vjp(lambda *a, s=s, layer=layer: layer.reference.forward(a, s.static),
                          s.args, ct)
                if any(not np.allclose(h, r, rtol=1e-8, atol=1e-10) for h, r in zip(
                        back(ct), ref, strict=True)):
                    wrong.add(row.method)
            except Exception:
                wrong.add(row.method)
    return wrong


def canonical(cls):
    """The copy of ``cls`` its own file's imports use: a file imported as a module of
    its own (``import engine`` in the file of its operations) defines a second class of
    the same name, and ``isinstance`` checks in the user's code (``other if
    isinstance(other, Value) else Value(other)``) accept only that one. ``cls`` when no
    other module of the same file is loaded."""
    import os
    import sys

    code = next((f.__code__ for f in _own_methods(cls).values()), None)
    if code is None:
        return cls
    where = os.path.realpath(code.co_filename)
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        other = getattr(m, cls.__name__, None)
        if f and other is not cls and inspect.isclass(other) and \
                other.__qualname__ == cls.__qualname__ and os.path.realpath(f) == where:
            return other
    return cls


def from_engine(cls, file: str | None = None, seed: int = 0) -> tuple[list[Layer], list]:
    """(one ``Layer`` per row of ``cls`` (its ``canonical`` copy), skipped rows as (name,
    reason)). ``NotALayer`` when ``cls`` cannot be probed (see ``probe``)."""
    cls = canonical(cls)
    eng = probe(cls)
    rng = np.random.default_rng([seed, 7])
    refused_rows: list = []
    rows = rows_for(cls, eng, refused_rows)
    over = {}
    for row in rows:
        if row.method and row.method not in over and row.method != "backward" and \
                "used twice" not in row.name:
            found = overwrites(eng, row.method, row, rng)
            if found is not None:
                over[row.method] = found
    layers, skipped, pairs, found = [], [], [], []

    def wrong_ops() -> set:  # the operations whose own rows are wrong, found once
        if not found:
            found.append(_wrong_operations(pairs, seed))
        return found[0]

    for row in rows:
        try:
            layers.append(make_row(eng, row, file, over, seed, wrong_ops))
            pairs.append((row, layers[-1]))
        except Exception as exc:  # an error row: the user's operation raised
            from jaxcnn.check.refusals import refused

            skipped.append(refused(f"{cls.__name__}: {row.name}", exc, "scalar"))
    skipped += [(f"{cls.__name__}: {name}", why) for name, why in refused_rows]
    return layers, skipped


# ------------------------------------------------------------------ networks on an engine

NETWORK_NAME = ("mlp", "net", "network", "model")
NETWORK_SIZES = (3, [4, 4, 1])  # nin, nouts: two hidden layers of 4, one output
NETWORK_BATCH = 4
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def is_network(cls) -> bool:
    """A network built on an engine (micrograd's ``MLP``): named like one, with
    ``parameters()`` and ``__call__``. No JAX."""
    methods = _own_methods(cls)
    return inspect.isclass(cls) and "parameters" in methods and "__call__" in methods \
        and any(w in cls.__name__.lower() for w in NETWORK_NAME)


def _build_network(cls):
    nin, nouts = NETWORK_SIZES
    for call in (lambda: cls(nin, list(nouts)), lambda: cls(nin=nin, nouts=list(nouts))):
        try:
            return call()
        except Exception as exc:
            why = exc
    raise ValueError(f"cannot build {cls.__name__}({nin}, {nouts}): "
                     f"{type(why).__name__}: {why}")


def _children(obj) -> list:
    """The list attributes of ``obj`` (its layers, its neurons, its weights)."""
    return [v for v in (vars(obj).values() if hasattr(obj, "__dict__") else ())
            if isinstance(v, list) and v]


def structure(model, eng: Engine, params: list) -> list | None:
    """Per layer, (weights (nout, nin), biases (nout,)) as positions in ``params``: read
    from the model's list of layers, each with a list of neurons holding a list of
    weights and one bias node. None when the model is not laid out so."""
    where = {id(p): i for i, p in enumerate(params)}
    for layers in _children(model):
        out = []
        for layer in layers:
            neurons = next((c for c in _children(layer) if all(
                any(all(is_node(w, eng.cls) for w in ws) for ws in _children(n))
                for n in c)), None)
            if neurons is None:
                break
            w_rows, b_rows = [], []
            for n in neurons:
                ws = next(ws for ws in _children(n) if all(is_node(w, eng.cls) for w in ws))
                b = next((v for v in vars(n).values() if is_node(v, eng.cls)), None)
                if b is None or id(b) not in where or any(id(w) not in where for w in ws):
                    return None
                w_rows.append([where[id(w)] for w in ws])
                b_rows.append(where[id(b)])
            out.append((np.array(w_rows), np.array(b_rows)))
        if out and len(out) == len(layers):
            return out
    return None


def _network_forward(layout, hidden: str, last: str):
    jnp = _jnp()
    act = {"relu": lambda h: jnp.maximum(h, 0.0), "tanh": jnp.tanh,
           "sigmoid": lambda h: 1 / (1 + jnp.exp(-h)), "linear": lambda h: h}

    def forward(args, static):
        p, h = args[0], jnp.asarray(static[0])
        for k, (w, b) in enumerate(layout):
            h = h @ p[w].T + p[b]
            h = act[last if k == len(layout) - 1 else hidden](h)
        return h[:, 0]
    return forward


def _matching(layout, s0: InputSet, user: np.ndarray) -> Reference | None:
    """The first network of ``layout`` (an activation on hidden layers, none or the same
    on the last) whose forward reproduces ``user`` on ``s0`` to 1e-9; None if none."""
    for hidden in ACTIVATIONS:
        for last in dict.fromkeys(("linear", hidden)):
            fwd = _network_forward(layout, hidden, last)
            if np.allclose(np.asarray(fwd(s0.args, s0.static)), user, rtol=1e-9,
                           atol=1e-12):
                return Reference(f"jax: layers of neurons, {hidden} hidden, {last} output",
                                 fwd)
    return None


def from_network(cls, engines, name: str | None = None, file: str | None = None,
                 seed: int = 0) -> Layer | None:
    """The ``Layer`` of a network built on an engine: ``cls(3, [4, 4, 1])``, its
    ``parameters()`` as one argument, a batch of 4 inputs as leaves; the gradient of the
    sum of its outputs (times their cotangents), each sample's backward run from grads
    set to 0. None when its parameters are not nodes of one of ``engines``; ValueError
    when it cannot be built or run."""
    model = _build_network(cls)
    params = list(model.parameters())
    kinds = {type(p) for p in params}
    if not params or len(kinds) != 1 or not any(issubclass(next(iter(kinds)), e)
                                                for e in engines):
        return None
    eng = probe(next(iter(kinds)))
    name = name or cls.__name__

    def run_net(p, X):
        for node, v in zip(params, p, strict=True):
            setattr(node, eng.data, float(v))
        outs, grads = np.zeros(len(X)), np.zeros((len(X), len(params)))
        for s, x in enumerate(X):
            for node in params:
                eng.zero(node)
            out = model([eng.leaf(v) for v in x])
            if isinstance(out, (list, tuple)):
                out = out[0]
            outs[s] = eng.value(out)
            out.backward()
            grads[s] = [eng.gradient(node) for node in params]
        return outs, grads

    def forward(args, static):
        return run_net(args[0], static[0])[0]

    def vjp(args, static):
        out, grads = run_net(args[0], static[0])
        return out, lambda ct: (np.asarray(ct) @ grads,)

    def input_sets(seed):
        rng = np.random.default_rng(seed)
        return [InputSet("random", f"{len(params)} parameters, a batch of {NETWORK_BATCH} "
                         f"inputs ({NETWORK_SIZES[0]},)", (rng.uniform(-1, 1, len(params)),),
                         (rng.uniform(-1, 1, (NETWORK_BATCH, NETWORK_SIZES[0])),))]

    s0 = input_sets(seed)[0]
    user = forward(s0.args, s0.static)
    layout = structure(model, eng, params)
    reference, notes = None, [f"{name}{NETWORK_SIZES}: the gradient of its parameters() "
                              "for the sum of its outputs over the batch"]
    if layout is not None:
        import jax

        with jax.enable_x64(True):
            reference = _matching(layout, s0, user)
    if reference is None:
        notes.append("no network of its neurons' weights with relu, tanh, sigmoid or no "
                     "activation reproduces its forward: checked against finite "
                     "differences of its own forward")
    over = {}
    rng = np.random.default_rng([seed, 7])
    for row in _binary_rows():
        if row.method in ("__add__", "__mul__") and row.method not in over \
                and row.method in _own_methods(eng.cls):
            found = overwrites(eng, row.method, row, rng)
            if found is not None:
                over[row.method] = found

    def extra(args, static, ct):  # an engine whose + or * overwrites explains the row
        note = ", ".join(f"{op}'s closure of {eng.cls.__name__} assigns (=) where it "
                         f"should add (+=): {_line_at(over[op][0], over[op][1], file)}"
                         for op in over)
        return [("parameters", "missing-accumulation", note)] if over else []

    def locate(checks):  # the = line of an overwriting + or *, in the engine's file
        wrong = next((c for c in checks if c.kind == "missing-accumulation"), None)
        if wrong is None or not over:
            return None
        op, (fn, line, code) = next(iter(over.items()))
        return _first_wrong(f"{op}'s closure", line, file, code, wrong, "+= of its share",
                            f"{eng.cls.__name__}.{op}'s "
                            f"{fn.__name__} assigns (=) the grad it should add to (+=)", fn)

    return Layer(f"{name}: parameters", "scalar-network", "scalar", ("parameters",),
                 forward, vjp, reference, input_sets,
                 cotangent=lambda out, s, r: np.ones(np.shape(out)), file=file,
                 notes=tuple(notes), names=(name,), extra=extra, locate=locate)


__all__ = ["Engine", "Row", "from_engine", "from_network", "grad_updates", "is_engine",
           "is_network", "overwrites", "probe", "rows_for", "run", "structure", "topological"]
