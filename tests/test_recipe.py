"""The training recipe's flags: --schedule, --weight-decay, --shift, --validation."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxcnn import data, model
from jaxcnn.errors import ConfigError
from jaxcnn.training import checkpoint, train
from jaxcnn.training.config import ADDED_FIELDS, TrainConfig

SMALL = dict(train_size=120, test_size=100, log_every=10)


@pytest.fixture(scope="module")
def small_data():
    return data.load("mnist-embedded", **{k: SMALL[k] for k in ("train_size", "test_size")})


def run(dataset, **overrides):
    return train.train(TrainConfig(**(SMALL | overrides)), dataset)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_same(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------ --shift


def test_shift_images_moves_each_image_and_fills_with_the_background():
    images = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28)
    offsets = np.array([[1, -2], [0, 0]], np.int32)
    out = np.asarray(train.shift_images(images, offsets, 2))
    # image 0 moved down 1 row and left 2 columns: out[r, c] = in[r - 1, c + 2]
    np.testing.assert_array_equal(out[0, 1:, :26], images[0, :27, 2:])
    assert (out[0, 0, :] == train.BACKGROUND).all() and (out[0, :, 26:] == train.BACKGROUND).all()
    np.testing.assert_array_equal(out[1], images[1])  # offset 0: unchanged
    assert train.BACKGROUND == float(model.normalize(np.zeros(1, np.uint8), np.float32)[0])


def test_epoch_shifts_are_in_range_reproducible_and_differ_per_epoch_and_seed():
    config = TrainConfig(shift=2, seeds=2, batch_size=3)
    a = train.epoch_shifts(config, 50, 0)
    assert a.shape == (2, 50, 3, 2) and a.dtype == np.int32
    assert a.min() == -2 and a.max() == 2
    np.testing.assert_array_equal(a, train.epoch_shifts(config, 50, 0))
    assert not np.array_equal(a, train.epoch_shifts(config, 50, 1))
    assert not np.array_equal(a[0], a[1])
    one = train.epoch_shifts(dataclasses.replace(config, seed=1, seeds=1), 50, 0)
    np.testing.assert_array_equal(one[0], a[1])  # seed 1's draws, alone or among others
    assert train.epoch_shifts(TrainConfig(), 50, 0) is None


def test_shift_changes_training_and_seeds_stay_bit_identical_to_one_seed_runs(small_data):
    plain = run(small_data, seeds=2)
    shifted = run(small_data, seeds=2, shift=1)
    assert not np.array_equal(leaves(plain.params)[0], leaves(shifted.params)[0])
    alone = run(small_data, seed=1, shift=1)
    assert_same(jax.tree.map(lambda a: a[1:], shifted.params), alone.params)
    np.testing.assert_array_equal(shifted.test_loss[1:], alone.test_loss)


def test_a_shifted_step_trains_on_the_shifted_image(small_data):
    """One SGD step with --shift equals one step on the image shift_images made."""
    config = TrainConfig(**(SMALL | dict(train_size=1, log_every=1, shift=3, ties="first")))
    result = train.train(config, small_data)
    state = train.init_state(config, 10)
    offsets = train.epoch_shifts(config, 1, 0)[0, 0]
    x = train.shift_images(model.normalize(small_data.train_images[:1], np.float32), offsets, 3)
    step = train.make_train_step(config, train.make_optimizer(config))
    one = jax.tree.map(lambda a: a[0], state)
    want, _ = step(one, x, small_data.train_labels[:1])
    unshifted, _ = step(one, model.normalize(small_data.train_images[:1], np.float32),
                        small_data.train_labels[:1])
    got = leaves(jax.tree.map(lambda a: a[0], result.state.params))
    for g, w in zip(got, leaves(want.params), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-8)  # compiled vs eager: last bits
    moved = zip(got, leaves(unshifted.params), strict=True)
    assert max(np.abs(g - u).max() for g, u in moved) > 2e-5  # and not the unshifted step


# --------------------------------------------------------------------------- --schedule


def test_schedules_start_and_end_where_documented():
    config = TrainConfig(lr=0.1, epochs=4, schedule="cosine")
    cosine = train.learning_rate_schedule(config, 10)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(40)) == pytest.approx(0)
    assert float(cosine(20)) == pytest.approx(0.05)
    warm = train.learning_rate_schedule(dataclasses.replace(config, schedule="warmup-cosine"),
                                        10)
    assert float(warm(0)) == 0 and float(warm(4)) == pytest.approx(0.1)  # warmup: 40 // 10
    assert float(warm(40)) == pytest.approx(0, abs=1e-9)
    assert train.learning_rate_schedule(TrainConfig(lr=0.1), 10) == 0.1


def test_a_cosine_run_takes_full_steps_first_and_none_last(small_data):
    """SGD with --schedule cosine: the first step moves as far as a constant-lr step, the
    last one (learning rate 0) not at all."""
    steps = 4
    kw = dict(train_size=steps, log_every=1, lr=0.01)
    const_one = run(small_data, **kw | dict(train_size=1))
    cos_one = run(small_data, **kw | dict(train_size=1, epochs=1, schedule="cosine"))
    assert_same(const_one.params, cos_one.params)
    before_last = run(small_data, **kw | dict(train_size=steps, epochs=2, schedule="cosine"))
    assert not np.array_equal(leaves(before_last.params)[0], leaves(const_one.params)[0])
    # the schedule spans both epochs: the last step of epoch 2 has learning rate 0
    sched = train.learning_rate_schedule(TrainConfig(lr=0.01, epochs=2, schedule="cosine"),
                                         steps)
    assert float(sched(2 * steps - 1)) > 0 and float(sched(2 * steps)) == 0


# ----------------------------------------------------------------------- --weight-decay


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_shrinks_every_parameter_by_lr_times_decay(small_data, optimizer):
    """One step: with decay w the parameters end lr * w * p0 lower than without (SGD's L2
    term and AdamW's decoupled decay both give exactly that for one step)."""
    kw = dict(train_size=1, log_every=1, optimizer=optimizer, lr=0.01)
    without = run(small_data, **kw)
    with_wd = run(small_data, **kw, weight_decay=0.5)
    p0 = train.init_state(TrainConfig(**(SMALL | kw)), 10).params
    for a, b, p in zip(leaves(without.state.params), leaves(with_wd.state.params), leaves(p0),
                       strict=True):
        np.testing.assert_allclose(a - b, 0.01 * 0.5 * p, rtol=1e-3, atol=1e-8)


# ------------------------------------------------------------------------ --validation


def test_validation_images_are_held_out_and_scored(small_data):
    held = run(small_data, validation=20, shuffle=True, epochs=2)
    fewer = run(small_data, train_size=100, shuffle=True, epochs=2)
    assert_same(held.params, fewer.params)  # the last 20 images were never trained on
    np.testing.assert_array_equal(held.test_loss, fewer.test_loss)
    loss, acc = train.evaluate(held.state.params,
                               model.normalize(small_data.train_images[100:120], np.float32),
                               small_data.train_labels[100:120])
    np.testing.assert_array_equal(held.validation_loss, loss)
    np.testing.assert_array_equal(held.validation_accuracy, acc)
    assert fewer.validation_loss is None


# ---------------------------------------------------------------- config and checkpoints


@pytest.mark.parametrize(("settings", "message"), [
    (dict(shift=5), "--shift must be at most 4"),
    (dict(shift=-1), "--shift must be at least 0"),
    (dict(schedule="step"), "--schedule must be one of constant, cosine, warmup-cosine"),
    (dict(weight_decay=1.5), "--weight-decay must be in [0, 1]"),
    (dict(weight_decay=float("nan")), "--weight-decay must be a finite number"),
    (dict(weight_decay=1e-45), "--weight-decay 1e-45 underflows to 0 in float32"),
    (dict(validation=3000), "--validation 3,000 leaves no training image"),
    (dict(validation=-1), "--validation must be at least 0"),
])
def test_bad_recipe_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig(**settings).validate()


def test_configs_from_before_the_recipe_flags_keep_their_hash_and_load():
    # digests of these configs as jaxcnn computed them before the flags existed
    assert TrainConfig().digest() == "32dd699fa25df78d"
    assert TrainConfig(optimizer="adam", shuffle=True, seeds=3,
                       train_size=None).digest() == "7541338ba247d2eb"
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ADDED_FIELDS}
    assert TrainConfig.from_dict(old, strict=True) == TrainConfig()
    assert TrainConfig(shift=1).digest() != TrainConfig().digest()


def test_resume_with_schedule_shift_and_validation_equals_an_uninterrupted_run(small_data,
                                                                              tmp_path):
    config = TrainConfig(**SMALL, epochs=3, shuffle=True, optimizer="adam", lr=0.003,
                         schedule="warmup-cosine", weight_decay=1e-3, shift=2, validation=20,
                         batch_size=4, seeds=2)
    keys = jax.random.key_data(train.seed_keys(config)[1])

    def save_first(result):  # the checkpoint of epoch 1, as `jaxcnn train --out` saves it
        if result.epochs_done == 1:
            checkpoint.save(tmp_path, config, small_data.class_names, result.state, keys,
                            result.step, result.epochs_done, run_id="0" * 32)

    uninterrupted = train.train(config, small_data, on_epoch=save_first)
    ckpt = checkpoint.load(tmp_path)
    assert ckpt.config == config
    state = checkpoint.restore_state(ckpt, train.init_state(config, 10))
    resumed = train.train(config, small_data, resume=(state, ckpt.step, ckpt.epochs_done))
    assert_same(resumed.state, uninterrupted.state)
    np.testing.assert_array_equal(resumed.validation_loss, uninterrupted.validation_loss)


def test_seed_groups_are_off_with_shift():
    assert train.seed_group_size(TrainConfig(seeds=4), 4) == 4
    assert train.seed_group_size(TrainConfig(seeds=4, shift=1), 4) == 1

