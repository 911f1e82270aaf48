"""Turn ``LayerReport``s into the table ``jaxcnn check`` prints, and into strict JSON.

The JSON has the shape::

    {"ok": false,
     "layers": [{"name": "MaxPool2", "file": "mylayers.py", "style": "blog",
                 "checks": [{"quantity": "input", "kind": "tie-overcount", "scale": null,
                             "max_rel_error": 0.74, "worst": [...], "note": "..."}]}]}

plus, per layer, the reference, per-input-set results, kinks and timing. Non-finite
numbers are written as ``null``: the output is strict JSON.
"""

from __future__ import annotations

import dataclasses
import math

from jaxcnn.check.engine import Check, LayerReport
from jaxcnn.jsonsafe import strict


def layer_json(report: LayerReport) -> dict:
    """One layer as a JSON-ready dict."""
    return strict({
        "name": report.name, "file": report.file, "style": report.style, "kind": report.kind,
        "reference": report.reference, "ok": report.ok,
        "checks": [dataclasses.asdict(c) for c in report.checks],
        "forward": report.forward, "kinks": report.kinks, "notes": report.notes,
        "seconds": round(report.seconds, 3),
    })


def to_json(reports: list[LayerReport], skipped=(), chains=()) -> dict:
    """The whole ``jaxcnn check --json`` document."""
    return strict({
        "ok": bool(reports) and all(r.ok for r in reports) and all(c["ok"] for c in chains),
        "layers": [layer_json(r) for r in reports],
        "skipped": [{"name": n, "why": why} for n, why in skipped],
        "chains": list(chains),
    })


def header_file(r: LayerReport) -> str:
    """The file a layer's header names: where its code is, and the file checked when
    that is another (``mylayers.py, imported by nb4.ipynb``)."""
    code = getattr(r, "code_file", None)
    if not code or not r.file:
        return r.file or ""
    from jaxcnn.check.cells import file_name

    return f"{file_name(code, r.file)}, imported by {r.file}"


def _num(x) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2g}" if x >= 0.01 else f"{x:.1e}"


def _value(x: float) -> str:
    from jaxcnn.check.html import value  # a zero is "0", never "-0"

    return value(x)


def worst_text(check: Check, k: int = 2) -> str:
    """The first ``k`` worst entries, ``[i, j]: hand 0.31 vs ref 0.10``."""
    parts = [f"[{', '.join(str(i) for i in e['index'])}]: hand {_value(e['hand'])} vs ref "
             f"{_value(e['reference'])}" for e in check.worst[:k]]
    return "; ".join(parts)


def table(reports: list[LayerReport]) -> str:
    """Layer, quantity, kind, max rel error and worst entries: one row per gradient."""
    header = ("layer", "quantity", "kind", "max rel err", "worst entries (hand vs reference)")
    rows = []
    for r in reports:
        for c in r.checks:
            kind = c.kind + (f" ({c.rule})" if c.kind == "correct" and c.rule else "")
            kind += f" x{c.scale:.4g}" if c.kind == "scaled" and c.scale is not None else ""
            rows.append((r.name, c.quantity, kind, _num(c.max_rel_error),
                         "" if c.ok else worst_text(c)))
        if not r.checks:
            rows.append((r.name, "-", "error", "-", "; ".join(r.notes)[:80]))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(reports: list[LayerReport]) -> str:
    """Per layer: where it came from, its reference, what is wrong and the kinks seen."""
    out = []
    for r in reports:
        where = f"{r.style}, {header_file(r)}" if r.file else r.style
        if r.kind == "unknown" and [c.quantity for c in r.checks] == ["-"]:
            out.append(f"{r.name} ({where}): ERROR: {r.checks[0].note}")  # never run
            continue
        out.append(f"{r.name} ({where}) vs {r.reference or 'finite differences only'}, "
                   f"{r.seconds:.1f} s:")
        for c in r.checks:
            if c.ok:
                if c.note:
                    out.append(f"  {c.quantity}: correct; {c.note}")
                continue
            out.append(f"  {c.quantity}: {c.kind.upper()}: {c.note}")
            if c.axes is not None:
                out.append(f"    axes: {tuple(c.axes)}")
            if c.worst:
                out.append(f"    worst: {worst_text(c, 5)}")
        if r.first_wrong_step is not None:
            out.append("  " + r.first_wrong_step.text(r.file))
        for k in r.kinks:
            out.append(f"  ties/kinks on {k['inputs']}: {k['summary']}")
        for note in r.notes:
            out.append(f"  note: {note}")
    return "\n".join(out)
