"""What `jaxcnn evaluate` and `jaxcnn plot` share: the test data a checkpoint is scored on.

By default the checkpoint's own data source and test size; ``--data`` / ``--test-size``
choose others. Data with another number of classes is refused; data with other class
names (digits against Fashion-MNIST) too, unless ``--ignore-class-names``; and the
checkpoint's own source when it no longer holds the images and labels the run was
trained and tested on (``data_sha256``), unless ``--ignore-data-change``.
"""

from __future__ import annotations

import argparse
import dataclasses

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
    parser.add_argument("--ignore-data-change", action="store_true",
                        help=f"{verb} the checkpoint's own data source even when it no longer "
                             "holds the images and labels it was trained and tested on (its "
                             "data_sha256 differs)")


def load(args: argparse.Namespace, ckpt) -> data.Dataset:
    """The test split for ``ckpt`` (a ``checkpoint.Checkpoint``) per ``args``.

    Raises ``ConfigError`` (class count or names differ) or ``DataError``.
    """
    source = args.data or ckpt.config.data
    test_size = args.test_size if args.test_size is not None else ckpt.config.test_size
    own = source == ckpt.config.data and ckpt.data_sha256 is not None
    if own:  # its own source: the images the checkpoint recorded, checked below
        recorded = ckpt.config.test_size  # None: all of them
        sizes = dict(train_size=ckpt.config.train_size,
                     test_size=None if recorded is None or test_size is None
                     else max(test_size, recorded))
    else:
        sizes = dict(train_size=1, test_size=test_size)
    dataset = data.load(source, download=args.download, **sizes)
    if own:
        _check_data_identity(args, ckpt, source, dataset)
        dataset = dataclasses.replace(dataset, test_images=dataset.test_images[:test_size],
                                      test_labels=dataset.test_labels[:test_size])
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


def _check_data_identity(args, ckpt, source: str, dataset) -> None:
    """Refuse (``ConfigError``) the checkpoint's own source when it no longer holds the
    images and labels the checkpoint recorded (``data_sha256``, as ``--resume`` checks),
    unless ``--ignore-data-change``."""
    from jaxcnn.training import checkpoint

    n_test = ckpt.config.test_size or len(dataset.test_labels)
    recorded = dataclasses.replace(dataset, test_images=dataset.test_images[:n_test],
                                   test_labels=dataset.test_labels[:n_test])
    if checkpoint.data_sha256(recorded) == ckpt.data_sha256 or args.ignore_data_change:
        return
    raise ConfigError(
        f"{source} no longer holds the images the checkpoint was trained and tested on (the "
        f"sha256 of its first {len(recorded.train_labels):,} training and {n_test:,} test "
        "images and labels differs from the checkpoint's data_sha256), so its result there "
        "is not the run's; restore that data, or pass --ignore-data-change to use what it "
        "holds now")


def non_finite(where, source: str, what: str) -> DivergenceError:
    """What evaluate and plot say when the checkpoint in ``where`` gives non-finite numbers
    on ``source``'s test images (``what``: which numbers): no result is drawn from them."""
    return DivergenceError(f"the {what} of the checkpoint in {where} is not finite: its "
                           f"parameters overflow on {source}; train it again with a "
                           "smaller --lr")
