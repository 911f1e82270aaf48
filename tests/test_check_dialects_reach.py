"""`jaxcnn check` reaches more patterns of public from-scratch code: gradients in a
``grads`` list parallel to a ``params`` list whose entries are also attributes; integer
index inputs (module-style embeddings); recurrent step classes ``forward(x, h_prev[,
c_prev])`` / ``backward(dh_next[, dc_next])``; losses with an epsilon inside the log.
Correct code is `correct`; each planted bug is named with its kind on its quantity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jaxcnn.check import check_layer, find_layers, load_file

DIALECTS = Path(__file__).parent / "fixtures" / "dialects"


def found(name: str):
    path = DIALECTS / name
    return find_layers(load_file(path), str(path), [])


def verdicts(f) -> dict:
    """{(layer, quantity): (kind, scale, oracle)} of found layers."""
    out = {}
    for layer in f.layers:
        for c in check_layer(layer).checks:
            out[(layer.name, c.quantity)] = (c.kind, c.scale, c.oracle)
    return out


def test_a_grads_list_pairs_with_attribute_parameters_by_their_place_in_params():
    f = found("param_lists.py")
    assert f.skipped == []
    v = verdicts(f)
    for layer, names in (("Linear", ("x", "W", "b")), ("Scale", ("x", "gamma", "beta"))):
        for q in names:
            assert v[(layer, q)][0] == "correct", (layer, q, v[(layer, q)])
    assert v[("LinearMeanBias", "b")][:2] == ("scaled", pytest.approx(1 / 3))
    assert v[("LinearMeanBias", "W")][0] == "correct"


def test_module_embeddings_take_integer_indices_and_repeated_words_must_add():
    f = found("embeddings.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    assert {n: layers[n].kind for n in layers} == dict.fromkeys(
        ("Embedding", "TokenEmbedding", "TimeEmbedding", "EmbeddingOverwrite",
         "EmbeddingBuffered"), "word_embedding")
    assert layers["TokenEmbedding"].input_sets(0)[0].args[0].shape == (6, 4)  # vocab_size
    assert layers["Embedding"].arg_names == ("params[0]",)
    v = verdicts(f)
    assert v[("Embedding", "params[0]")][::2] == ("correct", "exact")
    assert v[("TokenEmbedding", "weight")][::2] == ("correct", "exact")
    assert v[("TimeEmbedding", "W")][::2] == ("correct", "exact")
    assert v[("EmbeddingOverwrite", "params[0]")][::2] == ("missing-accumulation", "exact")
    assert v[("EmbeddingBuffered", "weight")][::2] == ("missing-accumulation", "exact")


def test_recurrent_step_classes_get_the_catalogue_steps_and_their_named_mistakes():
    f = found("step_cells.py")
    assert f.skipped == []
    layers = {layer.name: layer for layer in f.layers}
    assert layers["RNN"].kind == "rnn_step" and layers["LSTMCell"].kind == "lstm_step"
    assert layers["LSTMCell"].arg_names == ("x", "prev_h", "prev_c", "Wx", "Wh", "b")
    v = verdicts(f)
    for layer, names in (("RNN", ("x", "h_prev", "params[0]", "params[1]", "params[2]")),
                         ("LSTMCell", ("x", "prev_h", "prev_c", "Wx", "Wh", "b"))):
        for q in names:
            assert v[(layer, q)][::2] == ("correct", "exact"), (layer, q, v[(layer, q)])
    assert v[("RNNTanhAtInput", "params[1]")][::2] == ("wrong-derivative", "exact")
    assert v[("LSTMCellGateOrder", "Wx")][::2] == ("wrong-derivative", "exact")
    assert v[("LSTMCellGateOrder", "prev_c")][0] == "correct"  # dprev_c needs no gate order
    rules = {c.quantity: c.rule for c in check_layer(layers["LSTMCellGateOrder"]).checks}
    assert "gates i, f, g, o" in rules["Wx"]


def test_an_epsilon_inside_the_log_keeps_the_exact_oracle_and_its_named_mistakes():
    f = found("eps_losses.py")
    v = verdicts(f)
    assert v[("SoftmaxWithLoss", "x")][::2] == ("correct", "exact")
    assert v[("softmax_loss", "x")][::2] == ("correct", "exact")
    layer = next(la for la in f.layers if la.name == "SoftmaxWithLoss")
    notes = check_layer(layer).notes
    assert any("1e-07 inside the log" in n for n in notes), notes
    bugs = verdicts(found("eps_losses_bugs.py"))
    assert bugs[("SoftmaxWithLoss", "x")][::2] == ("wrong-derivative", "exact")
    # an epsilon large enough to change the loss is another function: numeric only
    assert bugs[("softmax_loss", "x")][2] == "numeric"


def test_a_softmax_derivative_of_the_diagonal_only_is_a_wrong_derivative():
    f = found("softmax_diagonal.py")
    v = verdicts(f)
    for layer, q in (("Softmax", "x"), ("SoftmaxLayer", "input"), ("softmax", "x")):
        assert v[(layer, q)][::2] == ("wrong-derivative", "exact"), (layer, v[(layer, q)])
    assert v[("SoftmaxRight", "x")][::2] == ("correct", "exact")
    layers = {layer.name: layer for layer in f.layers}
    # not checked on a column (4, 1), where a softmax over the last axis is constant
    assert np.shape(layers["Softmax"].input_sets(0)[0].args[0]) == (3, 4)
    rules = {c.quantity: c.rule for c in check_layer(layers["Softmax"]).checks}
    assert "diagonal" in rules["x"]


def test_a_gru_step_with_the_reset_gate_before_wh_gets_its_own_reference():
    f = found("step_cells.py")
    layers = {layer.name: layer for layer in f.layers}
    assert layers["GRU"].kind == "gru_step_reset_before"
    v = verdicts(f)
    for q in ("x", "h_prev", "params[0]", "params[1]", "params[2]"):
        assert v[("GRU", q)][::2] == ("correct", "exact"), (q, v[("GRU", q)])
    assert v[("GRUResetLeftOut", "params[1]")][::2] == ("wrong-derivative", "exact")
    assert v[("GRUResetLeftOut", "x")][0] == "correct"


@pytest.mark.parametrize("old,new,quantities,kind,rule", [
    ("dh_prev = dh_next * (1 - z) + daz", "dh_prev = daz", ("h_prev",),
     "missing-accumulation", "direct path"),
    ("da = np.hstack((daz, dar, dan))\n        self.grads[0][...] = x.T @ da\n"
     "        self.grads[1][...] = np.hstack((h_prev.T @ daz, h_prev.T @ dar, (r * h_prev)",
     "da = np.hstack((dar, daz, dan))\n        self.grads[0][...] = x.T @ da\n"
     "        self.grads[1][...] = np.hstack((h_prev.T @ daz, h_prev.T @ dar, (r * h_prev)",
     ("x", "params[0]", "params[2]"), "wrong-derivative", "gates r, z")])
def test_the_reset_before_grus_mistakes_are_named(old, new, quantities, kind, rule,
                                                  tmp_path):
    from catalogue_helpers import assert_named, check, mutate

    (tmp_path / "dialects").mkdir()
    path = mutate(tmp_path, "dialects/step_cells.py", old, new)
    assert_named(check(path, "GRU"), quantities, kind, rule)


def test_losses_summed_over_every_entry_get_their_own_layouts():
    f = found("summed_losses.py")
    kinds = {layer.name: layer.kind for layer in f.layers}
    assert kinds == {"mse_loss": "mse_half_sum", "BCELoss": "bce_sum"}
    v = verdicts(f)
    assert v[("mse_loss", "x")][::2] == ("correct", "exact")
    assert v[("BCELoss", "y_pred")][::2] == ("correct", "exact")
    bugs = verdicts(found("summed_losses_bugs.py"))
    assert bugs[("mse_loss", "x")] == ("scaled", pytest.approx(0.25), "exact")
    assert bugs[("BCELoss", "y_pred")][::2] == ("wrong-derivative", "exact")


def test_a_binary_loss_of_one_logit_per_sample_is_bce_logits():
    f = found("binary_losses.py")
    layer = f.layers[0]
    assert layer.kind == "bce_logits"
    assert np.shape(layer.input_sets(0)[0].args[0]) == (6,)
    assert any("binary loss" in n for n in layer.notes), layer.notes
    assert verdicts(f)[("SigmoidWithLoss", "x")][::2] == ("correct", "exact")
    bugs = verdicts(found("binary_losses_bugs.py"))
    assert bugs[("SigmoidWithLoss", "x")][::2] == ("wrong-derivative", "exact")


def test_a_gru_over_time_is_matched_to_its_layout_and_a_dropped_recurrence_named(tmp_path):
    f = found("step_cells.py")
    layers = {layer.name: layer for layer in f.layers}
    assert layers["TimeGRU"].kind == "gru_reset_before"
    v = verdicts(f)
    for q in ("xs", "params[0]", "params[1]", "params[2]"):
        assert v[("TimeGRU", q)][::2] == ("correct", "exact"), (q, v[("TimeGRU", q)])

    from catalogue_helpers import check, mutate

    (tmp_path / "dialects").mkdir()
    path = mutate(tmp_path, "dialects/step_cells.py", "return dhs[:, t, :] + dh",
                  "return dhs[:, t, :]")  # the gradient from step t + 1 dropped
    kinds = {c.quantity: c.kind for c in check(path, "TimeGRU").checks}
    assert kinds["xs"] == "missing-accumulation", kinds


def test_a_bidirectional_layers_numbered_weights_are_built_by_name():
    from jaxcnn.check.adapters.module_names import recurrent_array_for

    assert recurrent_array_for("Wx2", "TimeBiLSTM").shape == (4, 20)
    assert recurrent_array_for("Wh_b", "BiGRU").shape == (5, 15)
    assert recurrent_array_for("b1", "TimeBiLSTM").shape == (20,)
    assert recurrent_array_for("Wq", "TimeBiLSTM") is None


def test_a_sequence_softmax_loss_with_ignored_steps_is_time_softmax_loss():
    f = found("time_losses.py")
    layer = f.layers[0]
    assert layer.kind == "time_softmax_loss"
    assert any((s.static[0] == -1).any() for s in layer.input_sets(0))  # steps ignored
    assert verdicts(f)[("TimeSoftmaxWithLoss", "xs")][::2] == ("correct", "exact")
    bugs = verdicts(found("time_losses_bugs.py"))
    assert bugs[("TimeSoftmaxWithLoss", "xs")][::2] == ("wrong-derivative", "exact")


@pytest.mark.parametrize("width", ["dim", "wordvec_size", "embed_size"])
def test_an_embeddings_width_argument_is_a_size(tmp_path, width):
    """``Embedding(vocab_size, dim)``: ``dim`` is the vector width here, not an axis (it
    was given -1: "negative dimensions are not allowed"); ``wordvec_size`` (the book's
    name) could not be guessed at all."""
    from jaxcnn.check import check_file

    path = tmp_path / "emb.py"
    path.write_text(
        "import numpy as np\n\n\nclass Embedding:\n"
        f"    def __init__(self, vocab_size, {width}):\n"
        f"        self.W = np.random.randn(vocab_size, {width})\n\n"
        "    def forward(self, ids):\n        self.ids = ids\n        return self.W[ids]\n\n"
        "    def backward(self, dout):\n        dW = np.zeros_like(self.W)\n"
        "        np.add.at(dW, self.ids, dout)\n        return dW\n")
    (layer,) = check_file(path).layers
    assert layer.kind == "word_embedding" and layer.ok, layer.checks


def test_a_grads_list_left_holding_the_old_arrays_is_a_stale_gradient():
    """A backward that rebinds ``self.dW = ...`` where the constructor built ``self.grads
    = [self.dW, self.db]`` for the optimizer passed: the attribute was right, the list the
    optimizer reads kept zeros. The list's (or dict's) value is what is judged."""
    f = found("stale_grads.py")
    assert f.skipped == []
    v = verdicts(f)
    for layer, quantity in (("DenseRebound", "W"), ("DenseRebound", "b"),
                            ("AffineListed", "params[0]"), ("AffineListed", "params[1]"),
                            ("DenseDict", "W")):
        assert v[(layer, quantity)][0] == "stale-gradient", (layer, quantity, v)
    for layer, quantity in (("DenseInPlace", "W"), ("DenseInPlace", "b"), ("DenseDict", "b"),
                            ("DenseNewList", "W"), ("DenseNewList", "b"),
                            ("DenseRebound", "x"), ("AffineListed", "x")):
        assert v[(layer, quantity)][0] == "correct", (layer, quantity, v)
    layer = next(x for x in f.layers if x.name == "DenseRebound")
    note = next(c.note for c in check_layer(layer).checks if c.quantity == "W")
    assert "self.grads[0]" in note and "self.dW" in note


def test_max_pools_without_a_pool_param_get_the_exact_oracle_and_their_tie_rule():
    """An explicit pair's ``==`` mask passed: without CS231n's pool_param the pool was
    checked by finite differences, which leave tied maxima out. A 2x2 stride-2 max pool
    of (N, C, H, W), (H, W, C) or one (C, H, W) array now gets the catalogue's pool."""
    f = found("pool_layouts.py")
    assert f.skipped == []
    kinds = {layer.name: layer.kind for layer in f.layers}
    assert kinds == {"pool_eq": "max_pool_nchw", "pool_cached_forward": "max_pool_nchw",
                     "pool_image": "max_pool_chw"}
    v = verdicts(f)
    assert v[("pool_eq", "X")][::2] == ("tie-overcount", "exact")
    assert v[("pool_cached_forward", "X")][::2] == ("correct", "exact")
    assert v[("pool_image", "image")][::2] == ("tie-overcount", "exact")


def test_conv_and_pool_classes_are_checked_at_a_second_stride_and_padding():
    """A conv class built only with its defaults (stride 1, no padding) passed a
    backward that leaves the stride out. Classes whose constructor takes a stride or a
    padding are checked at other values too, each a row of its own, against the exact
    oracle at the object's own settings (and its named mistakes)."""
    f = found("conv_settings.py")
    # code that refuses another stride by design is skipped at it, not failed
    assert [(n.rsplit(":", 1)[-1], why.split(" (")[0]) for n, why in f.skipped] == [
        ("ConvStrideOne (stride=2)", "not checked at these settings: the code refuses them")]
    assert sorted(layer.name for layer in f.layers) == [
        "AvgPool", "AvgPool (stride=1)", "Conv2D", "Conv2D (stride=2, padding=1)",
        "ConvLayer", "ConvLayer (stride=2, padding=1)", "ConvNoStride",
        "ConvNoStride (stride=2, padding=1)", "ConvStrideOne"]
    # one sample's shape required (X_dim): odd sizes, which stride 2 tiles
    dim = next(x for x in f.layers if x.name == "ConvLayer (stride=2, padding=1)")
    assert any("X_dim=(2, 7, 9)" in n for n in dim.notes)
    v = verdicts(f)
    assert v[("ConvLayer (stride=2, padding=1)", "W")][::2] == ("correct", "exact")
    for quantity in ("x", "W", "b"):
        assert v[("Conv2D (stride=2, padding=1)", quantity)][::2] == ("correct", "exact")
        assert v[("ConvNoStride", quantity)][0] == "correct"  # stride 1: nothing shows
    assert v[("ConvNoStride (stride=2, padding=1)", "x")][::2] == ("wrong-window", "exact")
    assert v[("ConvNoStride (stride=2, padding=1)", "W")][::2] == ("wrong-window", "exact")
    assert v[("AvgPool", "x")][0] == "correct"  # windows that do not overlap
    assert v[("AvgPool (stride=1)", "x")][0] == "missing-accumulation"


def test_a_class_name_given_to_layer_picks_its_second_setting_rows_too():
    from types import SimpleNamespace

    from jaxcnn.check.api import _select

    rows = [SimpleNamespace(name=n) for n in (
        "ConvLayer", "ConvLayer (stride=2, padding=1)", "file.py:Pool (stride=1)", "Pool2")]
    assert [r.name for r in _select(rows, [], ["ConvLayer"])[0]] == [
        "ConvLayer", "ConvLayer (stride=2, padding=1)"]
    assert [r.name for r in _select(rows, [], ["ConvLayer (stride=2, padding=1)"])[0]] == [
        "ConvLayer (stride=2, padding=1)"]
    assert [r.name for r in _select(rows, [], ["Pool"])[0]] == ["file.py:Pool (stride=1)"]


def test_settings_a_default_hides_and_pools_in_other_layouts():
    """A tester's false passes: a conv whose padding defaults to "valid" was never built
    padded; a conv refusing stride 2 lost its padded row with it; a batched channels-last
    max pool's == mask and a pool class overwriting overlapping windows at stride 1 were
    judged by finite differences only (tie rule unchecked, unclassified)."""
    f = found("settings_more.py")
    names = {layer.name: layer for layer in f.layers}
    assert set(names) == {"ConvValid", "ConvValid (stride=2, padding=same)", "ConvPadOnly",
                          "ConvPadOnly (padding=1)", "MaxPoolOverwrite",
                          "MaxPoolOverwrite (stride=1)", "pool_nhwc"}
    assert sorted(n.rsplit(":", 1)[-1] for n, _ in f.skipped) == [
        "ConvPadOnly (stride=2)", "ConvPadOnly (stride=2, padding=1)"]
    assert names["pool_nhwc"].kind == "max_pool_nhwc"
    v = verdicts(f)
    assert v[("ConvValid", "x")][0] == "correct"
    assert v[("ConvValid (stride=2, padding=same)", "x")][0] != "correct"
    assert v[("ConvPadOnly (padding=1)", "x")][::2] == ("correct", "exact")
    assert v[("MaxPoolOverwrite", "x")][0] == "correct"
    assert v[("MaxPoolOverwrite (stride=1)", "x")][::2] == ("missing-accumulation", "exact")
    assert v[("pool_nhwc", "X")][::2] == ("tie-overcount", "exact")


def test_a_channels_last_cs231n_max_pool_gets_the_exact_pool_and_its_tie_rule():
    """A tester's false pass: `max_pool_forward_naive(x, pool_param)` on (N, H, W, C) was
    fed NCHW inputs (empty outputs), fell back to finite differences and passed an ==
    mask. The NHWC layout of the catalogue's pool is tried, as conv's is."""
    f = found("pool_nhwc_param.py")
    (layer,) = f.layers
    assert layer.kind == "max_pool_nhwc_param"
    assert verdicts(f)[("max_pool", "x")][::2] == ("tie-overcount", "exact")
