"""The oracle's results on disk (``jaxcnn.check.store``): read back only for the same
computation on the same inputs, never for edited code; a bad file is a miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcnn.check import autodiff, store

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "experiments" / "check_fixtures" / "cs231n_layers.py"


@pytest.fixture
def stored(tmp_path):
    before = store.folder()
    store.enable(tmp_path / "results")
    yield tmp_path / "results"
    store.enable(before)


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.npz"))


def test_a_result_is_read_back_for_the_same_computation_and_inputs(stored, x64):
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    first = autodiff.vjp(lambda v: np.float64(3.0) * v ** 3, (x,), np.ones((2, 3)))[0]
    assert len(_files(stored)) == 1
    autodiff._programs.clear()  # a new process: no compiled program left
    again = autodiff.vjp(lambda v: np.float64(3.0) * v ** 3, (x,), np.ones((2, 3)))[0]
    assert not autodiff._programs  # read from the store: nothing compiled
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, 9.0 * x ** 2, rtol=1e-15)


def test_edited_code_or_other_inputs_never_get_a_stored_result(stored, x64):
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    ct = np.ones((2, 3))
    autodiff.vjp(lambda v: v ** 3, (x,), ct)
    edited = autodiff.vjp(lambda v: v ** 2, (x,), ct)[0]  # same shapes, another computation
    np.testing.assert_allclose(edited, 2.0 * x, rtol=1e-15)
    label = np.array([2, 0])
    picked = autodiff.vjp(lambda v: v[np.arange(2), label], (x,), np.ones(2))[0]
    label = np.array([1, 1])  # an edited constant the function closes over
    again = autodiff.vjp(lambda v: v[np.arange(2), label], (x,), np.ones(2))[0]
    np.testing.assert_array_equal(picked, [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(again, [[0, 1, 0], [0, 1, 0]])
    other = autodiff.vjp(lambda v: v ** 3, (x + 1.0,), ct)[0]  # other input values
    np.testing.assert_allclose(other, 3.0 * (x + 1.0) ** 2, rtol=1e-15)
    other_ct = autodiff.vjp(lambda v: v ** 3, (x,), 2.0 * ct)[0]  # another cotangent
    np.testing.assert_allclose(other_ct, 6.0 * x ** 2, rtol=1e-15)
    assert len(_files(stored)) == 6


def test_a_constant_of_a_jitted_helper_is_part_of_the_key(stored, x64):
    """A ``jax.jit`` helper's closed-over array appears in the outer jaxpr's text by name
    only: editing its value must still give another program and another result."""
    import jax

    def layer(scale):  # the same code each time; only the array's value differs
        @jax.jit
        def helper(v):
            return scale * v ** 2
        return lambda v: helper(v)

    x = np.arange(1.0, 4.0)
    first = autodiff.forward(lambda a, s: layer(np.array([1.0]))(*a), (x,), ())
    autodiff._programs.clear()
    again = autodiff.forward(lambda a, s: layer(np.array([0.5]))(*a), (x,), ())
    np.testing.assert_allclose(first, x ** 2, rtol=1e-15)
    np.testing.assert_allclose(again, 0.5 * x ** 2, rtol=1e-15)
    assert len(_files(stored)) == 2


def test_a_stored_file_of_other_shapes_is_a_miss(stored, x64):
    x = np.arange(4.0)
    right = autodiff.vjp(lambda v: v * v, (x,), np.ones(4))[0]
    (path,) = _files(stored)
    for foreign in ({"a0": np.zeros(3)}, {"a0": np.zeros(4, np.float32)},
                    {"a0": np.zeros(4), "a1": np.zeros(4)}):
        np.savez(path, **foreign)
        autodiff._programs.clear()
        np.testing.assert_array_equal(autodiff.vjp(lambda v: v * v, (x,), np.ones(4))[0],
                                      right)


def test_a_truncated_or_foreign_file_is_a_miss(stored, x64):
    x = np.arange(4.0)
    right = autodiff.vjp(lambda v: v * v, (x,), np.ones(4))[0]
    (path,) = _files(stored)
    path.write_bytes(path.read_bytes()[:20])  # a full disk cut it short
    autodiff._programs.clear()
    np.testing.assert_array_equal(autodiff.vjp(lambda v: v * v, (x,), np.ones(4))[0], right)
    path.write_bytes(b"not an npz at all")
    np.testing.assert_array_equal(autodiff.vjp(lambda v: v * v, (x,), np.ones(4))[0], right)


def test_an_unwritable_folder_turns_the_store_off(tmp_path):
    before = store.folder()
    blocker = tmp_path / "file"
    blocker.write_text("")
    try:
        assert store.enable(blocker / "results") is None
        assert store.folder() is None
    finally:
        store.enable(before)


@pytest.mark.slow
def test_a_warm_check_reads_results_and_reports_the_same(tmp_path):
    """The command line keeps results beside the compilation cache; the second run of the
    same file gives the same JSON, timings aside."""
    env = dict(os.environ, JAXCNN_CACHE_DIR=str(tmp_path / "cache"))
    docs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "jaxcnn", "check", str(FIXTURE), "--json",
                               "--layer", "max_pool"], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr
        docs.append(json.loads(proc.stdout))
    results = list((tmp_path / "cache").glob("jaxlib-*-results"))
    assert len(results) == 1 and _files(results[0])

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if "second" not in k}
        return [strip(v) for v in x] if isinstance(x, list) else x

    assert strip(docs[0]) == strip(docs[1])
