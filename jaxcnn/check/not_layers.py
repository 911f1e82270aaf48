"""Functions that look like layers by name but are not: the finders leave them out and
the file's "Skipped" lines say why.

* test-case builders: the deep-learning specialisation's ``testCases.py`` /
  ``public_tests.py`` (``linear_forward_test_case()``, ``L_model_backward_test_case()``,
  ``rnn_cell_forward_tests(target)``, ``rnn_forward_test(target)``), often imported or
  pasted into notebooks: they build inputs or run assertions, and take no array;
* evaluation helpers that take no array: a function under ``@torch.no_grad()`` /
  ``@torch.inference_mode()`` with no argument or only a data split's name (Karpathy's
  makemore ``split_loss(split)``, nanoGPT's ``estimate_loss()``), or a loss whose
  arguments only name a data split (``split``, ``mode``, ``phase``) or sizes (the
  character model's ``get_initial_loss(vocab_size, seq_length)``): it computes no
  gradient. A function under ``no_grad`` that takes arrays (a manual backward written
  with torch tensors) is still a layer.

No import of JAX or NumPy: the finders ask before anything is built.
"""

from __future__ import annotations

import contextlib
import inspect
import re

TEST_CASE = re.compile(r"(^tests?_|_tests?$|_test_?cases?(_\w+)?$|^test_?cases?$)")
NO_GRAD = re.compile(r"^\s*@\s*(torch\.)?(no_grad|inference_mode|enable_grad\(False\))\b",
                     re.MULTILINE)
NOT_ARRAYS = {"split", "mode", "phase", "stage", "dataset", "which", "name", "split_name"}
SIZE = re.compile(r"(\w+_)?(size|length|len|dim|count)|n_\w+|num_\w+")
LAYERISH = re.compile(r"forward|backward|backprop|propagat|loss|_cell|grad")


def why_not_a_layer(name: str, fn) -> str | None:
    """Why the function ``fn`` called ``name`` is not a layer to check, or None.

    ``fn``: a plain Python function (unwrapped: its source still shows its decorators).
    Never raises: a function without source is judged by its name and signature."""
    lowered = name.lower()
    if TEST_CASE.search(lowered):
        return ("a test-case builder (inputs or assertions for a test, as in the course's "
                "testCases.py): not a layer")
    params = _required(fn)
    no_array = all(p.lower() in NOT_ARRAYS for p in params)  # none, or a split's name
    if no_array and _under_no_grad(fn):  # a manual backward under no_grad takes arrays
        return "an evaluation helper under torch.no_grad(): it computes no gradient"
    if "loss" in lowered and params and no_array:
        return (f"an evaluation helper: it takes no array ({', '.join(params)}), only the "
                "name of what to evaluate")
    if "loss" in lowered and params and all(SIZE.fullmatch(p.lower()) for p in params):
        return (f"a helper that takes only sizes ({', '.join(params)}), no array: not a "
                "loss to differentiate")
    return None


def layerish(name: str) -> bool:
    """Whether a finder would have taken ``name`` for a layer (worth a "Skipped" line)."""
    return bool(LAYERISH.search(name.lower()))


def _under_no_grad(fn) -> bool:
    source = ""
    with contextlib.suppress(OSError, TypeError):
        source = inspect.getsource(fn)
    head = source.split("def ", 1)[0]
    return bool(NO_GRAD.search(head))


def _required(fn) -> list[str]:
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in ps if p.default is p.empty and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


__all__ = ["layerish", "why_not_a_layer"]
