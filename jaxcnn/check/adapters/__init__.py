"""Adapters: each reduces one coding style to the engine's ``Layer`` contract.

* ``jax_style``: ``jax.custom_vjp`` functions, ``(fwd, bwd)`` pairs, VJP functions;
* ``cs231n``: ``layer_forward(x, ...) -> (out, cache)`` + ``layer_backward(dout, cache)``;
* ``blog``: classes with ``forward`` / ``backprop`` that update parameters in place;
* ``module_style``: classes whose ``backward`` returns or stores the gradients (the
  "Neural Networks from Scratch" book, course frameworks), ``__call__``, method pairs;
* ``specialisation``: the deep-learning specialisation's NHWC functions with
  ``hparameters``, its linear/activation steps (the ``1/m`` convention);
* ``specialisation_rnn``: its RNN / LSTM cells and sequences (parameters and gradients in
  dicts, examples in columns, time last);
* ``logistic``: its logistic regression's ``propagate(w, b, X, Y) -> (grads, cost)``;
* ``network_pair``: ``forward_propagation`` / ``backward_propagation`` of a whole network;
* ``torch_function``: ``torch.autograd.Function`` subclasses (``jaxcnn[torch]``);
* ``function_pair``: pairs and losses the catalogue has no reference for (numeric oracle);
* ``linear_loss``: a linear classifier's ``loss(W, X, y, reg) -> (loss, dW)`` (CS231n
  assignment 1's ``svm_loss_naive``, ``softmax_loss_vectorized``);
* ``explicit_pair``: ``f(*args) -> out`` with ``f_backward(dout, *args)`` (no cache);
* ``whole_function``: a function returning the loss and every gradient of parameters
  read from outside it (min-char-rnn's ``lossFun`` on globals or ``self``), Nielsen's
  ``Network.backprop(x, y) -> (nabla_b, nabla_w)``, CS231n 2015's ``two_layer_net(X,
  model, y, reg) -> (loss, grads)``;
* ``scalar_engine``: scalar autograd engines written by hand (micrograd's ``Value`` with a
  ``_backward`` closure per operation), one row per operation and per engine property,
  and a network built on one (micrograd's ``MLP``);
* ``recorder``: a stand-in optimizer object recording the gradients handed to it;
* ``probe``: shapes and values for a layer found by running it.
"""

from jaxcnn._lazy import exports

# name -> its module, imported on first use (PEP 562): importing one adapter module
# (``probe``, ``network_pair``) does not import the others, nor JAX.
_EXPORTS = {
    "from_blog": "jaxcnn.check.adapters.blog",
    "from_cs231n": "jaxcnn.check.adapters.cs231n",
    "from_cs231n_loss": "jaxcnn.check.adapters.cs231n",
    "from_function_pair": "jaxcnn.check.adapters.function_pair",
    "from_loss_function": "jaxcnn.check.adapters.function_pair",
    "from_custom_vjp": "jaxcnn.check.adapters.jax_style",
    "from_jax_pair": "jaxcnn.check.adapters.jax_style",
    "from_jax_vjp": "jaxcnn.check.adapters.jax_style",
    "from_module": "jaxcnn.check.adapters.module_style",
    "from_network_pair": "jaxcnn.check.adapters.network_pair",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = exports("jaxcnn.check.adapters", _EXPORTS, globals())
