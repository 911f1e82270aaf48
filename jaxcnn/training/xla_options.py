"""XLA compiler options for jaxcnn's compiled programs, picked by measurement.

On a CPU, XLA hands dots, reductions and elementwise fusions to the YNNPACK library by
default. For this network's shapes its reductions (the 2x2 max-pool's maximum over the
window axis, the softmax sums) were slower than XLA's own loops: keeping YNNPACK for the
dots only made a per-image SGD step 1.3x faster, a batch-128 step 1.5x and evaluation
1.2x (``experiments/benchmark.py``, measured side by side on this project's 2-core CPU).

``xla_cpu_copy_insertion_use_region_analysis`` lets XLA see that a training step reads
the old dense weights before it writes the new ones in place; without it every step of
a ``lax.scan`` first copied the loop-carried weights (54 KB per seed). Measured on one
pinned core: one seed's per-image SGD 1.10x faster, a group of 4 seeds 1.17x, and the
numbers bit for bit the same (copy insertion moves no arithmetic).

The options are experimental XLA flags, so they are probed once per process (one tiny
compile): a jaxlib that does not know it, or another backend, compiles with XLA's
defaults. The options are part of JAX's compilation-cache key, so a cached program is
never reused with other options.
"""

from __future__ import annotations

import functools

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT",
               "xla_cpu_copy_insertion_use_region_analysis": True}


@functools.cache
def compiler_options() -> dict | None:
    """``CPU_OPTIONS`` when the default backend is a CPU whose XLA accepts them, else None."""
    import jax
    import numpy as np

    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(np.float32(0)).compile()
    except Exception:  # noqa: BLE001 - an unknown flag is INVALID_ARGUMENT, whatever its type
        return None
    return dict(CPU_OPTIONS)


INIT_OPTIONS = {"xla_backend_optimization_level": 1}
"""For ``train.init_state``'s program only: it runs once per run, and at LLVM's level 1
it compiles in 0.34 s instead of 0.88 s (a third of ``jaxcnn train``'s cold start) with
the same parameters bit for bit (tested; level 0 changes the normal samples' last bits)."""


def jit(fn, extra: dict | None = None, **kwargs):
    """``jax.jit(fn, **kwargs)`` with ``compiler_options()`` (and ``extra``)."""
    import jax

    options = (compiler_options() or {}) | (extra or {})
    return jax.jit(fn, compiler_options=options or None, **kwargs)
