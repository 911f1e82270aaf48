"""Check hand-derived backward passes against autodiff and finite differences.

The engine reduces every layer to one contract (``Layer``: a forward and a VJP, see
``jaxcnn.check.layer``), compares its gradients with two oracles kept apart (``jax.vjp``
of a reference in float64, and kink-aware central differences of the user's own
forward) and names the kind of every error (``jaxcnn.check.classify.KINDS``)::

    from jaxcnn import check
    report = check.check_layer(check.from_cs231n(conv_forward_naive, conv_backward_naive,
                                                 "conv"))
    report.check("w").kind          # "correct", "transposed", "scaled", ...

Files as ``jaxcnn check`` checks them: ``check_file(path) -> FileReport`` (its
``status`` is the exit status; it shows as a table in Jupyter), and for test suites
``assert_correct(path | module | Layer | forward, backward)``, which raises
``AssertionError`` with the table.

Adapters: ``from_blog``, ``from_cs231n``, ``from_cs231n_loss``, ``from_custom_vjp``,
``from_jax_pair``, ``from_jax_vjp``, ``from_module`` (module style), ``from_network_pair``,
``from_function_pair`` / ``from_loss_function`` (no catalogue reference: numeric oracle);
``jaxcnn.check.adapters.specialisation`` and ``.torch_function`` for those dialects.
``find_layers(load_file(path))`` discovers layers the way ``jaxcnn check FILE.py`` does.
"""

from jaxcnn._lazy import exports

# name -> the module that defines it. Imported on first use (PEP 562), so that importing
# ``jaxcnn.check.discover`` alone (``jaxcnn check`` on a file with no layers) never
# imports JAX.
_EXPORTS = {
    "from_blog": "jaxcnn.check.adapters", "from_cs231n": "jaxcnn.check.adapters",
    "from_cs231n_loss": "jaxcnn.check.adapters", "from_custom_vjp": "jaxcnn.check.adapters",
    "from_jax_pair": "jaxcnn.check.adapters", "from_jax_vjp": "jaxcnn.check.adapters",
    "KINDS": "jaxcnn.check.classify", "find_layers": "jaxcnn.check.discover",
    "load_file": "jaxcnn.check.discover", "load_module": "jaxcnn.check.discover",
    "Check": "jaxcnn.check.engine", "LayerReport": "jaxcnn.check.engine",
    "check_layer": "jaxcnn.check.engine", "InputSet": "jaxcnn.check.layer",
    "Layer": "jaxcnn.check.layer", "Reference": "jaxcnn.check.layer",
    "from_function_pair": "jaxcnn.check.adapters",
    "from_loss_function": "jaxcnn.check.adapters", "from_module": "jaxcnn.check.adapters",
    "from_network_pair": "jaxcnn.check.adapters",
    "FileReport": "jaxcnn.check.api", "assert_correct": "jaxcnn.check.api",
    "check_file": "jaxcnn.check.api",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = exports("jaxcnn.check", _EXPORTS, globals())
