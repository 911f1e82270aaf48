"""Draw a training run: learning curves, learned filters, test confusion matrix, mistakes.

Reads a folder written by `jaxcnn train --out DIR` (its checkpoint.npz and metrics.csv,
also while the run is still going) and writes four PNG files into DIR/plots (or --out):
learning_curves.png (mean ± std over seeds), filters.png, confusion.png and
misclassified.png (the test images the first seed gets wrong). The test set is the
checkpoint's own data source and size unless --data / --test-size say otherwise.
Needs matplotlib: pip install 'jaxcnn[plot]'.
"""

from __future__ import annotations

import argparse
import sys

from jaxcnn import memory
from jaxcnn.cli import path_arg, run_folder, testset
from jaxcnn.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=path_arg, metavar="DIR",
                        help="a folder written by `jaxcnn train --out DIR`")
    parser.add_argument("--out", type=path_arg, metavar="FOLDER",
                        help="where the PNG files go (default: DIR/plots)")
    testset.add_arguments(parser, "plot")


def predictions(params, images):
    """Predicted classes, an (S, N) int array: every seed's parameters (report layout,
    leading seed axis) on uint8 images (N, 28, 28); None when a logit is not finite (an
    argmax of NaN or inf predicts nothing)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxcnn import fast, model

    x = model.normalize(images, jnp.float32)
    out = []
    for k in range(params.filters.shape[0]):
        p = fast.to_fast(jax.tree.map(lambda a, k=k: jnp.asarray(a[k]), params))
        seed = []  # batches of 500: the last one is shorter unless 500 divides N
        for i in range(0, len(x), 500):
            logits = fast.logits(p, x[i:i + 500])
            if not bool(jnp.isfinite(logits).all()):
                return None
            seed.append(np.asarray(jnp.argmax(logits, -1)))
        out.append(np.concatenate(seed))
    return np.stack(out)


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("jaxcnn plot needs matplotlib: pip install 'jaxcnn[plot]'") from None
    import numpy as np

    from jaxcnn.training import checkpoint, fsio, outputs, plots

    args.run = run_folder(args.run, "")  # DIR/checkpoint.npz is DIR, as in evaluate
    ckpt = checkpoint.load(args.run)
    memory.check_runtime()  # before JAX allocates: under `ulimit -v` its C++ would abort
    dataset = testset.load(args, ckpt)  # refused data makes no folder
    out = args.out or args.run / plots.FOLDER
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fsio.output_error(exc, f"cannot create the plot folder {out}") from None
    csv_path, cut = args.run / outputs.CSV_NAME, outputs.Cut()
    rows = list(outputs.windows(csv_path, ckpt.run_id, ckpt.config.seeds, cut))
    if not rows:
        raise ConfigError(f"{csv_path} holds no log window of this run"
                          + (f": it is cut at line {cut.line} ({cut.why})" if cut else
                             " yet; plot it after its first log line"))
    if cut:
        print(f"note: {csv_path} is cut at line {cut.line} ({cut.why}); the learning curves "
              f"end at step {rows[-1]['step']}", file=sys.stderr)  # stdout: the files only
    steps = np.array([w["step"] for w in rows])
    loss = np.array([w["loss"]["per_seed"] for w in rows])
    accuracy = np.array([w["accuracy"]["per_seed"] for w in rows])
    predicted = predictions(ckpt.params, dataset.test_images)
    if predicted is None:
        raise testset.non_finite(args.run, dataset.source, "output (logits)")
    name = f"{ckpt.config.data}, {ckpt.config.seeds} seed(s), step {ckpt.step}"
    curves, filters, confusion, mistakes = (out / file for file in plots.FILES)
    written = [
        plots.learning_curves(curves, steps, loss, accuracy, f"learning curves: {name}"),
        plots.filters(filters, ckpt.params.filters),
        plots.confusion(confusion, dataset.test_labels, predicted[0], dataset.class_names,
                        seed=ckpt.config.seed),
        plots.mistakes(mistakes, dataset.test_images, dataset.test_labels, predicted[0],
                       dataset.class_names, seed=ckpt.config.seed),
    ]
    for path in written:
        print(path)
    return 0
