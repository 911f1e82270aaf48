"""Score a saved checkpoint on test data: test loss and accuracy per seed.

By default it uses the checkpoint's own data source and test size, so it reproduces the
numbers printed at the end of training; ``--data`` / ``--test-size`` score it elsewhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jaxcnn import data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                        help="a directory written by `jaxcnn train --out DIR`")
    data.add_data_arguments(parser)
    parser.set_defaults(data=None)
    parser.add_argument("--test-size", type=int, metavar="N",
                        help="first N test images (default: the checkpoint's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    import jax

    from jaxcnn import checkpoint, fast, model, outputs, train

    ckpt = checkpoint.load(args.checkpoint)
    source = args.data or ckpt.config.data
    test_size = args.test_size if args.test_size is not None else ckpt.config.test_size
    dataset = data.load(source, train_size=1, test_size=test_size, download=args.download)
    if len(dataset.class_names) != len(ckpt.class_names):
        raise checkpoint.CheckpointError(
            f"the checkpoint classifies {len(ckpt.class_names)} classes but {source} has "
            f"{len(dataset.class_names)}")
    params = jax.vmap(fast.to_fast)(jax.tree.map(jax.numpy.asarray, ckpt.params))
    images = model.normalize(dataset.test_images, jax.numpy.float32)
    loss, accuracy = train.evaluate(params, images, jax.numpy.asarray(dataset.test_labels))
    result = {"checkpoint": str(args.checkpoint), "data": dataset.source,
              "test_images": len(dataset.test_labels), "step": ckpt.step,
              "loss": outputs.summary(loss), "accuracy": outputs.summary(accuracy)}
    if args.json:
        print(json.dumps(result, indent=2))
    elif len(loss) == 1:
        print(f"{dataset.source}, {len(dataset.test_labels):,} test images, step {ckpt.step}")
        print(f"Test Loss: {loss[0]:.6g}\nTest Accuracy: {accuracy[0]:.6g}")
    else:
        print(f"{dataset.source}, {len(dataset.test_labels):,} test images, step {ckpt.step}, "
              f"{len(loss)} seeds")
        print(f"Test Loss: {loss.mean():.4f} ± {loss.std(ddof=1):.4f}")
        print(f"Test Accuracy: {accuracy.mean():.4f} ± {accuracy.std(ddof=1):.4f}")
    return 0
