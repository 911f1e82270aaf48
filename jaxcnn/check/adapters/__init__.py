"""Adapters: each reduces one coding style to the engine's ``Layer`` contract.

* ``jax_style``: ``jax.custom_vjp`` functions, ``(fwd, bwd)`` pairs, VJP functions;
* ``cs231n``: ``layer_forward(x, ...) -> (out, cache)`` + ``layer_backward(dout, cache)``;
* ``blog``: classes with ``forward`` / ``backprop`` that update parameters in place.
"""

from jaxcnn.check.adapters.blog import from_blog as from_blog
from jaxcnn.check.adapters.cs231n import from_cs231n as from_cs231n
from jaxcnn.check.adapters.cs231n import from_cs231n_loss as from_cs231n_loss
from jaxcnn.check.adapters.jax_style import from_custom_vjp as from_custom_vjp
from jaxcnn.check.adapters.jax_style import from_jax_pair as from_jax_pair
from jaxcnn.check.adapters.jax_style import from_jax_vjp as from_jax_vjp
