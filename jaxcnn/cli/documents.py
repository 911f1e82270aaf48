"""The one JSON document of ``jaxcnn check --json`` for an error (a usage error, a file
that cannot be checked): written by the command and, for the errors argparse finds
before the command runs, by ``jaxcnn.cli.main``. Imports nothing of ``jaxcnn.cli``, so
that both can import it.
"""

from __future__ import annotations


def usage_document(message: str) -> None:
    """A usage error's JSON document on stdout (``--json --bogus``)."""
    print_document(error_json(message))


def print_document(text: str) -> None:
    """``text``, the one JSON document, on stdout; a signal that arrives meanwhile is
    handled after it, and writes no second one (``interrupts.document_out``)."""
    from jaxcnn import interrupts

    with interrupts.document_out():
        print(text, flush=True)


def error_json(message: str, partial: dict | None = None) -> str:
    """The error document: ``"ok": false``, ``"status": 2``, ``"error": message``, and
    the layers checked and names skipped before it (``partial``)."""
    from jaxcnn import jsonsafe
    from jaxcnn.check import report

    partial = partial or {}
    doc = report.to_json(partial.get("layers", []), partial.get("skipped", ()))
    doc.update(ok=False, status=2, error=message)
    return jsonsafe.dumps(doc, indent=2)


__all__ = ["error_json", "print_document", "usage_document"]
