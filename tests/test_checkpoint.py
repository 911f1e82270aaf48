"""Checkpoints: round trip, one atomic file, and refusal of bad ones with a clear message.

A "forger" below rewrites the file with every checksum recomputed, so that the field
checks themselves (types, ranges, consistency) are what must refuse it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import jax
import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.errors import CheckpointError
from jaxcnn.training import checkpoint, train
from jaxcnn.training.config import TrainConfig

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real checkpoint of a short adam run with 2 seeds (adam has a non-trivial state)."""
    directory = tmp_path_factory.mktemp("ckpt")
    config = TrainConfig(train_size=100, test_size=50, optimizer="adam", seeds=2, log_every=50)
    dataset = data.load("mnist-embedded", train_size=100, test_size=50)
    result = train.train(config, dataset)
    keys = jax.random.key_data(train.seed_keys(config)[1])
    checkpoint.save(directory, config, dataset.class_names, result.state, keys, result.step,
                    result.epochs_done, run_id=RUN_ID)
    return directory, config, result


def copy_of(saved, tmp_path):
    name = checkpoint.FILE_NAME
    (tmp_path / name).write_bytes((saved[0] / name).read_bytes())
    return tmp_path


def read(directory):
    with np.load(directory / checkpoint.FILE_NAME) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return json.loads(arrays.pop("meta").tobytes()), arrays


def write(directory, meta, arrays, rehash=True):
    """Write a checkpoint file; ``rehash``: recompute every checksum, as a forger would."""
    meta = dict(meta)
    if rehash:
        meta["arrays"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype),
                              "sha256": checkpoint._sha256(v)} for k, v in arrays.items()}
        meta.pop("sha256", None)
        meta["sha256"] = hashlib.sha256(checkpoint._canonical(meta)).hexdigest()
    text = json.dumps(meta).encode()
    np.savez(directory / checkpoint.FILE_NAME, **arrays, meta=np.frombuffer(text, np.uint8))


def test_round_trip_restores_parameters_and_optimizer_state(saved):
    directory, config, result = saved
    ckpt = checkpoint.load(directory)
    assert ckpt.config == config and ckpt.step == result.step and ckpt.epochs_done == 1
    assert ckpt.class_names == tuple(str(d) for d in range(10))
    assert ckpt.run_id == RUN_ID and ckpt.history == [] and ckpt.init_from is None
    for got, want in zip(ckpt.params, result.params, strict=True):
        np.testing.assert_array_equal(got, np.asarray(want))
    state = checkpoint.restore_state(ckpt, train.init_state(config, 10))
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(result.state), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert ckpt.shuffle_keys.shape == (2, 2)


def test_one_file_of_plain_arrays_and_no_temporary_files_remain(saved):
    directory = saved[0]
    with np.load(directory / checkpoint.FILE_NAME, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
        assert npz["params.weights"].shape == (2, 13 * 13 * 8, 10)
    assert sorted(p.name for p in directory.iterdir()) == [checkpoint.FILE_NAME]
    meta, _ = read(directory)
    assert meta["config_hash"] == saved[1].digest() and meta["run_id"] == RUN_ID


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint.npz there"):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9, 0.999])
def test_a_flipped_bit_anywhere_is_refused(saved, tmp_path, where):
    directory = copy_of(saved, tmp_path)
    path = directory / checkpoint.FILE_NAME
    raw = bytearray(path.read_bytes())
    raw[int(len(raw) * where)] ^= 0x04
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt|changed after saving|not a jaxcnn"):
        checkpoint.load(directory)


def test_truncated_file_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    path = directory / checkpoint.FILE_NAME
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(directory)


def test_edited_config_value_is_detected(saved, tmp_path):
    """Issue 13 (6): test_size 200 -> 300 in the metadata, zip rebuilt, our checksum not."""
    directory = copy_of(saved, tmp_path)
    meta, arrays = read(directory)
    meta["config"]["test_size"] = 60
    write(directory, meta, arrays, rehash=False)
    with pytest.raises(CheckpointError, match="metadata is corrupt or was changed"):
        checkpoint.load(directory)


def test_edited_array_is_detected(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    meta, arrays = read(directory)
    arrays["params.biases"] = arrays["params.biases"] + np.float32(1)
    write(directory, meta, arrays, rehash=False)
    with pytest.raises(CheckpointError, match="params.biases is corrupt or was changed"):
        checkpoint.load(directory)


def _set(path, value):
    def change(meta, arrays):
        target = meta
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


def _array(name, value):
    def change(meta, arrays):
        arrays[name] = value
    return change


MALFORMED = {
    "config is {}": (_set(["config"], {}), "missing configuration keys"),
    "config is []": (_set(["config"], []), "must be a mapping"),
    "config value of the wrong type": (_set(["config", "epochs"], "1"), "--epochs has the wrong"),
    "config value out of range": (_set(["config", "seeds"], 0), "--seeds must be at least 1"),
    "bool for an int": (_set(["config", "batch_size"], True), "--batch-size must be a number"),
    "unknown config key": (_set(["config", "colour"], 1), "unknown configuration keys"),
    "learning_rate disagrees": (_set(["config", "learning_rate"], 0.5), "disagrees"),
    "config_hash wrong": (_set(["config_hash"], "0" * 16), "config_hash does not match"),
    "step is a string": (_set(["step"], "2"), "step '2' does not fit"),
    "step negative": (_set(["step"], -2), "does not fit"),
    "step inconsistent": (_set(["step"], 3), "does not fit"),
    "epochs_done beyond epochs": (_set(["epochs_done"], 5), "epochs_done 5 is not between"),
    "epochs_done zero": (_set(["epochs_done"], 0), "epochs_done 0 is not between"),
    "class_names not a list": (_set(["class_names"], "0123456789"), "class_names must be"),
    "class_names repeated": (_set(["class_names"], ["0"] * 10), "class_names must be"),
    "run_id missing": (_set(["run_id"], KeyError), "run_id"),
    "version a string": (_set(["version"], "2"), "version '2' is not supported"),
    "history malformed": (_set(["history"], [{"step": 1}]), "history is malformed"),
    "init_from malformed": (_set(["init_from"], {"path": 1}), "init_from record is malformed"),
    "data_sha256 malformed": (_set(["data_sha256"], "abc"), "data_sha256 is not 64 hex"),
    "npz step disagrees": (_array("step", np.asarray(4, np.int64)), "step array is not"),
    "npz step a float": (_array("epochs_done", np.asarray(1.0)), "epochs_done array is not"),
    "params of float64": (_array("params.biases", np.zeros((2, 10))), "a different architecture"),
    "foreign architecture": (_array("params.filters", np.zeros((2, 16, 5, 5), np.float32)),
                             "a different architecture"),
    "shuffle keys wrong": (_array("shuffle_keys", np.zeros((2, 3), np.uint32)), "shuffle_keys"),
    "an extra array": (_array("opt.99", np.zeros(3, np.float32)), "arrays are not the ones"),
    "NaN parameters": (_array("params.weights", np.full((2, 1352, 10), np.nan, np.float32)),
                       "NaN or infinite values: the run it comes from diverged"),
    "pickled objects": (_array("params.biases", np.array([{"payload": "os.system"}],
                                                         dtype=object)), "pickled Python"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_checkpoints_are_refused_with_one_line(saved, tmp_path, case):
    change, message = MALFORMED[case]
    directory = copy_of(saved, tmp_path)
    meta, arrays = read(directory)
    change(meta, arrays)
    if case == "pickled objects":  # np.savez pickles the object array
        np.savez(directory / checkpoint.FILE_NAME, **arrays,
                 meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    else:
        write(directory, meta, arrays)
    with pytest.raises(CheckpointError, match=message) as info:
        checkpoint.load(directory)
    assert "\n" not in str(info.value)


def test_non_json_constant_in_metadata_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    meta, arrays = read(directory)
    text = json.dumps(meta).replace('"momentum": 0.9', '"momentum": NaN').encode()
    np.savez(directory / checkpoint.FILE_NAME, **arrays, meta=np.frombuffer(text, np.uint8))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load(directory)


def test_older_two_file_format_is_refused_with_the_reason(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    _, arrays = read(directory)
    np.savez(directory / checkpoint.FILE_NAME, **arrays)
    (directory / checkpoint.LEGACY_JSON).write_text("{}")
    with pytest.raises(CheckpointError, match="older jaxcnn's two-file format"):
        checkpoint.load(directory)


def test_not_a_jaxcnn_checkpoint(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    meta, arrays = read(directory)
    write(directory, meta | {"format": "something-else"}, arrays)
    with pytest.raises(CheckpointError, match="not a jaxcnn checkpoint"):
        checkpoint.load(directory)
    np.savez(directory / checkpoint.FILE_NAME, **arrays, meta=np.frombuffer(b"{not", np.uint8))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load(directory)


def test_saving_a_non_finite_state_is_refused(saved, tmp_path):
    _, config, result = saved
    state = jax.tree.map(lambda a: a, result.state)
    bad = state._replace(params=state.params._replace(biases=state.params.biases * np.nan))
    with pytest.raises(CheckpointError, match="refusing to save"):
        checkpoint.save(tmp_path, config, [str(d) for d in range(10)], bad,
                        np.zeros((2, 2), np.uint32), 1, 1, run_id=RUN_ID)
    assert not (tmp_path / checkpoint.FILE_NAME).exists()


def test_the_zip_holds_no_stray_members(saved):
    with zipfile.ZipFile(io.BytesIO((saved[0] / checkpoint.FILE_NAME).read_bytes())) as z:
        names = {n.removesuffix(".npy") for n in z.namelist()}
    assert names == {"meta", "step", "epochs_done", "shuffle_keys", *checkpoint.PARAM_NAMES,
                     *(f"opt.{i}" for i in range(len(names) - 7))}


def test_optimizer_state_of_another_optimizer_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    ckpt = checkpoint.load(directory)
    sgd_config = TrainConfig(train_size=100, test_size=50, optimizer="momentum", seeds=2)
    with pytest.raises(CheckpointError, match="optimizer state does not match"):
        checkpoint.restore_state(ckpt, train.init_state(sgd_config, 10))


@pytest.mark.parametrize(("content", "message"), [
    (b"hello\n", "not an npz archive (a zip file); it starts with b'hello\\n'"),
    (b"", "is empty"),
    (b"\x80\x04\x95\x10\x00", "is a Python pickle"),
])
def test_a_file_that_is_not_an_npz_is_named_for_what_it_is(tmp_path, content, message):
    (tmp_path / checkpoint.FILE_NAME).write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("depth", [100_000, 985])
def test_metadata_nested_very_deeply_is_refused_in_one_line(saved, tmp_path, depth):
    """Issue 22 (6): metadata nested 100,000 levels deep gave a RecursionError traceback
    in evaluate and --resume. (985 levels parse, and failed where the checksum re-dumps.)"""
    directory = copy_of(saved, tmp_path)
    meta, arrays = read(directory)
    text = json.dumps(meta)[:-1] + ', "history": ' + "[" * depth + "]" * depth + "}"
    np.savez(directory / checkpoint.FILE_NAME, **arrays,
             meta=np.frombuffer(text.encode(), np.uint8))
    with pytest.raises(CheckpointError, match="nested too deeply") as info:
        checkpoint.load(directory)
    assert "\n" not in str(info.value)


def test_deep_metadata_in_evaluate_and_resume_is_one_line_exit_2(saved, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    directory = copy_of(saved, tmp_path)
    meta, arrays = read(directory)
    text = json.dumps(meta)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    np.savez(directory / checkpoint.FILE_NAME, **arrays,
             meta=np.frombuffer(text.encode(), np.uint8))
    root = Path(__file__).resolve().parents[1]
    for command in (["evaluate", directory], ["train", "--resume", directory]):
        proc = subprocess.run([sys.executable, "-m", "jaxcnn", *map(str, command)],
                              capture_output=True, text=True, cwd=root, timeout=120,
                              env=os.environ | {"PYTHONPATH": str(root)})
        assert proc.returncode == 2 and "nested too deeply" in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1


def test_a_lock_file_nested_very_deeply_names_another_process(tmp_path):
    """Issue 22 (6), another member: the lock file's holder is JSON read back for the
    "in use by" message; a deeply nested one raised RecursionError."""
    from jaxcnn.training import runlock

    lock = tmp_path / runlock.LOCK_NAME
    lock.write_text("[" * 100_000 + "]" * 100_000)
    assert runlock._holder_text(lock) == "another jaxcnn process"
