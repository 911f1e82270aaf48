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


def _helpers(x, ct):
    """Each VJP helper on ``x``, ``ct`` (and two cotangents for ``vjp_many``)."""
    def f(v):
        return np.float64(2.0) * v ** 3

    return [autodiff.vjp(f, (x,), ct)[0],
            *[g[0] for g in autodiff.vjps([f, lambda v: v ** 2], (x,), ct)],
            *autodiff.forward_and_vjp(f, (x,), ct)[0:1],
            autodiff.forward_and_vjp(f, (x,), ct)[1][0],
            autodiff.vjp_many(f, (x,), np.stack([ct, 2.0 * ct]))[0]]


def test_the_vjp_helpers_recall_a_result_by_the_forward_without_tracing_the_vjp(
        stored, x64, monkeypatch):
    x, ct = np.linspace(-1.0, 1.0, 6).reshape(2, 3), np.ones((2, 3))
    first = _helpers(x, ct)
    np.testing.assert_allclose(first[0], 6.0 * x ** 2, rtol=1e-15)
    np.testing.assert_allclose(first[2], 2.0 * x, rtol=1e-15)
    np.testing.assert_allclose(first[3], 2.0 * x ** 3, rtol=1e-15)
    np.testing.assert_allclose(first[5][1], 12.0 * x ** 2, rtol=1e-15)

    def refuse(*args, **kwargs):
        raise AssertionError("the VJP was traced")

    autodiff._programs.clear()  # a new process
    monkeypatch.setattr(autodiff, "compiled", refuse)
    again = _helpers(x, ct)  # every result read back, no program traced
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_edited_forward_is_never_recalled(stored, x64, monkeypatch):
    x, ct = np.linspace(-1.0, 1.0, 6).reshape(2, 3), np.ones((2, 3))
    _helpers(x, ct)
    scale = np.array(3.0)  # an edited constant: another forward key

    def edited(v):
        return scale * v ** 3

    np.testing.assert_allclose(autodiff.vjp(edited, (x,), ct)[0], 9.0 * x ** 2, rtol=1e-15)
    np.testing.assert_allclose(autodiff.forward_and_vjp(edited, (x,), ct)[0], 3.0 * x ** 3,
                               rtol=1e-15)
    np.testing.assert_allclose(autodiff.vjps([edited], (x,), 2.0 * ct)[0][0], 18.0 * x ** 2,
                               rtol=1e-15)


def _custom_jvp(factor: float):
    """The same function (``maximum(v, 0)``), its JVP rule scaled by ``factor``."""
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def pos(v):
        return jnp.maximum(v, 0.0)

    pos.defjvp(lambda p, t: (pos(p[0]), factor * t[0] * (p[0] > 0)))
    return pos


def _custom_vjp(factor: float):
    """The same function (``v ** 2``), its VJP rule scaled by ``factor``."""
    import jax

    @jax.custom_vjp
    def square(v):
        return v ** 2

    square.defvjp(lambda v: (v ** 2, v), lambda v, g: (factor * 2.0 * v * g,))
    return square


def test_an_edited_custom_rule_is_never_recalled(stored, x64):
    """A forward with a custom rule has no forward key (its text names the rule): the
    whole program's trace, in which JAX inlined the rule, is its key; an edited rule
    body gives another result on the next run."""
    x, ct = np.array([-1.0, 0.5, 2.0]), np.ones(3)
    for make, want in ((_custom_jvp, (x > 0).astype(float)), (_custom_vjp, 2.0 * x)):
        right = autodiff.vjp(make(1.0), (x,), ct)[0]
        autodiff._programs.clear()  # a new process, the rule edited
        edited = autodiff.vjp(make(3.0), (x,), ct)[0]
        np.testing.assert_allclose(right, want, rtol=1e-15)
        np.testing.assert_allclose(edited, 3.0 * want, rtol=1e-15)
        autodiff._programs.clear()
        np.testing.assert_allclose(autodiff.vjp(make(1.0), (x,), ct)[0], want, rtol=1e-15)


def test_a_forward_with_a_custom_rule_is_stored_and_read_back(stored, x64, monkeypatch):
    """A custom_jvp left in a program that nothing differentiates (a forward) runs its
    own body only: the program is keyed and its result stored, not run eagerly."""
    x = np.array([-1.0, 0.5, 2.0])
    first = autodiff.forward(lambda a, s: _custom_jvp(1.0)(a[0]) * 2.0, (x,), ())
    assert len(_files(stored)) == 1
    autodiff._programs.clear()
    again = autodiff.forward(lambda a, s: _custom_jvp(5.0)(a[0]) * 2.0, (x,), ())
    assert not autodiff._programs  # read back: the rule plays no part in the values
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, 2.0 * np.maximum(x, 0.0), rtol=1e-15)


RULE_FILE = '''
import jax
import jax.numpy as jnp


@jax.custom_jvp
def _positive(x):
    return jnp.maximum(x, 0.0)


_positive.defjvp(lambda p, t: (_positive(p[0]), RULE))


@jax.custom_vjp
def smooth(x):
    return _positive(x)


def smooth_fwd(x):
    return smooth(x), x


def smooth_bwd(x, g):
    return (g * (x > 0),)


smooth.defvjp(smooth_fwd, smooth_bwd)
'''


@pytest.mark.slow
def test_an_edited_custom_jvp_rule_changes_the_verdict_on_the_next_run(tmp_path):
    """The reference of a JAX layer (of no catalogue kind: no alternates) is ``jax.vjp``
    of its function, through the custom_jvp of a helper: editing the helper's rule, the
    same cache, must change the verdict, and editing it back restore it."""
    env = dict(os.environ, JAXCNN_CACHE_DIR=str(tmp_path / "cache"))
    path = tmp_path / "layers.py"
    kinds = []
    for rule in ("t[0] * (p[0] > 0)", "2.0 * t[0] * (p[0] > 0)", "t[0] * (p[0] > 0)"):
        path.write_text(RULE_FILE.replace("RULE", rule))
        proc = subprocess.run([sys.executable, "-m", "jaxcnn", "check", str(path), "--json"],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        assert proc.returncode in (0, 1), proc.stderr
        doc = json.loads(proc.stdout)
        kinds.append((proc.returncode, [c["kind"] for layer in doc["layers"]
                                        for c in layer["checks"]]))
    assert kinds[0] == (0, ["correct"]) and kinds[1][0] == 1 and kinds[2] == kinds[0], kinds


@pytest.mark.slow
def test_a_chain_is_recalled_by_its_layers_forwards_never_for_an_edited_one(
        stored, monkeypatch):
    """The chain's programs (every reference's forward, the whole chain's gradient from
    each layer on, each layer's own VJP) are read back by the layers' forward jaxprs: the
    same report without tracing them; an edited reference forward is another key."""
    import jax.numpy as jnp

    from jaxcnn.check import chain as chain_mod
    from jaxcnn.check.discover import find_layers, load_file

    path = REPO / "tests" / "fixtures" / "cs231n_net.py"
    network = chain_mod.cs231n_chain(find_layers(load_file(path), str(path)).layers)
    inputs = chain_mod.cs231n_chain_inputs(network)
    first = chain_mod.check_chain(network, inputs)
    assert first["ok"] and all(r["forward_matches"] for r in first["inputs"])

    def refuse(*args, **kwargs):
        raise AssertionError("the chain's program was traced")

    autodiff._programs.clear()  # a new process
    with monkeypatch.context() as patched:
        patched.setattr(chain_mod, "compiled", refuse)
        assert chain_mod.check_chain(network, inputs) == first
    relu = network[1]  # its reference edited: 1.5 max(x, 0)
    edited = relu._replace(reference=relu.reference._replace(
        forward=lambda args, static: 1.5 * jnp.maximum(args[0], 0.0)))
    result = chain_mod.check_chain([network[0], edited, *network[2:]], inputs)
    assert not any(r["forward_matches"] for r in result["inputs"])


def test_a_sandwichs_skips_are_recalled_by_the_parts_forwards_never_for_an_edited_part(
        stored, x64, monkeypatch):
    from jaxcnn.check.catalogue import network, pool

    rng = np.random.default_rng(5)
    args = (rng.standard_normal((2, 3, 7, 9)), rng.standard_normal((4, 3, 3, 3)),
            rng.standard_normal(4))
    static = ({"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2})
    parts, ct = ("conv", "relu", "max_pool"), rng.standard_normal((2, 4, 3, 4))
    first = network._sandwich_skips(parts, args, static, ct)
    assert [len(g) for g in first] == [3, 0]  # the pool's skip: dout of the wrong shape

    def refuse(*a, **k):
        raise AssertionError("the skips' program was traced")

    autodiff._programs.clear()
    monkeypatch.setattr(network, "compiled", refuse)
    again = network._sandwich_skips(parts, args, static, ct)
    for a, b in zip(first, again, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    # the pool's part edited (its tie rule): another forward, not the stored result
    monkeypatch.setattr(network, "tie_rule_max", lambda w, r: pool.tie_rule_max(w, "last"))
    with pytest.raises(AssertionError, match="traced"):
        network._sandwich_skips(parts, args, static, ct)
