"""Run outputs: ``metrics.json`` and ``metrics.csv`` of a training run, written atomically."""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
from pathlib import Path

import numpy as np

from jaxcnn.checkpoint import _atomic_write


def versions() -> dict[str, str]:
    """Versions of everything that can change the numbers."""
    import jax
    import jaxlib
    import optax

    from jaxcnn import __version__

    return {
        "jaxcnn": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "num_devices": len(jax.devices()),
    }


def summary(values: np.ndarray) -> dict:
    """mean, std (ddof=1 when possible), min, max and the per-seed list."""
    values = np.asarray(values, np.float64)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "min": float(values.min()),
            "max": float(values.max()), "per_seed": [float(v) for v in values]}


def metrics_dict(result, dataset_source: str) -> dict:
    """Everything about a finished run, JSON-ready."""
    config = result.config
    seeds = [config.seed + i for i in range(config.seeds)]
    windows = [{"step": w.step, "epoch": w.epoch, "steps": w.steps,
                "images": w.steps * config.batch_size,
                "loss": summary(w.loss), "accuracy": summary(w.accuracy)}
               for w in result.windows]
    return {
        "config": config.to_dict(),
        "data": dataset_source,
        "seeds": seeds,
        "steps": result.step,
        "epochs_done": result.epochs_done,
        "windows": windows,
        "test": {"loss": summary(result.test_loss), "accuracy": summary(result.test_accuracy)},
        "timings": result.timings,
        "versions": versions(),
    }


def earlier_windows(directory: str | Path, up_to_step: int) -> list[dict]:
    """Log windows (step <= up_to_step) of the metrics.json in ``directory``, if readable."""
    try:
        metrics = json.loads((Path(directory) / "metrics.json").read_text())
        return [w for w in metrics["windows"] if w["step"] <= up_to_step]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_metrics(directory: str | Path, metrics: dict) -> None:
    """``metrics.json`` (everything) and ``metrics.csv`` (one row per log window and seed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics, indent=2).encode()
    _atomic_write(directory / "metrics.json", lambda fh: fh.write(text))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["step", "epoch", "seed", "images", "loss", "accuracy"])
    for w in metrics["windows"]:
        for seed, loss, acc in zip(metrics["seeds"], w["loss"]["per_seed"],
                                   w["accuracy"]["per_seed"], strict=True):
            writer.writerow([w["step"], w["epoch"], seed, w["images"], f"{loss:.6g}",
                             f"{acc:.6g}"])
    data = buf.getvalue().encode()
    _atomic_write(directory / "metrics.csv", lambda fh: fh.write(data))
