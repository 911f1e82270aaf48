"""Names a package exports, imported on first use (PEP 562): importing the package, or
one of its modules, imports nothing else (no JAX for ``jaxcnn check --help``)."""

from __future__ import annotations

import importlib


def exports(package: str, table: dict[str, str], namespace: dict):
    """``(__getattr__, __dir__)`` for ``package`` whose ``table`` maps each exported name
    to the module defining it; a name is imported once, then kept in ``namespace``."""
    def getattr_(name: str):
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(table))

    return getattr_, dir_
