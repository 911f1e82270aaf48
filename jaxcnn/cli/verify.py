"""Check the report's hand-derived gradients against jax.grad and finite differences.

Prints the table of ``jaxcnn.verify.run_checks``: every function of ``backprop`` through
the ``jaxcnn check`` engine in float64, on tie-free random inputs, real MNIST digits and
confident wrong predictions (also in float32).

exit status: 0 when everything that must agree does, 1 otherwise, 2 on a usage error
(with --json, stdout is then one JSON document with "ok": false and "error").
"""

from __future__ import annotations

import argparse

from jaxcnn.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n")[-1]
    parser.add_argument("--images", type=int, default=8, metavar="N",
                        help="images per input set (default 8)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for parameters and inputs (default 0)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="check only this function (repeatable), e.g. conv3x3_backward or "
                             "grads[report]")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def run(args: argparse.Namespace) -> int:
    from jaxcnn import jsonsafe, verify
    from jaxcnn.cli import xla_cache

    try:
        xla_cache.check_user_flags()  # XLA would end the process: one line, exit 2
        xla_cache.prefer_cheap_compiles()  # eager programs too: see xla_cache
        xla_cache.enable()
        if not 1 <= args.images <= 1000:
            raise ConfigError("--images must be between 1 and 1000")
        if args.seed < 0:
            raise ConfigError("--seed must be 0 or more")
        try:
            report = verify.run_checks(args.images, args.seed, args.only)
        except ValueError as exc:
            raise ConfigError(f"--only: {exc}") from None
    except ConfigError as exc:  # --json: one document on stdout on this exit too
        if args.json:
            print(jsonsafe.dumps({"ok": False, "status": 2, "error": str(exc)}))
        raise
    print(jsonsafe.dumps(report, indent=2) if args.json else verify.format_table(report))
    return 0 if report["ok"] else 1
