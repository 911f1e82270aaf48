"""``jaxcnn check`` over a corpus of files, cold and warm, on two versions of the code:
the wall time and phases of every file (to find the slow cases), and whether every
verdict, and every number, stayed the same.

    python -m experiments.check_corpus --baseline COMMIT [--json FILE] FILE_OR_DIR...

Each argument is a Python file checked on its own, or a folder whose ``*.py`` files are
checked together (a network split over files). Every run is one child process of
``experiments.check_benchmark`` (its phases), with an empty compilation cache (cold) and
then the same cache again (warm); the baseline (a folder, or a commit of this repository)
and this code run one after the other for each file, so that machine load hits both
alike. One round: a survey, not numbers to quote (the benchmark's rows are those).

Printed: per file and state the wall seconds of both versions, and at the end the count
of runs whose verdicts (each layer's kinds and rules, the chains' first wrong layer, the
exit status) and whose whole JSON documents (times aside) are identical between the
versions and between cold and warm. Used for issue 19's follow-up
(experiments/results/check_corpus.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from experiments import check_benchmark as bench


def _argv(target: Path) -> list[str]:
    files = sorted(target.glob("*.py")) if target.is_dir() else [target]
    return ["check", *(str(f) for f in files), "--json"]


def verdicts(doc) -> list:
    """Each layer's (name, quantity, kind, rule), the chains' first wrong layers, ok."""
    if not isinstance(doc, dict):
        return [doc]
    out = [(layer.get("name"), c.get("quantity"), c.get("kind"), c.get("rule"))
           for layer in doc.get("layers", []) for c in layer.get("checks", [])]
    out += [("chain", json.dumps([r.get("first_wrong") for r in ch.get("inputs", [])],
                                 sort_keys=True), ch.get("ok")) for ch in doc.get("chains", [])]
    return out + [("ok", doc.get("ok"), doc.get("error"))]


def survey(code: dict[str, Path], targets: list[Path], log) -> dict:
    """{file: {version: {state: run}}}; a run that fails keeps its error text."""
    results: dict = {}
    for target in targets:
        results[str(target)] = {}
        for version, root in code.items():
            cache = Path(tempfile.mkdtemp(prefix="jaxcnn-corpus-cache-"))
            runs = {}
            try:
                for state in ("cold", "warm"):
                    try:
                        runs[state] = bench.run_once(root, _argv(target), cache)
                    except RuntimeError as exc:
                        runs[state] = {"error": str(exc)[-1000:]}
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            results[str(target)][version] = runs
            log(f"{target} {version}: " + ", ".join(
                f"{s} {r['wall_seconds']:.2f} s" if "wall_seconds" in r else f"{s} failed"
                for s, r in runs.items()))
    return results


def compare(results: dict) -> dict:
    """Counts of identical verdicts and documents: between the versions (per state) and
    between cold and warm (per version)."""
    counts = {"runs": 0, "verdicts": 0, "documents": 0, "cold_equals_warm": 0, "failed": 0,
              "differ": []}
    for target, versions in results.items():
        base, this = versions.get("baseline"), versions["this"]
        for state in ("cold", "warm"):
            b, t = (base or this)[state], this[state]
            if "stdout" not in b or "stdout" not in t:
                counts["failed"] += 1
                continue
            counts["runs"] += 1
            db, dt = bench._document(b["stdout"]), bench._document(t["stdout"])
            same = verdicts(db) == verdicts(dt) and b["exit_code"] == t["exit_code"]
            counts["verdicts"] += same
            counts["documents"] += db == dt
            if db != dt:
                counts["differ"].append([target, state, "verdicts" if not same else "numbers"])
        for runs in versions.values():
            if all("stdout" in runs[s] for s in ("cold", "warm")):
                counts["cold_equals_warm"] += (bench._document(runs["cold"]["stdout"])
                                               == bench._document(runs["warm"]["stdout"]))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", type=Path, metavar="FILE_OR_DIR")
    parser.add_argument("--baseline", default=None, metavar="DIR_OR_COMMIT")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    code = {}
    if args.baseline is not None:
        code["baseline"] = bench._baseline(args.baseline)
    code["this"] = bench.REPO
    results = survey(code, [t.resolve() for t in args.targets],
                     lambda text: print(text, file=sys.stderr, flush=True))
    counts = compare(results)
    if args.json is not None:
        for versions in results.values():
            for runs in versions.values():
                for run in runs.values():
                    run.pop("stdout", None)
        args.json.write_text(json.dumps({"counts": counts, "results": results}, indent=1))
    print(json.dumps(counts, indent=1))
    return 0 if counts["verdicts"] == counts["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
