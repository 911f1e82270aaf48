"""`jaxcnn check --help`, and a check of a file with no layers, never import JAX: they
answer in the time Python starts (issue 19)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("import sys\nfrom jaxcnn.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
         "except SystemExit as exc:\n    code = exc.code\n"
         "print('JAX' if 'jax' in sys.modules else 'NO JAX', code, file=sys.stderr)\n")


def _run(*args):
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return proc.stderr.strip().splitlines()[-1], proc


def test_help_imports_no_jax():
    last, proc = _run("check", "--help")
    assert last == "NO JAX 0", proc.stderr
    assert "FILE.py" in proc.stdout


def test_a_file_with_no_layers_imports_no_jax(tmp_path):
    path = tmp_path / "nothing.py"
    path.write_text("import numpy as np\n\n\ndef helper(x):\n    return np.sum(x)\n")
    last, proc = _run("check", path)
    assert last == "NO JAX 2", proc.stderr
    assert "no layers found in" in proc.stderr


def test_a_file_with_layers_still_finds_them(tmp_path):
    path = tmp_path / "relu.py"
    path.write_text("import numpy as np\n\n\ndef relu_forward(x):\n    return np.maximum(0, x), x"
                    "\n\n\ndef relu_backward(dout, x):\n    return dout * (x > 0)\n")
    last, proc = _run("check", path, "--json")
    assert last == "JAX 0", proc.stderr
    assert '"kind": "correct"' in proc.stdout
