"""PyTorch: ``torch.autograd.Function`` subclasses with a hand-written ``backward``.

The form PyTorch's "extending autograd" tutorial teaches (and ``gradcheck`` checks, without
saying where or what the mistake is)::

    class MyLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, weight, bias):      # input (N, in), weight (out, in)
            ctx.save_for_backward(input, weight)
            return input @ weight.t() + bias
        @staticmethod
        def backward(ctx, grad_output):             # one gradient per forward input
            input, weight = ctx.saved_tensors
            return grad_output @ weight, grad_output.t() @ input, grad_output.sum(0)

How the engine sees it (``from_torch_function``; needs ``pip install 'jaxcnn[torch]'``):

* the differentiable arguments are the forward's tensor arguments, float64, shapes found
  by their names (``weight`` ``(out, in)`` as ``F.linear`` has it, or ``(in, out)``;
  ``bias`` ``(out,)``) and a run of the forward; arguments named like a size, a slope or
  a constant get a number (``negative_slope=0.1``, ``constant=3.0``);
* the hand VJP is PyTorch's own: ``Function.apply`` on tensors that require grad, then
  ``torch.autograd.grad`` with the cotangent, which calls your ``backward``; a ``None``
  returned for an input is ``missing``;
* the exact oracle: PyTorch's autograd of your own forward run outside ``apply`` (a
  ``ctx`` stand-in records ``save_for_backward``), float64, through ``jax.pure_callback``;
  when the forward cannot be differentiated that way (an in-place operation on an
  input, a NumPy round trip), central differences of your forward (``oracle:
  numeric``).
"""

from __future__ import annotations

import inspect
import re

import numpy as np

from jaxcnn.check.adapters import probe
from jaxcnn.check.layer import InputSet, Layer, Reference

TORCH_EXTRA = "pip install 'jaxcnn[torch]'"
_WEIGHT = re.compile(r"^(w|weight|weights|kernel|filters?|w\d|mat|matrix)$", re.IGNORECASE)
_BIAS = re.compile(r"^(b|bias|biases|b\d)$", re.IGNORECASE)
_NUMBER = {r"^(negative_?slope|alpha|slope|leak)$": 0.1, r"^(eps|epsilon)$": 1e-5,
           r"^(p|rate)$": 0.0, r"^(dim|axis)$": -1, r"^(stride)$": 1, r"^(pad|padding)$": 0,
           # PyTorch's own MulConstant example: forward(ctx, tensor, constant), no default
           r"^(constant|const|scalar|factor|multiplier)$": 3.0}


def _new_style(cls) -> bool:
    """A Function with its own ``setup_context``: its ``forward`` takes no ``ctx``."""
    return any("setup_context" in vars(b) for b in cls.__mro__
               if not b.__module__.startswith("torch"))


def _forward_params(cls) -> list[inspect.Parameter]:
    params = list(inspect.signature(cls.forward).parameters.values())
    return [p for p in params[0 if _new_style(cls) else 1:]
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _number_for(name: str):
    for pattern, value in _NUMBER.items():
        if re.fullmatch(pattern, name, re.IGNORECASE):
            return value
    return None


def _candidates(params) -> list[tuple[list, list]]:
    """(tensor shapes per tensor argument, numbers per position) candidates."""
    roles = []
    for p in params:
        if p.default is not p.empty and not isinstance(p.default, type(None)):
            roles.append(("number", p.default))
        elif _number_for(p.name) is not None:
            roles.append(("number", _number_for(p.name)))
        elif _WEIGHT.fullmatch(p.name):
            roles.append(("weight", None))
        elif _BIAS.fullmatch(p.name):
            roles.append(("bias", None))
        else:
            roles.append(("input", None))
    b, f, o = probe.BATCH, probe.FEATURES, probe.HIDDEN
    layouts = [  # (input, weight, bias) shapes
        ((b, f), (o, f), (o,)), ((b, f), (f, o), (o,)), ((f,), (o, f), (o,)),
        ((2, 3, 6, 7), (4, 3, 3, 3), (4,)), ((b, f), (b, f), (f,)),
    ] + [(s, s, s[-1:]) for s in probe.LONE_SHAPES[1:]]
    out = []
    for inp, w, bias in layouts:
        shapes = {"input": inp, "weight": w, "bias": bias}
        out.append([(r, shapes.get(r), v) for r, v in roles])
    return out


def from_torch_function(cls, name: str | None = None, file: str | None = None) -> Layer:
    """A ``Layer`` for a ``torch.autograd.Function`` subclass (see the module docstring).
    ImportError naming the extra without torch; ValueError when its forward runs on no
    shapes tried."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"checking a torch.autograd.Function needs PyTorch: {TORCH_EXTRA}"
                          ) from None

    params = _forward_params(cls)
    if not params:
        raise ValueError("its forward takes no inputs besides ctx")

    def call(roles, args, grad: bool):
        tensors, values, it = [], [], iter(args)
        for role, _, number in roles:
            if role == "number":
                values.append(number)
            else:
                t = torch.tensor(np.array(next(it), dtype=np.float64), dtype=torch.float64,
                                 requires_grad=grad)
                tensors.append(t)
                values.append(t)
        if grad:
            return cls.apply(*values), tensors
        with torch.no_grad():
            return cls.apply(*values), tensors

    def to_np(t):
        if t is None:
            return None
        return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)

    rng = np.random.default_rng(0)
    chosen, why = None, ""
    for roles in _candidates(params):
        args = [probe.random_like(rng, shape) for role, shape, _ in roles if role != "number"]
        ok, why_here = probe.runs(lambda r=roles, a=args: to_np(call(r, a, False)[0]))
        if ok:
            chosen = roles
            break
        why = why or why_here
    if chosen is None:
        raise ValueError(f"its forward runs on none of the shapes tried: {why}; check it "
                         "from Python with your own inputs")
    roles = chosen
    arg_names = tuple(p.name for p, (role, _, _) in zip(params, roles, strict=True)
                      if role != "number")
    shapes = [shape for role, shape, _ in roles if role != "number"]

    def forward(args, static):
        out, _ = call(roles, args, False)
        return to_np(out)

    def vjp(args, static):
        out, tensors = call(roles, args, True)

        def back(ct):
            # your backward called as written, with the ctx apply made (out.grad_fn): a
            # gradient of a wrong shape is reported, not refused by autograd
            g = torch.tensor(np.asarray(ct, np.float64))
            with torch.no_grad():
                grads = cls.backward(out.grad_fn, g)
            grads = grads if isinstance(grads, tuple) else (grads,)
            positions = [k for k, (role, _, _) in enumerate(roles) if role != "number"]
            return tuple(to_np(grads[k]) if k < len(grads) else None for k in positions)
        return to_np(out), back

    def input_sets(seed):
        sets = []
        for k in range(2):
            r = np.random.default_rng(seed * 1000 + k)
            args = tuple(probe.random_like(r, s) for s in shapes)
            what = "random " + ", ".join(f"{n} {s}" for n, s in zip(arg_names, shapes,
                                                                     strict=True))
            sets.append(InputSet("random", what, args, ()))
        return sets

    reference = _autograd_reference(cls, roles, torch, input_sets(0)[0].args)
    numbers = [f"{p.name}={v!r}" for p, (role, _, v) in zip(params, roles, strict=True)
               if role == "number"]
    notes = (f"called with {', '.join(numbers)}",) if numbers else ()
    return Layer(name or cls.__name__, "torch", "torch", arg_names, forward, vjp, reference,
                 input_sets, file=file, notes=notes)


class Ctx:
    """A stand-in for the ``ctx`` of ``Function.apply``, to run the user's forward as a
    plain function (autograd then records its operations)."""

    def __init__(self, count: int):
        self.saved_tensors = ()
        self.needs_input_grad = (True,) * count
        self.materialize_grads = True

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def mark_dirty(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        pass

    def set_materialize_grads(self, value):
        self.materialize_grads = value


def _autograd_reference(cls, roles, torch, first_args) -> Reference | None:
    """The exact oracle: PyTorch's autograd of your own forward run outside ``apply``
    (with a ``Ctx`` stand-in), in float64, seen by JAX through ``pure_callback``. None
    (the numeric oracle only) when the forward cannot be differentiated that way (an
    in-place operation on an input, a NumPy round trip) or disagrees with ``apply``."""
    import jax
    import jax.numpy as jnp

    def tensors_of(args, grad):
        return [torch.tensor(np.array(a, dtype=np.float64), dtype=torch.float64,
                             requires_grad=grad) for a in args]

    def values(tensors):
        it = iter(tensors)
        return [number if role == "number" else next(it) for role, _, number in roles]

    def run(vals):
        if _new_style(cls):  # forward(*inputs), then setup_context(ctx, inputs, output)
            return cls.forward(*vals)
        return cls.forward(Ctx(len(roles)), *vals)

    def np_forward(*args):
        with torch.no_grad():
            out = run(values(tensors_of(args, False)))
        return np.asarray(out.detach().numpy(), np.float64)

    def np_vjp(*args_and_ct):
        *args, ct = args_and_ct
        tensors = tensors_of(args, True)
        out = run(values(tensors))
        grads = torch.autograd.grad(out, tensors, torch.tensor(np.asarray(ct, np.float64)),
                                    allow_unused=True)
        return tuple(np.zeros(np.shape(a)) if g is None else g.detach().numpy().astype(
            np.float64) for a, g in zip(args, grads, strict=True))

    try:
        out_shape = np_forward(*first_args).shape
        np_vjp(*first_args, np.ones(out_shape))
        with torch.no_grad():
            applied = cls.apply(*values(tensors_of(first_args, False)))
        if not np.allclose(applied.numpy(), np_forward(*first_args), rtol=1e-12, atol=0):
            return None
    except Exception:
        return None

    def forward(args, static):
        # the output's shape, from the arguments' shapes (under tracing only they are known)
        shape = np_forward(*[np.full(np.shape(a), 0.5) for a in args]).shape

        @jax.custom_vjp
        def f(*a):
            return jax.pure_callback(np_forward, jax.ShapeDtypeStruct(shape, jnp.float64),
                                     *a, vmap_method="sequential")

        def f_fwd(*a):
            return f(*a), a

        def f_bwd(a, g):
            return jax.pure_callback(
                np_vjp, tuple(jax.ShapeDtypeStruct(np.shape(x), jnp.float64) for x in a),
                *a, g, vmap_method="sequential")

        f.defvjp(f_fwd, f_bwd)
        return f(*args)

    return Reference("torch.autograd of your forward (outside apply)", forward)


__all__ = ["TORCH_EXTRA", "from_torch_function"]
