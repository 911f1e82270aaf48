"""Running within an address-space limit (``ulimit -v``, ``RLIMIT_AS``).

Out of memory in Python (NumPy's ``MemoryError``) or in XLA's allocator
(``RESOURCE_EXHAUSTED``) is caught where it is raised (``jaxcnn.cli``). Under an
address-space limit, though, XLA's C++ code fails outside Python: ``std::bad_alloc``
aborts the process (exit 134) or a thread that cannot get its stack crashes it (139),
with nothing to catch. So, when such a limit is set:

* ``fit_malloc_to_limit()`` caps glibc's malloc at one arena (``mallopt(M_ARENA_MAX,
  1)``): each thread's arena reserves 64 MiB of address space, and XLA's thread pools
  made the reservations alone about 1.5 GiB. A default ``jaxcnn train`` then peaks at
  about 610 MiB of address space instead of 1.5 GiB (measured: VmPeak 626 MiB for one
  seed, 789 MiB for 512 seeds of 500 images, one arena; 1,563 / 1,663 MiB with glibc's
  default arenas).
* ``check_train(...)`` estimates, before JAX's runtime allocates anything, the address
  space a training run needs, and refuses a run that cannot fit (``MemoryLimitError``,
  one line: how much it needs, the limit, and what to lower). The estimate stays above
  the measured peaks (one arena, 200 training / 800 test images): 64 filters x 64
  seeds peaked at 784 MiB (estimate 820), 32 filters x 256 seeds at 878 MiB (1,001);
  runs at 390 seeds under the 781 MiB the estimate allows, and a default run under
  654 MiB, finished.

Without a limit nothing changes. Linux (glibc) only; elsewhere both are no-ops.
"""

from __future__ import annotations

import math
import resource
import sys

from jaxcnn.errors import JaxcnnError

M_ARENA_MAX = -8  # glibc's mallopt parameter
MiB = 1 << 20
# measured peaks of `jaxcnn train` with one malloc arena (see above): the runtime and one
# seed, and what each further seed of 8 filters adds (2 CPU devices)
BASE_BYTES = 640 * MiB
PER_SEED_BYTES = 0.35 * MiB
IMAGE_BYTES = 28 * 28 * 5  # uint8 on the host, float32 on the device


class MemoryLimitError(JaxcnnError):
    """The run cannot fit in the address space that ``ulimit -v`` allows."""


def address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` in bytes, or None when unlimited (or unknown)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError, AttributeError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


def fit_malloc_to_limit() -> None:
    """Under an address-space limit, one malloc arena for all threads (glibc only)."""
    if address_space_limit() is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc
        pass


def train_bytes(seeds: int, filters: int, images: int) -> int:
    """Estimated peak address space of a training run, in bytes."""
    return int(BASE_BYTES + max(seeds - 1, 0) * PER_SEED_BYTES * filters / 8
               + images * IMAGE_BYTES)


def check_train(seeds: int, filters: int, images: int) -> None:
    """Raise ``MemoryLimitError`` when a run of ``seeds`` seeds with ``filters`` filters
    on ``images`` training and test images cannot fit under ``ulimit -v``."""
    limit = address_space_limit()
    if limit is None:
        return
    need = train_bytes(seeds, filters, images)
    if need <= limit:
        return
    fits = math.floor((limit - train_bytes(1, filters, images)) / (PER_SEED_BYTES * filters / 8))
    if seeds > 1 and fits >= 1:
        lower = f"train at most about {fits + 1} seeds at once (--seeds), or raise the limit"
    else:
        lower = (f"raise the limit to at least {math.ceil(train_bytes(1, 8, images) / MiB):,} "
                 "MiB (`ulimit -v`): JAX's runtime alone needs about "
                 f"{BASE_BYTES // MiB} MiB")
    raise MemoryLimitError(
        f"out of memory: this run needs about {math.ceil(need / MiB):,} MiB of address space "
        f"but `ulimit -v` allows {limit // MiB:,} MiB; {lower}")


def check_runtime(images: int = 0) -> None:
    """Raise ``MemoryLimitError`` when JAX's runtime and ``images`` test images cannot fit
    under ``ulimit -v`` (``jaxcnn evaluate``, ``plot``: one model at a time)."""
    limit = address_space_limit()
    need = train_bytes(1, 8, images)
    if limit is None or need <= limit:
        return
    raise MemoryLimitError(
        f"out of memory: this command needs about {math.ceil(need / MiB):,} MiB of address "
        f"space but `ulimit -v` allows {limit // MiB:,} MiB; raise the limit (JAX's runtime "
        f"alone needs about {BASE_BYTES // MiB} MiB)")
