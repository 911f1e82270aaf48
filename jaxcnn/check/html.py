"""Reports as HTML tables, for Jupyter (``_repr_html_`` of ``LayerReport`` and
``FileReport``): one row per gradient, its kind in green when correct and red when not,
the worst entries and the note of each wrong gradient, then each layer's first wrong step
(its line, ``cell 7, line 3`` in a notebook) and the layers' notes.

Duck-typed on the reports' fields (name, checks, notes, first_wrong_step when there is
one; a check's quantity, kind, rule,
scale, max_rel_error, worst, note, ok), so that ``engine`` can use it without an import
circle.
"""

from __future__ import annotations

import html
import math


def _num(x) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2g}" if x >= 0.01 else f"{x:.1e}"


def value(x: float) -> str:
    """An entry's value, 4 significant digits; a zero is "0" (never "-0": the sign of a
    zero says nothing about a gradient)."""
    if x == 0:
        return "0"
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def _worst(check, k: int = 2) -> str:
    return "; ".join(f"[{', '.join(str(i) for i in e['index'])}]: hand {value(e['hand'])} vs "
                     f"ref {value(e['reference'])}" for e in check.worst[:k])


def _cell(text, style: str = "") -> str:
    return f"<td{style}>{html.escape(str(text))}</td>"


def table(reports) -> str:
    """The HTML table of ``reports`` (``LayerReport``s) and their notes."""
    head = "".join(f"<th>{h}</th>" for h in ("layer", "quantity", "kind", "max rel err",
                                            "worst entries (hand vs reference)", "note"))
    rows = []
    for r in reports:
        for c in r.checks:
            kind = c.kind + (f" ({c.rule})" if c.kind == "correct" and c.rule else "")
            kind += f" x{c.scale:.4g}" if c.kind == "scaled" and c.scale is not None else ""
            color = ' style="color:#1a7f37"' if c.ok else ' style="color:#cf222e"'
            rows.append("<tr>" + _cell(r.name) + _cell(c.quantity) + _cell(kind, color)
                        + _cell(_num(c.max_rel_error)) + _cell("" if c.ok else _worst(c))
                        + _cell("" if c.ok else c.note) + "</tr>")
        if not r.checks:
            rows.append("<tr>" + _cell(r.name) + _cell("-") + _cell("error") + _cell("-")
                        + _cell("") + _cell("; ".join(r.notes)) + "</tr>")
    notes = [f"{r.name}: {r.first_wrong_step.text(getattr(r, 'file', None))}" for r in reports
             if getattr(r, "first_wrong_step", None) is not None]
    notes += [f"{r.name}: {n}" for r in reports for n in r.notes]
    foot = ("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
            if notes else "")
    return (f'<table class="jaxcnn-check"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>" + foot)


__all__ = ["table"]
