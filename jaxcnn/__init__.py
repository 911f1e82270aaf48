"""jaxcnn: the report's three-layer MNIST CNN as pure JAX functions, and a checker for
anyone's hand-derived backward pass.

* ``jaxcnn.check``: check hand-written gradients (NumPy or JAX) against ``jax.vjp`` and
  finite differences, and name the kind of every mistake; ``jaxcnn.verify`` runs it on
  the report's own derivation.
* The report's network: ``model`` (forward), ``backprop`` (the hand-derived gradients),
  ``fast`` (the same math in the compute layout), ``reference`` (the report's NumPy code).
* ``jaxcnn.training``: compiled training loops, checkpoints, run folders.
* ``jaxcnn.data``: the data sources (embedded MNIST, IDX files, TFDS).
"""

__version__ = "0.1.0"
