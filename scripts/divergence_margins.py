"""How far do healthy runs stay from jaxcnn's divergence limit (``jaxcnn/health.py``)?

Trains every configuration the experiments train (``experiments/*.py``: their learning
rates, optimizers, batch sizes, seeds, epochs and data), plus the diverging examples of
issue 10, with the loss-limit rule switched off (the non-finite rules stay on), and
records for each run: the largest single-image loss, the largest window mean (the
experiment's ``log_every``), the largest mean of 100 consecutive images, where each
limit (rules 3 and 4) would have stopped it, and the final test accuracy. Usage::

    python scripts/divergence_margins.py [--quick] [--json FILE]

Fashion-MNIST runs need ``/usr/share/datasets/fashion-mnist`` (apt-get install
dataset-fashion-mnist); they are skipped without it. Takes ~30 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from jaxcnn import data
from jaxcnn.errors import DivergenceError
from jaxcnn.training import health, train
from jaxcnn.training.config import TrainConfig

FASHION = "idx:/usr/share/datasets/fashion-mnist"
SPLIT = dict(grad="manual", ties="split", shuffle=True)  # experiments.optimizers' setting
OPTIMIZER_GRID = {  # experiments.optimizers.OPTIMIZERS
    "per-sample sgd": (dict(optimizer="sgd", batch_size=1, log_every=1000), [0.005, 0.01, 0.02]),
    "mini-batch sgd": (dict(optimizer="sgd", batch_size=32, log_every=100), [0.05, 0.1, 0.2]),
    "momentum": (dict(optimizer="momentum", batch_size=32, log_every=100), [0.01, 0.03, 0.1]),
    "adam": (dict(optimizer="adam", batch_size=32, log_every=100), [0.003, 0.01, 0.03]),
}
CHOSEN = {"per-sample sgd": 0.01, "mini-batch sgd": 0.1, "momentum": 0.03, "adam": 0.01}


def configs(quick: bool) -> list[tuple[str, str, TrainConfig]]:
    runs = [("reproduce_report: per-image sgd 0.005, report ties, 20 seeds",
             "mnist-embedded", TrainConfig(train_size=4000, test_size=800, seeds=20))]
    for rule, (grad, ties) in {"report": ("manual", "report"), "first": ("manual", "first"),
                               "split": ("manual", "split"),
                               "autodiff": ("autodiff", "split")}.items():
        runs.append((f"gradient_ties: {rule}, 40 seeds", "mnist-embedded",
                     TrainConfig(train_size=3000, test_size=800, seeds=40, grad=grad,
                                 ties=ties)))
    for name, (overrides, lrs) in OPTIMIZER_GRID.items():
        for lr in lrs:  # the sweep (3,000 images, 3 seeds) and the final runs (4,000, 5)
            runs.append((f"optimizers sweep: {name} lr {lr:g}, 10 epochs, 3 seeds",
                         "mnist-embedded", TrainConfig(train_size=3000, test_size=1000,
                                                       seeds=3, epochs=10, lr=lr, **SPLIT,
                                                       **overrides)))
            runs.append((f"optimizers: {name} lr {lr:g}, 10 epochs, 5 seeds", "mnist-embedded",
                         TrainConfig(train_size=4000, test_size=1000, seeds=5, epochs=10,
                                     lr=lr, **SPLIT, **overrides)))
    for name, lr in CHOSEN.items():  # training-set sizes at the chosen learning rates
        for size in (250, 500, 1000, 2000):
            runs.append((f"optimizers sizes: {name} lr {lr:g}, {size} images, 5 epochs",
                         "mnist-embedded", TrainConfig(train_size=size, test_size=1000,
                                                       seeds=5, epochs=5, lr=lr, **SPLIT,
                                                       **OPTIMIZER_GRID[name][0])))
    if Path(FASHION[4:]).is_dir():
        runs += [
            ("optimizers/fashion: per-image sgd 0.005, 3 epochs, 3 seeds", FASHION,
             TrainConfig(data=FASHION, train_size=None, test_size=None, seeds=3, epochs=3,
                         lr=0.005, **SPLIT, **OPTIMIZER_GRID["per-sample sgd"][0])),
            ("optimizers/fashion: adam 0.01 batch 32, 8 epochs, 3 seeds", FASHION,
             TrainConfig(data=FASHION, train_size=None, test_size=None, seeds=3, epochs=8,
                         lr=0.01, **SPLIT, **OPTIMIZER_GRID["adam"][0])),
        ]
    for lr in (0.03, 0.04, 0.05, 0.1, 0.5):  # issue 10's examples and neighbours
        runs.append((f"diverging? per-image sgd lr {lr:g}, 500 images", "mnist-embedded",
                     TrainConfig(train_size=500, test_size=800, lr=lr)))
    for lr in (0.5, 1.0, 5.0):  # a convex softmax layer: bounded, but how far from sane?
        runs.append((f"diverging? --freeze-conv lr {lr:g}, 500 images", "mnist-embedded",
                     TrainConfig(train_size=500, test_size=800, lr=lr, freeze_conv=True)))
    if quick:
        runs = [(label, source, _shrink(c)) for label, source, c in runs[::4]]
    return runs


def _shrink(config: TrainConfig) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(config, seeds=min(config.seeds, 2), epochs=1,
                               train_size=min(config.train_size or 1000, 1000),
                               test_size=min(config.test_size or 200, 200))


def measure(label: str, dataset, config: TrainConfig) -> dict:
    """One run with the loss limits off; the largest losses and where the limits hit."""
    classes = len(dataset.class_names)
    limit, run_limit = health.loss_limit(classes), health.run_limit(classes)
    seen = {"image_max": 0.0, "window_max": 0.0, "run100_max": 0.0, "limit_step": None,
            "run_limit_step": None}
    stream: list[np.ndarray] = []  # (S, K*B) per chunk: every image loss, in order
    original = health.check_chunk

    def recording(losses, finite, first_step, cfg, num_classes, recent=None):
        if np.isfinite(losses).all():
            seeds, k, batch = losses.shape
            seen["image_max"] = max(seen["image_max"], float(losses.max()))
            window = losses.mean(axis=(1, 2), dtype=np.float64)
            seen["window_max"] = max(seen["window_max"], float(window.max()))
            if seen["limit_step"] is None and window.max() > limit:
                seen["limit_step"] = first_step + k - 1
            stream.append(losses.reshape(seeds, k * batch))
            flat = np.concatenate(stream[-200:], axis=1)[:, -(k * batch + 99):]
            if flat.shape[1] >= 100:
                sums = np.concatenate([np.zeros((seeds, 1)), np.cumsum(flat, 1, np.float64)], 1)
                runs = (sums[:, 100:] - sums[:, :-100]) / 100
                seen["run100_max"] = max(seen["run100_max"], float(runs.max()))
                if seen["run_limit_step"] is None and runs.max() > run_limit:
                    seen["run_limit_step"] = first_step + k - 1
            del stream[:-200]
        saved = health.LOSS_LIMIT_FACTOR, health.RUN_LIMIT_FACTOR
        health.LOSS_LIMIT_FACTOR = health.RUN_LIMIT_FACTOR = math.inf  # the limits off
        try:
            return original(losses, finite, first_step, cfg, num_classes, recent)
        finally:
            health.LOSS_LIMIT_FACTOR, health.RUN_LIMIT_FACTOR = saved

    health.check_chunk = recording
    t0 = time.perf_counter()
    try:
        result = train.train(config, dataset, keep_windows=False)
        outcome = {"test_accuracy_mean": float(np.mean(result.test_accuracy)),
                   "test_accuracy_min": float(np.min(result.test_accuracy)),
                   "test_loss_max": float(np.max(result.test_loss)), "non_finite": None}
    except DivergenceError as exc:
        outcome = {"test_accuracy_mean": None, "test_accuracy_min": None,
                   "test_loss_max": None, "non_finite": str(exc)}
    finally:
        health.check_chunk = original
    return {"label": label, "limit": limit, "run_limit": run_limit, **seen, **outcome,
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", default="", help="run the configurations whose label "
                                                   "contains this text")
    args = parser.parse_args(argv)
    cache = {}
    rows = []
    for label, source, config in configs(args.quick):
        if args.only not in label:
            continue
        if source not in cache:
            cache[source] = data.load(source)
        row = measure(label, cache[source], config)
        rows.append(row)
        acc = row["test_accuracy_mean"]
        print(f"{label:62s} image max {row['image_max']:9.4g}  window max "
              f"{row['window_max']:9.4g}  100 images max {row['run100_max']:9.4g}  limits at "
              f"{row['limit_step']!s:>5} / {row['run_limit_step']!s:>5}  test acc "
              f"{'-' if acc is None else f'{acc:.3f}':>6}"
              f"{'  NON-FINITE' if row['non_finite'] else ''}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
