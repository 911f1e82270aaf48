"""A transformer written by hand in NumPy, module style (tests/fixtures/
numpy_transformer_layers.py): self-attention with its projections as sub-layers, as
arrays (several heads, a causal mask) and packed (q, k, v in one weight), layer norm with
a gradients dict, an embedding with zero_grad(), a positional encoding, a feed-forward
block. The right classes get the catalogue's exact reference where there is one and pass;
each planted slip gets its named kind."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue_helpers import FIXTURES, assert_correct, check, layers_of, run_mutant

FIXTURE = "numpy_transformer_layers.py"


@pytest.mark.parametrize("name,kind,reference", [
    ("SelfAttention", "self_attention", "heads=1, causal=0"),
    ("MultiHeadSelfAttention", "self_attention", "heads=2, causal=1"),
    ("CausalSelfAttention", "self_attention_packed", "heads=2, causal=1"),
    ("LayerNorm", "layernorm", ""),
    ("Embedding", "word_embedding", ""),
    ("OneHotEmbedding", "word_embedding", ""),
    ("Softmax", "softmax", ""),
    ("Linear", "dense", "")])
def test_right_transformer_layers_are_correct_against_the_exact_reference(name, kind,
                                                                          reference):
    report = check(FIXTURES / FIXTURE, name)
    assert_correct(report)
    assert report.kind == kind
    assert reference in report.reference
    assert all(c.oracle == "exact" for c in report.checks), [(c.quantity, c.oracle)
                                                             for c in report.checks]


def test_sub_layers_parameters_are_checked_by_their_path():
    report = check(FIXTURES / FIXTURE, "SelfAttention")
    quantities = {c.quantity for c in report.checks}
    assert {"x", "q_proj.weights", "v_proj.weights", "k_proj.weights"} <= quantities
    ff = check(FIXTURES / FIXTURE, "FeedForward")
    assert_correct(ff)
    assert {"fc1.weights", "fc1.bias", "fc2.weights", "fc2.bias"} <= {
        c.quantity for c in ff.checks}


def test_a_layer_norm_is_checked_on_tokens_and_its_gradients_dict_is_read():
    layer = layers_of(FIXTURES / FIXTURE)["LayerNorm"]
    assert all(np.ndim(s.args[0]) == 3 for s in layer.input_sets(0))
    assert {c.quantity for c in check(FIXTURES / FIXTURE, "LayerNorm").checks} == {
        "x", "gamma", "beta"}


def test_an_embedding_that_accumulates_until_zero_grad_is_not_called_not_reentrant():
    report = check(FIXTURES / FIXTURE, "Embedding")
    assert [c.kind for c in report.checks] == ["correct"]


def test_a_positional_encoding_is_a_constant_on_sequences():
    report = check(FIXTURES / FIXTURE, "PositionalEncoding")
    assert_correct(report)
    assert [c.quantity for c in report.checks] == ["x"]  # pe: no parameter
    layer = layers_of(FIXTURES / FIXTURE)["PositionalEncoding"]
    assert np.ndim(layer.input_sets(0)[0].args[0]) == 3


def test_float32_parameters_on_tokens_get_float32_differences():
    """A layer that keeps its parameters in float32 (its output float64): finite differences
    at float64's step would round away in the parameter; the size its constructor
    defaults to None is given."""
    report = check(FIXTURES / FIXTURE, "TokenDense")
    assert_correct(report)
    assert {c.quantity for c in report.checks} == {"x", "w", "b"}
    assert any("float32 inside" in n for n in report.notes), report.notes
    assert any("inputs_num=4" in n for n in report.notes), report.notes


JACOBIAN_MH = "        dscores = att * (datt - (att * datt).sum(axis=-1, keepdims=True))\n" \
              "        if self.causal:"
SCALE_MH = ("        dq = self._join(dscores @ k * scale)\n"
            "        dk = self._join(dscores.transpose(0, 1, 3, 2) @ q * scale)")
ALL_MH = ["x", "W_q", "W_k"]
MUTANTS = [
    ("diagonal-only", "MultiHeadSelfAttention", JACOBIAN_MH, JACOBIAN_MH.replace(
        "att * (datt - (att * datt).sum(axis=-1, keepdims=True))", "att * datt"),
     ALL_MH, "wrong-derivative", "diagonal only"),
    ("no-jacobian", "MultiHeadSelfAttention", JACOBIAN_MH, JACOBIAN_MH.replace(
        "att * (datt - (att * datt).sum(axis=-1, keepdims=True))", "datt"),
     ALL_MH, "wrong-derivative", "Jacobian left out"),
    ("scale-left-out", "MultiHeadSelfAttention", SCALE_MH, SCALE_MH.replace(" * scale", ""),
     ALL_MH, "wrong-derivative", "1/sqrt(d) left out"),
    ("mask-forward-only", "MultiHeadSelfAttention", JACOBIAN_MH,  # weights recomputed
     "        full = softmax(q @ k.transpose(0, 1, 3, 2) * scale)\n"
     "        dscores = full * (datt - (full * datt).sum(axis=-1, keepdims=True))\n"
     "        if False:", ALL_MH, "wrong-derivative", "mask left out of the backward"),
    ("packed-scale-left-out", "CausalSelfAttention",
     "(att * datt).sum(axis=-1, keepdims=True)) * scale\n        dq = dscores @ k\n",
     "(att * datt).sum(axis=-1, keepdims=True))\n        dq = dscores @ k\n",
     ["x", "W_attn", "b_attn"],
     "wrong-derivative", "1/sqrt(d) left out"),
    ("ln-mean-term-left-out", "LayerNorm", "        return (g - g.mean(axis=-1, keepdims=True)\n"
     "                - self.x_hat", "        return (g\n                - self.x_hat", ["x"],
     "wrong-derivative", "mean's term left out"),
    ("ln-constants", "LayerNorm", "        return (g - g.mean(axis=-1, keepdims=True)\n"
     "                - self.x_hat * (g * self.x_hat).mean(axis=-1, keepdims=True)) / self.std",
     "        return g / self.std", ["x"], "wrong-derivative", "constants"),
    ("embedding-overwrites", "Embedding",
     "        np.add.at(self.gradients[\"dLdE\"], self.tokens, dout)",
     "        self.gradients[\"dLdE\"][self.tokens] += dout", ["table"],
     "missing-accumulation", None),
    ("one-hot-embedding-mean", "OneHotEmbedding",
     "        self.grad_w = flat.T @ dout.reshape(len(flat), -1)",
     "        self.grad_w = flat.T @ dout.reshape(len(flat), -1) / len(flat)", ["w"], "scaled",
     None),
    ("softmax-diagonal", "Softmax",
     "        return self.out * (dout - (self.out * dout).sum(axis=-1, keepdims=True))",
     "        return self.out * (1 - self.out) * dout", ["x"], "wrong-derivative", None),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_transformer_slips_are_named(mutant, tmp_path):
    _, layer, old, new, quantities, kind, rule = mutant
    run_mutant(tmp_path, FIXTURE, layer, old, new, quantities, kind, rule)


def test_the_self_attention_slips_come_from_the_reference_with_its_backward_changed(x64):
    """Each slip's forward is the reference's (only its backward differs), and the exact
    rule is jax.vjp of plain attention."""
    import jax.numpy as jnp
    from conftest import tree_rel_err

    from jaxcnn.check.autodiff import vjp
    from jaxcnn.check.catalogue import attention as a

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    params = [rng.standard_normal((4, 4)) / 2 for _ in range(4)] + [
        rng.standard_normal(4) for _ in range(4)]
    want = a.self_attention(x, *params, heads=2, is_causal=True)
    for rule in [*a.SELF_SLIPS, "exact"]:
        got = a.self_attention(x, *params, heads=2, is_causal=True, rule=rule)
        assert float(np.max(np.abs(np.asarray(got) - np.asarray(want)))) < 1e-12, rule
    ct = rng.standard_normal(want.shape)

    def plain(x, wq, wk, wv, wo, bq, bk, bv, bo):
        q, k, v = x @ wq + bq, x @ wk + bk, x @ wv + bv
        heads = [a.attention(q[..., i:i + 2], k[..., i:i + 2], v[..., i:i + 2],
                             a.causal(3)) for i in (0, 2)]
        return jnp.concatenate(heads, axis=-1) @ wo + bo

    exact = vjp(lambda *z: a.self_attention(*z, heads=2, is_causal=True), (x, *params), ct)
    assert tree_rel_err(exact, vjp(plain, (x, *params), ct)) < 1e-12


@pytest.mark.parametrize("name,ndim", [("HeadReshape.split_heads_forward", 3),
                                       ("HeadReshape.join_heads_forward", 4)])
def test_head_reshapes_are_checked_on_the_shapes_they_are_written_for(name, ndim):
    """Built small (d_model=512, heads_num=8 by default: 4 and 2); a shape whose backward
    returns no gradient of the input's shape is not the one checked."""
    report = check(FIXTURES / FIXTURE, name)
    assert_correct(report)
    layer = layers_of(FIXTURES / FIXTURE)[name]
    assert np.ndim(layer.input_sets(0)[0].args[0]) == ndim
    assert any("d_model=4 (default 512)" in n for n in report.notes), report.notes


def test_an_attention_of_query_key_value_is_checked_as_self_attention():
    """forward(query, key, value, mask) is called with x three times and no mask; its
    backward's (dquery, dkey, dvalue) add up to the input's gradient."""
    report = check(FIXTURES / FIXTURE, "MultiHeadAttention")
    assert_correct(report)
    assert report.kind == "self_attention"
    assert {"query", "w_q.weights", "w_o.bias"} <= {c.quantity for c in report.checks}
    assert any("key=the input (self-attention)" in n for n in report.notes), report.notes


def test_an_attention_that_indexes_its_mask_gets_one_that_masks_nothing(tmp_path):
    """A forward that reads its mask as an array (N, Tq, Tk) gets one of ones."""
    from catalogue_helpers import mutate

    path = mutate(tmp_path, FIXTURE, "        if mask is not None:\n"
                                     "            scores = np.where(mask, scores, -1e9)\n",
                  "        scores = np.where(mask[:, None] == 0, -1e9, scores)\n")
    report = check(path, "MultiHeadAttention")
    assert_correct(report)
    assert report.kind == "self_attention"


def test_an_attention_of_query_key_value_gets_its_slip_named(tmp_path):
    run_mutant(tmp_path, FIXTURE, "MultiHeadAttention",
               "        dscores = att * (datt - (att * datt).sum(axis=-1, keepdims=True)) * scale\n"
               "        dq, dk",
               "        dscores = att * (datt - (att * datt).sum(axis=-1, keepdims=True))\n"
               "        dq, dk", ["query", "w_q.weights", "w_q.bias", "w_k.weights"],
               "wrong-derivative", "1/sqrt(d) left out")


def test_an_abstract_base_layer_is_skipped_as_a_base_class(tmp_path):
    from jaxcnn.check import find_layers, load_file

    path = tmp_path / "abstract_layers.py"
    path.write_text(
        "from abc import ABC, abstractmethod\n\nimport numpy as np\n\n\n"
        "class Layer(ABC):\n    @abstractmethod\n    def forward(self, x):\n"
        "        self.x = x  # a default the subclasses may call\n        return x\n\n"
        "    @abstractmethod\n    def backward(self, dout):\n        return dout\n\n\n"
        "class Tanh(Layer):\n    def forward(self, x):\n        self.out = np.tanh(x)\n"
        "        return self.out\n\n    def backward(self, dout):\n"
        "        return dout * (1 - self.out ** 2)\n")
    found = find_layers(load_file(path), str(path))
    assert [layer.name for layer in found.layers] == ["Tanh"]
    assert any("abstract base class" in why for _, why in found.skipped), found.skipped
