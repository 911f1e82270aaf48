"""Score a saved checkpoint on test data: test loss and accuracy per seed.

By default it uses the checkpoint's own data source and test size, so it reproduces the
numbers printed at the end of training; ``--data`` / ``--test-size`` score it elsewhere.
Data whose class names differ from the checkpoint's (digits vs Fashion-MNIST) is
refused unless ``--ignore-class-names``; a different class count is always refused. The
checkpoint's own source is refused when its data_sha256 changed, unless
``--ignore-data-change``.
"""

from __future__ import annotations

import argparse

from jaxcnn import jsonsafe, memory
from jaxcnn.cli import path_arg, run_folder, testset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=path_arg, metavar="CHECKPOINT",
                        help="a directory written by `jaxcnn train --out DIR`")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    testset.add_arguments(parser, "score")


def run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from jaxcnn import fast, model
    from jaxcnn.training import checkpoint, outputs, train

    args.checkpoint = run_folder(args.checkpoint, "")  # DIR or DIR/checkpoint.npz
    ckpt = checkpoint.load(args.checkpoint)
    memory.check_runtime()  # before JAX allocates: under `ulimit -v` its C++ would abort
    dataset = testset.load(args, ckpt)
    source = dataset.source
    params = jax.vmap(fast.to_fast)(jax.tree.map(jax.numpy.asarray, ckpt.params))
    images = model.normalize(dataset.test_images, jax.numpy.float32)
    loop = "map" if jax.devices()[0].platform == "cpu" else "vmap"  # as training scored it
    loss, accuracy = train.evaluate(params, images, jax.numpy.asarray(dataset.test_labels),
                                    train.make_evaluate(loop))
    if not (np.isfinite(loss).all() and np.isfinite(accuracy).all()):
        raise testset.non_finite(args.checkpoint, source, f"test loss ({loss.tolist()})")
    result = {"checkpoint": str(args.checkpoint), "data": dataset.source,
              "test_images": len(dataset.test_labels), "step": ckpt.step,
              "run_id": ckpt.run_id, "class_names": list(ckpt.class_names),
              "loss": outputs.summary(loss), "accuracy": outputs.summary(accuracy)}
    if args.json:
        print(jsonsafe.dumps(result, indent=2))
    elif len(loss) == 1:
        print(f"{dataset.source}, {len(dataset.test_labels):,} test images, step {ckpt.step}")
        print(f"Test Loss: {loss[0]:.6g}\nTest Accuracy: {accuracy[0]:.6g}")
    else:
        print(f"{dataset.source}, {len(dataset.test_labels):,} test images, step {ckpt.step}, "
              f"{len(loss)} seeds")
        print(f"Test Loss: {loss.mean():.4f} ± {loss.std(ddof=1):.4f}")
        print(f"Test Accuracy: {accuracy.mean():.4f} ± {accuracy.std(ddof=1):.4f}")
    return 0
