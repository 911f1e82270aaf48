"""Same file, same seed: the same verdicts and numbers, bit for bit, at any machine load
(issue 17 §5). The finite-difference budget is a count of forward calls and the
differences draw from their own generator, so neither a slow clock nor a slow forward
moves anything but the timings."""

from __future__ import annotations

import importlib.util
import itertools
import time
from pathlib import Path

from jaxcnn.check import from_cs231n
from jaxcnn.check.engine import check_layer
from jaxcnn.check.report import to_json

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture(name):
    spec = importlib.util.spec_from_file_location(f"_determinism_{name}", FIXTURES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _without_timings(doc):
    """The report with its wall-clock fields (``seconds``) left out: everything else is a
    result and must not move."""
    if isinstance(doc, dict):
        return {k: _without_timings(v) for k, v in doc.items() if k != "seconds"}
    if isinstance(doc, list):
        return [_without_timings(v) for v in doc]
    return doc


def test_a_slow_clock_and_a_slow_forward_change_no_number(monkeypatch):
    cs = _fixture("cs231n_layers.py")
    layer = from_cs231n(cs.conv_forward_naive, cs.conv_backward_naive, "conv", name="conv")
    quiet = to_json([check_layer(layer, seed=3)])

    def slow_forward(*args):  # a loaded machine: every call of the user's forward is slow
        time.sleep(0.002)
        return cs.conv_forward_naive(*args)

    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks) * 0.25)  # a slow clock
    loaded = to_json([check_layer(from_cs231n(slow_forward, cs.conv_backward_naive, "conv",
                                              name="conv"),
                                  seed=3)])
    assert _without_timings(loaded) == _without_timings(quiet)
    numeric = [r["numeric"] for c in quiet["layers"][0]["checks"] for r in c["inputs"]]
    assert all(n is not None and n["agrees"] for n in numeric), numeric
