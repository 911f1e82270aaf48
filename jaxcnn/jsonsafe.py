"""Strict JSON for every file and ``--json`` output: never ``NaN`` or ``Infinity``.

``strict`` turns NumPy scalars and arrays, tuples and dataclasses into plain Python
values and every non-finite float into ``None``; ``dumps`` writes the result with
``allow_nan=False``, so a non-finite number that slipped through raises instead of
producing JSON that strict parsers reject.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np


def strict(obj: Any) -> Any:
    """``obj`` as plain JSON values, non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict(obj.tolist())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return strict(dataclasses.asdict(obj))
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """Strict JSON text of ``obj`` (see ``strict``)."""
    return json.dumps(strict(obj), allow_nan=False, **kwargs)
