"""Train the network; with no flags, exactly the report's protocol.

Defaults: embedded MNIST, the first 3,000 training images in order, 800 test images,
one epoch, one image per step, plain SGD at lr 0.005, the report's hand-derived
gradients and max-pool tie rule. Prints the report's log line every 100 steps and the
test loss/accuracy at the end. ``--seeds K`` trains K models at once; ``--out DIR``
writes metrics.json, metrics.csv and a checkpoint; ``--resume DIR`` continues one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxcnn import data
from jaxcnn.config import GRADIENTS, OPTIMIZERS, TrainConfig
from jaxcnn.errors import ConfigError
from jaxcnn.model import TIE_RULES

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
                              help="train K models, seeds seed..seed+K-1, in one program")),
    ("--log-every", "log_every", dict(type=int, metavar="STEPS",
                                      help="steps per log line (default 100)")),
    ("--filters", "num_filters", dict(type=int, help="conv filters (default 8)")),
    ("--freeze-conv", "freeze_conv", dict(action="store_const", const=True,
                                          help="train only the softmax layer (the report's "
                                               "second step)")),
]
_RESUMABLE = {"epochs"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data.add_data_arguments(parser)
    parser.set_defaults(data=None)
    for flag, dest, kwargs in _FLAGS:
        parser.add_argument(flag, dest=dest, default=None, **kwargs)
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write metrics.json, metrics.csv and a checkpoint here")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the checkpoint in DIR (its configuration; --epochs may "
                             "raise the total)")
    parser.add_argument("--cpu-devices", type=int, metavar="N",
                        help="split the CPU into N JAX devices so that --seeds run in parallel "
                             "on N cores (default: as many cores as divide --seeds; 1 for one "
                             "seed)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (it is off anyway when stderr is not a terminal)")


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """Flags given on the command line override ``base`` (default: the report's protocol)."""
    given = {dest: getattr(args, dest) for _, dest, _ in _FLAGS if getattr(args, dest) is not None}
    if args.data is not None:
        given["data"] = args.data
    if base is not None:
        extra = set(given) - _RESUMABLE
        if extra:
            raise ConfigError("--resume continues the saved configuration; only --epochs may "
                              f"change (also given: {', '.join(sorted(extra))})")
        return TrainConfig.from_dict(base.to_dict() | given)
    return TrainConfig(**given).validate()


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


def format_result(result) -> list[str]:
    loss, acc = result.test_loss, result.test_accuracy
    if len(loss) == 1:
        lines = [f"Test Loss: {loss[0]:.6g}", f"Test Accuracy: {acc[0]:.6g}"]
    else:
        lines = [f"Test Loss: {loss.mean():.4f} ± {loss.std(ddof=1):.4f} "
                 f"(mean ± std of {len(loss)} seeds)",
                 f"Test Accuracy: {acc.mean():.4f} ± {acc.std(ddof=1):.4f} "
                 f"(min {acc.min():.4f}, max {acc.max():.4f})"]
    t = result.timings
    lines.append(f"Trained {t['images_trained']:,} images in {t['train_seconds']:.2f} s "
                 f"({t['images_per_second']:,.0f} images/s), compile {t['compile_seconds']:.2f} s, "
                 f"wall {t['wall_seconds']:.2f} s"
                 + (f", {t['devices']} devices ({t['sharded_axis']} axis sharded)"
                    if t["devices"] > 1 else ""))
    return lines


def use_cpu_devices(requested: int | None, seeds: int) -> int:
    """Split the CPU into several JAX devices (before JAX starts) so seeds run in parallel.

    One XLA:CPU device runs a per-image step on one core; with N devices the seed axis is
    sharded and N cores work at once. Default: the most cores that divide ``seeds``.
    Returns the count asked for (1 = leave JAX alone). No effect on GPU/TPU backends.
    """
    import os

    import jax

    if requested is None:
        cores = os.cpu_count() or 1
        requested = max(n for n in range(1, min(cores, seeds) + 1) if seeds % n == 0)
    if requested < 1:
        raise ConfigError("--cpu-devices must be at least 1")
    if requested > 1:
        try:
            jax.config.update("jax_num_cpu_devices", requested)
        except RuntimeError:  # JAX already started in this process: keep its devices
            return 1
    return requested


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from jaxcnn import checkpoint, outputs, train

    resume = None
    if args.resume is not None:
        ckpt = checkpoint.load(args.resume)
        config = config_from_args(args, ckpt.config)
        if ckpt.epochs_done >= config.epochs:
            raise ConfigError(f"the checkpoint in {args.resume} has already trained its "
                              f"{ckpt.epochs_done} epoch(s); give --epochs "
                              f"{ckpt.epochs_done + 1} or more to train further, or score it "
                              "with `jaxcnn evaluate`")
        out = args.out or args.resume
    else:
        config = config_from_args(args)
        out = args.out
    use_cpu_devices(args.cpu_devices, config.seeds)
    dataset = data.load(config.data, train_size=config.train_size, test_size=config.test_size,
                        download=args.download)
    if args.resume is not None:
        if tuple(dataset.class_names) != ckpt.class_names:
            raise ConfigError(f"the checkpoint was trained on classes {ckpt.class_names}, "
                              f"but {config.data} has {dataset.class_names}")
        template = train.init_state(config, len(dataset.class_names))
        resume = (checkpoint.restore_state(ckpt, template), ckpt.step, ckpt.epochs_done)
        print(f"Resuming {args.resume} at step {ckpt.step} (epoch {ckpt.epochs_done} done)")

    n = len(dataset.train_labels)
    steps_per_epoch = n // config.batch_size
    print(f"jaxcnn: {config.seeds} model{'s' if config.seeds > 1 else ''} on {dataset.source}: "
          f"{n:,} training / {len(dataset.test_labels):,} test images, "
          f"{config.optimizer} lr {config.learning_rate:g}, batch {config.batch_size}, "
          f"{config.grad} gradients, {config.ties} ties, {config.epochs} epoch(s)")
    if n % config.batch_size:
        print(f"note: {n % config.batch_size} images per epoch dropped (last partial batch)")

    first_epoch = resume[2] if resume else 0
    bar = tqdm(total=steps_per_epoch * (config.epochs - first_epoch), unit="step",
               file=sys.stderr, disable=not (args.progress and sys.stderr.isatty()),
               leave=False, dynamic_ncols=True)
    last_epoch = [first_epoch]

    def on_window(window):
        if config.epochs > 1 and window.epoch != last_epoch[0]:
            last_epoch[0] = window.epoch
            bar.write(f"--- Epoch {window.epoch} ---", file=sys.stdout)
        bar.write(format_window(window, config), file=sys.stdout)

    def on_epoch(result):
        if out is not None:
            import jax
            shuffle_keys = jax.random.key_data(train.seed_keys(config)[1])
            checkpoint.save(out, config, dataset.class_names, result.state, shuffle_keys,
                            result.step, result.epochs_done)

    try:
        result = train.train(config, dataset, resume=resume, on_window=on_window,
                             on_epoch=on_epoch, on_steps=bar.update)
    finally:
        bar.close()
    print("\n".join(format_result(result)))
    if out is not None:
        metrics = outputs.metrics_dict(result, dataset.source)
        if args.resume is not None:  # keep the log windows of the run(s) before the resume
            earlier = outputs.earlier_windows(args.resume, ckpt.step)
            metrics["windows"] = earlier + metrics["windows"]
        outputs.write_metrics(out, metrics)
        print(f"Wrote {out}/metrics.json, metrics.csv and checkpoint.npz/.json")
    return 0
