"""Check the report's hand-derived gradients against jax.grad and finite differences.

Prints the table of ``jaxcnn.verify.run_checks`` (float64, two input sets: tie-free
random images and real MNIST digits). Exit status 0 when everything that must agree
does, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json

from jaxcnn.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=8, metavar="N",
                        help="images per input set (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed for parameters and inputs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def run(args: argparse.Namespace) -> int:
    from jaxcnn import verify

    if not 1 <= args.images <= 1000:
        raise ConfigError("--images must be between 1 and 1000")
    report = verify.run_checks(args.images, args.seed)
    print(json.dumps(report, indent=2) if args.json else verify.format_table(report))
    return 0 if report["ok"] else 1
