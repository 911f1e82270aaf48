"""Check the report's hand-derived gradients: ``jaxcnn verify``, a client of ``jaxcnn.check``.

Every hand-derived function of ``backprop`` becomes an engine ``Layer`` (JAX style: the
matching ``model`` forward and a VJP built from the hand function), and goes through
``jaxcnn.check.check_layer`` in float64: against ``jax.vjp`` of the forward (exact
oracle) and central differences (numeric oracle, kink-aware), on tie-free random inputs,
real MNIST digits, and confident wrong predictions (a logit gap of 86.5-100, also run in
float32, where a softmax chain underflows). ``backprop.grads``, the whole chain, is
checked end to end for each tie rule, and the chain of its pieces names the first wrong
layer.

The one expected disagreement: the report's max-pool rule hands the full gradient to
every tied maximum of a 2x2 window (``tie-overcount``). On real digits windows over the
flat background tie, so the end-to-end filter gradient is too large; the tie statistics
say how often and by how much. Everything else must be ``correct``; exit 0 then.

The layers are built from the functions ``backprop`` holds *when run_checks is called*,
and the traces of ``model``'s and ``backprop``'s ``jax.jit`` functions are dropped first
(a jitted step keeps the helpers it called when it was traced), so a function replaced
in a live session, also one that a jitted step calls, is checked afresh.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import backprop, model
from jaxcnn.check import autodiff, chain
from jaxcnn.check.adapters import from_jax_vjp
from jaxcnn.check.autodiff import device_array
from jaxcnn.check.catalogue import network as catalogue_network
from jaxcnn.check.catalogue.base import digits
from jaxcnn.check.catalogue.pool import report_pool_kinks
from jaxcnn.check.engine import check_layer
from jaxcnn.check.layer import InputSet
from jaxcnn.jsonsafe import strict

FAMILIES = {"random": "random (tie-free)", "digits": "MNIST digits",
            "flat": "flat (every window tied)", "large-gap": "large logit gap"}
NETWORK_IMAGES = 2  # random images and digits per end-to-end check (tie statistics: --images)
DIRECTIONS = 3  # random directions of the numeric oracle per argument and input
# (layer name, quantity) pairs allowed to differ, and the kind they must then have.
EXPECTED = {("maxpool2_backward[report]", "input"): "tie-overcount",
            ("grads[report]", "filters"): "tie-overcount"}


@dataclass
class Row:
    inputs: str
    quantity: str
    reference: str
    kind: str
    rule: str | None
    max_abs_error: float | None
    max_rel_error: float | None
    cosine: float | None
    must_agree: bool
    verdict: str
    numeric_max_rel_error: float | None = None  # against central differences
    numeric_agrees: bool | None = None


def _vjp_of(forward, backward):
    """A VJP function ``(*args, *static) -> (out, vjp_fun)`` from a hand backward."""
    def f_vjp(*args):
        out = forward(*args)
        return out, lambda g: backward(g, *args)
    return f_vjp


def fresh_traces(*modules) -> None:
    """Drop the traces of the modules' ``jax.jit`` functions (default: ``model`` and
    ``backprop``). A jitted function is traced once per argument shape and keeps what its
    helpers were then: after ``backprop.softmax_jacobian_row`` is replaced, the jitted
    ``logits_backward`` would still run the old one. Its next call traces it afresh."""
    for module in modules or (model, backprop):
        for value in list(vars(module).values()):
            clear = getattr(value, "clear_cache", None)
            if callable(clear) and callable(getattr(value, "lower", None)):
                clear()


def report_layers(num_images: int) -> list:
    """The report's hand-derived steps as engine ``Layer``s, from ``backprop`` as it is now."""
    fresh_traces()
    bp = backprop  # attributes are read now: a replaced function is the one checked
    logits_backward, softmax_backward = bp.logits_backward, bp.softmax_backward
    maxpool2_backward, grads = bp.maxpool2_backward, bp.grads
    conv_filters, conv_input = bp.conv3x3_backward, bp.conv3x3_input_backward

    def xent_backward(g, logits, label):
        return (g * logits_backward(logits, label),)

    def softmax_layer_loss(x, w, b, label):
        return model.cross_entropy(model.dense(x, w, b), label)

    def dense_backward(g, x, w, b, label):
        d_w, d_b, d_x = softmax_backward(model.dense(x, w, b), label, x, w)
        return g * d_x, g * d_w, g * d_b

    def conv_backward(g, image, filters):
        return conv_input(g, filters), conv_filters(g, image)

    layers = [
        from_jax_vjp(model.cross_entropy, _vjp_of(model.cross_entropy, xent_backward),
                     "cross_entropy", "logits_backward"),
        from_jax_vjp(softmax_layer_loss, _vjp_of(softmax_layer_loss, dense_backward),
                     "dense_cross_entropy", "softmax_backward"),
        from_jax_vjp(model.conv3x3, _vjp_of(model.conv3x3, conv_backward), "conv3x3",
                     "conv3x3_backward"),
    ]
    for rule in model.TIE_RULES:
        def pool_backward(g, x, rule=rule):
            return (maxpool2_backward(g, x, rule),)
        layers.append(from_jax_vjp(model.maxpool2, _vjp_of(model.maxpool2, pool_backward),
                                   "maxpool2", f"maxpool2_backward[{rule}]"))
    network = catalogue_network.report_network_spec(num_images)

    def network_loss(image, filters, weights, biases, label):
        return model.loss(model.Params(filters, weights, biases), image, label)

    for rule in model.TIE_RULES:
        def network_backward(g, image, filters, weights, biases, label, rule=rule):
            _, d = grads(model.Params(filters, weights, biases), image, label, rule)
            return None, g * d.filters, g * d.weights, g * d.biases
        layer = from_jax_vjp(network_loss, _vjp_of(network_loss, network_backward),
                             "report_network", f"grads[{rule}]", optional=("image",))
        layers.append(layer._replace(input_sets=network.input_sets))
    return [layer if layer.kind == "report_network" else
            layer._replace(input_sets=_one_per_family(layer.input_sets,
                                                      float32=layer.kind == "cross_entropy"))
            for layer in layers]


def _one_per_family(input_sets, float32: bool):
    """The catalogue's inputs, one per family (every large-gap one: each gap and dtype
    underflows differently): the report's functions are also checked end to end, so one
    input of each other kind is enough per step. float32 inputs only where ``float32``:
    ``logits_backward`` is where the report's chain underflows; every other step gets its
    dL/dt from it, and each float32 variant costs its own compilations."""
    def sets(seed):
        seen, out = set(), []
        for s in input_sets(seed):
            if s.dtype == "float32" and not float32:
                continue
            if s.family == "large-gap" or s.family not in seen:
                seen.add(s.family)
                out.append(s)
        return out
    return sets


def _rows(report) -> list[Row]:
    rows = []
    for check in report.checks:
        expected = EXPECTED.get((report.name, check.quantity))
        by_family: dict[str, list] = {}
        for r in check.inputs:
            by_family.setdefault(r.family, []).append(r)
        for family, results in by_family.items():
            bad = [r for r in results if r.kind != "correct"]
            kind = bad[0].kind if bad else "correct"
            rels = [r.max_rel_error for r in results if r.max_rel_error is not None]
            abss = [r.max_abs_error for r in results if r.max_abs_error is not None]
            coss = [r.cosine for r in results if r.cosine is not None]
            rule = next((r.rule for r in results if r.rule), None)
            must = expected is None
            numeric = [r.numeric for r in results if r.numeric and
                       r.numeric.get("max_rel_error") is not None]
            n_err = max(n["max_rel_error"] for n in numeric) if numeric else None
            n_agrees = all(n["agrees"] for n in numeric) if numeric else None
            if must:
                ok = kind == "correct" and n_agrees is not False
                verdict = "ok" if ok else "FAIL"
            else:  # may differ, then in the expected way, on both oracles
                verdict = ("agrees" if kind == "correct" and n_agrees is not False else
                           "differs (expected)" if kind == expected else "FAIL")
            quantity = f"{report.name} dL/d{check.quantity}"
            rows.append(Row(FAMILIES.get(family, family), quantity, report.reference, kind,
                            rule, max(abss) if abss else None, max(rels) if rels else None,
                            min(coss) if coss else None, must, verdict, n_err, n_agrees))
    return rows


def tie_share(conv_out: jax.Array) -> jax.Array:
    """Fraction of 2x2 pool windows of conv_out (26, 26, F) whose maximum is tied."""
    windows = model.pool_windows(conv_out)
    count = jnp.sum(windows == jnp.max(windows, axis=-1, keepdims=True), axis=-1)
    return jnp.mean(count > 1)


def tie_statistics(count: int, seed: int) -> dict:
    """On ``count`` MNIST digits: how often pool windows tie (and how many of the ties are
    structural: identical conv patches), and |report-rule dL/dfilters| / |true
    dL/dfilters| per image."""
    images, labels = digits(count)
    params = model.Params(*(device_array(a) for a in catalogue_network.report_network_spec(
        1).input_sets(seed)[0].args[1:]))
    shares, structural, ratios, cosines = [], [], [], []
    for image, label in zip(images, labels, strict=True):
        conv = np.asarray(model.conv3x3(device_array(image), params.filters), np.float64)
        kinks = report_pool_kinks(InputSet(
            "digits", "", (conv,), provenance={"image": image, "filters": params.filters}))
        shares.append(kinks.stats["tied_windows"] / kinks.stats["windows"])
        structural.append(kinks.stats["structural_ties"] / max(1, kinks.stats["tied_windows"]))
        hand = np.asarray(backprop.grads(params, device_array(image), int(label), "report")[1]
                          .filters)
        true = np.asarray(jax.grad(model.loss)(params, device_array(image), int(label)).filters)
        ratios.append(float(np.linalg.norm(hand) / np.linalg.norm(true)))
        cosines.append(float(np.vdot(hand, true) / np.linalg.norm(hand) / np.linalg.norm(true)))
    return {"images": count, "tie_share_mean": float(np.mean(shares)),
            "tie_share_min": float(np.min(shares)), "tie_share_max": float(np.max(shares)),
            "structural_share_min": float(np.min(structural)),
            "report_to_true_filter_grad_ratio_mean": float(np.mean(ratios)),
            "report_to_true_filter_grad_ratio_min": float(np.min(ratios)),
            "report_to_true_filter_grad_ratio_max": float(np.max(ratios)),
            "report_filter_grad_cosine_mean": float(np.mean(cosines))}


def _random_tie_share(count: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    filters = device_array(rng.standard_normal((8, 3, 3)) / 9)
    shares = [float(tie_share(model.conv3x3(device_array(rng.uniform(-0.5, 0.5, (28, 28))),
                                            filters))) for _ in range(count)]
    return float(np.mean(shares))


def _chain(layers: dict, num_images: int, seed: int) -> dict:
    """conv -> pool (report rule) -> softmax on digits: which layer is first wrong."""
    inputs = chain.blog_chain_inputs(min(num_images, 2), seed)
    inputs = [i._replace(statics=((), (), (i.label,))) for i in inputs]
    return chain.check_chain([layers["conv3x3_backward"], layers["maxpool2_backward[report]"],
                              layers["softmax_backward"]], inputs, seed)


def layer_names() -> list[str]:
    """Names of the checked functions, for ``run_checks(only=...)``."""
    return [layer.name for layer in report_layers(1)]


def run_checks(num_images: int = 8, seed: int = 0, only=None) -> dict:
    """All checks (float64 oracles), the chain and tie statistics; a JSON-ready dict.

    ``num_images``: digits for the tie statistics (the end-to-end checks use up to
    ``NETWORK_IMAGES`` random images and digits). ``only``: names from ``layer_names()``
    to check (then no chain and no tie statistics); ValueError for an unknown name.
    """
    with autodiff.eagerly():  # the hand functions run eagerly: share their primitives
        return _run_checks(num_images, seed, only)


def _run_checks(num_images: int, seed: int, only) -> dict:
    layers = report_layers(min(num_images, NETWORK_IMAGES))
    if only is not None:  # a name, or its start: "maxpool2_backward" is all three rules
        unknown = [o for o in only if not any(layer.name.startswith(o) for layer in layers)]
        if unknown:
            raise ValueError(f"unknown: {', '.join(unknown)}; choose from "
                             f"{', '.join(layer.name for layer in layers)}")
        layers = [layer for layer in layers if any(layer.name.startswith(o) for o in only)]
    memo: dict = {}  # finite differences of the network's loss, shared by the three rules

    def check(group):
        return [check_layer(layer, seed, numeric="directions", directions=DIRECTIONS,
                            memo=memo) for layer in group]

    # Most of the time goes to XLA compiling one program per primitive and shape; XLA
    # compiles without holding the GIL, so two threads keep both cores busy. The
    # network's three rules stay in one thread (they share the memo); the steps, then the
    # tie statistics and the chain (of three steps) in the other, which balances them;
    # order is kept.
    network = [layer for layer in layers if layer.kind == "report_network"]
    steps = [layer for layer in layers if layer.kind != "report_network"]

    def steps_ties_chain():
        reports = check(steps)
        if only is not None:
            return reports, None, None
        with jax.enable_x64(True):
            ties = {"random (tie-free)": _random_tie_share(num_images, seed),
                    "MNIST digits": tie_statistics(num_images, seed)}
        return reports, ties, _chain({layer.name: layer for layer in layers}, num_images, seed)

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.submit(steps_ties_chain), pool.submit(check, network)
        step_reports, ties, chain_report = first.result()
        by_name = {r.name: r for r in step_reports + second.result()}
    reports = [by_name[layer.name] for layer in layers]
    rows = [row for r in reports for row in _rows(r)]
    chain_ok = True
    if only is None:
        expected_first = {"layer": "maxpool2_backward[report]", "quantity": "input",
                          "kind": "tie-overcount"}
        chain_ok = chain_report["first_wrong"] == expected_first
    ok = chain_ok and not any(r.verdict == "FAIL" for r in rows)
    return strict({"ok": ok, "status": 0 if ok else 1,
                   "rows": [asdict(r) for r in rows], "ties": ties, "chain": chain_report,
                   "num_images": num_images, "seed": seed,
                   "seconds": {r.name: round(r.seconds, 2) for r in reports}})


def format_table(report: dict) -> str:
    header = ("inputs", "gradient", "kind", "rel err", "cosine", "vs diffs", "verdict")
    body = []
    for r in report["rows"]:
        kind = r["kind"] + (f" ({r['rule']})" if r["rule"] else "")
        rel = "-" if r["max_rel_error"] is None else f"{r['max_rel_error']:.1e}"
        cos = "-" if r["cosine"] is None else f"{r['cosine']:.4f}"
        fd = ("-" if r.get("numeric_max_rel_error") is None
              else f"{r['numeric_max_rel_error']:.1e}")
        body.append((r["inputs"], r["quantity"], kind, rel, cos, fd, r["verdict"]))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    oracles = sorted({(r["quantity"].split()[0], r["reference"]) for r in report["rows"]})
    lines += ["", "rel err: max relative error against the exact oracle, jax.vjp in float64 "
                  "of " + "; ".join(sorted({o.removeprefix("jax.vjp of ") for _, o in oracles}))
              + ". vs diffs: against central differences (random directions; '-' where every "
                "direction crosses a kink)."]
    if report.get("ties"):
        t = report["ties"]["MNIST digits"]
        lines += [
            "",
            f"Pool windows with a tied maximum: {report['ties']['random (tie-free)']:.1%} on "
            f"random images, {t['tie_share_mean']:.1%} on {t['images']} MNIST digits "
            f"(min {t['tie_share_min']:.1%}, max {t['tie_share_max']:.1%}).",
            ("Every tie on these digits is structural" if t["structural_share_min"] == 1 else
             f"At least {t['structural_share_min']:.0%} of each digit's ties are structural")
            + " (identical conv patches): the true filter gradient is unique there.",
            f"|report-rule dL/dfilters| / |true dL/dfilters| on those digits: mean "
            f"{t['report_to_true_filter_grad_ratio_mean']:.3f} (min "
            f"{t['report_to_true_filter_grad_ratio_min']:.3f}, max "
            f"{t['report_to_true_filter_grad_ratio_max']:.3f}), mean cosine "
            f"{t['report_filter_grad_cosine_mean']:.3f}.",
            "The report's rule gives every tied maximum the full gradient (tie-overcount), so "
            "its filter gradient is too large wherever windows tie; dL/dW and dL/db are exact.",
        ]
    if report.get("chain"):
        fw = report["chain"]["first_wrong"]
        lines.append("Chain conv -> pool[report] -> softmax on digits: first wrong layer: "
                     + (f"{fw['layer']} ({fw['quantity']}: {fw['kind']})" if fw else "none"))
    lines += ["", "All required comparisons agree." if report["ok"]
              else "SOME REQUIRED COMPARISONS FAILED."]
    return "\n".join(lines)
