"""Checkpoints: parameters, optimizer state, step, RNG state and metadata in ONE file.

``DIR/checkpoint.npz`` holds plain numeric arrays only (loaded with
``allow_pickle=False``):

* ``params.filters`` (S, F, 3, 3), ``params.weights`` (S, 13*13*F, C),
  ``params.biases`` (S, C): float32, the report's layout; S is the number of seeds;
* ``opt.0 .. opt.N``: the optimizer state's leaves (dense ones in the report's layout);
* ``shuffle_keys`` (S, 2) uint32: the RNG state, raw key data per seed;
* ``step``, ``epochs_done``: int64 scalars;
* ``meta``: uint8, the UTF-8 JSON metadata: format tag and version, run id, the full
  training config and its hash, class names, step and epochs done, resume history
  (settings changed at a resume), ``init_from`` (the checkpoint a run started from),
  ``data_sha256`` (the images and labels it trained and tested on, ``data_sha256()``;
  absent from checkpoints of older versions), every array's shape, dtype and sha256,
  and the sha256 of the metadata itself.

One file is one commit: ``save`` writes it with ``fsio.atomic_write`` (temporary file,
fsync, rename, fsync of the folder), so a crash at any instant leaves the previous
checkpoint or the new one, never a mix. ``load`` checks everything before trusting
anything: the zip's CRCs, the metadata's and every array's sha256, the type and range
of every metadata field (``TrainConfig.validate``), shapes against the architecture,
step and epochs against each other and the config, and finite parameters. Any problem
raises ``CheckpointError`` with one line saying why. The checksums detect accidental
damage and edits that do not recompute them; they are not a signature.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcnn import __version__, fast
from jaxcnn.errors import CheckpointError, ConfigError
from jaxcnn.model import POOL_SIZE, Params
from jaxcnn.training import fsio
from jaxcnn.training.config import RESUME_CHANGEABLE, TrainConfig

FORMAT = "jaxcnn-checkpoint"
VERSION = 2
FILE_NAME = "checkpoint.npz"
LEGACY_JSON = "checkpoint.json"  # format 1 kept its metadata here, unprotected
META = "meta"
PARAM_NAMES = ("params.filters", "params.weights", "params.biases")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Checkpoint:
    """A validated checkpoint. ``params`` in the report layout with a leading seed axis;
    ``history``: one ``{"step", "epochs_done", "changed": {name: [old, new]}}`` per
    resume that changed settings; ``init_from``: ``{"path", "run_id", "step",
    "config_hash"}`` of the checkpoint the run started from, or None."""

    config: TrainConfig
    class_names: tuple[str, ...]
    params: Params
    opt_leaves: list[np.ndarray]
    shuffle_keys: np.ndarray  # (S, 2) uint32
    step: int
    epochs_done: int
    run_id: str
    history: list[dict] = field(default_factory=list)
    init_from: dict | None = None
    data_sha256: str | None = None  # None: written by a version that did not record it


def _is_fast(node: Any) -> bool:
    return isinstance(node, fast.FastParams)


def to_report_layout(tree: Any) -> Any:
    """Convert every ``FastParams`` node (with a seed axis) in a pytree to ``Params``."""
    return jax.tree.map(lambda n: jax.vmap(fast.from_fast)(n) if _is_fast(n) else n, tree,
                        is_leaf=_is_fast)


def to_fast_layout(tree: Any) -> Any:
    """Inverse of ``to_report_layout``."""
    is_params = lambda n: isinstance(n, Params)  # noqa: E731
    return jax.tree.map(lambda n: jax.vmap(fast.to_fast)(n) if is_params(n) else n, tree,
                        is_leaf=is_params)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def data_sha256(dataset) -> str:
    """The sha256 of a ``data.Dataset``'s images and labels (both splits, as loaded: the
    first ``train_size`` / ``test_size``), shapes and dtypes included. A resumed run must
    see the same images to equal an uninterrupted one; a path (``idx:DIR``) or a download
    can hold other files later."""
    digest = hashlib.sha256()
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        array = np.ascontiguousarray(getattr(dataset, name))
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _canonical(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def save(directory: str | Path, config: TrainConfig, class_names, state, shuffle_keys,
         step: int, epochs_done: int, *, run_id: str, history=(), init_from=None,
         data_sha256: str | None = None) -> Path:
    """Commit ``state`` (a ``train.TrainState`` in the compute layout) as DIR's checkpoint.

    Atomic and durable (see the module docstring); refuses (``CheckpointError``) a state
    with a non-finite value. Raises ``OSError`` when the file cannot be written; the
    previous checkpoint is then intact. Returns the file's path.
    """
    path = Path(directory) / FILE_NAME
    report_state = to_report_layout(state)
    arrays = {f"params.{name}": np.asarray(value)
              for name, value in report_state.params._asdict().items()}
    for i, leaf in enumerate(jax.tree.leaves(report_state.opt_state)):
        arrays[f"opt.{i}"] = np.asarray(leaf)
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError(f"refusing to save a checkpoint whose {name} is not finite")
    arrays["shuffle_keys"] = np.asarray(shuffle_keys)
    arrays["step"] = np.asarray(step, np.int64)
    arrays["epochs_done"] = np.asarray(epochs_done, np.int64)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "jaxcnn_version": __version__,
        "run_id": run_id,
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "class_names": list(class_names),
        "step": int(step),
        "epochs_done": int(epochs_done),
        "history": list(history),
        "init_from": init_from,
        "data_sha256": data_sha256,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": _sha256(v)}
                   for k, v in arrays.items()},
    }
    meta["sha256"] = hashlib.sha256(_canonical(meta)).hexdigest()
    arrays[META] = np.frombuffer(json.dumps(meta, indent=1).encode(), np.uint8)
    fsio.atomic_write(path, lambda fh: np.savez(fh, **arrays), label=f"checkpoint-e{epochs_done}")
    return path


def _fail(directory: Path, why: str) -> CheckpointError:
    return CheckpointError(f"cannot load the checkpoint in {directory}: {why}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _read_arrays(directory: Path, path: Path) -> dict[str, np.ndarray]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(directory, f"cannot read {FILE_NAME} ({exc.strerror})") from None
    if not raw.startswith(b"PK"):  # not a zip: say what it is before numpy guesses
        if raw.startswith(b"\x80"):
            raise _fail(directory, f"{FILE_NAME} is a Python pickle, which could run "
                                   "arbitrary code; refusing to load it")
        what = ("empty" if not raw else
                f"not an npz archive (a zip file); it starts with {raw[:16]!r}")
        raise _fail(directory, f"{FILE_NAME} is {what}: corrupt, or not a jaxcnn checkpoint; "
                               "restore it or train again")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _fail(directory, f"{FILE_NAME} holds pickled Python objects, which could run "
                                   "arbitrary code; refusing to load it") from None
        raise _fail(directory, f"{FILE_NAME} is corrupt or unreadable ({exc})") from None
    except zipfile.BadZipFile as exc:
        why = ("was changed after saving" if "CRC" in str(exc) else "is unreadable")
        raise _fail(directory, f"{FILE_NAME} is corrupt: it {why} ({exc}); restore it or "
                               "train again") from None
    except (OSError, EOFError, zlib.error, KeyError) as exc:
        raise _fail(directory, f"{FILE_NAME} is corrupt or unreadable ({exc})") from None


def _is_int(value, low: int = 0, high: int = 2**62) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_meta(directory: Path, meta: Any, arrays: dict) -> None:
    """Format, self-checksum and the array table of the metadata."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(directory, f"{FILE_NAME} is not a jaxcnn checkpoint (no format {FORMAT!r})")
    if meta.get("version") != VERSION or not _is_int(meta.get("version")):
        raise _fail(directory, f"checkpoint version {meta.get('version')!r} is not supported "
                               f"(this jaxcnn reads version {VERSION})")
    claimed = meta.pop("sha256", None)
    if not isinstance(claimed, str) or hashlib.sha256(_canonical(meta)).hexdigest() != claimed:
        raise _fail(directory, "its metadata is corrupt or was changed after saving (sha256 "
                               "does not match); restore the file or train again")
    table = meta.get("arrays")
    if not isinstance(table, dict) or set(table) != set(arrays):
        raise _fail(directory, "its array table does not list exactly the arrays it holds")
    for name, array in arrays.items():
        entry = table[name]
        if (not isinstance(entry, dict) or entry.get("shape") != list(array.shape)
                or entry.get("dtype") != str(array.dtype)
                or entry.get("sha256") != _sha256(array)):
            raise _fail(directory, f"array {name} is corrupt or was changed after saving "
                                   "(shape, dtype or sha256 does not match the metadata)")


def _check_history(history: Any) -> bool:
    if not isinstance(history, list):
        return False
    for entry in history:
        if not (isinstance(entry, dict) and set(entry) == {"step", "epochs_done", "changed"}
                and _is_int(entry["step"]) and _is_int(entry["epochs_done"])
                and isinstance(entry["changed"], dict)
                and all(k in RESUME_CHANGEABLE and isinstance(v, list) and len(v) == 2
                        for k, v in entry["changed"].items())):
            return False
    return True


def _check_init_from(init_from: Any) -> bool:
    return init_from is None or (
        isinstance(init_from, dict)
        and set(init_from) == {"path", "run_id", "step", "config_hash"}
        and isinstance(init_from["path"], str) and isinstance(init_from["run_id"], str)
        and RUN_ID.match(init_from["run_id"]) is not None and _is_int(init_from["step"])
        and isinstance(init_from["config_hash"], str))


def load(directory: str | Path) -> Checkpoint:
    """Read and validate the checkpoint of a run folder (or its ``checkpoint.npz``).

    Raises ``CheckpointError`` (one line, saying why) for anything missing, corrupt,
    changed after saving, pickle-bearing, malformed, foreign or non-finite.
    """
    directory = Path(directory)
    if directory.suffix in (".json", ".npz"):
        directory = directory.parent
    path = directory / FILE_NAME
    if directory.is_file():
        raise _fail(directory, "it is a file, not a run folder; give the folder that "
                               "`jaxcnn train --out DIR` wrote")
    if path.exists() and not path.is_file():  # never opened: a FIFO would block
        from jaxcnn.data.common import file_kind

        raise _fail(directory, f"its {FILE_NAME} is not a file ({file_kind(path.stat().st_mode)}"
                               "); restore the checkpoint or train again")
    if not path.is_file():
        if (directory / "metrics.csv").is_file():
            raise _fail(directory, f"there is no {FILE_NAME} there: the run that logged its "
                                   "metrics.csv stopped (diverged, failed or was stopped) "
                                   "before its first checkpoint was saved; train it again "
                                   "with "
                                   f"`jaxcnn train --out {shlex.quote(str(directory))} "
                                   "--force` and its flags")
        raise _fail(directory, f"there is no {FILE_NAME} there; train with "
                               "`jaxcnn train --out DIR` to make one")
    arrays = _read_arrays(directory, path)
    if META not in arrays:
        older = " (an older jaxcnn's two-file format 1)" if (directory / LEGACY_JSON).exists() \
            else ""
        raise _fail(directory, f"{FILE_NAME} has no embedded metadata{older}, so it cannot be "
                               "verified; train again with this version")
    meta_array = arrays.pop(META)
    if meta_array.dtype != np.uint8 or meta_array.ndim != 1:
        raise _fail(directory, "its metadata is not a byte string")
    try:
        meta = json.loads(meta_array.tobytes().decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(directory, f"its metadata is not valid JSON ({exc})") from None
    except RecursionError:  # JSON nested thousands of levels deep: never written by save
        raise _fail(directory, "its metadata is nested too deeply to be a jaxcnn checkpoint's "
                               "(corrupt or crafted); restore the file or train again") from None
    try:
        _check_meta(directory, meta, arrays)
    except RecursionError:  # deep, but not too deep for the parser: its checksum's dump
        raise _fail(directory, "its metadata is nested too deeply to be a jaxcnn checkpoint's "
                               "(corrupt or crafted); restore the file or train again") from None
    try:
        config = TrainConfig.from_dict(meta.get("config"), strict=True)
    except ConfigError as exc:
        raise _fail(directory, f"its configuration is invalid ({exc})") from None
    if meta.get("config_hash") != config.digest():
        raise _fail(directory, "its config_hash does not match its configuration")
    names = meta.get("class_names")
    if (not isinstance(names, list) or not 2 <= len(names) <= 100_000
            or not all(isinstance(c, str) and c for c in names) or len(set(names)) != len(names)):
        raise _fail(directory, "class_names must be a list of at least 2 distinct, non-empty "
                               "strings")
    step, epochs_done = meta.get("step"), meta.get("epochs_done")
    if not _is_int(epochs_done, 1, config.epochs):
        raise _fail(directory, f"epochs_done {epochs_done!r} is not between 1 and the "
                               f"configuration's {config.epochs} epochs")
    per_epoch = (config.train_images // config.batch_size if config.train_size is not None
                 else None)
    if not _is_int(step, epochs_done) or (per_epoch is not None
                                          and step != epochs_done * per_epoch):
        raise _fail(directory, f"step {step!r} does not fit {epochs_done} epoch(s) of "
                               f"{per_epoch or 'at least 1'} step(s)")
    if not isinstance(meta.get("run_id"), str) or not RUN_ID.match(meta["run_id"]):
        raise _fail(directory, "its run_id is not 32 hexadecimal digits")
    if not isinstance(meta.get("jaxcnn_version"), str):
        raise _fail(directory, "its jaxcnn_version is not a string")
    if not _check_history(meta.get("history")):
        raise _fail(directory, "its resume history is malformed")
    if not _check_init_from(meta.get("init_from")):
        raise _fail(directory, "its init_from record is malformed")
    if meta.get("data_sha256") is not None and not (
            isinstance(meta["data_sha256"], str) and SHA256.match(meta["data_sha256"])):
        raise _fail(directory, "its data_sha256 is not 64 hexadecimal digits")
    return _validate_arrays(directory, config, tuple(names), arrays, meta)


def _validate_arrays(directory: Path, config: TrainConfig, class_names, arrays,
                     meta: dict) -> Checkpoint:
    s, f, c = config.seeds, config.num_filters, len(class_names)
    expected = dict(zip(PARAM_NAMES, [(s, f, 3, 3), (s, POOL_SIZE * POOL_SIZE * f, c), (s, c)],
                        strict=True))
    for name, shape in expected.items():
        if name not in arrays:
            raise _fail(directory, f"it has no {name!r} array")
        got = arrays[name]
        if got.shape != shape or got.dtype != np.float32:
            raise _fail(directory, f"{name} is {got.dtype}{list(got.shape)} but this network "
                                   f"({f} 3x3 filters, {c} classes, {s} seeds) needs float32"
                                   f"{list(shape)}: a different architecture")
    for name in ("step", "epochs_done", "shuffle_keys"):
        if name not in arrays:
            raise _fail(directory, f"it has no {name!r} array")
    for name in ("step", "epochs_done"):
        value = arrays[name]
        if value.shape != () or value.dtype != np.int64 or int(value) != meta[name]:
            raise _fail(directory, f"its {name} array is not the int64 scalar {meta[name]} "
                                   "its metadata states")
    keys = arrays["shuffle_keys"]
    if keys.shape != (s, 2) or keys.dtype != np.uint32:
        raise _fail(directory, f"shuffle_keys is {keys.dtype}{list(keys.shape)}, expected "
                               f"uint32[{s}, 2]")
    opt_names = [k for k in arrays if k.startswith("opt.")]
    if sorted(opt_names) != sorted(f"opt.{i}" for i in range(len(opt_names))) or set(
            arrays) != set(expected) | set(opt_names) | {"step", "epochs_done", "shuffle_keys"}:
        raise _fail(directory, "its arrays are not the ones a jaxcnn checkpoint holds")
    opt_leaves = [arrays[f"opt.{i}"] for i in range(len(opt_names))]
    for name in [*expected, *opt_names]:
        value = arrays[name]
        if value.dtype.kind not in "fiu":
            raise _fail(directory, f"{name} is {value.dtype}, not a number array")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise _fail(directory, f"{name} holds NaN or infinite values: the run it comes "
                                   "from diverged; train again with a smaller --lr")
    params = Params(*(arrays[k] for k in expected))
    return Checkpoint(config, class_names, params, opt_leaves, keys, meta["step"],
                      meta["epochs_done"], meta["run_id"], meta["history"], meta["init_from"],
                      meta.get("data_sha256"))


def restore_state(ckpt: Checkpoint, template_state):
    """Rebuild a ``train.TrainState`` (compute layout) from ``ckpt``, shaped like
    ``template_state`` (a freshly initialised state of ``ckpt.config``).
    Raises ``CheckpointError`` when the optimizer state does not fit that config."""
    template = to_report_layout(template_state)
    leaves, treedef = jax.tree.flatten(template.opt_state)
    if len(leaves) != len(ckpt.opt_leaves) or any(
            np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype
            for a, b in zip(leaves, ckpt.opt_leaves, strict=True)):
        raise CheckpointError(
            f"the checkpoint's optimizer state does not match optimizer "
            f"{ckpt.config.optimizer!r} of its own configuration; it is corrupt or foreign")
    opt_state = jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in ckpt.opt_leaves])
    params = jax.tree.map(jax.numpy.asarray, ckpt.params)
    return to_fast_layout(type(template)(params, opt_state))
