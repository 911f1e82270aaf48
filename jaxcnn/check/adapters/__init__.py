"""Adapters: each reduces one coding style to the engine's ``Layer`` contract.

* ``jax_style``: ``jax.custom_vjp`` functions, ``(fwd, bwd)`` pairs, VJP functions;
* ``cs231n``: ``layer_forward(x, ...) -> (out, cache)`` + ``layer_backward(dout, cache)``;
* ``blog``: classes with ``forward`` / ``backprop`` that update parameters in place;
* ``module_style``: classes whose ``backward`` returns or stores the gradients (the
  "Neural Networks from Scratch" book, course frameworks), ``__call__``, method pairs;
* ``specialisation``: the deep-learning specialisation's NHWC functions with
  ``hparameters``, its linear/activation steps (the ``1/m`` convention);
* ``network_pair``: ``forward_propagation`` / ``backward_propagation`` of a whole network;
* ``torch_function``: ``torch.autograd.Function`` subclasses (``jaxcnn[torch]``);
* ``function_pair``: pairs and losses the catalogue has no reference for (numeric oracle);
* ``probe``: shapes and values for a layer found by running it.
"""

from jaxcnn.check.adapters.blog import from_blog as from_blog
from jaxcnn.check.adapters.cs231n import from_cs231n as from_cs231n
from jaxcnn.check.adapters.cs231n import from_cs231n_loss as from_cs231n_loss
from jaxcnn.check.adapters.function_pair import from_function_pair as from_function_pair
from jaxcnn.check.adapters.function_pair import from_loss_function as from_loss_function
from jaxcnn.check.adapters.jax_style import from_custom_vjp as from_custom_vjp
from jaxcnn.check.adapters.jax_style import from_jax_pair as from_jax_pair
from jaxcnn.check.adapters.jax_style import from_jax_vjp as from_jax_vjp
from jaxcnn.check.adapters.module_style import from_module as from_module
from jaxcnn.check.adapters.network_pair import from_network_pair as from_network_pair
