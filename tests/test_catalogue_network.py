"""A complete assignment-2 ``layers.py`` (tests/fixtures/cs231n_assignment2.py): every
function is found and checked (none skipped, none wrong), and the file's layers are
chained as a FullyConnectedNet (affine - batch/layer norm - relu - dropout, twice, -
affine - softmax_loss) that names the first wrong layer."""

from __future__ import annotations

import pytest
from catalogue_helpers import FIXTURES, mutate

from jaxcnn.check import chain, find_layers, load_file

FIXTURE = "cs231n_assignment2.py"
FUNCTIONS = {"affine": "affine", "relu": "relu", "batchnorm": "batchnorm",
             "batchnorm_alt": "batchnorm", "layernorm": "layernorm", "dropout": "dropout",
             "conv": "conv", "max_pool": "max_pool", "spatial_batchnorm": "spatial_batchnorm",
             "spatial_groupnorm": "spatial_groupnorm", "svm_loss": "svm_loss",
             "softmax_loss": "softmax_loss"}


def _found(path):
    return find_layers(load_file(path), str(path))


def test_every_function_of_a_complete_layers_py_is_found_and_none_skipped():
    """(Each is checked correct by its family's test: norms, dropout, losses; affine,
    relu, conv, max_pool and softmax_loss by the mutation suite.)"""
    found = _found(FIXTURES / FIXTURE)
    assert found.skipped == []
    assert {layer.name: layer.kind for layer in found.layers} == FUNCTIONS


def test_the_fully_connected_net_chain_runs_through_every_kind_and_passes():
    found = _found(FIXTURES / FIXTURE)
    net = chain.cs231n_fc_chain(found.layers)
    kinds = [layer.kind for layer in net]
    assert kinds == ["affine", "batchnorm", "relu", "dropout", "affine", "layernorm", "relu",
                     "dropout", "affine", "softmax_loss"]
    result = chain.check_chain(net, chain.cs231n_fc_chain_inputs(net))
    assert result["ok"], result
    # the affine bias before batch norm has a zero whole-chain gradient: not an error
    lines = chain.summary(result)
    assert not any("off by" in line for line in lines), lines


@pytest.mark.parametrize("old,new,layer,quantity,kind", [
    ("    dx = ivar / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))",
     "    dx = dxhat * ivar", "batchnorm", "x", "wrong-derivative"),
    ("        dx = dout * mask", "        dx = dout", "dropout[2]", "x", "wrong-derivative"),
])
def test_the_chain_names_the_first_wrong_layer(old, new, layer, quantity, kind, tmp_path):
    source = (FIXTURES / FIXTURE).read_text()
    if layer == "batchnorm":  # the chain uses batchnorm_backward: plant it there
        source = source.replace("    dx1 = dxmu1 + dxmu2", "    dx1 = dxmu1 + 0 * dxmu2").replace(
            "    dx = dx1 + dx2\n", "    dx = dx1\n")
        path = tmp_path / FIXTURE
        path.write_text(source)
    else:
        path = mutate(tmp_path, FIXTURE, old, new)
    net = chain.cs231n_fc_chain(_found(path).layers)
    result = chain.check_chain(net, chain.cs231n_fc_chain_inputs(net))
    assert not result["ok"]
    assert result["first_wrong"] == {"layer": layer, "quantity": quantity, "kind": kind}
