"""`jaxcnn check` reaches whole functions that return the loss and every gradient:
Karpathy's min-char-rnn ``lossFun(inputs, targets, hprev)`` on module globals (and on
``self`` attributes), with its top-level training loop left out at import, and
Nielsen's ``Network.backprop(x, y) -> (nabla_b, nabla_w)`` for the quadratic cost and
for each cost class of network2.py. Right versions pass; each planted bug is caught on
the gradient it breaks, named where the slip is a known one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jaxcnn.check import api, check_layer, find_layers, load_file

DIALECTS = Path(__file__).parent / "fixtures" / "dialects"
PARAMS = ("Wxh", "Whh", "Why", "bh", "by")
NIELSEN = tuple(f"{w}[{i}]" for w in ("biases", "weights") for i in range(4))


def found(name: str):
    path = DIALECTS / name
    return find_layers(load_file(path), str(path), [])


def verdicts(f) -> dict:
    """{(layer, quantity): kind} of found layers."""
    return {(layer.name, c.quantity): c.kind for layer in f.layers
            for c in check_layer(layer).checks}


def wrong(v: dict, layer: str) -> set[str]:
    return {q for (n, q), k in v.items() if n == layer and k != "correct"}


@pytest.fixture(scope="module")
def rnn():
    return found("min_char_rnn.py")


@pytest.fixture(scope="module")
def rnn_bugs():
    f = found("min_char_rnn_bugs.py")
    return f, verdicts(f)


def test_the_script_loop_is_left_out_and_both_lossfuns_are_found(rnn):
    assert rnn.skipped == []
    layers = {layer.name: layer for layer in rnn.layers}
    assert set(layers) == {"lossFun", "CharRNN.lossFun"}
    for layer in layers.values():
        assert layer.arg_names == PARAMS
    assert any("top-level `while` loop (line " in n for n in layers["lossFun"].notes)
    assert any("clips its gradients (at 5)" in n and "changes nothing" in n
               for n in layers["lossFun"].notes)


def test_a_right_lossfun_is_correct_in_float64(rnn, x64):
    v = verdicts(rnn)
    assert set(v.values()) == {"correct"}, v
    layer = next(la for la in rnn.layers if la.name == "lossFun")
    s = layer.input_sets(0)[0]
    tokens, targets, hprev = s.static
    assert len(tokens) == 4 and all(isinstance(t, int) for t in tokens)
    assert hprev.shape == (5, 1) and np.any(hprev)  # a random state: step 0 is checked


def test_the_module_globals_are_restored_after_the_check(rnn):
    layer = next(la for la in rnn.layers if la.name == "lossFun")
    module = layer.sources[0].__globals__
    before = {k: module[k] for k in PARAMS}
    check_layer(layer)
    assert all(module[k] is before[k] for k in PARAMS)


# (function, the gradients it breaks, their kind, the planted line's text or None when
# the first wrong step is a line that reads the planted one's unjudged value)
RNN_BUGS = [
    ("lossFun_tanh_at_output", {"Wxh", "Whh", "bh"}, "wrong-derivative", "dbh += dhraw"),
    ("lossFun_no_dhnext", {"Wxh", "Whh", "bh"}, "missing-accumulation", "dbh += dhraw"),
    ("lossFun_wrong_step", {"Whh"}, "wrong-derivative", "dWhh += dhraw @ hs[t].T"),
    ("lossFun_transposed", {"Whh"}, "transposed", "dWhh += hs[t - 1] @ dhraw.T"),
    ("lossFun_no_onehot", set(PARAMS), "wrong-derivative", "dWhy += dy @ hs[t].T"),
    ("lossFun_tight_clip", set(PARAMS), "clipped", "return loss, dWxh"),
    ("lossFun_hs_list", {"Whh"}, "wrong-derivative", "dWhh += dhraw @ hs[t - 1].T"),
    # `=` where `+=` belongs: the line whose runs sum to the right gradient
    ("lossFun_kept_one_step", {"Wxh"}, "missing-accumulation", "dWxh = dhraw @ xs[t].T"),
    ("lossFun_dby_assigned", {"by"}, "missing-accumulation", "dby = dy"),
    # the named slip's own line, not a line that reads its unjudged value
    ("lossFun_whh_untransposed", {"Wxh", "Whh", "bh"}, "wrong-derivative",
     "dhnext = Whh @ dhraw"),
]


@pytest.mark.parametrize(("name", "broken", "kind", "line"), RNN_BUGS)
def test_each_planted_rnn_bug_is_caught_and_named_on_the_gradients_it_breaks(
        rnn_bugs, name, broken, kind, line):
    f, v = rnn_bugs
    assert wrong(v, name) == broken
    assert {v[(name, q)] for q in broken} == {kind}
    first = check_layer(next(la for la in f.layers if la.name == name)).first_wrong_step
    assert first is not None and first.code.startswith(line), first


def test_the_first_wrong_step_of_a_wrong_time_step_is_its_line(rnn_bugs):
    f, _ = rnn_bugs
    first = check_layer(next(la for la in f.layers
                             if la.name == "lossFun_wrong_step")).first_wrong_step
    assert first.expected == "dL/dWhh"
    assert first.right_before == ("dWhy", "dby", "dbh", "dWxh")


def test_a_gradient_that_keeps_one_step_says_which_line_and_why(rnn_bugs):
    f, _ = rnn_bugs
    report = check_layer(next(la for la in f.layers if la.name == "lossFun_kept_one_step"))
    first = report.first_wrong_step
    assert first.kind == "missing-accumulation" and first.expected.startswith("dL/dWxh")
    assert "`=` where `+=` belongs" in first.note and "runs 4 times" in first.note
    assert first.unchecked_inputs == ()  # the sum of its runs is right: dhraw is too
    row = next(c for c in report.checks if c.quantity == "Wxh")
    assert "`=` where `+=` belongs" in row.note


def test_a_backward_part_that_raises_is_an_error_row_and_exit_1():
    path = DIALECTS / "min_char_rnn_raises.py"
    result = api.check_sources([str(path)])
    assert result.status == 1
    r = result.layer("lossFun_backward_raises")
    assert {c.kind for c in r.checks} == {"error"} and not any(api.unchecked(c)
                                                               for c in r.checks)
    assert "backward raised ValueError" in r.checks[0].note
    assert "min_char_rnn_raises.py:" in r.checks[0].note  # the line that raised
    # raised in the forward loop, before any loss: nothing could be checked (alone: 2)
    r = result.layer("lossFun_forward_raises")
    assert api.layer_status(r) == "not checked"
    assert api.check_sources([str(path)], layers=["lossFun_forward_raises"]).status == 2


def test_a_lossfun_that_updates_its_globals_names_them_as_globals(x64):
    f = found("min_char_rnn_updates.py")
    report = check_layer(next(la for la in f.layers if la.name == "lossFun_updates_inside"))
    row = next(c for c in report.checks if c.quantity == "Wxh")
    assert row.kind == "modifies-input"
    assert "writes into the global Wxh" in row.note and "its argument" not in row.note
    assert "training loop" in row.note


def test_a_clip_that_bites_says_so(rnn_bugs):
    f, _ = rnn_bugs
    layer = next(la for la in f.layers if la.name == "lossFun_tight_clip")
    assert any("scaled down where needed" in n and "`clipped`" in n for n in layer.notes)


def test_nielsen_network_py_is_correct_and_its_slips_are_named(x64):
    v = verdicts(found("nielsen_network.py"))
    assert wrong(v, "Network") == set()
    assert wrong(v, "NetworkNoPrime") == {"biases[3]", "weights[3]"}
    assert v[("NetworkNoPrime", "weights[3]")] == "wrong-derivative"
    assert v[("NetworkPrimeAtOutput", "biases[3]")] == "wrong-derivative"
    assert wrong(v, "NetworkTransposed") == {"weights[0]"}
    assert v[("NetworkTransposed", "weights[0]")] == "transposed"


def test_a_nielsen_network_is_deep_enough_for_every_index_of_its_loop(x64):
    """With one hidden layer the backward loop runs once (l == 2), where weights[-1] is
    weights[-l + 1] and x is activations[-l - 1]: such slips must not pass."""
    f = found("nielsen_deep_bugs.py")
    layer = next(la for la in f.layers if la.name == "InputEverywhere")
    assert len(layer.arg_names) == 8 and any("[4, 5, 6, 7, 3]" in n for n in layer.notes)
    v = verdicts(f)
    # x is right for the first layer only (activations[-l - 1] is x at l == 4)
    assert wrong(v, "InputEverywhere") == {"weights[1]", "weights[2]"}
    assert wrong(v, "LastWeightsEverywhere") == set(NIELSEN)  # (3, 7).T @ (7, 1) raises
    assert {v[("LastWeightsEverywhere", q)] for q in NIELSEN} == {"error"}


def test_a_network_built_for_one_hidden_layer_is_checked_at_that_depth_saying_so(x64):
    f = found("nielsen_deep_bugs.py")
    layer = next(la for la in f.layers if la.name == "TwoLayersOnly")
    assert len(layer.arg_names) == 4
    assert any("[4, 5, 3]" in n and "one hidden layer only" in n for n in layer.notes)
    assert wrong(verdicts(f), "TwoLayersOnly") == set()


def test_a_backprop_that_raises_where_feedforward_runs_is_an_error_row_and_exit_1():
    path = DIALECTS / "nielsen_deep_bugs.py"
    result = api.check_sources([str(path)], layers=["UntransposedRaises"])
    assert result.status == 1
    r = result.layer("UntransposedRaises")
    assert [c.quantity for c in r.checks] == list(NIELSEN)
    assert {c.kind for c in r.checks} == {"error"}
    assert "backward raised ValueError" in r.checks[0].note
    assert "nielsen_deep_bugs.py:74" in r.checks[0].note


def test_nielsen_network2_is_checked_once_per_cost_class(x64):
    f = found("nielsen_network2.py")
    names = {layer.name for layer in f.layers}
    assert {"Network(cost=QuadraticCost)", "Network(cost=CrossEntropyCost)",
            "Network(cost=WrongCrossEntropyCost)"} <= names
    v = verdicts(f)
    assert wrong(v, "Network(cost=QuadraticCost)") == set()
    assert wrong(v, "Network(cost=CrossEntropyCost)") == set()
    assert {v[("Network(cost=WrongCrossEntropyCost)", q)] for q in NIELSEN} == {
        "wrong-derivative"}
    report = check_layer(next(la for la in f.layers
                              if la.name == "Network(cost=WrongCrossEntropyCost)"))
    assert "quadratic cost's" in report.checks[0].note


def test_a_function_of_a_parameters_dict_is_checked_as_a_model(x64):
    f = found("function_model.py")
    assert [la.name for la in f.layers] == ["two_layer_net"]
    assert any("init_two_layer_model(input_size=4" in n for n in f.layers[0].notes)
    assert set(verdicts(f).values()) == {"correct"}


def test_a_function_models_planted_bugs_are_named_at_their_lines():
    f = found("function_model_bugs.py")
    v = verdicts(f)
    assert wrong(v, "two_layer_net_no_mask") == {"W1", "b1"}
    assert wrong(v, "two_layer_net_no_reg") == {"W1"}
    assert v[("two_layer_net_no_reg", "W1")] == "wrong-derivative"
    layers = {la.name: la for la in f.layers}
    first = check_layer(layers["two_layer_net_no_reg"]).first_wrong_step
    assert first.line == 58 and first.kind == "wrong-derivative"
    first = check_layer(layers["two_layer_net_no_mask"]).first_wrong_step
    assert first.code.startswith('grads["W1"] = X.T @ dhidden') and "dhidden" in \
        first.right_before


def test_a_feedforward_backprop_class_without_nielsens_lists_is_skipped_not_refused(tmp_path):
    from jaxcnn.check.refusals import Refused

    path = tmp_path / "blog_net.py"
    path.write_text(
        "import numpy as np\n\n\nclass NeuralNetwork:\n"
        "    def __init__(self, sizes=None):\n"
        "        self.weights1 = np.ones((4, 3))\n\n"
        "    def feedforward(self, x):\n        return x @ self.weights1\n\n"
        "    def backprop(self, x, y):\n        return x.T @ (self.feedforward(x) - y)\n")
    f = find_layers(load_file(path), str(path), [])
    assert f.layers == []
    assert [n for n, _ in f.skipped] == ["NeuralNetwork"]
    assert not any(isinstance(s, Refused) for s in f.skipped)


def test_a_long_sequence_gets_its_length_a_small_hidden_size_and_an_inert_clip(x64):
    f = found("min_char_rnn_long.py")
    (layer,) = f.layers
    s = layer.input_sets(0)[0]
    assert len(s.static[0]) == 25 and s.static[2].shape == (5, 1)
    assert any("the hidden size made 5 (the file's is 50" in n for n in layer.notes)
    assert set(verdicts(f).values()) == {"correct"}
