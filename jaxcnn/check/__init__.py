"""Check hand-derived backward passes against autodiff and finite differences.

The engine reduces every layer to one contract (``Layer``: a forward and a VJP, see
``jaxcnn.check.layer``), compares its gradients with two oracles kept apart (``jax.vjp``
of a reference in float64, and kink-aware central differences of the user's own
forward) and names the kind of every error (``jaxcnn.check.classify.KINDS``)::

    from jaxcnn import check
    report = check.check_layer(check.from_cs231n(conv_forward_naive, conv_backward_naive,
                                                 "conv"))
    report.check("w").kind          # "correct", "transposed", "scaled", ...

Adapters: ``from_blog``, ``from_cs231n``, ``from_cs231n_loss``, ``from_custom_vjp``,
``from_jax_pair``, ``from_jax_vjp``, ``from_module`` (module style), ``from_network_pair``,
``from_function_pair`` / ``from_loss_function`` (no catalogue reference: numeric oracle);
``jaxcnn.check.adapters.specialisation`` and ``.torch_function`` for those dialects.
``find_layers(load_file(path))`` discovers layers the way ``jaxcnn check FILE.py`` does.
"""

from jaxcnn.check.adapters import from_blog as from_blog
from jaxcnn.check.adapters import from_cs231n as from_cs231n
from jaxcnn.check.adapters import from_cs231n_loss as from_cs231n_loss
from jaxcnn.check.adapters import from_custom_vjp as from_custom_vjp
from jaxcnn.check.adapters import from_function_pair as from_function_pair
from jaxcnn.check.adapters import from_jax_pair as from_jax_pair
from jaxcnn.check.adapters import from_jax_vjp as from_jax_vjp
from jaxcnn.check.adapters import from_loss_function as from_loss_function
from jaxcnn.check.adapters import from_module as from_module
from jaxcnn.check.adapters import from_network_pair as from_network_pair
from jaxcnn.check.classify import KINDS as KINDS
from jaxcnn.check.discover import find_layers as find_layers
from jaxcnn.check.discover import load_file as load_file
from jaxcnn.check.discover import load_module as load_module
from jaxcnn.check.engine import Check as Check
from jaxcnn.check.engine import LayerReport as LayerReport
from jaxcnn.check.engine import check_layer as check_layer
from jaxcnn.check.layer import InputSet as InputSet
from jaxcnn.check.layer import Layer as Layer
from jaxcnn.check.layer import Reference as Reference
