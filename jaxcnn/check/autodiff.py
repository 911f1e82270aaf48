"""The exact oracle's machinery: ``jax.vjp`` of a reference forward in float64.

Used by the engine, the chain and the catalogue; it knows no layer.

Every ``vjp`` is one compiled XLA program, not one program per primitive as eager
``jax.vjp`` runs it: a check needs a few hundred small float64 VJPs, and compiling
(or reading from the persistent cache) one small program per primitive and shape was
most of a check's time. The programs are kept for the process, keyed on the traced
computation itself (its jaxpr as text, the values of the constants it closes over, and
the argument shapes and dtypes), never on a function object: a function edited in a
notebook traces to another key and is compiled afresh; the same reference on the same
shapes (another input set, an alternate, the chain) reuses its program. Several VJPs
that are needed together are one program (``vjps``, ``forward_and_vjp``).

When ``store`` is enabled (the command line enables it), each program's *result* is
also kept on disk under that key, the argument values and the versions and options
that ran it (``_result_key``), and read back instead of compiling on a later run.

The VJP helpers (``vjp``, ``vjps``, ``forward_and_vjp``, ``vjp_many``) look their
results up before that, under a key that needs no trace of the VJP: the jaxpr of each
differentiated function's *forward* alone (``forward_keys``; tracing ``jax.vjp`` to get
the whole program's text was half of a warm check), which helper (this module's
source) and the same versions, options and argument values. ``jax.vjp`` of a function
is a function of its forward jaxpr (JAX differentiates the traced primitives, nothing
else), except for custom differentiation rules, which the forward's text names but does
not spell out: a forward with a ``custom_jvp`` or ``custom_vjp`` (or a callback) gets no
such key, and is looked up as before, by its whole traced program, in which JAX has
inlined the rules.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

from jaxcnn.check import store

PROGRAMS = 512  # compiled programs kept per process (least recently used go first)
_programs: OrderedDict = OrderedDict()
_lock = threading.Lock()
# A jaxpr whose text names a Python object rather than spelling out the computation (a
# callback, a function in a parameter) is not a key: such a program is run as traced
# (eagerly, primitive by primitive) and never kept. A ``custom_jvp_call`` or
# ``custom_vjp_call`` left in a program's jaxpr is a key: its rules are names in the
# text, but running the program (nothing differentiates it any more) computes only its
# ``call_jaxpr``, spelt out; wherever the program differentiates through one, JAX traced
# the rule into the jaxpr, spelt out too (an edited rule is another text, another key).
UNKEYED = ("callback", "<function", " at 0x")


# The oracles' programs are small and run once or twice: compile them cheaply. XLA's
# LLVM back end at level 0, without its expensive passes, compiled a check's programs
# about 1.5x faster; XLA's older elemental emitters for fusions instead of its MLIR
# fusion emitters, 2.3x faster again (the CS231n 5-layer file's 96 programs: 5.9 s ->
# 2.5 s of compiling; experiments/check_benchmark.py). Every verdict stays the same.
# One LLVM module per program instead of XLA's parallel codegen split into many: each
# split part pays its own setup, and these programs are too small to gain from compiling
# the parts on several threads (the CS231n assignment-2 and RNN files: about a fifth less
# CPU time for a whole cold check, 2 cores). It changes the last bits of some oracle
# values (a different module boundary, other LLVM decisions), never a verdict over the
# fixtures and the real files of experiments/results/check_benchmark.md.
CPU_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
               "xla_cpu_use_fusion_emitters": False, "xla_cpu_parallel_codegen_split_count": 1}


def _accepted(options: dict) -> bool:
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(np.float32(0)).compile()
    except Exception:  # noqa: BLE001 - an unknown option is INVALID_ARGUMENT, any type
        return False
    return True


@functools.cache
def compiler_options() -> dict | None:
    """``CPU_OPTIONS`` when the default backend is a CPU whose XLA accepts them (probed
    once per process with a tiny compile), else those of them it accepts (each probed),
    else None (XLA's defaults)."""
    if jax.default_backend() != "cpu":
        return None
    if _accepted(CPU_OPTIONS):
        return dict(CPU_OPTIONS)
    kept = {k: v for k, v in CPU_OPTIONS.items() if _accepted({k: v})}
    return kept or None


def device_array(a) -> jax.Array:
    """``a`` as a JAX array, the same as ``jnp.asarray(a)``: a NumPy array is transferred
    with ``jax.device_put``, which compiles nothing (``jnp.asarray`` compiles a small
    staging program per shape and dtype the first time: nine of ``jaxcnn verify``'s
    programs); anything else goes through ``jnp.asarray``."""
    if isinstance(a, np.ndarray):
        return jax.device_put(a)
    return jnp.asarray(a)


def as_np(x) -> np.ndarray:
    return np.array(x, dtype=np.float64, copy=True)


def _key(text: str, closed, flat_args) -> str:
    """The computation itself: the jaxpr's text (it names shapes, dtypes and every
    primitive's parameters) and the bytes of every constant, its own and those of the
    jaxprs nested in it (a ``jax.jit`` helper's closed-over array appears in the text by
    name only: an edited value must give another key)."""
    digest = hashlib.sha256(text.encode())
    _digest_arrays(digest, _constants(closed))
    for a in flat_args:
        digest.update(str((np.shape(a), jnp.result_type(a).str)).encode())
    return digest.hexdigest()


def _digest_arrays(digest, arrays) -> None:
    """Each array's shape, dtype and bytes into ``digest``, in order."""
    for a in arrays:
        a = np.asarray(a)
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(np.ascontiguousarray(a).tobytes())


def _constants(closed) -> list:
    """The constants of ``closed`` and of every jaxpr nested in its equations' parameters
    (``pjit``'s, ``cond``'s branches, ``scan``'s body, ...), and any array parameter, in
    a fixed order."""
    out: list = []
    seen: set = set()

    def param(value):
        if isinstance(value, jax.extend.core.ClosedJaxpr):
            out.extend(value.consts)
            walk(value.jaxpr)
        elif isinstance(value, jax.extend.core.Jaxpr):
            walk(value)
        elif isinstance(value, (tuple, list)):
            for v in value:
                param(v)
        elif isinstance(value, (np.ndarray, jax.Array)):
            out.append(value)

    def walk(jaxpr):
        if id(jaxpr) in seen:
            return
        seen.add(id(jaxpr))
        for eqn in jaxpr.eqns:
            for name in sorted(eqn.params):
                param(eqn.params[name])

    out.extend(closed.consts)
    walk(closed.jaxpr)
    return out


_eager = [0]  # > 0 inside ``eagerly()``


@contextlib.contextmanager
def eagerly():
    """Within it (in every thread), ``compiled`` runs its function eagerly, primitive by
    primitive, as ``jax.vjp`` runs: for a process that runs many small hand-written JAX
    functions eagerly anyway (``jaxcnn verify``), whose primitive programs the oracles
    then share; compiling each oracle whole made ``verify`` slower (168 programs, not
    155; experiments/check_benchmark.py)."""
    with _lock:
        _eager[0] += 1
    try:
        yield
    finally:
        with _lock:
            _eager[0] -= 1


def compiled(fun: Callable, *args, stored: bool = True):
    """``fun(*args)`` (arrays in, a pytree of arrays out) run as one jit-compiled program,
    kept per computation (see the module docstring). A ``fun`` that cannot be traced
    (Python control flow on values) runs eagerly, primitive by primitive. ``stored=False``:
    its result is neither read from nor written to ``store`` (the caller keeps it under a
    key of its own, ``recall``)."""
    if _eager[0]:
        return fun(*jax.tree_util.tree_map(device_array, args))
    flat, tree = jax.tree_util.tree_flatten(args)
    try:
        closed, out_shape = jax.make_jaxpr(
            lambda *f: fun(*jax.tree_util.tree_unflatten(tree, f)), return_shape=True)(*flat)
    except Exception:  # noqa: BLE001 - not traceable (Python control flow on values in a
        # user's forward): eagerly, as it runs, with its own errors
        return fun(*jax.tree_util.tree_map(device_array, args))
    text = str(closed.jaxpr)
    if any(word in text for word in UNKEYED):  # run as traced, never kept
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape),
                                            jax.extend.core.jaxpr_as_fun(closed)(*flat))
    key = _key(text, closed, flat)
    stored_as = _result_key(key, flat) if stored and store.folder() is not None else None
    if stored_as is not None:
        outs = store.get(stored_as)
        want = jax.tree_util.tree_leaves(out_shape)
        if outs is not None and len(outs) == len(want) and all(
                o.shape == w.shape and o.dtype == w.dtype for o, w in zip(outs, want, strict=True)):
            return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outs)
    with _lock:
        program = _programs.get(key)
        if program is not None:
            _programs.move_to_end(key)
    if program is None:
        program = jax.jit(jax.extend.core.jaxpr_as_fun(closed),
                          compiler_options=compiler_options())
        with _lock:
            _programs[key] = program
            while len(_programs) > PROGRAMS:
                _programs.popitem(last=False)
    out = program(*flat)
    if stored_as is not None:
        store.put(stored_as, [np.asarray(o) for o in out])
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), out)


@functools.cache
def _platform() -> str:
    import jaxlib

    return (f"jax {jax.__version__} jaxlib {jaxlib.__version__} {jax.default_backend()} "
            f"{sorted((compiler_options() or {}).items())} "
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}")  # e.g. fast math: other numbers


def _result_key(program_key: str, flat_args) -> str:
    """The key of one result in ``store``: the program (``_key``), the argument values,
    the versions, backend, compiler options and XLA_FLAGS that ran it."""
    digest = hashlib.sha256(program_key.encode())
    digest.update(_platform().encode())
    _digest_arrays(digest, flat_args)
    return digest.hexdigest()


# A forward whose jaxpr names these does not determine its VJP (a custom rule is kept as
# a function) or its values (a callback): no forward key (``forward_keys``).
UNKEYED_FORWARD = (*UNKEYED, "custom_jvp_call", "custom_vjp_call")


@functools.cache
def source_digest(path: str) -> str:
    """The digest of the source file ``path`` (a module's ``__file__``): the code that
    combines the forwards into a result (a VJP helper, the chain's) is part of its key."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:  # no source to read: a key no other process computes
        return f"unreadable {os.getpid()} {id(path)}"


def forward_keys(pairs) -> tuple[list[str], list] | None:
    """For each ``(fun, args)`` of ``pairs``, ``fun``'s forward at ``args`` as a key
    (``_key`` of its jaxpr), and its output avals; None when one cannot be traced or
    names a custom rule or a callback (``UNKEYED_FORWARD``), or without a store (or inside
    ``eagerly()``): then nothing is recalled."""
    if store.folder() is None or _eager[0]:
        return None
    keys, avals = [], []
    for fun, args in pairs:
        try:
            closed = jax.make_jaxpr(fun)(*args)
        except Exception:  # noqa: BLE001 - not traceable: the caller runs it as before
            return None
        text = str(closed.jaxpr)
        if any(word in text for word in UNKEYED_FORWARD):
            return None
        keys.append(_key(text, closed, args))
        avals.append(closed.out_avals)
    return keys, avals


def recall(helper: str, keys: list[str], arrays: list, types: list
           ) -> tuple[str, list | None]:
    """``(key, stored)``: the ``store`` key of the result of ``helper`` (a name and the
    digest of its source) applied to the forwards ``keys`` (``forward_keys``) and the
    argument values ``arrays``, and the arrays stored under it when they have exactly the
    ``types`` expected, ``(shape, dtype)`` each (else None: compute it, then ``keep`` it)."""
    recipe = "\n".join([helper, f"x64={jax.config.jax_enable_x64}", *keys])
    key = _result_key(hashlib.sha256(recipe.encode()).hexdigest(), arrays)
    stored = store.get(key)
    if stored is None or len(stored) != len(types) or any(
            (a.shape, a.dtype) != (tuple(s), np.dtype(d))
            for a, (s, d) in zip(stored, types, strict=True)):
        return key, None
    return key, stored


def types_of(arrays) -> list[tuple]:
    """``(shape, dtype)`` of each of ``arrays``: what their gradients have."""
    return [(np.shape(a), np.asarray(a).dtype) for a in arrays]


def keep(key: str | None, arrays: list) -> None:
    """Store ``arrays`` under ``key`` (from ``recall``; None: nowhere)."""
    if key is not None:
        store.put(key, [np.asarray(a) for a in arrays])


def _recalled(helper: str, funs, args: tuple, arrays: list, types) -> tuple:
    """``recall`` for this module's VJP helper ``helper`` applied to ``funs`` at ``args``
    (``arrays``: all of the helper's argument values; ``types(output avals of each
    forward)``: the stored arrays' ``(shape, dtype)``, or None for a result not stored). ``(None,
    None)`` when the forwards have no key (``forward_keys``) or the result is not stored."""
    forwards = forward_keys([(fun, args) for fun in funs])
    if forwards is None:
        return None, None
    keys, avals = forwards
    want = types(avals)
    if want is None:  # a result this helper does not store
        return None, None
    return recall(f"{helper} {source_digest(__file__)}", keys, arrays, want)


def vjp(fun: Callable, args: tuple, cotangent) -> tuple:
    """``jax.vjp`` of ``fun(*args)`` at float64 ``args``, as float64 NumPy arrays."""
    args = tuple(np.asarray(a, np.float64) for a in args)  # NumPy in: no staging program
    cotangent = np.asarray(cotangent)

    def pull(a, ct):
        out, pullback = jax.vjp(fun, *a)
        return pullback(ct.astype(out.dtype))

    key, stored = _recalled("vjp", (fun,), args, [*args, cotangent],
                            lambda avals: types_of(args))
    if stored is not None:
        return tuple(as_np(g) for g in stored)
    grads = compiled(pull, args, cotangent, stored=key is None)
    keep(key, list(grads))
    return tuple(as_np(g) for g in grads)


def vjps(funs, args: tuple, cotangent) -> list[tuple]:
    """``vjp(fun, args, cotangent)`` for each of ``funs`` (the same arguments and output
    shape), as one compiled program: a reference's alternates (its tie rules, say) cost
    one compile, not one each."""
    args = tuple(np.asarray(a, np.float64) for a in args)
    cotangent = np.asarray(cotangent)
    funs = tuple(funs)

    def pull(a, ct):
        grads = []
        for fun in funs:
            out, pullback = jax.vjp(fun, *a)
            grads.append(pullback(ct.astype(out.dtype)))
        return grads

    key, stored = _recalled("vjps", funs, args, [*args, cotangent],
                            lambda avals: types_of(args) * len(funs))
    if stored is not None:
        n = len(args)
        return [tuple(as_np(g) for g in stored[i * n:(i + 1) * n]) for i in range(len(funs))]
    grads = compiled(pull, args, cotangent, stored=key is None)
    keep(key, [g for gs in grads for g in gs])
    return [tuple(as_np(g) for g in gs) for gs in grads]


def _forward_and_vjp_types(args: tuple, cotangent: np.ndarray, avals) -> list | None:
    """The types of ``forward_and_vjp``'s stored arrays: the output's, then (when the
    cotangent has its shape) each argument's; None for a forward of several outputs."""
    if len(avals[0]) != 1:
        return None
    out = (tuple(avals[0][0].shape), avals[0][0].dtype)
    return [out] + (types_of(args) if out[0] == cotangent.shape else [])


def forward_and_vjp(fun: Callable, args: tuple, cotangent) -> tuple[np.ndarray, tuple | None]:
    """``(fun(*args), vjp(fun, args, cotangent))`` as one compiled program (``jax.vjp``
    computes the forward anyway); the VJP is None when ``cotangent``'s shape is not the
    output's (a forward whose shape differs from the user's)."""
    args = tuple(np.asarray(a, np.float64) for a in args)
    cotangent = np.asarray(cotangent)

    def pull(a, ct):
        out, pullback = jax.vjp(fun, *a)
        if out.shape != ct.shape:
            return out, None
        return out, pullback(ct.astype(out.dtype))

    key, stored = _recalled("forward_and_vjp", (fun,), args, [*args, cotangent],
                            lambda avals: _forward_and_vjp_types(args, cotangent, avals))
    if stored is not None:
        out, grads = stored[0], (tuple(stored[1:]) if len(stored) > 1 else None)
    else:
        out, grads = compiled(pull, args, cotangent, stored=key is None)
        keep(key, [out, *(grads or ())])
    return as_np(out), None if grads is None else tuple(as_np(g) for g in grads)


def forward(reference_forward: Callable, args: tuple, static: tuple) -> np.ndarray:
    """``reference_forward(args, static)`` at float64 ``args`` (one compiled program, see
    the module docstring), as a float64 NumPy array."""
    args = tuple(np.asarray(a, np.float64) for a in args)
    return as_np(compiled(lambda *a: reference_forward(a, static), *args))


def bind(forward: Callable, static: tuple) -> Callable:
    """``f(*args) = forward(args, static)``: a function of the differentiable arrays."""
    def bound(*args):
        return forward(args, static)
    return bound


def vjp_many(fun: Callable, args: tuple, cotangents) -> tuple:
    """``jax.vjp`` of ``fun`` for a stack of cotangents (K, *out): one linearisation,
    the pullback vmapped. Returns per argument a (K, *arg) float64 NumPy array."""
    args = tuple(np.asarray(a, np.float64) for a in args)
    cotangents = np.asarray(cotangents)

    def pull(a, cts):
        out, pullback = jax.vjp(fun, *a)
        return jax.vmap(pullback)(cts.astype(out.dtype))

    key, stored = _recalled("vjp_many", (fun,), args, [*args, cotangents],
                            lambda avals: [((cotangents.shape[0], *a.shape), a.dtype)
                                           for a in args])
    if stored is None:
        stored = compiled(pull, args, cotangents, stored=key is None)
        keep(key, list(stored))
    return tuple(as_np(g) for g in stored)
