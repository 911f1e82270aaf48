"""Where the time of ``jaxcnn check`` and ``jaxcnn verify`` goes: per phase, per layer,
cold and warm, this code side by side with a baseline checkout (issue 19).

    python -m experiments.check_benchmark [--rounds 3] [--baseline DIR] [--cases a,b]
        [--json FILE] [--markdown FILE] [--quick]

Every run is a fresh ``python`` process, as a user runs it: ``jaxcnn check FILE --json``
(or ``jaxcnn verify --json``) through ``jaxcnn.cli.main``, with an empty compilation cache
(``JAXCNN_CACHE_DIR`` a new folder: **cold**) and then again on the same folder
(**warm**). Inside the process the benchmark wraps the library's functions (nothing in
jaxcnn knows about it) and charges each moment to one phase, exclusively (the innermost
wins):

=============  =========================================================================
phase          what
=============  =========================================================================
startup        the interpreter starting, before the benchmark's first line (parent
               wall time minus the child's own)
import         importing jaxcnn's command line, the check engine and JAX
discovery      ``discover.load_file`` / ``load_module`` / ``find_layers``
user           the user's forward and backward calls (outside finite differences)
fd             finite differences (``numeric``), including the forward calls they make
compile        JAX tracing, lowering to MLIR and XLA compiling (or reading the
               persistent cache): JAX's own monitoring events
reference      the exact oracle running: ``jax.vjp`` of the reference, its forward,
               alternates, kinks, subgradient tests (less the compiles inside)
classify       ``classify.classify`` and the per-argument aggregation
report         the table, the details, the JSON
engine         everything else inside the command (the engine's own bookkeeping)
=============  =========================================================================

Per layer (``check_layer`` of each layer, and ``chain``) the same phases are kept. The
verdicts (layer, quantity, kind; the chains' first wrong layer; verify's rows) are
recorded too, and compared between the baseline and this code: a speed-up must not
change what is found.

``--baseline DIR``: another checkout of the project (e.g. ``git worktree add
/tmp/base 91554ce``), run by the same interpreter in the same rounds, interleaved
(baseline, this code, baseline, ...), so that machine load hits both alike. The machine,
its load (``os.getloadavg``) before and after every run and each child's CPU seconds are
written with the wall times: on a loaded machine CPU seconds are the steadier number.

Targets (issue 19, a quiet 2-core machine, median of 3): the 5-layer CS231n file cold
<= 5 s and warm <= 2 s, ``verify`` cold <= 3 s, the blog trio warm <= 3 s. Its follow-up
(the slow cases of a corpus of 59 fixtures and real files, experiments/check_corpus.py):
the CS231n convnet with sandwiches cold <= 9 s and warm <= 3.5 s, assignment 2's file
cold <= 10 s and warm <= 3 s: each below the range of 21bd88b's three runs and above
this code's (2 cores, load 1.9). Rows without a target are there to be watched: the RNN
file (its 24 small programs compile 15% faster: ranges too close for a target), the blog
network split over files and hand-written JAX layers (most of their time is the user's
own code, run as written).
``--quick``: one round of two small cases (the smoke test); not numbers to quote.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "check_fixtures"
TESTS = REPO / "tests" / "fixtures"
PHASES = ("startup", "import", "discovery", "user", "fd", "compile", "reference", "classify",
          "report", "engine")

# name -> (what, command line after `jaxcnn`)
CASES = {
    "cs231n-5-layers": ("a CS231n layers.py: affine, ReLU, naive conv, naive max pool, "
                        "softmax_loss (5 layers, 9 gradients, the chain)",
                        ["check", str(FIXTURES / "cs231n_layers.py"), "--json"]),
    "blog-trio": ("the report's blog classes, Conv3x3, MaxPool2, Softmax + the chain "
                  "(`jaxcnn check -m jaxcnn.reference`)",
                  ["check", "-m", "jaxcnn.reference", "--json"]),
    "readme-cs231n": ("the README's cs231n_ex.py (affine, dw scaled)",
                      ["check", str(FIXTURES / "cs231n_ex.py"), "--json"]),
    "readme-jax": ("the README's jax_ex.py (custom_vjp max pool, tie-overcount)",
                   ["check", str(FIXTURES / "jax_ex.py"), "--json"]),
    "verify": ("`jaxcnn verify`: the report's backprop.py", ["verify", "--json"]),
    # the slow cases of a broader corpus (issue 19's follow-up: every fixture and real
    # CS231n / from-scratch repositories; experiments/results/check_corpus.md)
    "cs231n-convnet": ("tests/fixtures/cs231n_net.py: the 5 parts and the sandwiches "
                       "conv_relu_pool, affine_relu (7 layers) + the chain",
                       ["check", str(TESTS / "cs231n_net.py"), "--json"]),
    "cs231n-assignment2": ("tests/fixtures/cs231n_assignment2.py: 12 layers (batch, layer, "
                           "spatial and group norms, dropout, conv, pool, two losses) + the "
                           "convnet and FullyConnectedNet chains",
                           ["check", str(TESTS / "cs231n_assignment2.py"), "--json"]),
    "cs231n-rnn": ("tests/fixtures/cs231n_rnn_layers.py: RNN / LSTM steps and sequences, "
                   "embedding, temporal affine and loss",
                   ["check", str(TESTS / "cs231n_rnn_layers.py"), "--json"]),
    "split-network": ("tests/fixtures/dialects/split: the blog network over four files "
                      "(the user's loop max pool: finite differences)",
                      ["check", *(str(TESTS / "dialects" / "split" / f) for f in (
                          "conv.py", "maxpool.py", "softmax.py", "cnn.py")), "--json"]),
    "jax-layers": ("tests/fixtures/jax_layers.py: 5 hand-written JAX layers (run eagerly, "
                   "as written)", ["check", str(TESTS / "jax_layers.py"), "--json"]),
}
# (target, case, cold or warm, seconds)
TARGETS = [("CS231n 5 layers, empty cache <= 5 s", "cs231n-5-layers", "cold", 5.0),
           ("CS231n 5 layers, warm cache <= 2 s", "cs231n-5-layers", "warm", 2.0),
           ("verify, empty cache <= 3 s", "verify", "cold", 3.0),
           ("blog trio, warm cache <= 3 s", "blog-trio", "warm", 3.0),
           # issue 19's follow-up (experiments/results/check_corpus.md): the corpus's slow
           # cases; 21bd88b, interleaved, load 1.9: 10.7, 4.4, 13.2 and 3.4 s
           ("CS231n convnet + sandwiches, empty cache <= 9 s", "cs231n-convnet", "cold", 9.0),
           ("CS231n convnet + sandwiches, warm cache <= 3.5 s", "cs231n-convnet", "warm", 3.5),
           ("CS231n assignment 2, empty cache <= 10 s", "cs231n-assignment2", "cold", 10.0),
           ("CS231n assignment 2, warm cache <= 3 s", "cs231n-assignment2", "warm", 3.0)]
QUICK_CASES = ("readme-cs231n", "readme-jax")


# ----------------------------------------------------------------- inside the child
class _Clock:
    """Exclusive time per (label, phase): a per-thread stack of frames."""

    def __init__(self):
        self.local = threading.local()
        self.lock = threading.Lock()
        self.totals: dict[tuple[str, str], float] = {}
        self.counts: dict[str, int] = {}

    def _stack(self):
        if not hasattr(self.local, "stack"):
            self.local.stack = []
            self.local.label = "-"
            self.local.spans = []
        return self.local.stack

    def current(self) -> str | None:
        stack = self._stack()
        return stack[-1][0] if stack else None

    def add(self, phase: str, seconds: float, label: str | None = None):
        key = (label or self.local.label, phase)
        with self.lock:
            self.totals[key] = self.totals.get(key, 0.0) + seconds

    def count(self, what: str, n: int = 1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def push(self, phase):
        self._stack().append([phase, time.perf_counter(), 0.0])

    def pop(self):
        stack = self._stack()
        phase, start, inner = stack.pop()
        elapsed = time.perf_counter() - start
        self.add(phase, elapsed - inner)
        if stack:
            stack[-1][2] += elapsed

    def compiled(self, start: float, end: float):
        """A JAX compile span (time.time()): its part not covered by spans already
        counted (a trace nests the traces of the jitted functions it calls)."""
        self._stack()
        spans = self.local.spans
        covered = sum(e - s for s, e in spans if s >= start and e <= end)
        self.local.spans = [(s, e) for s, e in spans if not (s >= start and e <= end)]
        self.local.spans.append((start, end))
        self.local.spans = self.local.spans[-64:]
        new = max(0.0, (end - start) - covered)
        self.add("compile", new)
        stack = self._stack()
        if stack:
            stack[-1][2] += new


def _wrap(clock: _Clock, fn, phase: str, unless=()):
    if getattr(fn, "_bench_wrapped", False):
        return fn

    def wrapped(*args, **kwargs):
        if clock.current() in unless:
            return fn(*args, **kwargs)
        clock.push(phase)
        try:
            return fn(*args, **kwargs)
        finally:
            clock.pop()

    wrapped._bench_wrapped = True
    wrapped.__wrapped__ = fn
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(wrapped, attr, getattr(fn, attr))
        except (AttributeError, TypeError):
            pass
    return wrapped


def _patch(original, replacement):
    """Replace ``original`` wherever a jaxcnn module holds it (``from x import f``)."""
    for name, module in list(sys.modules.items()):
        if not (name == "jaxcnn" or name.startswith("jaxcnn.")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                setattr(module, attr, replacement)


def _instrument(clock: _Clock):
    import importlib

    mods = {}
    for name in ("jaxcnn.check.autodiff", "jaxcnn.check.numeric", "jaxcnn.check.classify",
                 "jaxcnn.check.engine", "jaxcnn.check.chain", "jaxcnn.check.discover",
                 "jaxcnn.check.report", "jaxcnn.verify", "jaxcnn.jsonsafe"):
        try:
            mods[name] = importlib.import_module(name)
        except ImportError:
            pass
    from jax import monitoring

    def on_span(event, start, end, **kwargs):
        if event.startswith("/jax/core/compile/"):
            clock.compiled(start, end)
            if event.endswith("backend_compile_duration"):
                clock.count("programs compiled or read")

    def on_event(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            clock.count("persistent cache hits")

    monitoring.register_event_time_span_listener(on_span)
    monitoring.register_event_listener(on_event)

    def wrap_in(module, attr, phase, unless=()):
        m = mods.get(module)
        fn = getattr(m, attr, None) if m else None
        if callable(fn):
            _patch(fn, _wrap(clock, fn, phase, unless))

    for attr in ("vjp", "vjp_many", "vjp_batch", "reference_vjp"):
        wrap_in("jaxcnn.check.autodiff", attr, "reference", ("fd",))
    wrap_in("jaxcnn.check.numeric", "_slopes", "fd")
    wrap_in("jaxcnn.check.classify", "classify", "classify")
    wrap_in("jaxcnn.check.engine", "_aggregate", "classify")
    for attr in ("load_file", "load_module"):
        wrap_in("jaxcnn.check.discover", attr, "discovery")
    for attr in ("table", "details", "to_json"):
        wrap_in("jaxcnn.check.report", attr, "report")
    wrap_in("jaxcnn.check.chain", "summary", "report")
    wrap_in("jaxcnn.jsonsafe", "dumps", "report")
    wrap_in("jaxcnn.verify", "format_table", "report")

    def layer_wrapped(layer):
        """The user's functions and the reference's, charged to their phases."""
        def user(fn):
            return None if fn is None else _wrap(clock, fn, "user", ("fd", "user"))

        def counted_forward(fn):
            def forward(*a, **k):
                clock.count("forward calls in fd" if clock.current() == "fd"
                            else "forward calls")
                return fn(*a, **k)
            return user(forward)

        def vjp(fn):
            def outer(*a, **k):
                out, backward = fn(*a, **k)
                return out, user(backward)
            return user(outer)

        changes = {"forward": counted_forward(layer.forward), "vjp": vjp(layer.vjp)}
        for attr in ("extra",):
            if getattr(layer, attr, None) is not None:
                changes[attr] = user(getattr(layer, attr))
        ref = layer.reference
        if ref is not None:
            changes["reference"] = ref._replace(**{
                k: _wrap(clock, getattr(ref, k), "reference", ("fd",))
                for k in ("forward", "alternates", "kinks", "subgradient")
                if getattr(ref, k, None) is not None})
        return layer._replace(**changes)

    discover = mods.get("jaxcnn.check.discover")
    if discover is not None:
        find = discover.find_layers

        def find_layers(*a, **k):
            clock.push("discovery")
            try:
                found = find(*a, **k)
            finally:
                clock.pop()
            return found._replace(layers=[layer_wrapped(x) for x in found.layers])
        _patch(find, find_layers)
    verify = mods.get("jaxcnn.verify")
    if verify is not None:
        layers_of = verify.report_layers

        def report_layers(*a, **k):
            return [layer_wrapped(x) for x in layers_of(*a, **k)]
        _patch(layers_of, report_layers)

    engine = mods["jaxcnn.check.engine"]
    check_layer = engine.check_layer

    def labelled(label_of, fn):
        def run(*a, **k):
            clock._stack()
            before = clock.local.label
            clock.local.label = label_of(*a, **k)
            clock.push("engine")
            try:
                return fn(*a, **k)
            finally:
                clock.pop()
                clock.local.label = before
        return run

    _patch(check_layer, labelled(lambda layer, *a, **k: layer.name, check_layer))
    chain = mods["jaxcnn.check.chain"]
    _patch(chain.check_chain, labelled(lambda *a, **k: "chain", chain.check_chain))


def _verdicts(argv: list[str], doc: dict) -> list:
    """What was found, as sorted lists (compared between baseline and this code)."""
    if argv[0] == "verify":
        rows = [[r["quantity"], r["inputs"], r["kind"], r["rule"], r["verdict"]]
                for r in doc.get("rows", [])]
        first = (doc.get("chain") or {}).get("first_wrong")
        return sorted(rows) + [["chain", json.dumps(first, sort_keys=True)]]
    rows = [[layer["name"], c["quantity"], c["kind"], c.get("rule"),
             c.get("scale") if c.get("scale") is None else round(c["scale"], 6)]
            for layer in doc.get("layers", []) for c in layer["checks"]]
    chains = [["chain", json.dumps([r["first_wrong"] for r in ch["inputs"]], sort_keys=True)]
              for ch in doc.get("chains", [])]
    return sorted(rows, key=json.dumps) + chains


def _document(stdout: str):
    """The command's JSON document without its times (every key naming seconds), to
    compare the numbers, not only the verdicts, between versions and runs."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if "second" not in k}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    try:
        return strip(json.loads(stdout))
    except ValueError:
        return stdout


def child(argv: list[str], out: Path) -> int:
    """Run ``jaxcnn ARGV`` in this process, instrumented; write the phases to ``out``."""
    t0 = time.perf_counter()
    clock = _Clock()
    clock.push("import")
    import jax  # noqa: F401  (what a check needs, imported as the command would)

    import jaxcnn.check.chain  # noqa: F401
    import jaxcnn.check.engine  # noqa: F401
    import jaxcnn.cli
    import jaxcnn.cli.check  # noqa: F401
    import jaxcnn.cli.verify  # noqa: F401
    clock.pop()
    _instrument(clock)
    import contextlib
    import io

    buffer = io.StringIO()
    clock.push("engine")
    with contextlib.redirect_stdout(buffer):
        code = jaxcnn.cli.main(argv)
    clock.pop()
    total = time.perf_counter() - t0
    try:
        doc = json.loads(buffer.getvalue())
        verdicts = _verdicts(argv, doc)
    except (ValueError, KeyError, TypeError) as exc:
        verdicts = [f"no JSON: {exc}"]
    phases: dict[str, float] = {}
    layers: dict[str, dict[str, float]] = {}
    for (label, phase), seconds in clock.totals.items():
        phases[phase] = phases.get(phase, 0.0) + seconds
        if label != "-":
            layers.setdefault(label, {})
            layers[label][phase] = layers[label].get(phase, 0.0) + seconds
    out.write_text(json.dumps({"code": code, "seconds": total, "phases": phases,
                               "layers": layers, "counts": clock.counts,
                               "verdicts": verdicts, "stdout": buffer.getvalue()}))
    return 0


# ----------------------------------------------------------------- the parent
def _machine() -> dict:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"cores": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "versions": versions}


def _git(root: Path) -> str | None:
    if (root / ".commit").exists():
        return (root / ".commit").read_text().strip()
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_once(root: Path, argv: list[str], cache: Path) -> dict:
    """One child process on code ``root`` with the compilation cache in ``cache``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "phases.json"
        env = dict(os.environ, JAXCNN_CACHE_DIR=str(cache), PYTHONPATH=str(root))
        load = os.getloadavg()[0]
        start = time.perf_counter()
        before = os.times()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                               str(out), "--root", str(root), "--", *argv], cwd=root, env=env,
                              capture_output=True, text=True, timeout=1800, check=False)
        wall = time.perf_counter() - start
        after = os.times()
        cpu = (after.children_user - before.children_user
               + after.children_system - before.children_system)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{' '.join(argv)} on {root} failed ({proc.returncode}): "
                               f"{proc.stderr[-2000:]}")
        doc = json.loads(out.read_text())
    doc["phases"]["startup"] = max(0.0, wall - doc["seconds"])
    return {"wall_seconds": wall, "cpu_seconds": cpu, "load_before": load,
            "load_after": os.getloadavg()[0], "exit_code": doc["code"],
            "phases": doc["phases"], "layers": doc["layers"], "counts": doc["counts"],
            "verdicts": doc["verdicts"], "stdout": doc["stdout"]}


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def measure(code: dict[str, Path], cases: list[str], rounds: int, log) -> dict:
    """``rounds`` rounds; in each, every case cold then warm, for each code version in
    turn."""
    runs: dict = {v: {c: {"cold": [], "warm": []} for c in cases} for v in code}
    for r in range(rounds):
        for case in cases:
            for version, root in code.items():
                cache = Path(tempfile.mkdtemp(prefix="jaxcnn-bench-cache-"))
                try:
                    for state in ("cold", "warm"):
                        one = run_once(root, CASES[case][1], cache)
                        runs[version][case][state].append(one)
                        log(f"round {r + 1}/{rounds} {case:16s} {version:8s} {state}: "
                            f"{one['wall_seconds']:6.2f} s wall, {one['cpu_seconds']:6.2f} s "
                            f"CPU, load {one['load_before']:.1f}, exit {one['exit_code']}")
                finally:
                    shutil.rmtree(cache, ignore_errors=True)
    return runs


def summarise(runs: dict, cases: list[str]) -> dict:
    out = {}
    for version, by_case in runs.items():
        out[version] = {}
        for case in cases:
            out[version][case] = {}
            for state, rs in by_case[case].items():
                if not rs:
                    continue
                phases = {p: statistics.median(r["phases"].get(p, 0.0) for r in rs)
                          for p in PHASES}
                labels = sorted({k for r in rs for k in r["layers"]})
                per_layer = {k: {p: round(statistics.median(r["layers"].get(k, {}).get(p, 0.0)
                                                            for r in rs), 4)
                                 for p in PHASES if any(p in r["layers"].get(k, {})
                                                        for r in rs)}
                             for k in labels}
                counts = {k: statistics.median(r["counts"].get(k, 0) for r in rs)
                          for k in sorted({k for r in rs for k in r["counts"]})}
                out[version][case][state] = {
                    "wall_seconds": _summary([r["wall_seconds"] for r in rs]),
                    "cpu_seconds": _summary([r["cpu_seconds"] for r in rs]),
                    "load": _summary([r["load_before"] for r in rs]),
                    "exit_codes": [r["exit_code"] for r in rs],
                    "phases": {p: round(v, 4) for p, v in phases.items()},
                    "per_layer": per_layer, "counts": counts,
                    "verdicts_stable": all(r["verdicts"] == rs[0]["verdicts"] for r in rs),
                    "verdicts": rs[0]["verdicts"]}
    return out


def markdown(report: dict) -> str:
    s = report["summary"]
    versions = list(s)
    lines = ["# `jaxcnn check` / `verify` benchmark", "",
             f"{report['date']}, {report['machine']['cpu_model']}, "
             f"{report['machine']['cores']} cores; load (1 min) during the runs: median "
             f"{report['load']['median']:.1f} (min {report['load']['min']:.1f}, max "
             f"{report['load']['max']:.1f}); {report['rounds']} round(s). Versions: "
             + ", ".join(f"{v} = {report['code'][v]['root']} ({report['code'][v]['commit']})"
                         for v in versions), ""]
    lines += ["## Targets (median wall seconds)", "",
              "| target | " + " | ".join(versions) + " | met (this code) |",
              "|---|" + "---|" * len(versions) + "---|"]
    for t in report["targets"]:
        cells = [("-" if t["seconds"].get(v) is None else f"{t['seconds'][v]:.2f}")
                 for v in versions]
        lines.append(f"| {t['target']} | " + " | ".join(cells) + f" | {t['met']} |")
    lines += ["", "## Wall and CPU seconds (median, range)", "",
              "| case | state | " + " | ".join(f"{v} wall | {v} CPU" for v in versions) + " |",
              "|---|---|" + "---|---|" * len(versions)]
    cases = list(next(iter(s.values())))
    for case in cases:
        for state in ("cold", "warm"):
            cells = []
            for v in versions:
                x = s[v][case].get(state)
                if x is None:
                    cells += ["-", "-"]
                    continue
                w, c = x["wall_seconds"], x["cpu_seconds"]
                cells += [f"{w['median']:.2f} ({w['min']:.2f}-{w['max']:.2f})",
                          f"{c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f})"]
            lines.append(f"| {case} | {state} | " + " | ".join(cells) + " |")
    lines += ["", "## Phases (median seconds)", "",
              "| case | state | version | " + " | ".join(PHASES) + " | programs | fd calls |",
              "|---|---|---|" + "---|" * (len(PHASES) + 2)]
    for case in cases:
        for state in ("cold", "warm"):
            for v in versions:
                x = s[v][case].get(state)
                if x is None:
                    continue
                lines.append(f"| {case} | {state} | {v} | " + " | ".join(
                    f"{x['phases'][p]:.2f}" for p in PHASES) + f" | "
                    f"{x['counts'].get('programs compiled or read', 0):.0f} | "
                    f"{x['counts'].get('forward calls in fd', 0):.0f} |")
    lines += ["", "## Per layer (median seconds, this code)", ""]
    this = versions[-1]
    for case in cases:
        for state in ("cold", "warm"):
            x = s[this][case].get(state)
            if not x:
                continue
            lines.append(f"- {case}, {state}: " + "; ".join(
                f"{name}: {sum(p.values()):.2f} ("
                + ", ".join(f"{k} {v:.2f}" for k, v in sorted(p.items(), key=lambda kv: -kv[1])
                            if v >= 0.01) + ")"
                for name, p in x["per_layer"].items()))
    lines += ["", "## Verdicts", ""]
    for case in cases:
        same = report["verdicts_identical"].get(case)
        lines.append(f"- {case}: " + ("identical in every run and version" if same else
                                      "DIFFER between versions or runs"
                                      if same is False else "one version")
                     + {True: "; the whole JSON document too (times aside)",
                        False: "; the JSON documents differ (times aside)"}.get(
                         report.get("documents_identical", {}).get(case), ""))
    return "\n".join(lines) + "\n"


def _baseline(where: str) -> Path:
    """A folder as given, or commit ``where`` of this repository exported to a temporary
    folder (``git archive``; removed when the benchmark ends)."""
    if Path(where).is_dir():
        return Path(where).resolve()
    import atexit

    folder = Path(tempfile.mkdtemp(prefix="jaxcnn-bench-base-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", where], capture_output=True,
                             check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline {where}: neither a folder nor a commit "
                         f"({archive.stderr.decode(errors='replace').strip()})")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    (folder / ".commit").write_text(where)
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        out, root = Path(argv[1]), argv[3]
        sys.path.insert(0, root)
        return child(argv[5:], out)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=None, metavar="DIR_OR_COMMIT",
                        help="another checkout to run side by side, or a commit of this "
                             "repository (exported with git archive into a temporary folder)")
    parser.add_argument("--cases", default=None,
                        help=f"comma-separated, of {', '.join(CASES)} (default all)")
    parser.add_argument("--json", type=Path, default=REPO / "experiments" / "results" /
                        "check_benchmark.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "experiments" / "results" /
                        "check_benchmark.md")
    parser.add_argument("--quick", action="store_true",
                        help="one round of two small cases (a smoke test)")
    args = parser.parse_args(argv)
    cases = (list(QUICK_CASES) if args.quick and not args.cases else
             args.cases.split(",") if args.cases else list(CASES))
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    rounds = 1 if args.quick else args.rounds
    code = {}
    if args.baseline is not None:
        code["baseline"] = _baseline(args.baseline)
    code["this"] = REPO

    def log(text):
        print(text, file=sys.stderr, flush=True)

    runs = measure(code, cases, rounds, log)
    summary = summarise(runs, cases)
    loads = [r["load_before"] for v in runs.values() for c in v.values() for rs in c.values()
             for r in rs]
    identical, documents = {}, {}
    for case in cases:
        all_runs = [r["verdicts"] for v in runs.values() for rs in v[case].values() for r in rs]
        identical[case] = all(x == all_runs[0] for x in all_runs)
        docs = [_document(r.get("stdout", "")) for v in runs.values()
                for rs in v[case].values() for r in rs]
        documents[case] = all(d == docs[0] for d in docs)
    targets = []
    for name, case, state, limit in TARGETS:
        if case not in cases:
            continue
        seconds = {v: summary[v][case][state]["wall_seconds"]["median"] for v in code}
        targets.append({"target": name, "case": case, "state": state, "limit": limit,
                        "seconds": seconds, "met": seconds["this"] <= limit})
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": _machine(), "rounds": rounds, "quick": args.quick,
              "load": _summary(loads),
              "code": {v: {"root": str(root), "commit": _git(root)} for v, root in code.items()},
              "cases": {c: CASES[c][0] for c in cases}, "targets": targets,
              "verdicts_identical": identical, "documents_identical": documents,
              "summary": summary, "runs": runs}
    for v in runs.values():  # the documents themselves are compared, not kept
        for c in v.values():
            for rs in c.values():
                for r in rs:
                    r.pop("stdout", None)
    text = json.dumps(report, indent=1, allow_nan=False)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")
    md = markdown(report)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
