"""Shared test helpers. Keep this file small: only fixtures/helpers several modules use.

* ``x64`` fixture: runs a test with ``jax_enable_x64`` on, scoped with the
  ``jax.enable_x64`` context manager so the switch never leaks into other tests
  (its teardown checks that). Exactness (1e-12) is only asserted in float64.
* ``rel_err(got, want)``: max |got - want| / max |want|, the error measure of
  ``jaxcnn.verify``; ``tree_rel_err`` takes the worst leaf of two pytrees.

Test modules import the helpers with ``from conftest import rel_err`` (pytest puts
``tests/`` on ``sys.path``, as ``idx_helpers`` relies on too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture
def x64():
    """Enable float64 for the test body only; fail loudly if the switch leaks out."""
    before = jnp.zeros(1).dtype
    with jax.enable_x64(True):
        assert jnp.zeros(1).dtype == jnp.float64
        yield
    assert jnp.zeros(1).dtype == before, "jax_enable_x64 leaked out of the x64 fixture"


def rel_err(got, want) -> float:
    """Max absolute difference relative to max |want| (absolute when want is all zero)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.max(np.abs(got - want), initial=0.0))
    scale = float(np.max(np.abs(want), initial=0.0))
    return err / scale if scale > 0 else err


def tree_rel_err(got, want) -> float:
    """The worst ``rel_err`` over matching leaves of two pytrees of the same structure."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    return max(rel_err(g, w) for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want),
                                              strict=True))
