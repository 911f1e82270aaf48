"""Checkpoints: round trip, atomic files, and refusal of bad ones with a clear message."""

from __future__ import annotations

import hashlib
import json

import jax
import numpy as np
import pytest

from jaxcnn import checkpoint, data, train
from jaxcnn.config import TrainConfig
from jaxcnn.errors import CheckpointError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real checkpoint of a short adam run with 2 seeds (adam has a non-trivial state)."""
    directory = tmp_path_factory.mktemp("ckpt")
    config = TrainConfig(train_size=100, test_size=50, optimizer="adam", seeds=2, log_every=50)
    dataset = data.load("mnist-embedded", train_size=100, test_size=50)
    result = train.train(config, dataset)
    keys = jax.random.key_data(train.seed_keys(config)[1])
    checkpoint.save(directory, config, dataset.class_names, result.state, keys, result.step,
                    result.epochs_done)
    return directory, config, result


def copy_of(saved, tmp_path):
    directory = saved[0]
    for name in (checkpoint.JSON_NAME, checkpoint.NPZ_NAME):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    return tmp_path


def rewrite_json(directory, **changes):
    meta = json.loads((directory / checkpoint.JSON_NAME).read_text())
    meta.update(changes)
    (directory / checkpoint.JSON_NAME).write_text(json.dumps(meta))


def test_round_trip_restores_parameters_and_optimizer_state(saved):
    directory, config, result = saved
    ckpt = checkpoint.load(directory)
    assert ckpt.config == config and ckpt.step == result.step and ckpt.epochs_done == 1
    assert ckpt.class_names == tuple(str(d) for d in range(10))
    for got, want in zip(ckpt.params, result.params, strict=True):
        np.testing.assert_array_equal(got, np.asarray(want))
    state = checkpoint.restore_state(ckpt, train.init_state(config, 10))
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(result.state), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert ckpt.shuffle_keys.shape[0] == 2


def test_files_are_plain_arrays_and_no_temporary_files_remain(saved):
    directory = saved[0]
    with np.load(directory / checkpoint.NPZ_NAME, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
        assert npz["params.weights"].shape == (2, 13 * 13 * 8, 10)
    assert sorted(p.name for p in directory.iterdir()) == [checkpoint.JSON_NAME,
                                                           checkpoint.NPZ_NAME]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="expected checkpoint.json and checkpoint.npz"):
        checkpoint.load(tmp_path)


def test_corrupt_npz_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    npz = directory / checkpoint.NPZ_NAME
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt or was changed"):
        checkpoint.load(directory)


def test_truncated_npz_with_matching_checksum_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    npz = directory / checkpoint.NPZ_NAME
    npz.write_bytes(npz.read_bytes()[:200])
    rewrite_json(directory, npz_sha256=hashlib.sha256(npz.read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match="unreadable"):
        checkpoint.load(directory)


def replace_array(directory, name, value):
    """Swap one array of the npz and update the checksum, as a deliberate forger would."""
    with np.load(directory / checkpoint.NPZ_NAME) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays[name] = value
    np.savez(directory / checkpoint.NPZ_NAME, **arrays)
    rewrite_json(directory, npz_sha256=hashlib.sha256(
        (directory / checkpoint.NPZ_NAME).read_bytes()).hexdigest())


def test_pickle_bearing_npz_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    replace_array(directory, "params.biases", np.array([{"payload": "os.system"}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        checkpoint.load(directory)


def test_foreign_architecture_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    replace_array(directory, "params.filters", np.zeros((2, 16, 5, 5), np.float32))
    with pytest.raises(CheckpointError, match="different architecture"):
        checkpoint.load(directory)


def test_not_a_jaxcnn_checkpoint(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    rewrite_json(directory, format="something-else")
    with pytest.raises(CheckpointError, match="not a jaxcnn checkpoint"):
        checkpoint.load(directory)
    (directory / checkpoint.JSON_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load(directory)


def test_optimizer_state_of_another_optimizer_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    ckpt = checkpoint.load(directory)
    sgd_config = TrainConfig(train_size=100, test_size=50, optimizer="momentum", seeds=2)
    with pytest.raises(CheckpointError, match="optimizer state does not match"):
        checkpoint.restore_state(ckpt, train.init_state(sgd_config, 10))
