"""Helpers of the catalogue tests (tests/test_catalogue_*.py): load a fixture the way
``jaxcnn check FILE.py`` does, plant a one-line mutant, check one layer, and assert that
the mutated quantities get the expected kind while every other gradient stays correct.
"""

from __future__ import annotations

from pathlib import Path

from jaxcnn.check import check_layer, find_layers, load_file

FIXTURES = Path(__file__).parent / "fixtures"
FD_SECONDS = 0.02  # the exact oracle names the mutants; a small numeric budget keeps it fast


def layers_of(path: Path) -> dict:
    found = find_layers(load_file(path), str(path))
    return {layer.name: layer for layer in found.layers}


def check(path: Path, name: str):
    return check_layer(layers_of(path)[name], fd_seconds=FD_SECONDS)


def mutate(tmp_path: Path, fixture: str, old: str, new: str) -> Path:
    source = (FIXTURES / fixture).read_text()
    assert source.count(old) == 1, f"mutation anchor not unique in {fixture}: {old!r}"
    path = tmp_path / fixture
    path.write_text(source.replace(old, new))
    return path


def assert_correct(report) -> None:
    assert report.ok, [(c.quantity, c.kind, c.note) for c in report.checks]


def assert_named(report, quantities, kind: str, rule: str | None = None) -> None:
    """Each of ``quantities`` is ``kind`` (with ``rule`` in its rule when given); every
    other gradient of the layer is correct."""
    for c in report.checks:
        if c.quantity in quantities:
            assert c.kind == kind, (c.quantity, c.kind, c.note)
            if rule is not None:
                assert rule in (c.rule or ""), (c.quantity, c.rule, c.note)
        else:
            assert c.kind == "correct", (c.quantity, c.kind, c.note)
    assert set(quantities) <= {c.quantity for c in report.checks}


def run_mutant(tmp_path: Path, fixture: str, layer: str, old: str, new: str, quantities,
               kind: str, rule: str | None = None):
    report = check(mutate(tmp_path, fixture, old, new), layer)
    assert_named(report, quantities, kind, rule)
    return report
