"""Show what a data source holds: counts per split, class balance and pixel range.

A quick way to see what ``jaxcnn train --data SOURCE`` would train on, and how the
source was read (which files, which label layout, where the class names came from).
Sources: ``mnist-embedded`` (default, offline), ``mnist`` / ``fashion_mnist`` /
``tfds:NAME`` (tensorflow-datasets) and ``idx:PATH`` (IDX files); see ``jaxcnn.data``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxcnn import data
from jaxcnn.data import plausible


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data.add_data_arguments(parser)


def summarize(ds: data.Dataset) -> list[str]:
    """The report's lines for ``ds``: counts, per-class counts and pixel statistics."""
    train_counts = np.bincount(ds.train_labels, minlength=ds.num_classes)
    test_counts = np.bincount(ds.test_labels, minlength=ds.num_classes)
    names = [name if name == str(i) else f"{i} {name}" for i, name in enumerate(ds.class_names)]
    width = max(len("class"), *(len(n) for n in names))
    lines = [f"source: {ds.source}", *ds.notes,
             f"{ds.num_classes} classes", f"{'class':<{width}}  {'train':>7}  {'test':>7}"]
    lines += [f"{name:<{width}}  {tr:>7,}  {te:>7,}"
              for name, tr, te in zip(names, train_counts, test_counts, strict=True)]
    lines.append(f"{'total':<{width}}  {len(ds.train_labels):>7,}  {len(ds.test_labels):>7,}")
    serious, minor = plausible.label_problems(ds.train_labels, ds.test_labels, ds.class_names)
    lines += [f"warning: {problem}" for problem in serious + minor]
    for split, images in (("train", ds.train_images), ("test", ds.test_images)):
        lines.append(f"{split} pixels: uint8 {images.shape[1]}x{images.shape[2]}, "
                     f"range {images.min()}..{images.max()}, mean {images.mean():.1f}")
    return lines


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    ds = data.load(args.data, download=args.download)
    lines = summarize(ds)
    print("\n".join(lines))
    print(f"loaded in {time.perf_counter() - start:.2f} s")
    return 0
