"""jaxcnn: the report's three-layer MNIST CNN as pure JAX functions.

Modules: ``model`` (forward pass), ``backprop`` (the report's hand-derived gradients),
``verify`` (gradient checks), ``data`` (data sources), ``train`` (training loops).
"""

__version__ = "0.1.0"
