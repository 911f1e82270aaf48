"""What `jaxcnn evaluate` and `jaxcnn plot` share: the test data a checkpoint is scored on.

By default the checkpoint's own data source and test size; ``--data`` / ``--test-size``
choose others. Data with another number of classes is refused; data with other class
names (digits against Fashion-MNIST) too, unless ``--ignore-class-names``.
"""

from __future__ import annotations

import argparse

from jaxcnn import data
from jaxcnn.cli import positive_int
from jaxcnn.errors import ConfigError, DivergenceError


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """--data, --download, --test-size and --ignore-class-names; ``verb`` for the help."""
    data.add_data_arguments(parser)
    parser.set_defaults(data=None)
    parser.add_argument("--test-size", type=positive_int, metavar="N",
                        help="first N test images (default: the checkpoint's)")
    parser.add_argument("--ignore-class-names", action="store_true",
                        help=f"{verb} data whose class names differ from the checkpoint's "
                             "(the class count must still match)")


def load(args: argparse.Namespace, ckpt) -> data.Dataset:
    """The test split for ``ckpt`` (a ``checkpoint.Checkpoint``) per ``args``.

    Raises ``ConfigError`` (class count or names differ) or ``DataError``.
    """
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
            f"{source} has ({', '.join(dataset.class_names)}); its results there would be "
            "meaningless. Pass --ignore-class-names to use it anyway")
    return dataset


def non_finite(where, source: str, what: str) -> DivergenceError:
    """What evaluate and plot say when the checkpoint in ``where`` gives non-finite numbers
    on ``source``'s test images (``what``: which numbers): no result is drawn from them."""
    return DivergenceError(f"the {what} of the checkpoint in {where} is not finite: its "
                           f"parameters overflow on {source}; train it again with a "
                           "smaller --lr")
