"""Check files and modules from Python the way ``jaxcnn check`` does, and assert it in tests.

::

    from jaxcnn import check
    report = check.check_file("layers.py")        # a FileReport: what `jaxcnn check` prints
    report                                        # in Jupyter: an HTML table
    report.status                                 # the exit status: 0, 1 or 2
    check.assert_correct("layers.py")             # AssertionError with the table if not

``check_sources`` is the whole command line run as a function: import each file (with its
import root and unbuilt extensions handled, see ``jaxcnn.check.imports``; within a time
limit, see ``jaxcnn.check.limits``), find its layers, add the user's inputs
(``jaxcnn.check.inputs``), check each layer (``engine.check_layer``), chain the networks
a file holds (``jaxcnn.check.chain``), and never call a chain correct where a layer's own
rows are not.

Exit status (``FileReport.status``): 1 when a gradient was found wrong (a chain included);
else 2 when something could not be checked (a layer whose every input was refused, a layer
recognised but not runnable (its error row), or no layer at all); else 0. An unbuilt
compiled extension is an environment problem: the layers that need it are listed as not
checked and do not change the status unless nothing else was checked.
"""

from __future__ import annotations

import contextlib
import html
import re
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jaxcnn.check import cells, dialects, discover, imports, limits, notebook, once
from jaxcnn.check import inputs as inputs_mod
from jaxcnn.check.layer import Layer

if TYPE_CHECKING:  # the engine, the chain and the report import JAX: only once layers are found
    from jaxcnn.check.engine import Check, LayerReport
from jaxcnn.check.names import aliases, matches, row_names
from jaxcnn.errors import JaxcnnError


def unchecked(c: Check) -> bool:
    """A check that could not be made: no input set ran (every input refused)."""
    return c.kind == "error" and c.oracle == "none"


def layer_status(r: LayerReport) -> str:
    """"correct", "wrong" or "not checked"."""
    if not r.checks or all(unchecked(c) for c in r.checks):
        return "not checked"
    return "correct" if r.ok else "wrong"


@dataclass
class FileReport:
    """What ``jaxcnn check`` found in its files: per layer a ``LayerReport``, the chains,
    what was skipped (name, why) and why, the layers not checked for an environment
    problem (an unbuilt extension), and per layer how many inputs were the user's."""

    sources: list[str]
    layers: list[LayerReport]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chains: list[dict] = field(default_factory=list)
    environment: list[tuple[str, str]] = field(default_factory=list)
    user_inputs: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def status(self) -> int:
        """0: every gradient correct; 1: one is wrong; 2: something could not be checked."""
        if any(layer_status(r) == "wrong" for r in self.layers) or any(
                not c["ok"] and not c.get("error") for c in self.chains):
            return 1
        if any(c.get("error") for c in self.chains):  # a chain that could not be run
            return 2
        if not self.layers or any(layer_status(r) == "not checked" for r in self.layers):
            return 2
        return 0

    @property
    def ok(self) -> bool:
        return self.status == 0

    def layer(self, name: str) -> LayerReport:
        """The report of the layer of this name (or its name without the file label)."""
        for r in self.layers:
            if name in (r.name, r.name.rpartition(":")[2]):
                return r
        raise KeyError(f"no layer {name!r}; there are "
                       f"{', '.join(r.name for r in self.layers) or 'none'}")

    def to_json(self) -> dict:
        """The ``jaxcnn check --json`` document."""
        from jaxcnn.check import report
        doc = report.to_json(self.layers, self.skipped, self.chains)
        doc["ok"] = self.ok
        doc["status"] = self.status
        doc["environment"] = [{"name": n, "why": why} for n, why in self.environment]
        for layer in doc["layers"]:
            sets = [f["inputs"] for f in self.layer(layer["name"]).forward]
            layer["input_sets"] = [{"name": s, "by": "you" if s.startswith(
                inputs_mod.PREFIX) else "jaxcnn"} for s in sets]
        return doc

    def text(self) -> str:
        """The table, the details, the chains and the summary line, as printed."""
        from jaxcnn.check import chain as chain_mod
        from jaxcnn.check import report
        parts = [report.table(self.layers), "", report.details(self.layers)]
        for c in self.chains:
            parts += ["", "\n".join(chain_mod.summary(c))]
        parts += ["", self.summary()]
        return "\n".join(parts)

    def summary(self) -> str:
        """One line counting the table's rows (one per gradient; a layer that could not be
        run is one row): how many are correct, could not be checked, need attention."""
        rows = [c for r in self.layers for c in r.checks]
        not_checked = sum(unchecked(c) for c in rows)
        correct = sum(c.ok for c in rows)
        bad = len(rows) - correct - not_checked
        line = f"{correct} of {len(rows)} gradient{'s' * (len(rows) != 1)} correct"
        if not_checked:
            line += f", {not_checked} could not be checked"
        line += f" ({self.seconds:.1f} s)."
        if bad:
            line += f" {bad} need attention."
        missing = [r.name for r in self.layers if layer_status(r) == "not checked"
                   and not _was_not_run(r)]
        if missing:
            line += (f" Not checked (every input refused): {', '.join(missing)}.")
        for r in self.layers:
            if _was_not_run(r):
                line += (f"\n{r.name} was found but could not be run: "
                         f"{r.checks[0].note.removeprefix(NOT_RUN_NOTE)}")
        for name, why in self.environment:
            line += f"\nNot checked, an environment problem: {name}: {why}"
        return line

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from jaxcnn.check import chain as chain_mod
        from jaxcnn.check import html as html_table
        body = html_table.table(self.layers)
        extra = [html.escape(line) for c in self.chains for line in chain_mod.summary(c)]
        extra += [html.escape(f"Skipped {n}: {why}") for n, why in self.skipped]
        extra += [html.escape(line) for line in self.summary().splitlines()]
        return body + "<pre>" + "\n".join(extra) + "</pre>"


def _attach(exc: JaxcnnError, **partial) -> JaxcnnError:
    exc.partial = {**getattr(exc, "partial", {}), **partial}
    return exc


# a row of a second setting (``Conv2D (stride=2, padding=1)``: setting_variants)
SETTING_ROW = re.compile(r" \((\w+=[^,()]+)(, \w+=[^,()]+)*\)$")


def _select(layers: list[Layer], not_run: list, wanted, skipped=()) -> tuple[list, list]:
    """The layers ``--layer NAME`` names (and the recognised layers that could not be
    run, ``not_run``, that it names: they stay error rows): an exact row name first (a
    class's name picks its rows at a second setting too), else
    any other name (``names.matches``: the class or a function a row is built from, a
    kind). CheckUsageError naming what there is, and saying so when the name is one that
    was skipped (a base class)."""
    picked, picked_not_run, unknown = [], [], []
    def own(row: str) -> tuple[str, ...]:  # "Conv2D (stride=2, padding=1)" is Conv2D's too
        tail = row.rpartition(":")[2]
        return row, tail, SETTING_ROW.sub("", row), SETTING_ROW.sub("", tail)

    for name in wanted:
        exact = [layer for layer in layers if name in own(layer.name)]
        exact_not_run = [e for e in not_run if name in (e[0][0], e[0][0].rpartition(":")[2])]
        if exact or exact_not_run:
            hits, hits_not_run = exact, exact_not_run
        else:
            hits = [layer for layer in layers if matches(layer, name)]
            hits_not_run = [e for e in not_run if name in row_names(e[0][0])]
        if not hits and not hits_not_run:
            unknown.append(name)
        picked += [layer for layer in hits if layer not in picked]
        picked_not_run += [e for e in hits_not_run if e not in picked_not_run]
    if unknown:
        known = [layer.name for layer in layers] + [e[0][0] for e in not_run]
        why = [f"{n} was skipped: {w}" for n, w in skipped
               if any(u in row_names(n) for u in unknown)]
        raise discover.CheckUsageError(
            f"no layer named {', '.join(sorted(unknown))}"
            + (f" ({'; '.join(why)})" if why else "")
            + f"; found: {', '.join(known) or 'none'}")
    return ([layer for layer in layers if layer in picked],
            [e for e in not_run if e in picked_not_run])


NOT_RUN_NOTE = "could not be run: "  # the note of a not-run layer's one error row


def _was_not_run(r: LayerReport) -> bool:
    """A layer that was recognised but could not be run (``_not_run_report``)."""
    return (len(r.checks) == 1 and r.checks[0].quantity == "-" and unchecked(r.checks[0])
            and r.checks[0].note.startswith(NOT_RUN_NOTE))


def _reason(why: str) -> str:
    """A refusal's text without its leading "cannot run it: "."""
    return why.removeprefix("cannot run it: ")


def _error_row(name, kind, style, file, reference, why) -> LayerReport:
    """A layer's report of one error row, ``NOT_RUN_NOTE`` + ``why`` (exit 2)."""
    from jaxcnn.check.engine import Check, LayerReport

    check = Check("-", "error", None, None, None, None, None, None, [], NOT_RUN_NOTE + why,
                  "none", [])
    return LayerReport(name, kind, style, file, reference, [check], [], [], [], 0.0)


def _stuck_report(layer: Layer, exc: limits.Stuck) -> LayerReport:
    """The one error row of a layer whose check ran past the time limit (exit 2): where
    it was stuck, and the flag that raises the limit."""
    return _error_row(layer.name, layer.kind, layer.style, layer.file,
                      layer.reference.name if layer.reference else None, str(exc))


def _not_run_report(entry, file) -> LayerReport:
    """The error row of a layer that was recognised but could not be run (built, shaped,
    or run once): exit 2, listed with the layers, not among the skipped."""
    name, why = entry
    return _error_row(name, "unknown", entry.style or "unknown", file, None, _reason(why))


@contextlib.contextmanager
def _guard(name: str):
    """User code runs with its prints on stderr, its exits refused, the standard streams
    given back as they were after it (``usercode.keep_streams``), and NumPy's
    floating-point *warnings* off (the inputs that expose a mistake, such as a softmax's
    large logits, overflow on purpose; a result that is not finite is reported as such,
    with its usual fix). A category the user set to raise (``np.seterr(over="raise")``,
    which their code may catch) stays as they set it."""
    import numpy as np

    from jaxcnn.check.usercode import keep_streams

    quiet = {k: "ignore" if v == "warn" else v for k, v in np.geterr().items()}
    try:
        with keep_streams(), contextlib.redirect_stdout(sys.stderr), \
                discover.no_process_exit(), np.errstate(**quiet):
            yield
    except (discover.UserExit, SystemExit) as exc:
        raise discover.CheckUsageError(f"{name} exits the program while it is checked "
                                       f"(exit code {exc.code}); nothing more could be "
                                       "checked") from None
    except Exception:
        raise
    except BaseException as exc:  # KeyboardInterrupt & co. raised by the user's code
        if not discover.raised_by_code(exc):  # a real Ctrl-C in a notebook: stop
            raise
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if "/jaxcnn/" not in f.filename.replace("\\", "/")]
        at = f" at {cells.where(frames[-1].filename, frames[-1].lineno)}" if frames else ""
        text = " ".join(str(exc).split())[:200]
        raise discover.CheckUsageError(
            f"{name}: your code raised {type(exc).__name__}{': ' + text if text else ''}"
            f"{at}, which is not an error jaxcnn can report as the layer's (raise an "
            "Exception subclass); nothing more could be checked") from None


def _load(source, time_limit, log):
    """(label, module, file) of ("file", path), ("module", name) (``-m``) or a module
    object."""
    if isinstance(source, types.ModuleType):
        file = getattr(source, "__file__", None) or source.__name__
        return source.__name__, source, file
    kind, name = source
    what = f"importing {name}"
    if kind == "file" and Path(name).suffix == notebook.SUFFIX:  # a time limit per cell
        with limits.progress(what, log):
            return name, imports.load_file(name, time_limit), name
    with limits.progress(what, log), limits.time_limit(time_limit, what):
        module = imports.load_module(name) if kind == "module" else imports.load_file(name)
    return name, module, name


def check_sources(files=(), modules=(), *, layers=(), seed: int = 0, inputs=None,
                  time_limit: float | None = limits.DEFAULT_TIME_LIMIT, log=None,
                  progress=None, objects=(), on_checked=None) -> FileReport:
    """Check the layers of Python ``files`` (paths), ``modules`` (importable names, as
    ``-m``) and module ``objects``, as ``jaxcnn check`` does.

    layers: names to check only (row names, function or class names, kinds; see
        ``aliases``); inputs: ``--inputs`` text (FILE.py[:FUNC] or FILE.npz) or a
        ``inputs.UserInputs``; time_limit: seconds for each import, each file's finding
        of its layers, and each layer's check (None or 0: none); log: a stream for what
        was found ("Found 3 layers", "Skipped ..."), e.g. ``sys.stdout``; progress: a
        stream for what a slow import or layer is doing ("importing layers.py ..."), e.g.
        ``sys.stderr``; None: quiet. on_checked: ``(reports, skipped) -> None``, called
        after each layer's check with the ``LayerReport`` list so far and what was
        skipped (``jaxcnn check`` keeps them for a Ctrl-C: nothing checked is lost).

    Raises ``CheckUsageError`` (or ``limits.Stuck``) when nothing can be checked: a file
    that cannot be imported, no layers, an unknown ``--layer``, bad inputs, a time limit
    passed while importing or finding the layers; the exception's ``partial`` dict holds
    what was skipped. A layer whose own check passes the time limit is an error row
    instead (the others are checked), and a chain that does so, or whose inputs cannot
    be built, is a chain with an ``error`` (status 2).
    """
    if seed < 0:
        raise discover.CheckUsageError("--seed must be 0 or more")
    if not files and not modules and not objects:
        raise discover.CheckUsageError("give a Python file or a Jupyter notebook with your "
                                       "layers, or -m MODULE "
                                       "(e.g. `jaxcnn check -m jaxcnn.reference`)")
    given = inputs
    if isinstance(inputs, str):
        what = f"reading --inputs {inputs}"
        with limits.progress(what, progress), limits.time_limit(time_limit, what):
            given = inputs_mod.load(inputs)
    found_layers, skipped = [], []
    sources = []
    for f in files:  # one file of several that cannot be imported does not stop the others
        try:
            sources.append(_load(("file", str(f)), time_limit, progress))
        except discover.CheckUsageError as exc:
            if len(files) + len(modules) + len(objects) == 1:
                raise
            skipped.append((str(f), f"not checked: {exc}"))
    for label, module, _ in sources:  # a notebook's cells that raised: its other cells ran
        skipped += [notebook.failure_text(label, f)
                    for f in getattr(module, "__jaxcnn_failed_cells__", ())]
    if files and not sources and not modules and not objects:
        raise _attach(discover.CheckUsageError("; ".join(why for _, why in skipped)),
                      skipped=skipped)
    sources += [_load(("module", m), time_limit, progress) for m in modules]
    sources += [_load(o, time_limit, progress) for o in objects]
    per_source = []
    for label, module, file in sources:
        # Finding the layers runs the user's code too (constructors, shape probes, a
        # model's loss): within the time limit, as an import and a layer's check are.
        what = f"finding the layers of {label}"
        try:
            with limits.progress(what, progress, after=30.0), _guard(what), \
                    limits.time_limit(time_limit, what), limits.per_item(time_limit):
                per_source.append(discover.find_layers(module, file,
                                                       [m for _, m, _ in sources]))
        except JaxcnnError as exc:
            raise _attach(exc, skipped=skipped) from None
    if len(sources) > 1:  # what a file imports from another is checked (or skipped) once
        per_source = once.once_each(sources, per_source)
    not_run = []  # (Refused, file): recognised layers that could not be run: error rows
    for (label, _, file), found in zip(sources, per_source, strict=True):
        if len(sources) > 1:  # name each layer by its file too, so that rows can be told apart
            found = found._replace(layers=[layer._replace(name=f"{label}:{layer.name}")
                                           for layer in found.layers])
        found_layers += found.layers
        for entry in found.skipped:
            if isinstance(entry, dialects.Refused):
                not_run.append((entry.renamed(f"{label}:{entry[0]}") if len(sources) > 1
                                else entry, file))
            else:
                skipped.append((f"{label}:{entry[0]}", entry[1]))
    try:
        if layers:
            found_layers, not_run = _select(found_layers, not_run, layers, skipped)
        if not found_layers and not not_run:
            why = "; ".join(f"{n}: {w}" for n, w in skipped) or (
                "nothing of a kind it reads: a layer class with forward and backward (or "
                "backprop), a *_forward/*_backward or f/f_prime pair, a loss returning its "
                "gradient, a model's loss(X, y), a whole network or function with its "
                "gradients (forward_propagation/backward_propagation, lossFun, "
                "Network.backprop), a custom_vjp, a torch.autograd.Function, a scalar "
                "autograd engine (a Value class with _backward closures); see the "
                "README's 'Check your own backprop'")
            raise discover.CheckUsageError(
                f"no layers found in {', '.join(s[0] for s in sources)} ({why})")
        counts = {}
        if given is not None:
            found_layers, counts = inputs_mod.apply(found_layers, given)
    except JaxcnnError as exc:
        raise _attach(exc, skipped=skipped) from None
    if log is not None:
        text = ", ".join([f"{layer.name} ({layer.style}: {layer.kind})"
                          for layer in found_layers]
                         + [f"{e[0]} ({e.style}: cannot run it)" for e, _ in not_run])
        n = len(found_layers) + len(not_run)
        print(f"Found {n} layer{'s' * (n != 1)}: {text}", file=log)
        for entry, _ in not_run:
            print(f"Cannot run {entry[0]}: {_reason(entry[1])}", file=log)
        for name, why in skipped:
            print(f"Skipped {name}: {why}", file=log)
        for name, n in counts.items():
            print(f"{name}: {n} input{'s' * (n != 1)} of yours ({given.origin}), then "
                  "jaxcnn's", file=log)
    start = time.perf_counter()
    reports = []
    stuck: set[str] = set()  # layers whose check ran past the time limit
    from jaxcnn.check.engine import check_layer  # JAX, now that there are layers

    for layer in found_layers:
        what = f"checking {layer.name}"
        try:
            with limits.progress(what, progress, after=30.0), _guard(layer.name), \
                    limits.time_limit(time_limit, what):
                reports.append(check_layer(layer, seed=seed))
        except limits.Stuck as exc:  # this layer is one error row; the others are checked
            reports.append(_stuck_report(layer, exc))
            stuck.add(layer.name)
        except JaxcnnError as exc:
            raise _attach(exc, skipped=skipped, layers=reports) from None
        else:
            if counts.get(layer.name):
                reports[-1].notes.append(f"checked on {counts[layer.name]} input"
                                         f"{'s' * (counts[layer.name] != 1)} of yours "
                                         f"({given.origin}) and jaxcnn's own")
        if on_checked is not None:
            on_checked(list(reports), list(skipped))
    reports += [_not_run_report(entry, file) for entry, file in not_run]
    environment = []
    for r in list(reports):
        why = imports.environment_problem(r)
        if why is not None:
            reports.remove(r)
            environment.append((r.name, why))
    try:
        chains = _chains(sources, [layer for layer in found_layers
                                   if layer.name not in {n for n, _ in environment}],
                         reports, seed, time_limit, stuck)
    except JaxcnnError as exc:
        raise _attach(exc, skipped=skipped, layers=reports) from None
    return FileReport([s[0] for s in sources], reports, skipped, chains, environment, counts,
                      time.perf_counter() - start)


def _chains(sources, layers, reports, seed, time_limit, stuck=frozenset()) -> list[dict]:
    """The networks each file holds, chained; a chain whose layer's own rows fail is not
    ok (a chain never calls a layer correct that its rows do not). A network with a layer
    in ``stuck`` (its own check ran past the time limit) is not run: it would wait as
    long again on the same code."""
    from jaxcnn.check import chain as chain_mod
    chains = []
    for _, module, file in sources:
        # The classes the file's own network instantiates (`pool = MaxPool2Split()`) come
        # first: the chain is the network the file trains, not the first class defined.
        used = {type(v).__name__ for v in vars(module).values()
                if not isinstance(v, type) and callable(getattr(type(v), "backprop", None))}
        trio = [next(iter(sorted((layer for layer in layers if layer.file == file
                                  and layer.style == "blog" and layer.kind == kind),
                                 key=lambda layer: layer.name.rpartition(":")[2] not in used)),
                     None)
                for kind in ("conv3x3", "maxpool2", "dense_softmax")]
        runs = []
        if all(trio):
            runs.append((trio, lambda: chain_mod.blog_chain_inputs(2, seed)))
        network = chain_mod.cs231n_chain([layer for layer in layers if layer.file == file])
        if network:  # a CS231n convnet: conv - relu - max pool - affine - softmax loss
            runs.append((network, lambda n=network: chain_mod.cs231n_chain_inputs(n, seed)))
        network = chain_mod.cs231n_fc_chain([layer for layer in layers if layer.file == file])
        if network:  # a CS231n FullyConnectedNet: affine - norm - relu - dropout ... - loss
            runs.append((network,
                         lambda n=network: chain_mod.cs231n_fc_chain_inputs(n, seed)))
        for net, chain_inputs in runs:
            if not any(_base_name(layer.name) in stuck for layer in net):
                chains.append(_chain(net, chain_inputs, seed, f"the chain of {file}",
                                     time_limit))
    if not chains and len(sources) > 1:  # a network split over files, chained as given
        for net, chain_inputs in chain_mod.across_files(layers, seed):
            if not any(_base_name(layer.name) in stuck for layer in net):
                chains.append(_chain(net, chain_inputs, seed,
                                     "the chain of the files given", time_limit))
    rows = {r.name: r for r in reports}
    for c in chains:
        failing = [f"{n} ({', '.join(sorted({ch.kind for ch in rows[n].checks if not ch.ok}))})"
                   for n in c["layers"] if n in rows and not rows[n].ok]
        if failing:
            c["rows_not_ok"] = failing
            c["ok"] = False
    return chains


def _base_name(name: str) -> str:
    """A chain's copy of a layer, ``affine[2]``, is the layer ``affine``."""
    return re.sub(r"\[\d+\]$", "", name)


def _chain(net, chain_inputs, seed, what, time_limit) -> dict:
    """``chain.check_chain`` within the time limit (``chain_inputs``: the inputs, or a
    function that builds them, running the user's forwards for their shapes); past it, or
    when the user's code raises while the inputs are built, a chain that is not ok and
    says why (the layers' own rows are kept)."""
    from jaxcnn.check import chain as chain_mod
    from jaxcnn.check.engine import _error_text
    names = [layer.name for layer in net]
    try:
        with _guard(what), limits.time_limit(time_limit, what):
            if callable(chain_inputs):
                try:
                    chain_inputs = chain_inputs()
                except Exception as exc:  # the user's forward, run to shape the inputs
                    return {"layers": names, "ok": False, "first_wrong": None, "inputs": [],
                            "error": f"{what}: its inputs could not be built: "
                                     + _error_text(exc, "forward")}
            return chain_mod.check_chain(net, chain_inputs, seed)
    except limits.Stuck as exc:
        return {"layers": names, "ok": False, "first_wrong": None, "inputs": [],
                "error": str(exc)}


def check_file(path, **options) -> FileReport:
    """Check one file as ``jaxcnn check PATH`` does; ``options`` as for
    ``check_sources`` (layers, seed, inputs, time_limit, log)."""
    return check_sources([str(path)], **options)


def _pair_layer(forward, backward, kind, name, inputs, static) -> Layer:
    from jaxcnn.check.adapters import from_cs231n

    fname = getattr(forward, "__name__", "layer")
    stem = re.sub(r"_forward.*$", "", fname)
    if kind is None:  # as for a file: the catalogue's own patterns first, then the parts
        from jaxcnn.check import catalogue

        kind = catalogue.match(stem, "cs231n") or discover._kind(stem, discover.CS231N_KINDS)[0]
    if kind is None:
        if inputs is not None or static:
            raise ValueError(f"cannot tell the kind of {fname} from its name, so it has no "
                             "reference to run your inputs against; give kind= (a catalogue "
                             "kind: affine, conv, max_pool, batchnorm, ...), or leave out "
                             "inputs= and static= to check it numerically on inputs built from "
                             "its signature")
        from jaxcnn.check.adapters.function_pair import from_function_pair

        return from_function_pair(forward, backward, name or stem)  # its own forward's FD
    return from_cs231n(forward, backward, kind, name or stem, inputs=inputs, static=static)


def assert_correct(target, backward=None, *, kind: str | None = None, name: str | None = None,
                   layers=(), seed: int = 0, inputs=None, static: tuple = (),
                   time_limit: float | None = limits.DEFAULT_TIME_LIMIT):
    """Check ``target`` and raise ``AssertionError`` unless every gradient is correct,
    with the report's table, details and notes as the message (as pytest shows it).

    target: a file path (str or Path), a module object, a ``Layer``, or a CS231n-style
    forward function with its ``backward`` (kind from the name as for a file: a catalogue
    kind such as ``batchnorm``, or ``kind=``; ``inputs`` and ``static`` as for
    ``from_cs231n``; a name with no reference is checked against finite differences of
    its own forward, on inputs built from its signature). For a file or module, ``layers``
    picks layers and ``inputs`` is ``--inputs`` text. Returns the report (``FileReport`` or
    ``LayerReport``) when it passes.
    """
    from jaxcnn.check import report
    from jaxcnn.check.engine import check_layer
    if isinstance(target, Layer):
        result = check_layer(target, seed=seed)
        ok, text = result.ok, "\n".join([report.table([result]), "", report.details([result])])
    elif callable(target) and backward is not None:
        result = check_layer(_pair_layer(target, backward, kind, name, inputs, static),
                             seed=seed)
        ok, text = result.ok, "\n".join([report.table([result]), "", report.details([result])])
    elif isinstance(target, (str, Path, types.ModuleType)):
        options = dict(layers=layers, seed=seed, inputs=inputs, time_limit=time_limit)
        if isinstance(target, types.ModuleType):
            result = check_sources(objects=[target], **options)
        else:
            result = check_sources([str(target)], **options)
        ok, text = result.ok, result.text()
    else:
        raise TypeError("assert_correct takes a file path, a module, a Layer, or a forward "
                        f"function and its backward; got {type(target).__name__}")
    if not ok:
        raise AssertionError("hand-written gradients are not all correct:\n" + text)
    return result


__all__ = ["FileReport", "aliases", "assert_correct", "check_file", "check_sources",
           "layer_status", "unchecked"]
