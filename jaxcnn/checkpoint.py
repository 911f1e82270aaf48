"""Checkpoints: parameters, optimizer state, step and RNG state as ``.npz`` plus JSON.

A checkpoint is two files in a directory:

* ``checkpoint.npz``: plain numeric arrays only (loaded with ``allow_pickle=False``):
  ``params.filters`` (S, F, 3, 3), ``params.weights`` (S, 13*13*F, C),
  ``params.biases`` (S, C) in the report's layout, ``opt.0 .. opt.N`` (the optimizer
  state's leaves, dense ones in the report's layout too), ``shuffle_keys`` (the RNG
  state, raw key data per seed), ``step`` and ``epochs_done``. S is the number of seeds.
* ``checkpoint.json``: format tag and version, the full training config, class names,
  the array names/shapes/dtypes and the npz's sha256.

Both are written atomically (temporary file + rename), the npz first, so a reader never
sees a half-written checkpoint. Loading refuses, with a message saying why, anything
that is missing, corrupt, pickle-bearing or built for another architecture.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcnn import __version__, fast
from jaxcnn.config import TrainConfig
from jaxcnn.errors import CheckpointError, ConfigError
from jaxcnn.model import POOL_SIZE, Params

FORMAT = "jaxcnn-checkpoint"
VERSION = 1
NPZ_NAME = "checkpoint.npz"
JSON_NAME = "checkpoint.json"


@dataclass
class Checkpoint:
    config: TrainConfig
    class_names: tuple[str, ...]
    params: Params  # report layout, leading seed axis
    opt_leaves: list[np.ndarray]  # report layout
    shuffle_keys: np.ndarray  # (S, ...) raw key data
    step: int
    epochs_done: int


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` via a temporary file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(directory: str | Path, config: TrainConfig, class_names, state, shuffle_keys,
         step: int, epochs_done: int) -> Path:
    """Write ``state`` (a ``train.TrainState`` in the compute layout) as a checkpoint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    report_state = to_report_layout(state)
    arrays = {f"params.{name}": np.asarray(value)
              for name, value in report_state.params._asdict().items()}
    for i, leaf in enumerate(jax.tree.leaves(report_state.opt_state)):
        arrays[f"opt.{i}"] = np.asarray(leaf)
    arrays["shuffle_keys"] = np.asarray(shuffle_keys)
    arrays["step"] = np.asarray(step, np.int64)
    arrays["epochs_done"] = np.asarray(epochs_done, np.int64)

    digest = hashlib.sha256()

    def write_npz(fh):
        np.savez(fh, **arrays)

    _atomic_write(directory / NPZ_NAME, write_npz)
    digest.update((directory / NPZ_NAME).read_bytes())
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "jaxcnn_version": __version__,
        "config": config.to_dict(),
        "class_names": list(class_names),
        "step": step,
        "epochs_done": epochs_done,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        "npz_sha256": digest.hexdigest(),
    }
    text = json.dumps(meta, indent=2).encode()
    _atomic_write(directory / JSON_NAME, lambda fh: fh.write(text))
    return directory


def _fail(directory: Path, why: str) -> CheckpointError:
    return CheckpointError(f"cannot load the checkpoint in {directory}: {why}")


def load(directory: str | Path) -> Checkpoint:
    """Read and validate a checkpoint directory (or its ``checkpoint.json``/``.npz``)."""
    directory = Path(directory)
    if directory.suffix in (".json", ".npz"):
        directory = directory.parent
    json_path, npz_path = directory / JSON_NAME, directory / NPZ_NAME
    if not json_path.is_file() or not npz_path.is_file():
        raise _fail(directory, f"expected {JSON_NAME} and {NPZ_NAME} there; train with "
                               "`jaxcnn train --out DIR` to make one")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(directory, f"{JSON_NAME} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(directory, f"{JSON_NAME} is not a jaxcnn checkpoint (no format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise _fail(directory, f"checkpoint version {meta.get('version')!r} is not supported "
                               f"(this jaxcnn reads version {VERSION})")
    data = npz_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("npz_sha256"):
        raise _fail(directory, f"{NPZ_NAME} is corrupt or was changed after saving "
                               "(sha256 does not match checkpoint.json); re-train or restore it")
    try:
        config = TrainConfig.from_dict(meta["config"])
        class_names = tuple(str(c) for c in meta["class_names"])
    except (KeyError, TypeError, ConfigError) as exc:
        raise _fail(directory, f"its configuration is invalid ({exc})") from None
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _fail(directory, f"{NPZ_NAME} holds pickled Python objects, which could run "
                                   "arbitrary code; refusing to load it") from None
        raise _fail(directory, f"{NPZ_NAME} is unreadable ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _fail(directory, f"{NPZ_NAME} is unreadable ({exc})") from None
    return _validate(directory, config, class_names, arrays)


def _validate(directory: Path, config: TrainConfig, class_names, arrays) -> Checkpoint:
    s, f, c = config.seeds, config.num_filters, len(class_names)
    expected = {"params.filters": (s, f, 3, 3),
                "params.weights": (s, POOL_SIZE * POOL_SIZE * f, c),
                "params.biases": (s, c)}
    for name, shape in expected.items():
        if name not in arrays:
            raise _fail(directory, f"it has no {name!r} array")
        got = arrays[name]
        if got.shape != shape or got.dtype.kind != "f":
            raise _fail(directory, f"{name} is {got.dtype}{list(got.shape)} but this network "
                                   f"({f} 3x3 filters, {c} classes, {s} seeds) needs float"
                                   f"{list(shape)}: a different architecture")
    for name in ("step", "epochs_done", "shuffle_keys"):
        if name not in arrays:
            raise _fail(directory, f"it has no {name!r} array")
    opt_names = sorted((k for k in arrays if k.startswith("opt.")), key=lambda k: int(k[4:]))
    params = Params(*(arrays[k] for k in expected))
    return Checkpoint(config, class_names, params, [arrays[k] for k in opt_names],
                      arrays["shuffle_keys"], int(arrays["step"]), int(arrays["epochs_done"]))


def restore_state(ckpt: Checkpoint, template_state):
    """Rebuild a ``train.TrainState`` (compute layout) from ``ckpt``, shaped like
    ``template_state`` (a freshly initialised state of the same config)."""
    template = to_report_layout(template_state)
    leaves, treedef = jax.tree.flatten(template.opt_state)
    if len(leaves) != len(ckpt.opt_leaves) or any(
            np.shape(a) != np.shape(b) for a, b in zip(leaves, ckpt.opt_leaves, strict=True)):
        raise CheckpointError(
            f"the checkpoint's optimizer state does not match optimizer "
            f"{ckpt.config.optimizer!r} of its own configuration; it is corrupt or foreign")
    opt_state = jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in ckpt.opt_leaves])
    params = jax.tree.map(jax.numpy.asarray, ckpt.params)
    return to_fast_layout(type(template)(params, opt_state))
