"""Pictures of a training run: learning curves, filters, confusion matrix, mistakes.

Each function takes plain arrays and writes one PNG (atomically, with ``fsio``), so that
it is testable without a run; ``jaxcnn plot DIR`` (``jaxcnn.cli.plot``) feeds them a run
folder. matplotlib (the ``plot`` extra) is imported only here, with the non-interactive
Agg backend. Sizes are in inches at ``DPI`` dots per inch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcnn.training import fsio

FOLDER = "plots"  # jaxcnn plot DIR writes into DIR/plots by default
FILES = ("learning_curves.png", "filters.png", "confusion.png", "misclassified.png")
DPI = 100
CURVES_SIZE = (10, 4)
FILTERS_CELL = 1.2  # inches per filter
CONFUSION_SIZE = (7, 6)
MISTAKES_COLUMNS = 8
MISTAKES_CELL = 1.3


def _pyplot():
    """matplotlib.pyplot with the Agg backend; ImportError when matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _pyplot().close(fig)
    try:
        fsio.atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    except OSError as exc:  # a read-only or full --out: one line naming the picture
        raise fsio.output_error(exc, f"cannot write the picture {path}") from None
    return path


def learning_curves(path: Path, steps: np.ndarray, loss: np.ndarray, accuracy: np.ndarray,
                    title: str = "") -> Path:
    """Loss and accuracy per log window; with several seeds, their mean ± std as a band.

    steps: (W,) global step at the end of each window; loss, accuracy: (W, S) per seed.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=CURVES_SIZE)
    for ax, values, label in ((axes[0], loss, "mean loss per window"),
                              (axes[1], 100 * accuracy, "accuracy per window (%)")):
        mean = values.mean(axis=1)
        ax.plot(steps, mean, color="C0", lw=1.5,
                label=f"mean of {values.shape[1]} seeds" if values.shape[1] > 1 else None)
        if values.shape[1] > 1:
            std = values.std(axis=1, ddof=1)
            ax.fill_between(steps, mean - std, mean + std, color="C0", alpha=0.25,
                            label="± 1 std")
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def filters(path: Path, values: np.ndarray, title: str = "") -> Path:
    """The learned 3x3 filters (S, F, 3, 3): one row per seed (at most 8), one column per
    filter, on a shared symmetric colour scale (blue negative, red positive)."""
    plt = _pyplot()
    values = np.asarray(values)[:8]
    rows, cols = values.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(FILTERS_CELL * cols, FILTERS_CELL * rows + 0.6),
                             squeeze=False)
    limit = float(np.max(np.abs(values))) or 1.0
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(values[r, c], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"filter {c}", fontsize=8)
            if c == 0 and rows > 1:
                ax.set_ylabel(f"seed #{r}", fontsize=8)
    fig.suptitle(title or f"learned 3x3 filters (colour range ±{limit:.2f})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def confusion(path: Path, labels: np.ndarray, predictions: np.ndarray,
              class_names: Sequence[str], title: str = "", seed: int | None = None) -> Path:
    """The test confusion matrix: rows true class, columns predicted; counts in the cells
    (up to 20 classes; beyond, colours only)."""
    plt = _pyplot()
    c = len(class_names)
    matrix = np.zeros((c, c), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    fig, ax = plt.subplots(figsize=CONFUSION_SIZE)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = np.arange(c)
    short = [str(n)[:12] for n in class_names]
    ax.set_xticks(ticks, short, rotation=90 if c > 10 or max(map(len, short)) > 3 else 0,
                  fontsize=7)
    ax.set_yticks(ticks, short, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if c <= 20:
        top = matrix.max() or 1
        for i in range(c):
            for j in range(c):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if matrix[i, j] > top / 2 else "black")
    accuracy = np.trace(matrix) / max(1, matrix.sum())
    of_seed = f" (seed {seed})" if seed is not None else ""
    ax.set_title(title or f"test confusion matrix{of_seed}: accuracy {accuracy:.1%} "
                          f"on {matrix.sum():,} images", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def mistakes(path: Path, images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
             class_names: Sequence[str], count: int = 32, title: str = "",
             seed: int | None = None) -> Path:
    """A grid of the first ``count`` misclassified test images (N, 28, 28) uint8, each
    titled "true -> predicted"."""
    plt = _pyplot()
    wrong = np.flatnonzero(np.asarray(labels) != np.asarray(predictions))[:count]
    cols = MISTAKES_COLUMNS
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(MISTAKES_CELL * cols,
                                                  MISTAKES_CELL * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), wrong, strict=False):
        ax.imshow(images[k], cmap="gray_r")
        ax.set_title(f"{str(class_names[labels[k]])[:10]} -> "
                     f"{str(class_names[predictions[k]])[:10]}", fontsize=7)
    total = int(np.sum(np.asarray(labels) != np.asarray(predictions)))
    of_seed = f" (seed {seed})" if seed is not None else ""
    fig.suptitle(title or f"misclassified test images{of_seed}: {len(wrong)} of {total} "
                          "shown (true -> predicted)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
