"""Check YOUR hand-derived backward passes against autodiff and finite differences.

Give it Python files (or -m MODULE) holding layers in any of three styles: blog/report
classes with ``forward`` and ``backprop``; CS231n ``*_forward`` / ``*_backward``
functions; JAX ``custom_vjp`` functions. Each layer is checked on its own inputs
(tie-free random, real MNIST digits, exact zeros, overlapping windows, large logit gaps)
and every gradient gets a kind: correct, tie-overcount, scaled, sign-flipped, transposed,
missing-accumulation, zero, wrong-shape, non-finite, ... A file holding a whole network
(the report's conv, pool and softmax classes; or CS231n's conv, relu, max_pool, affine
and softmax_loss) is also checked as a chain that names the first wrong layer. Exit
status: 0 when every gradient is correct, 1 when one is not, 2 when nothing could be
checked.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from jaxcnn.cli import path_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=_file_arg, metavar="FILE.py",
                        help="Python files with layers")
    parser.add_argument("-m", "--module", action="append", default=[], metavar="MODULE",
                        help="an importable module with layers (repeatable), e.g. "
                             "jaxcnn.reference")
    parser.add_argument("--layer", action="append", default=[], metavar="NAME",
                        help="check only the layers of this name (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def _file_arg(text: str) -> str:
    """An empty FILE.py (an unset variable in a script) is an error, not the current
    folder."""
    return str(path_arg(text))


def run(args: argparse.Namespace) -> int:
    from jaxcnn import jsonsafe
    from jaxcnn.check import chain, discover, report
    from jaxcnn.check.engine import check_layer
    from jaxcnn.cli import xla_cache

    xla_cache.enable()

    if args.seed < 0:
        raise discover.CheckUsageError("--seed must be 0 or more")
    if not args.files and not args.module:
        raise discover.CheckUsageError("give a Python file with your layers, or -m MODULE "
                                       "(e.g. `jaxcnn check -m jaxcnn.reference`)")
    layers, skipped = [], []
    sources = []
    for f in args.files:  # one file that cannot be imported does not stop the others
        try:
            sources.append((f, discover.load_file(f), f))
        except discover.CheckUsageError as exc:
            if len(args.files) + len(args.module) == 1:
                raise
            skipped.append((f, f"not checked: {exc}"))
    if args.files and not sources and not args.module:
        raise discover.CheckUsageError("; ".join(why for _, why in skipped))
    sources += [(m, discover.load_module(m), m) for m in args.module]
    for label, module, file in sources:
        found = discover.find_layers(module, file)
        if len(sources) > 1:  # name each layer by its file too, so that rows can be told apart
            found = found._replace(layers=[layer._replace(name=f"{label}:{layer.name}")
                                           for layer in found.layers])
        layers += found.layers
        skipped += [(f"{label}:{name}", why) for name, why in found.skipped]
    if args.layer:
        def short(layer):
            return layer.name.rpartition(":")[2]
        unknown = set(args.layer) - {layer.name for layer in layers} - {short(layer)
                                                                       for layer in layers}
        if unknown:
            raise discover.CheckUsageError(
                f"no layer named {', '.join(sorted(unknown))}; found: "
                f"{', '.join(layer.name for layer in layers) or 'none'}")
        layers = [layer for layer in layers
                  if layer.name in args.layer or short(layer) in args.layer]
    if not layers:
        why = "; ".join(f"{n}: {w}" for n, w in skipped) or "nothing with forward/backprop, " \
            "*_forward/*_backward or custom_vjp"
        raise discover.CheckUsageError(f"no layers found in {', '.join(s[0] for s in sources)} "
                                       f"({why})")
    found_text = ", ".join(f"{layer.name} ({layer.style}: {layer.kind})" for layer in layers)
    log = sys.stderr if args.json else sys.stdout
    print(f"Found {len(layers)} layer{'s' * (len(layers) != 1)}: {found_text}", file=log)
    for name, why in skipped:
        print(f"Skipped {name}: {why}", file=log)
    def guarded(name, run):
        """``run()`` with the user's prints on stderr and their exits refused."""
        try:
            with contextlib.redirect_stdout(sys.stderr), discover.no_process_exit():
                return run()
        except (discover.UserExit, SystemExit) as exc:
            raise discover.CheckUsageError(f"{name} exits the program while it is checked "
                                           f"(exit code {exc.code}); nothing more could be "
                                           "checked") from None

    start = time.perf_counter()
    reports = [guarded(layer.name, lambda layer=layer: check_layer(layer, seed=args.seed))
               for layer in layers]
    chains = []
    for _, module, file in sources:  # the networks a file holds (the report's, CS231n's)
        # The classes the file's own network instantiates (`pool = MaxPool2Split()`) come
        # first: the chain is the network the file trains, not the first class defined.
        used = {type(v).__name__ for v in vars(module).values()
                if not isinstance(v, type) and callable(getattr(type(v), "backprop", None))}
        trio = [next(iter(sorted((layer for layer in layers if layer.file == file
                                  and layer.style == "blog" and layer.kind == kind),
                                 key=lambda layer: layer.name.rpartition(":")[2] not in used)),
                     None)
                for kind in ("conv3x3", "maxpool2", "dense_softmax")]
        if all(trio):
            chains.append(guarded(f"the chain of {file}", lambda trio=trio: chain.check_chain(
                trio, chain.blog_chain_inputs(2, args.seed), args.seed)))
        network = chain.cs231n_chain([layer for layer in layers if layer.file == file])
        if network:  # a CS231n convnet: conv - relu - max pool - affine - softmax loss
            chains.append(guarded(f"the chain of {file}", lambda n=network: chain.check_chain(
                n, chain.cs231n_chain_inputs(n, args.seed), args.seed)))
    if not chains and len(sources) > 1:  # a network split over files, chained as given
        chains += [guarded("the chain of the files given", lambda n=n, i=i: chain.check_chain(
            n, i, args.seed)) for n, i in chain.across_files(layers, args.seed)]
    if args.json:
        print(jsonsafe.dumps(report.to_json(reports, skipped, chains), indent=2))
    else:
        print()
        print(report.table(reports))
        print()
        print(report.details(reports))
        for c in chains:
            print()
            print("\n".join(chain.summary(c)))
        bad = sum(not c.ok for r in reports for c in r.checks)
        total = sum(len(r.checks) for r in reports)
        print()
        print(f"{total - bad} of {total} gradients correct"
              f" ({time.perf_counter() - start:.1f} s)." + ("" if not bad else
                                                           f" {bad} need attention."))
    return 0 if all(r.ok for r in reports) and all(c["ok"] for c in chains) else 1
