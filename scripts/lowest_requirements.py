"""Print pyproject.toml's runtime dependencies pinned to their declared lower bounds
(``jax>=0.8.2`` -> ``jax==0.8.2``), one per line, for ``pip install -r``: the CI step that
proves the bounds true (.ci/run) installs exactly these in a second venv.

Usage: python scripts/lowest_requirements.py [pyproject.toml] > lowest.txt
Exit 2 with one line when a dependency has no ``>=`` bound.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def lowest(pyproject: Path) -> list[str]:
    # [project] dependencies = [...] (read without tomllib: Python 3.10 has none)
    block = re.search(r"^\[project\].*?^dependencies\s*=\s*\[(.*?)\]", pyproject.read_text(),
                      re.S | re.M)
    if block is None:
        raise ValueError(f"{pyproject}: no [project] dependencies")
    deps = re.findall(r"\"([^\"]+)\"", block.group(1))
    pins = []
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?", dep)
        if m is None:
            raise ValueError(f"{dep!r} declares no lower bound (name>=version)")
        pins.append(f"{m.group(1)}=={m.group(2)}")
    return pins


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "pyproject.toml"
    try:
        print("\n".join(lowest(path)))
    except (OSError, ValueError, KeyError) as exc:
        print(f"lowest_requirements: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
