"""Training loops: determinism, manual vs autodiff, seeds, resume, divergence, sharding."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxcnn import backprop, data, fast, model
from jaxcnn.errors import ConfigError, DivergenceError
from jaxcnn.training import checkpoint, train
from jaxcnn.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(train_size=300, test_size=200)


@pytest.fixture(scope="module")
def small_data():
    return data.load("mnist-embedded", **SMALL)


def run(dataset, **overrides):
    return train.train(TrainConfig(**(SMALL | overrides)), dataset)


def leaves(params):
    return [np.asarray(x) for x in jax.tree.leaves(params)]


def assert_same_params(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_same_config_gives_bit_identical_results(small_data):
    a = run(small_data, shuffle=True, epochs=2)
    b = run(small_data, shuffle=True, epochs=2)
    assert_same_params(a.params, b.params)
    np.testing.assert_array_equal(a.test_loss, b.test_loss)
    assert [w.loss.tolist() for w in a.windows] == [w.loss.tolist() for w in b.windows]


def test_different_seeds_give_different_models(small_data):
    a, b = run(small_data, seed=0), run(small_data, seed=1)
    assert not np.array_equal(leaves(a.params)[0], leaves(b.params)[0])


def test_per_sample_sgd_matches_backprop_grads_step_by_step(small_data):
    """The training loop's first steps equal plain SGD with backprop.grads (report ties)."""
    steps = 5
    result = run(small_data, train_size=steps, log_every=steps)
    params = jax.tree.map(lambda a: a[0], train.init_state(TrainConfig(**SMALL), 10).params)
    params = fast.from_fast(params)
    images = model.normalize(small_data.train_images[:steps], np.float32)
    for x, y in zip(images, small_data.train_labels[:steps], strict=True):
        _, g = backprop.grads(params, x, y, "report")
        params = jax.tree.map(lambda p, d: p - 0.005 * d, params, g)
    for got, want in zip(leaves(result.params), leaves(params), strict=True):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("ties", ["report", "first", "split"])
def test_manual_and_autodiff_follow_the_same_trajectory(small_data, ties):
    manual = run(small_data, grad="manual", ties=ties, log_every=50)
    auto = run(small_data, grad="autodiff", ties=ties, log_every=50)
    np.testing.assert_allclose([w.loss[0] for w in manual.windows],
                               [w.loss[0] for w in auto.windows], rtol=1e-5)
    for got, want in zip(leaves(manual.params), leaves(auto.params), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_report_tie_rule_changes_the_trajectory(small_data):
    report, split = run(small_data, ties="report"), run(small_data, ties="split")
    assert not np.allclose(leaves(report.params)[0], leaves(split.params)[0])


@pytest.mark.parametrize("overrides", [dict(shuffle=True, epochs=2),
                                       dict(optimizer="adam", batch_size=16, log_every=3,
                                            train_size=96, test_size=100)])
def test_multi_seed_equals_separate_single_runs_bit_for_bit(small_data, overrides):
    """Issue 13 (7): seed s of --seeds K runs exactly the one-seed program."""
    many = run(small_data, seed=3, seeds=3, **overrides)
    for i in range(3):
        one = run(small_data, seed=3 + i, **overrides)
        for got, want in zip(leaves(many.state), leaves(one.state), strict=True):
            np.testing.assert_array_equal(got[i], want[0])
        assert many.test_loss[i] == one.test_loss[0]
        assert many.test_accuracy[i] == one.test_accuracy[0]
        assert [w.loss[i] for w in many.windows] == [w.loss[0] for w in one.windows]


@pytest.mark.parametrize(("overrides", "group"), [
    (dict(), 4), (dict(optimizer="momentum", ties="first"), 4),
    (dict(ties="split"), 8),  # the largest group the step allows, with SEED_GROUP raised
    (dict(optimizer="adam", ties="split", batch_size=2), 1),
    (dict(optimizer="adam"), 1),  # a group of 4 changed every seed's last bits
    (dict(grad="autodiff", ties="split"), 1)])
def test_seed_groups_equal_separate_single_runs_bit_for_bit(small_data, overrides, group,
                                                            monkeypatch):
    """Per-image seeds that share their images train in vmapped groups
    (train.seed_group_size: 4 of 8 here, or all 8 with a larger SEED_GROUP); each seed is
    still bit-identical to its one-seed run. Mini-batches and autodiff, which a group
    would change, stay one seed at a time."""
    monkeypatch.setattr(train, "SEED_GROUP", max(train.SEED_GROUP, group))
    overrides = dict(train_size=120, log_every=40) | overrides
    assert train.seed_group_size(TrainConfig(seeds=8, **overrides), 8) == group
    many = run(small_data, seed=5, seeds=8, **overrides)
    for i in (0, 3, 6):
        one = run(small_data, seed=5 + i, **overrides)
        for got, want in zip(leaves(many.state), leaves(one.state), strict=True):
            np.testing.assert_array_equal(got[i], want[0])
        assert many.test_loss[i] == one.test_loss[0]
        assert [w.loss[i] for w in many.windows] == [w.loss[0] for w in one.windows]
        assert [w.accuracy[i] for w in many.windows] == [w.accuracy[0] for w in one.windows]


@pytest.mark.parametrize(("filters", "group"), [(1, 1), (128, 2)])
def test_seed_groups_stay_bit_identical_at_one_filter_and_many(small_data, filters, group):
    """Groups of 4 seeds were not bit-identical to their one-seed runs with --filters 1
    (XLA computes a one-row filter gradient as a multiply-and-reduce, summing in another
    order than a 4-row product) or --filters 128 (from 512 rows XLA fuses the update
    into the product, rounding it otherwise): such seeds now train one at a time, or in
    groups of at most train.GROUP_ROWS filters."""
    overrides = dict(train_size=40, log_every=20, num_filters=filters)
    assert train.seed_group_size(TrainConfig(seeds=4, **overrides), 4) == group
    many = run(small_data, seed=5, seeds=4, **overrides)
    for i in (0, 3):
        one = run(small_data, seed=5 + i, **overrides)
        for got, want in zip(leaves(many.state), leaves(one.state), strict=True):
            np.testing.assert_array_equal(got[i], want[0])
        assert many.test_loss[i] == one.test_loss[0]
        assert [w.loss[i] for w in many.windows] == [w.loss[0] for w in one.windows]


def test_seed_keys_and_init_equal_their_plain_definitions():
    """seed_keys compiles all seeds at once and init_state compiles at LLVM level 1 (a
    faster cold start): the same keys as jax.random.key(s) one by one, and the same
    parameters as a default-level compile, bit for bit."""
    config = TrainConfig(seed=2**31 - 6, seeds=5, num_filters=3, optimizer="adam")
    init_keys, shuffle_keys = train.seed_keys(config)
    for i in range(5):
        want = jax.random.split(jax.random.key(config.seed + i))
        assert np.array_equal(jax.random.key_data(init_keys[i]), jax.random.key_data(want[0]))
        assert np.array_equal(jax.random.key_data(shuffle_keys[i]),
                              jax.random.key_data(want[1]))
    seeds = jax.numpy.arange(config.seed, config.seed + 5)
    plain = jax.jit(functools.partial(train._init_state, config, 27))(seeds)
    got = train.init_state(config, 27)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(a, b)


def test_log_windows_cover_exactly_log_every_steps(small_data):
    result = run(small_data, log_every=100)
    assert [(w.step, w.steps) for w in result.windows] == [(100, 100), (200, 100), (300, 100)]
    remainder = run(small_data, log_every=120)
    assert [(w.step, w.steps) for w in remainder.windows] == [(120, 120), (240, 120), (300, 60)]


def test_window_metrics_are_the_mean_over_that_windows_images(small_data):
    """Re-score each image with the parameters before its step: the window loss matches."""
    result = run(small_data, train_size=20, log_every=10)
    config = TrainConfig(**(SMALL | dict(train_size=20)))
    params = fast.from_fast(jax.tree.map(lambda a: a[0], train.init_state(config, 10).params))
    images = model.normalize(small_data.train_images[:20], np.float32)
    losses, correct = [], []
    for x, y in zip(images, small_data.train_labels[:20], strict=True):
        losses.append(float(model.loss(params, x, y)))
        correct.append(int(model.predict(params, x)) == y)
        _, g = backprop.grads(params, x, y, "report")
        params = jax.tree.map(lambda p, d: p - 0.005 * d, params, g)
    for i, window in enumerate(result.windows):
        np.testing.assert_allclose(window.loss[0], np.mean(losses[10 * i:10 * i + 10]), rtol=1e-5)
        assert window.accuracy[0] == np.mean(correct[10 * i:10 * i + 10])


def test_minibatch_drops_the_last_partial_batch_and_learns(small_data):
    result = run(small_data, batch_size=32, epochs=3, log_every=3, optimizer="adam")
    steps_per_epoch = 300 // 32
    assert result.step == 3 * steps_per_epoch
    assert result.timings["images_trained"] == 3 * steps_per_epoch * 32
    assert result.windows[-1].loss[0] < result.windows[0].loss[0]


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 0.1), ("momentum", 0.02), ("adam", 0.005)])
def test_every_optimizer_reduces_the_loss(small_data, optimizer, lr):
    result = run(small_data, optimizer=optimizer, lr=lr, batch_size=10, epochs=3, log_every=10)
    assert result.windows[-1].loss[0] < 0.7 * result.windows[0].loss[0]


def test_default_protocol_learns_well_above_chance():
    """The report's protocol: 3,000 images, one pass, test on 800 (report: 86.9%)."""
    dataset = data.load("mnist-embedded", train_size=3000, test_size=800)
    result = train.train(TrainConfig(), dataset)
    assert result.windows[-1].loss[0] < result.windows[0].loss[0] / 2
    assert result.test_accuracy[0] > 0.75
    assert result.test_loss[0] < 1.0


def test_keep_windows_false_keeps_none_but_reports_each(small_data):
    seen = []
    result = train.train(TrainConfig(**SMALL, log_every=10), small_data,
                         on_window=seen.append, keep_windows=False)
    assert result.windows == [] and [w.step for w in seen] == list(range(10, 301, 10))


def test_divergence_is_reported_with_the_step_and_a_smaller_lr(small_data):
    with pytest.raises(DivergenceError, match=r"at step \d+.*--lr 1000"):
        run(small_data, lr=1e4, log_every=50)


def test_invalid_settings_are_refused(small_data):
    for bad in (dict(epochs=0), dict(batch_size=0), dict(optimizer="rmsprop"), dict(lr=-1.0),
                dict(ties="middle"), dict(grad="numeric"), dict(seeds=0)):
        with pytest.raises(ConfigError):
            run(small_data, **bad)
    with pytest.raises(ConfigError, match="larger than the 300 training images"):
        run(small_data, batch_size=301)


def test_resume_gives_the_same_final_parameters(small_data, tmp_path):
    config = TrainConfig(**SMALL, epochs=3, shuffle=True, optimizer="momentum", lr=0.001,
                         seeds=2)
    uninterrupted = train.train(config, small_data)

    first = train.train(dataclasses.replace(config, epochs=1), small_data)
    keys = jax.random.key_data(train.seed_keys(config)[1])
    checkpoint.save(tmp_path, config, small_data.class_names, first.state, keys, first.step,
                    first.epochs_done, run_id="0" * 32)
    ckpt = checkpoint.load(tmp_path)
    state = checkpoint.restore_state(ckpt, train.init_state(config, 10))
    resumed = train.train(config, small_data, resume=(state, ckpt.step, ckpt.epochs_done))
    assert resumed.step == uninterrupted.step
    assert_same_params(resumed.params, uninterrupted.params)
    assert_same_params(resumed.state.opt_state, uninterrupted.state.opt_state)


def test_sharded_run_on_two_forced_cpu_devices_equals_unsharded(tmp_path):
    script = textwrap.dedent("""
        import json, sys
        import jax, numpy as np
        from jaxcnn import data, fast
        from jaxcnn.training import train
        from jaxcnn.training.config import TrainConfig
        assert len(jax.devices()) == 2, jax.devices()
        ds = data.load("mnist-embedded", train_size=256, test_size=100)
        out = {}
        for name, cfg in {"seeds": TrainConfig(train_size=200, test_size=100, seeds=2,
                                              shuffle=True),
                          "adam": TrainConfig(train_size=96, test_size=100, seeds=4,
                                              optimizer="adam", batch_size=8, log_every=6),
                          "batch": TrainConfig(train_size=256, test_size=100, batch_size=64,
                                               log_every=2, epochs=2),
                          "batch-momentum": TrainConfig(train_size=256, test_size=100,
                                                        batch_size=64, log_every=2, epochs=2,
                                                        optimizer="momentum", shuffle=True),
                          "batch-adam": TrainConfig(train_size=256, test_size=100,
                                                    batch_size=128, log_every=2, epochs=3,
                                                    optimizer="adam"),
                          "batch-shift": TrainConfig(train_size=256, test_size=100,
                                                     batch_size=64, log_every=2, shift=2,
                                                     optimizer="adam"),
                          "batch-sliced": TrainConfig(train_size=256, test_size=100,
                                                      batch_size=64, log_every=2,
                                                      optimizer="adam", ties="split"),
                          "batch-small": TrainConfig(train_size=200, test_size=100,
                                                     batch_size=20, log_every=5),
                          "batch-autodiff": TrainConfig(train_size=200, test_size=100,
                                                        batch_size=20, log_every=5,
                                                        grad="autodiff")}.items():
            # each device's half in lax.scan slices of 16 images (fast.BATCH_SLICE)
            fast.BATCH_SLICE = 16 if name == "batch-sliced" else 128
            sharded = train.train(cfg, ds)
            single = train.train(cfg, ds, devices=jax.devices()[:1])
            diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                       for a, b in zip(jax.tree.leaves(sharded.state),
                                       jax.tree.leaves(single.state)))
            again = train.train(cfg, ds)
            repeat = all(np.array_equal(np.asarray(a), np.asarray(b))
                         for a, b in zip(jax.tree.leaves(sharded.state),
                                         jax.tree.leaves(again.state)))
            out[name] = {"axis": sharded.timings["sharded_axis"], "diff": diff,
                         "windows_equal": all(
                             np.array_equal(a.loss, b.loss) and np.array_equal(a.accuracy,
                                                                               b.accuracy)
                             for a, b in zip(sharded.windows, single.windows)),
                         "single_axis": single.timings["sharded_axis"],
                         "test_equal": bool((sharded.test_loss == single.test_loss).all()),
                         "repeat_equal": repeat}
        json.dump(out, sys.stdout)
    """)
    env = os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                        "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for name in ("seeds", "adam"):  # independent seeds: bit for bit, test results too
        assert out[name]["axis"] == "seeds" and out[name]["single_axis"] is None
        assert out[name]["diff"] == 0.0 and out[name]["test_equal"], out[name]
    # a batch of fast.PARTS_FROM or more: one half of every batch per device, the halves'
    # gradients summed across the devices as one device sums them: bit for bit (SGD,
    # momentum, Adam, shifted images, the halves in slices)
    for name in ("batch", "batch-momentum", "batch-adam", "batch-shift", "batch-sliced"):
        assert out[name]["axis"] == "batch" and out[name]["single_axis"] is None
        assert out[name]["diff"] == 0.0 and out[name]["test_equal"], out[name]
        assert out[name]["windows_equal"], out[name]
    for name in ("batch-small", "batch-autodiff"):  # XLA partitions them: another order
        assert out[name]["axis"] == "batch"
        assert out[name]["diff"] < 1e-4, out[name]
    for name in out:  # every sharded run repeats itself bit for bit
        assert out[name]["repeat_equal"], name


def test_freeze_conv_trains_only_the_softmax_layer(small_data):
    config = TrainConfig(**SMALL, freeze_conv=True, optimizer="adam")
    before = train.init_state(config, 10).params
    after = train.train(config, small_data).state.params
    np.testing.assert_array_equal(np.asarray(after.filters), np.asarray(before.filters))
    assert not np.allclose(np.asarray(after.weights), np.asarray(before.weights))


@pytest.mark.parametrize(("settings", "message"), [
    (dict(lr=1e-50), r"--lr 1e-50 is outside float32's normal range .* underflow to 0"),
    (dict(lr=1e-39, optimizer="adam"), r"--lr 1e-39 .* underflow to 0"),
    (dict(lr=1e39), r"--lr 1e\+39 .* overflow to inf"),
    (dict(optimizer="momentum", momentum=0.99999999), r"--momentum 0.99999999 is 1 in float32"),
])
def test_settings_that_float32_cannot_hold_are_refused(settings, message):
    """--lr 1e-50 trained for a whole run with a learning rate of 0 (float32) and exit 0;
    --lr 1e39 printed numpy's overflow warning before diverging."""
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings).validate()
    TrainConfig(lr=2e-38).validate()
    TrainConfig(lr=3e38).validate()
    TrainConfig(optimizer="momentum", momentum=0.9999999).validate()
