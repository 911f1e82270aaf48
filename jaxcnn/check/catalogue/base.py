"""What every catalogue entry is made of: ``Spec``, the digits, small builders."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference


class Spec(NamedTuple):
    """One layer kind of the catalogue (see the module docstring).

    axis_names: per argument name, the names of its axes; key "out" names the output's.
    static_names: the non-differentiated arguments (a ``bn_param`` dict, labels, ``G``)
    names: per coding style, a regular expression the whole (lower-cased) name must match
        for code to be of this kind: ``"cs231n"`` the ``X`` of ``X_forward``/``X_backward``,
        ``"loss"`` a function ``(x, y, ...) -> (loss, dx)``, ``"module"`` a module-style
        class (``BatchNorm2d``; see ``module_name``), ``"module_loss"`` a module-style
        loss class (``SoftmaxWithLoss``). Discovery asks the entries first
        (``catalogue.match``; a class tries every kind its name matches,
        ``catalogue.matches``), so adding a kind touches only its module.
    layouts: the kinds to try, in order, for code of this name (the first whose reference
        the user's forward reproduces wins): a loss that averages or sums, a leaky ReLU
        with or without its slope argument. Empty: this kind alone.
    signature: the user's positional arguments in order, differentiable and static mixed,
        when not ``arg_names + static_names`` (``word_embedding_forward(x, W)``: ``x``, the
        indices, is static)
    outputs: how many arrays the forward returns before its cache (``lstm_step_forward``:
        ``next_h, next_c, cache``, 2). With several, the layer's output is the outputs
        flattened and concatenated, and the backward gets one cotangent per output (see
        ``join_outputs``): the engine sees one output, as ``jax.vjp`` of a tuple would.
    from_user: ``(user_forward) -> Reference``: for a layer whose forward draws something
        of its own (dropout's mask), a reference that reads it from the user's forward
        ``user_forward(args, static)``; None: ``reference`` as is
    """

    kind: str
    arg_names: tuple[str, ...]
    axis_names: dict
    reference: Reference
    input_sets: Callable[[int], list[InputSet]]
    static_names: tuple[str, ...] = ()
    names: dict | None = None
    layouts: tuple[str, ...] = ()
    signature: tuple[str, ...] | None = None
    outputs: int = 1
    from_user: Callable | None = None


def module_name(core: str) -> str:
    """A ``Spec.names["module"]`` pattern: a class named ``core`` with the usual
    decorations (``Layer_BatchNorm``, ``BatchNorm2d``, ``Dropout_Layer``,
    ``Activation_LeakyReLU``), matched against the lower-cased class name and against it
    with its CamelCase words joined by "_" (``batch_norm2d``)."""
    return rf"(layer_?|activation_?|nn_?|my_?)?(?:{core})(_?(layer|module|[123]d))*"


def join_outputs(outputs) -> np.ndarray:
    """Several outputs as one flat array (C order, concatenated): the layer output the
    engine sees for a ``Spec`` with ``outputs > 1``; works on NumPy and JAX arrays."""
    if isinstance(outputs[0], np.ndarray) and all(isinstance(o, np.ndarray) for o in outputs):
        return np.concatenate([np.ravel(o) for o in outputs])
    import jax.numpy as jnp

    return jnp.concatenate([jnp.ravel(o) for o in outputs])


def split_outputs(flat, shapes) -> list:
    """The inverse of ``join_outputs``: ``flat`` cut into arrays of ``shapes``."""
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(np.asarray(flat)[start:start + size].reshape(shape))
        start += size
    return out


@functools.lru_cache(maxsize=4)
def _digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` embedded MNIST test digits, normalised float64, and labels.

    Cached on ``count``: this is data, not code under check.
    """
    from jaxcnn import data

    ds = data.load("mnist-embedded", train_size=1, test_size=count)
    images = ds.test_images.astype(np.float64) / 255 - 0.5
    images.flags.writeable = False
    return images, np.asarray(ds.test_labels)


def digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Writable copies of ``_digits(count)``."""
    images, labels = _digits(count)
    return images.copy(), labels.copy()


def wrong(name: str, grads: tuple, note: str) -> Alternate:
    """A known wrong formula for a layer's derivative (kind ``wrong-derivative``)."""
    return Alternate(name, grads, False, "wrong-derivative", note)


def batch_of_one(seed: int, x_shape: tuple, param_shapes: tuple, what: str,
                  static: tuple = ()) -> list[InputSet]:
    """One input set holding a batch of ONE sample (N = 1): a squeeze, or code that
    assumes N > 1, shows there. Its own generator, so the other sets keep their values.
    Give it the ranks and settings of another set of the kind: a forward that runs on it
    but refuses that batch of N > 1 is then a bug (code that assumes N = 1), not a
    limitation."""
    rng = np.random.default_rng(seed + 7)
    args = (rng.standard_normal(x_shape),
            *(rng.standard_normal(shape) / np.sqrt(shape[0]) for shape in param_shapes))
    return [InputSet("batch-of-one", f"random x {x_shape}{what}: a batch of one (N = 1)",
                     args, static, note="N = 1: a squeeze or an N > 1 assumption shows")]


def default_static(base: Spec, kind: str, default: tuple, arg_names=None) -> Spec:
    """``base`` for code that takes no static arguments: its inputs whose static part is
    ``default``, with the static part dropped (and the arguments cut to ``arg_names``)."""
    n = len(arg_names or base.arg_names)
    ref = base.reference

    def pad(args):  # a missing bias is a zero bias
        return tuple(args) + tuple(np.zeros(np.shape(args[1])[0]) for _ in range(
            len(base.arg_names) - len(args)))

    def forward(args, static):
        return ref.forward(pad(args), default)

    alternates = kinks = subgradient = None
    if ref.alternates is not None:
        def alternates(args, static, cotangent):
            return [a._replace(grads=a.grads[:n]) for a in
                    ref.alternates(pad(args), default, cotangent)]
    if ref.kinks is not None:
        def kinks(s):
            return ref.kinks(s._replace(args=pad(s.args), static=default))
    if ref.subgradient is not None:
        def subgradient(args, static, cotangent, i, hand, tol):
            return ref.subgradient(pad(args), default, cotangent, i, hand, tol)

    def input_sets(seed):
        return [s._replace(args=s.args[:n], static=()) for s in base.input_sets(seed)
                if s.static == default]

    return Spec(kind, tuple(arg_names or base.arg_names), base.axis_names,
                Reference(ref.name + f" with {default[0]}", forward, alternates, kinks,
                          subgradient), input_sets)


def unbatched(base: Spec, kind: str) -> Spec:
    """``base`` for code that takes ONE sample, its first argument without the batch axis
    (a ``(C, H, W)`` image where ``base`` takes ``(N, C, H, W)``): the reference, its
    known mistakes, kinks and subgradient test run on the sample as a batch of one; the
    input sets are ``base``'s first samples. The other arguments are as in ``base``."""
    ref = base.reference

    def up(args):
        return (args[0][None], *args[1:])

    def down(grads):
        return tuple(None if g is None else (np.asarray(g)[0] if i == 0 else g)
                     for i, g in enumerate(grads))

    def forward(args, static):
        return ref.forward(up(args), static)[0]

    alternates = kinks = subgradient = None
    if ref.alternates is not None:
        def alternates(args, static, cotangent):
            return [a._replace(grads=down(a.grads)) for a in
                    ref.alternates(up(args), static, np.asarray(cotangent)[None])]
    if ref.kinks is not None:
        def kinks(s):
            k = ref.kinks(s._replace(args=up(s.args)))
            return Kinks(down(k.mask), k.stats, k.summary)
    if ref.subgradient is not None:
        def subgradient(args, static, cotangent, i, hand, tol):
            return ref.subgradient(up(args), static, np.asarray(cotangent)[None], i,
                                   np.asarray(hand)[None] if i == 0 else hand, tol)

    def input_sets(seed):
        return [s._replace(args=(np.asarray(s.args[0])[0], *s.args[1:]),
                           name=f"{s.name}: its first sample {np.shape(s.args[0])[1:]}")
                for s in base.input_sets(seed)]

    axis_names = {k: (v[1:] if k in ("out", base.arg_names[0]) and v else v)
                  for k, v in base.axis_names.items()}
    return Spec(kind, base.arg_names, axis_names,
                Reference(ref.name + ", one sample", forward, alternates, kinks,
                          subgradient), input_sets, base.static_names)


def permuted(base: Spec, kind: str, perm: tuple[int, ...]) -> Spec:
    """``base`` for code whose first argument is ``base``'s with its axes in another
    order: the user's ``x`` is ``base``'s ``x.transpose(perm)`` (``(0, 2, 3, 1)``: NHWC
    for an NCHW ``base``), and so is its output. The reference, its known mistakes,
    kinks and subgradient test run in ``base``'s layout; the input sets are ``base``'s,
    transposed."""
    ref = base.reference
    inv = tuple(int(i) for i in np.argsort(perm))

    def to_base(a):
        return a.transpose(inv)

    def to_user(a):
        return a.transpose(perm)

    def back(args):
        return (to_base(args[0]), *args[1:])

    def grads_user(grads):
        return tuple(None if g is None else (to_user(np.asarray(g)) if i == 0 else g)
                     for i, g in enumerate(grads))

    def forward(args, static):
        return to_user(ref.forward(back(args), static))

    alternates = kinks = subgradient = None
    if ref.alternates is not None:
        def alternates(args, static, cotangent):
            return [a._replace(grads=grads_user(a.grads)) for a in
                    ref.alternates(back(args), static, to_base(np.asarray(cotangent)))]
    if ref.kinks is not None:
        def kinks(s):
            k = ref.kinks(s._replace(args=back(s.args)))
            return Kinks(grads_user(k.mask), k.stats, k.summary)
    if ref.subgradient is not None:
        def subgradient(args, static, cotangent, i, hand, tol):
            return ref.subgradient(back(args), static, to_base(np.asarray(cotangent)), i,
                                   to_base(np.asarray(hand)) if i == 0 else hand, tol)

    def input_sets(seed):
        return [s._replace(args=(to_user(np.asarray(s.args[0])), *s.args[1:]),
                           name=f"{s.name}, axes {perm}") for s in base.input_sets(seed)]

    axis_names = {k: (tuple(v[i] for i in perm) if k in ("out", base.arg_names[0]) and v
                      and len(v) == len(perm) else v) for k, v in base.axis_names.items()}
    return Spec(kind, base.arg_names, axis_names,
                Reference(f"{ref.name}, axes {perm}", forward, alternates, kinks, subgradient),
                input_sets, base.static_names)
