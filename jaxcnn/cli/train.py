"""Train the network; with no flags, exactly the report's protocol.

Defaults: embedded MNIST, the first 3,000 training images in order, 800 test images,
one epoch, one image per step, plain SGD at lr 0.005, the report's hand-derived
gradients and max-pool tie rule. Prints the report's log line every 100 steps and the
test loss/accuracy at the end. ``--seeds K`` trains K models at once; ``--out DIR``
writes metrics.csv (as windows happen), a checkpoint (every epoch) and metrics.json
(at the end); ``--resume DIR`` continues a run, ``--init-from DIR`` starts a new one
from its weights.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import uuid
from pathlib import Path

from jaxcnn import data, faults
from jaxcnn.cli import path_arg, run_folder
from jaxcnn.errors import CheckpointError, ConfigError, DivergenceError
from jaxcnn.model import TIE_RULES
from jaxcnn.training import fsio
from jaxcnn.training.config import (
    GRADIENTS,
    MAX_SHIFT,
    OPTIMIZERS,
    RESUME_CHANGEABLE,
    SCHEDULES,
    TrainConfig,
)

# Training flags: (flag, config field, argparse kwargs). Defaults come from TrainConfig.
_FLAGS = [
    ("--train-size", "train_size", dict(type=int, metavar="N",
                                        help="use the first N training images (default 3000)")),
    ("--test-size", "test_size", dict(type=int, metavar="N",
                                      help="test on the first N test images (default 800)")),
    ("--epochs", "epochs", dict(type=int, help="passes over the training images (default 1)")),
    ("--shuffle", "shuffle", dict(action=argparse.BooleanOptionalAction,
                                  help="reshuffle the training images every epoch, from the "
                                       "seed (default: no, the report's fixed order)")),
    ("--optimizer", "optimizer", dict(choices=OPTIMIZERS, help="default sgd (the report's)")),
    ("--lr", "lr", dict(type=float, help="learning rate (default 0.005; adam 0.001)")),
    ("--momentum", "momentum", dict(type=float, help="for --optimizer momentum (default 0.9)")),
    ("--batch-size", "batch_size", dict(type=int, metavar="B",
                                        help="images per step (default 1, the report's); the "
                                             "last partial batch of an epoch is dropped")),
    ("--grad", "grad", dict(choices=GRADIENTS, help="manual: the report's hand-derived "
                                                    "gradients (default); autodiff: jax.grad")),
    ("--ties", "ties", dict(choices=TIE_RULES, help="max-pool tie rule of the gradient "
                                                    "(default report)")),
    ("--seed", "seed", dict(type=int, help="random seed (default 0)")),
    ("--seeds", "seeds", dict(type=int, metavar="K",
                              help="train K models, seeds seed..seed+K-1, in one program "
                                   "(default 1)")),
    ("--log-every", "log_every", dict(type=int, metavar="STEPS",
                                      help="steps per log line (default 100)")),
    ("--filters", "num_filters", dict(type=int, help="conv filters (default 8)")),
    ("--freeze-conv", "freeze_conv", dict(action="store_const", const=True,
                                          help="train only the softmax layer (the report's "
                                               "second step)")),
    ("--schedule", "schedule", dict(choices=SCHEDULES,
                                    help="learning rate over the run: constant (default); "
                                         "cosine: from --lr down to 0 at the last step; "
                                         "warmup-cosine: from 0 up to --lr over the first "
                                         "epoch (at most a tenth of the run), then cosine "
                                         "to 0")),
    ("--weight-decay", "weight_decay", dict(type=float, metavar="W",
                                            help="weight decay, 0 to 1 (default 0): adam "
                                                 "becomes adamw; sgd/momentum add W * param "
                                                 "to the gradient")),
    ("--shift", "shift", dict(type=int, metavar="N",
                              help=f"augmentation: move each training image by a random 0..N "
                                   f"pixels up/down and left/right every time it is seen "
                                   f"(0 to {MAX_SHIFT}; default 0: none)")),
    ("--validation", "validation", dict(type=int, metavar="N",
                                        help="hold out the last N of the training images: "
                                             "not trained on, scored after training "
                                             "(default 0)")),
]
_FLAG_OF = {dest: flag for flag, dest, _ in _FLAGS} | {"data": "--data"}
# what else the processes of a multi-process run must agree on (distributed.compare)
_AGREED_NAMES = {"data_sha256": "the sha256 of the data (--data)",
                 "class_names": "the class names of --data", "learning_rate": "--lr",
                 "resume": "the checkpoint --resume continues (run id, step)",
                 "init_from": "the checkpoint of --init-from (run id, step)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data.add_data_arguments(parser)
    parser.set_defaults(data=None)
    for flag, dest, kwargs in _FLAGS:
        parser.add_argument(flag, dest=dest, default=None, **kwargs)
    parser.add_argument("--out", type=path_arg, metavar="DIR",
                        help="write metrics.csv, a checkpoint and metrics.json here")
    parser.add_argument("--resume", type=path_arg, metavar="DIR",
                        help="continue the run in DIR (its configuration; --epochs, --lr, "
                             "--optimizer, --momentum and --freeze-conv may change)")
    parser.add_argument("--init-from", type=path_arg, metavar="DIR",
                        help="start a new run from the parameters of DIR's checkpoint (same "
                             "filters and class count; any data, optimizer and size)")
    parser.add_argument("--ignore-label-warnings", action="store_true",
                        help="train even when the training labels cannot explain the test "
                             "set (one training class, or no test class seen in training)")
    parser.add_argument("--force", action="store_true",
                        help="replace the run that --out already holds")
    parser.add_argument("--cpu-devices", type=int, metavar="N",
                        help="split the CPU into N JAX devices so that --seeds run in parallel "
                             "on N cores (default: as many cores as divide --seeds; for one "
                             "seed 2 when its --batch-size is even and at least 64 and the "
                             "machine has 2 cores or more: each core computes half of every "
                             "batch, the same numbers bit for bit; else 1). --cpu-devices 1 "
                             "turns the split off (same numbers, slower)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (it is off anyway when stderr is not a terminal)")
    multi = parser.add_argument_group(
        "several processes (JAX's multi-process runtime; see the README)")
    multi.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0, which hosts the coordination service "
                            "(default $JAX_COORDINATOR_ADDRESS)")
    multi.add_argument("--num-processes", type=int, metavar="N",
                       help="processes in the run (default $JAX_NUM_PROCESSES)")
    multi.add_argument("--process-id", type=int, metavar="I",
                       help="this process, 0..N-1; 0 prints and writes --out "
                            "(default $JAX_PROCESS_ID)")
    multi.add_argument("--distributed", action="store_true",
                       help="take the settings above from JAX's cluster auto-detection "
                            "(SLURM, Open MPI, Kubernetes, ...)")


def _given(args: argparse.Namespace) -> dict:
    given = {dest: getattr(args, dest) for _, dest, _ in _FLAGS if getattr(args, dest) is not None}
    if args.data is not None:
        given["data"] = args.data
    return given


def _refuse_ignored_flags(args: argparse.Namespace, config: TrainConfig) -> None:
    """Flags that would change nothing in this run are an error, not silently dropped."""
    if args.momentum is not None and config.optimizer != "momentum":
        raise ConfigError(f"--momentum applies to --optimizer momentum only (this run uses "
                          f"{config.optimizer}); drop --momentum or add --optimizer momentum")
    n = args.cpu_devices
    if n is not None and n > 1:
        splits = (f"--seeds {config.seeds}" if config.seeds > 1
                  else f"--batch-size {config.batch_size} (one seed)")
        if (config.seeds % n if config.seeds > 1 else config.batch_size % n):
            raise ConfigError(f"--cpu-devices {n} must divide {splits}: the seeds (or one "
                              "seed's mini-batch) are what is split across devices")


def config_from_args(args: argparse.Namespace, **defaults) -> TrainConfig:
    """A new run's config: the flags given, else ``defaults``, else the report's protocol."""
    return TrainConfig(**(defaults | _given(args))).validate()


def resume_config(args: argparse.Namespace, saved: TrainConfig) -> tuple[TrainConfig, dict]:
    """The config of a resumed run and its changes ``{field: [old, new]}``.

    Flags equal to the saved settings are accepted; only ``RESUME_CHANGEABLE`` ones may
    differ (``learning_rate`` stands for ``lr``). Raises ``ConfigError`` otherwise.
    """
    given = _given(args)
    optimizer = given.get("optimizer", saved.optimizer)
    if "lr" not in given and optimizer != saved.optimizer:
        given["lr"] = None  # a new optimizer brings its own default learning rate
    base = {k: v for k, v in saved.to_dict().items() if k != "learning_rate"}
    config = TrainConfig.from_dict(base | given)
    if config.lr is not None and config.lr == saved.learning_rate and saved.lr is None:
        config = TrainConfig.from_dict(config.to_dict() | {"lr": None,
                                                          "learning_rate": saved.learning_rate})
    before, after = saved.to_dict(), config.to_dict()
    changed = {k: [before[k], after[k]] for k in after if k != "lr" and before[k] != after[k]}
    refused = sorted(k for k in changed if k not in RESUME_CHANGEABLE + ("learning_rate",))
    if refused:
        detail = ", ".join(f"{_FLAG_OF[k]} {changed[k][0]!r} -> {changed[k][1]!r}"
                           for k in refused)
        raise ConfigError(
            f"--resume continues the saved run, whose {detail} cannot change; only --epochs, "
            "--lr, --optimizer, --momentum and --freeze-conv may. To train a new run from its "
            "weights use --init-from DIR")
    if "epochs" in changed and config.schedule != "constant":
        raise ConfigError(
            f"--epochs cannot change on --resume with --schedule {config.schedule}: the "
            f"schedule spans the run's {saved.epochs} epoch(s), so more epochs would change "
            "the learning rate of the steps already taken; to train further start a new run "
            "from its weights with --init-from DIR")
    if "learning_rate" in changed:
        changed["lr"] = changed.pop("learning_rate")
    return config, changed


def _percent(fraction: float, images: int) -> str:
    value = 100 * fraction
    return f"{value:.0f}%" if images % 100 == 0 and images <= 100 else f"{value:.1f}%"


def format_window(window, config: TrainConfig) -> str:
    """The report's line: ``[Step 100] Past 100 steps: Average Loss 2.202 | Accuracy: 22%``."""
    loss, acc = float(window.loss.mean()), float(window.accuracy.mean())
    line = (f"[Step {window.step}] Past {window.steps} steps: Average Loss {loss:.3f} | "
            f"Accuracy: {_percent(acc, window.steps * config.batch_size)}")
    if config.seeds > 1:
        line += f" (mean of {config.seeds} seeds)"
    return line


def _score_lines(name: str, loss, acc) -> list[str]:
    if len(loss) == 1:
        return [f"{name} Loss: {loss[0]:.6g}", f"{name} Accuracy: {acc[0]:.6g}"]
    return [f"{name} Loss: {loss.mean():.4f} ± {loss.std(ddof=1):.4f} "
            f"(mean ± std of {len(loss)} seeds)",
            f"{name} Accuracy: {acc.mean():.4f} ± {acc.std(ddof=1):.4f} "
            f"(min {acc.min():.4f}, max {acc.max():.4f})"]


def format_result(result) -> list[str]:
    lines = []
    if result.validation_loss is not None:
        lines += _score_lines("Validation", result.validation_loss, result.validation_accuracy)
    lines += _score_lines("Test", result.test_loss, result.test_accuracy)
    t = result.timings
    speed = (f"({t['images_per_second']:,.0f} images/s)" if t["images_per_second"]
             else "(nothing left to train)")
    lines.append(f"Trained {t['images_trained']:,} images in {t['train_seconds']:.2f} s "
                 f"{speed}, compile {t['compile_seconds']:.2f} s, "
                 f"wall {t['wall_seconds']:.2f} s"
                 + (f", {t['devices']} devices ({t['sharded_axis']} axis sharded)"
                    if t["devices"] > 1 else ""))
    return lines


def use_cpu_devices(requested: int | None, seeds: int, processes: int = 1,
                    batch_parts: int = 1) -> int:
    """Split the CPU into several JAX devices (before JAX starts) so seeds run in parallel.

    One XLA:CPU device runs a per-image step on one core; with N devices the seed axis is
    sharded and N cores work at once. Default: the most cores that divide ``seeds``; for
    one seed whose mini-batch is computed in ``batch_parts`` parts (``split_parts``),
    that many devices when the cores allow, each computing one part of every batch. The
    numbers do not depend on N (each seed runs the single-seed program, each part the
    one-device part; tested bit for bit), so this default, which follows the machine's
    core count, changes only speed. Returns the count asked for (1 = leave JAX alone).
    No effect on GPU/TPU backends.
    """
    import os

    import jax

    if requested is None and processes > 1:
        requested = 1  # one device per process: the processes are the parallelism
    if requested is None:
        cores = os.cpu_count() or 1
        requested = max(n for n in range(1, min(cores, seeds) + 1) if seeds % n == 0)
        if seeds == 1 and 1 < batch_parts <= cores:
            requested = batch_parts
    if requested < 1:
        raise ConfigError("--cpu-devices must be at least 1")
    if requested > 1:
        try:
            jax.config.update("jax_num_cpu_devices", requested)
        except RuntimeError:  # JAX already started in this process: keep its devices
            return 1
    return requested


def split_parts(config: TrainConfig) -> int:
    """Devices one seed's mini-batch is split over by default, one part each, with the
    one-device numbers (``fast.batch_parts``; ``train.Placement.split_batch``): 2 for an
    even batch of ``fast.PARTS_FROM`` images or more with hand-derived gradients, else 1
    (autodiff's split is XLA's, in another summation order: not a default)."""
    from jaxcnn.fast import batch_parts

    return batch_parts(config.batch_size) if config.seeds == 1 and config.grad == "manual" else 1


def continue_command(epochs_done: int, folder: Path, out: Path, config: TrainConfig) -> str:
    """What a diverged run prints: where its last checkpoint is and the command, runnable
    as is, that continues it at a tenth of the learning rate. A checkpoint in another
    folder than ``out`` (a run resumed into a new --out that diverged before its first
    save) is continued into ``out`` again, replacing what the failed attempt left there."""
    into = "" if _same_dir(folder, out) else f" --out {shlex.quote(str(out))} --force"
    return (f"The checkpoint of epoch {epochs_done} in {folder} is kept: continue it with "
            f"`jaxcnn train --resume {shlex.quote(str(folder))}{into} --epochs {config.epochs} "
            f"--lr {config.learning_rate / 10:g}`.")


def _same_dir(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


def _init_params(source, config: TrainConfig, num_classes: int):
    """``--init-from``: the source checkpoint's parameters for ``config.seeds`` seeds."""
    import jax
    import numpy as np

    from jaxcnn.training import checkpoint

    s = source.config.seeds
    if source.config.num_filters != config.num_filters:
        raise ConfigError(f"--init-from: the checkpoint has {source.config.num_filters} filters "
                          f"but this run asks for {config.num_filters}; drop --filters")
    if len(source.class_names) != num_classes:
        raise ConfigError(f"--init-from: the checkpoint classifies {len(source.class_names)} "
                          f"classes but {config.data} has {num_classes}; start from a "
                          f"checkpoint trained on {num_classes} classes, or drop --init-from")
    if s not in (1, config.seeds):
        raise ConfigError(f"--init-from: the checkpoint holds {s} seeds; give --seeds {s}, or "
                          "start from a one-seed checkpoint")
    params = jax.tree.map(lambda a: np.broadcast_to(a, (config.seeds, *a.shape[1:])),
                          source.params)
    return checkpoint.to_fast_layout(jax.tree.map(jax.numpy.asarray, params))


def _label_warnings(args: argparse.Namespace, dataset, config: TrainConfig) -> list[str]:
    """The label problems of a new run's data (``plausible``): the serious ones refuse it
    (``ConfigError``) unless ``--ignore-label-warnings``; returns the lines to print."""
    from jaxcnn.data import plausible

    serious, minor = plausible.label_problems(dataset.train_labels, dataset.test_labels,
                                              dataset.class_names)
    if serious and not args.ignore_label_warnings:
        raise ConfigError(f"the training labels of {config.data} cannot explain its test set: "
                          f"{'; '.join(serious)}; check the labels files (`jaxcnn data "
                          f"--data {config.data}`), or pass --ignore-label-warnings to train "
                          "anyway")
    return serious + minor


def run(args: argparse.Namespace) -> int:
    from jaxcnn.training import checkpoint, distributed, outputs

    if args.resume is not None and args.init_from is not None:
        raise ConfigError("--resume continues a run and --init-from starts a new one; give one")
    if args.resume is not None:  # DIR or DIR/checkpoint.npz, as in evaluate and plot
        args.resume = run_folder(args.resume, "--resume")
    if args.init_from is not None:
        args.init_from = run_folder(args.init_from, "--init-from")
    if args.resume is not None and args.force and (args.out is None
                                                   or _same_dir(args.out, args.resume)):
        raise ConfigError("--force replaces the run in --out with a new one and --resume "
                          "continues one; give one (with --resume, --force can only replace "
                          "what another --out folder holds)")
    settings = distributed.settings_from(args.coordinator, args.num_processes,
                                         args.process_id, args.distributed)
    source = config = None
    if args.resume is None:  # a new run: its flags are checked before the folder is touched
        if args.init_from is not None:
            source = checkpoint.load(args.init_from)
            config = config_from_args(args, num_filters=source.config.num_filters)
        else:
            config = config_from_args(args)
    if not settings.requested:
        return _run(args, config, source, checkpoint, outputs, lambda *_: None)

    # Several processes: JAX's runtime starts before anything touches its backend.
    seeds = config.seeds if config is not None else checkpoint.load(args.resume).config.seeds
    use_cpu_devices(args.cpu_devices, seeds, processes=settings.num_processes or 2)
    multi = distributed.initialize(settings)
    if not multi:
        return _run(args, config, source, checkpoint, outputs, lambda *_: None)
    phases = [0]

    def agree(values=None):  # every process is ready (or one failed: all stop); twice:
        phases[0] += 1  # all checks passed, then process 0's run folder is ready
        distributed.agree(None)
        if values is not None:  # and all of them run the same config on the same data
            distributed.compare(values, _FLAG_OF | _AGREED_NAMES)

    quiet = distributed.process_index() != 0  # only process 0 prints and writes
    if quiet:  # at the file descriptor: Gloo's C++ code prints to stdout too
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    try:
        with contextlib.redirect_stdout(open(os.devnull, "w")) if quiet else (
                contextlib.nullcontext()):
            return _run(args, config, source, checkpoint, outputs, agree, writer=not quiet)
    except Exception as exc:
        if phases[0] < 2 and not isinstance(exc, distributed.PeerError):
            distributed.agree(exc)  # tell the others, at the exchange they wait in
        raise
    finally:
        distributed.shutdown()


def _run(args, config, source, checkpoint, outputs, agree, writer: bool = True) -> int:
    from jaxcnn.training import rundir

    out = (args.out or args.resume) if writer else None
    resuming_here = _same_dir(out, args.resume)
    lock = (rundir.prepare(out, resuming_here=resuming_here, force=args.force)
            if out is not None else None)
    with lock or contextlib.nullcontext():
        return _train(args, out, config, source, checkpoint, outputs, agree, lock=lock)


def _train(args, out: Path | None, config: TrainConfig | None, source, checkpoint,
           outputs, agree=lambda *_: None, lock=None) -> int:
    """Check everything that can fail before training, then ``agree`` (every process is
    ready), then train. Nothing in ``out`` is written before the checks passed, and a run
    that ``--force`` replaces stays whole until this run's first checkpoint commits over
    it (``lock``, a ``runlock.RunLock``: its staged log, ``commit``)."""
    from tqdm import tqdm

    ckpt, changed, history, init_from = None, {}, [], None
    if args.resume is not None:  # a run without a checkpoint: the same line as evaluate's
        ckpt = checkpoint.load(args.resume)
        config, changed = resume_config(args, ckpt.config)
        if ckpt.epochs_done >= config.epochs:
            raise ConfigError(f"the checkpoint in {args.resume} has already trained its "
                              f"{ckpt.epochs_done} epoch(s); give --epochs "
                              f"{ckpt.epochs_done + 1} or more to train further, or score it "
                              "with `jaxcnn evaluate`")
        run_id, history = ckpt.run_id, list(ckpt.history)
        numeric = {k: v for k, v in changed.items() if k != "epochs"}
        if numeric:
            history.append({"step": ckpt.step, "epochs_done": ckpt.epochs_done,
                            "changed": numeric})
    else:
        run_id = uuid.uuid4().hex
        if source is not None:
            init_from = {"path": str(args.init_from.resolve()), "run_id": source.run_id,
                         "step": source.step, "config_hash": source.config.digest()}
    _refuse_ignored_flags(args, config)
    from jaxcnn import memory

    # before JAX's runtime allocates: under `ulimit -v` XLA's C++ would abort instead
    memory.check_train(config.seeds, config.num_filters,
                       (config.train_size or 60_000) + (config.test_size or 10_000))
    import jax

    if not jax.distributed.is_initialized():  # a multi-process run chose its devices already
        use_cpu_devices(args.cpu_devices, config.seeds, batch_parts=split_parts(config))
    from jaxcnn.cli import xla_cache

    xla_cache.enable()  # compiled programs from earlier runs load from disk

    from jaxcnn.training import train

    dataset = data.load(config.data, train_size=config.train_size, test_size=config.test_size,
                        download=args.download)
    num_classes = len(dataset.class_names)
    data_sha256 = checkpoint.data_sha256(dataset)
    shuffle_keys = jax.random.key_data(train.seed_keys(config)[1])
    resume = None
    if ckpt is not None:
        if tuple(dataset.class_names) != ckpt.class_names:
            raise ConfigError(f"the checkpoint was trained on classes {ckpt.class_names}, "
                              f"but {config.data} has {dataset.class_names}")
        if ckpt.data_sha256 is not None and ckpt.data_sha256 != data_sha256:
            raise ConfigError(
                f"{config.data} no longer holds the images the checkpoint in {args.resume} "
                f"was trained and tested on (the sha256 of its first "
                f"{len(dataset.train_labels):,} training and {len(dataset.test_labels):,} test "
                "images and labels differs), so the "
                "resumed run could not equal an uninterrupted one; restore that data, or "
                f"start a new run from its weights with --init-from {args.resume}")
        if not (ckpt.shuffle_keys == jax.device_get(shuffle_keys)).all():
            raise CheckpointError(f"the checkpoint in {args.resume} is corrupt: its RNG state "
                                  "does not match its seed")
        state = checkpoint.restore_state(ckpt, train.init_state(ckpt.config, num_classes))
        if {"optimizer", "freeze_conv"} & set(changed):
            state = train.fresh_state(config, state.params)
        resume = (state, ckpt.step, ckpt.epochs_done)
        print(f"Resuming {args.resume} at step {ckpt.step} (epoch {ckpt.epochs_done} done)")
        for name, (old, new) in changed.items():
            if name != "epochs":
                print(f"note: {_FLAG_OF.get(name, '--' + name)} changed from {old} to {new}: "
                      "from here on the run is no longer bit-identical to an uninterrupted one")
        if {"optimizer", "freeze_conv"} & set(changed):
            print("note: the optimizer state starts afresh")
    elif source is not None:
        if tuple(dataset.class_names) != source.class_names:
            print(f"note: --init-from {args.init_from} was trained on classes "
                  f"{', '.join(source.class_names)}; {config.data} has "
                  f"{', '.join(dataset.class_names)}")
        params = _init_params(source, config, num_classes)
        resume = (train.fresh_state(config, params), 0, 0)
        print(f"Starting from the parameters of {args.init_from} (step {source.step})")

    warnings = [] if ckpt is not None else (  # a resumed run was accepted, same data
        _label_warnings(args, dataset, config))
    n = len(dataset.train_labels) - config.validation
    if n < 1:
        raise ConfigError(f"--validation {config.validation:,} leaves none of the "
                          f"{len(dataset.train_labels):,} training images of {config.data} "
                          "to train on; give a smaller --validation")
    if n < config.batch_size:  # before anything is printed
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the {n:,} "
                          "training images; give a smaller --batch-size or a larger "
                          "--train-size")
    steps_per_epoch = n // config.batch_size
    held = f" / {config.validation:,} validation" if config.validation else ""
    extras = "".join([f", {config.schedule} schedule" if config.schedule != "constant" else "",
                      f", weight decay {config.weight_decay:g}" if config.weight_decay else "",
                      f", shifts up to {config.shift} px" if config.shift else ""])
    print(f"jaxcnn: {config.seeds} model{'s' if config.seeds > 1 else ''} on {dataset.source}: "
          f"{n:,} training{held} / {len(dataset.test_labels):,} test images, "
          f"{config.optimizer} lr {config.learning_rate:g}{extras}, batch {config.batch_size}, "
          f"{config.grad} gradients, {config.ties} ties, {config.epochs} epoch(s)")
    if n % config.batch_size:
        print(f"note: {n % config.batch_size} images per epoch dropped (last partial batch)")
    for warning in warnings:
        print(f"warning: {warning}")

    seeds = [config.seed + i for i in range(config.seeds)]
    log, windows_complete = None, True
    # every process passed every check, and runs the same settings on the same data
    agree({k: v for k, v in config.to_dict().items() if k != "data"}
          | {"data_sha256": data_sha256, "class_names": list(dataset.class_names),
             "resume": [ckpt.run_id, ckpt.step] if ckpt is not None else None,
             "init_from": init_from and [init_from["run_id"], init_from["step"]]})
    if lock is not None:
        lock.start()  # writes from here on; what --force replaces stays until a commit
    if out is not None:
        csv_path = (lock.staged_csv if lock is not None and lock.staged_csv
                    else out / outputs.CSV_NAME)
        cut = outputs.Cut()
        try:
            last = outputs.carry_over(args.resume / outputs.CSV_NAME if ckpt else None,
                                      csv_path, run_id, ckpt.step if ckpt else 0, cut)
            log = outputs.MetricsLog(csv_path, run_id, seeds, config.batch_size)
        except OSError as exc:
            raise fsio.output_error(exc, f"cannot write {csv_path}") from None
        if ckpt is not None and last != ckpt.step:
            windows_complete = False
            why = f" (it is cut at line {cut.line}: {cut.why})" if cut else ""
            print(f"note: {args.resume / outputs.CSV_NAME} holds this run's windows only up to "
                  f"step {last}, not {ckpt.step}{why}; metrics.json will lack the others")
    agree()  # process 0's run folder is ready

    first_epoch = resume[2] if resume else 0
    bar = tqdm(total=steps_per_epoch * (config.epochs - first_epoch), unit="step",
               file=sys.stderr, disable=not (args.progress and sys.stderr.isatty()),
               leave=False, dynamic_ncols=True)
    last_epoch = [first_epoch]
    # the newest complete checkpoint of this run: (epochs done, its folder); a run resumed
    # into another --out has its checkpoint in the --resume folder until its first save
    saved = [(ckpt.epochs_done, args.resume) if ckpt else None]

    def kept() -> str:
        return (f"; the checkpoint of epoch {saved[0][0]} in {saved[0][1]} is kept"
                if saved[0] else "")

    def save(result, wrote_json: bool = False):
        try:
            log.sync()  # the windows up to the checkpoint's step are durable before it commits
            checkpoint.save(out, config, dataset.class_names, result.state, shuffle_keys,
                            result.step, result.epochs_done, run_id=run_id, history=history,
                            init_from=init_from, data_sha256=data_sha256)
            if lock is not None and lock.on_commit is not None:  # --force's first commit
                lock.commit(wrote_json)
                log.path = out / outputs.CSV_NAME  # the staged log, renamed into place
        except OSError as exc:
            raise fsio.output_error(exc, f"cannot save the checkpoint of epoch "
                                         f"{result.epochs_done} in {out}{kept()}") from None
        saved[0] = (result.epochs_done, out)

    def on_window(window):
        if config.epochs > 1 and window.epoch != last_epoch[0]:
            last_epoch[0] = window.epoch
            bar.write(f"--- Epoch {window.epoch} ---", file=sys.stdout)
        bar.write(format_window(window, config), file=sys.stdout)
        if log is not None:
            try:
                log.write(window)
            except OSError as exc:
                raise fsio.output_error(exc, f"cannot append to {log.path}{kept()}") from None
        faults.point(f"window-{window.step}")

    def on_epoch(result):
        # the last epoch is saved only once its test result is known to be finite
        if out is not None and result.epochs_done < config.epochs:
            save(result)

    try:
        result = train.train(config, dataset, resume=resume, on_window=on_window,
                             on_epoch=on_epoch, on_steps=bar.update, keep_windows=False)
    except DivergenceError as exc:
        if out is None or saved[0] is None:
            raise
        raise DivergenceError(f"{exc} {continue_command(*saved[0], out, config)}") from None
    finally:
        bar.close()
    print("\n".join(format_result(result)))
    if out is not None:
        metrics = {
            "run_id": run_id, "config": config.to_dict(), "config_hash": config.digest(),
            "data": dataset.source, "data_sha256": data_sha256, "seeds": seeds,
            "steps": result.step,
            "epochs_done": result.epochs_done, "history": history, "init_from": init_from,
            "windows_complete": windows_complete,
            "test": {"loss": outputs.summary(result.test_loss),
                     "accuracy": outputs.summary(result.test_accuracy)},
            "validation": None if result.validation_loss is None else {
                "images": config.validation,
                "loss": outputs.summary(result.validation_loss),
                "accuracy": outputs.summary(result.validation_accuracy)},
            "timings": result.timings, "versions": outputs.versions(),
        }
        try:
            outputs.write_metrics(out, metrics, run_id, config.seeds, csv_path=log.path)
        except OSError as exc:
            raise fsio.output_error(exc, f"cannot write {out / outputs.JSON_NAME}{kept()}"
                                    ) from None
        # the last act: a crash before it leaves the previous epoch's checkpoint, which
        # --resume trains again, rewriting metrics.json the same way
        save(result, wrote_json=True)
        log.close()
        print(f"Wrote {out}/metrics.json, metrics.csv and {checkpoint.FILE_NAME}")
    return 0
