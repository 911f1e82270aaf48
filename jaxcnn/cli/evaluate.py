"""Score a saved checkpoint on test data: test loss and accuracy per seed.

By default it uses the checkpoint's own data source and test size, so it reproduces the
numbers printed at the end of training; ``--data`` / ``--test-size`` score it elsewhere.
Data whose class names differ from the checkpoint's (digits vs Fashion-MNIST) is
refused unless ``--ignore-class-names``; a different class count is always refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxcnn import data
from jaxcnn.errors import ConfigError, DivergenceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                        help="a directory written by `jaxcnn train --out DIR`")
    data.add_data_arguments(parser)
    parser.set_defaults(data=None)
    parser.add_argument("--test-size", type=int, metavar="N",
                        help="first N test images (default: the checkpoint's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--ignore-class-names", action="store_true",
                        help="score data whose class names differ from the checkpoint's "
                             "(the class count must still match)")


def run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from jaxcnn import checkpoint, fast, model, outputs, train

    ckpt = checkpoint.load(args.checkpoint)
    source = args.data or ckpt.config.data
    test_size = args.test_size if args.test_size is not None else ckpt.config.test_size
    dataset = data.load(source, train_size=1, test_size=test_size, download=args.download)
    if len(dataset.class_names) != len(ckpt.class_names):
        raise ConfigError(
            f"the checkpoint classifies {len(ckpt.class_names)} classes but {source} has "
            f"{len(dataset.class_names)}")
    if tuple(dataset.class_names) != ckpt.class_names and not args.ignore_class_names:
        raise ConfigError(
            f"the checkpoint was trained on classes ({', '.join(ckpt.class_names)}) but "
            f"{source} has ({', '.join(dataset.class_names)}); its accuracy there would be "
            "meaningless. Pass --ignore-class-names to score it anyway")
    params = jax.vmap(fast.to_fast)(jax.tree.map(jax.numpy.asarray, ckpt.params))
    images = model.normalize(dataset.test_images, jax.numpy.float32)
    loop = "map" if jax.devices()[0].platform == "cpu" else "vmap"  # as training scored it
    loss, accuracy = train.evaluate(params, images, jax.numpy.asarray(dataset.test_labels),
                                    train.make_evaluate(loop))
    if not (np.isfinite(loss).all() and np.isfinite(accuracy).all()):
        raise DivergenceError(f"the test loss of the checkpoint in {args.checkpoint} is not "
                              f"finite ({loss.tolist()}): its parameters overflow on {source}")
    result = {"checkpoint": str(args.checkpoint), "data": dataset.source,
              "test_images": len(dataset.test_labels), "step": ckpt.step,
              "run_id": ckpt.run_id, "class_names": list(ckpt.class_names),
              "loss": outputs.summary(loss), "accuracy": outputs.summary(accuracy)}
    if args.json:
        print(outputs.dumps(result, indent=2))
    elif len(loss) == 1:
        print(f"{dataset.source}, {len(dataset.test_labels):,} test images, step {ckpt.step}")
        print(f"Test Loss: {loss[0]:.6g}\nTest Accuracy: {accuracy[0]:.6g}")
    else:
        print(f"{dataset.source}, {len(dataset.test_labels):,} test images, step {ckpt.step}, "
              f"{len(loss)} seeds")
        print(f"Test Loss: {loss.mean():.4f} ± {loss.std(ddof=1):.4f}")
        print(f"Test Accuracy: {accuracy.mean():.4f} ± {accuracy.std(ddof=1):.4f}")
    return 0
