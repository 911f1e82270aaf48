"""Check the report's hand-derived gradients against jax.grad and finite differences.

Runs in float64. For two input sets, (a) tie-free random images and (b) real MNIST
digits (the embedded subset), every layer's hand-derived backward function in
``backprop`` is compared with ``jax.vjp`` / ``jax.jacobian`` of the matching forward in
``model``, and the whole chain (``backprop.grads``, each tie rule) with ``jax.grad`` of
the loss and with central finite differences. Every comparison that must agree is held
to a relative error of 1e-10 (finite differences: 1e-6).

The one expected disagreement: the report's max-pool rule hands the full gradient to
every tied maximum of a 2x2 window. On real digits windows over the flat background tie,
so its filter gradient is too large; the table says by how much, and the tie statistics
say how often. Exit status 0 when everything that must agree does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import backprop, model

EXACT_TOL = 1e-10
FD_TOL = 1e-6
# Step of the central differences. 1e-6 keeps float64 round-off near 1e-10 and stays
# clear of the near-ties of real digits: at 1e-5 a step already crosses a pool kink
# (two window values closer than the step) for about one filter entry in 600.
FD_EPS = 1e-6


@dataclass
class Row:
    inputs: str
    quantity: str
    reference: str
    max_abs_error: float
    max_rel_error: float
    cosine: float
    must_agree: bool
    tolerance: float

    @property
    def agrees(self) -> bool:
        return self.max_rel_error <= self.tolerance

    @property
    def verdict(self) -> str:
        if self.must_agree:
            return "ok" if self.agrees else "FAIL"
        return "agrees" if self.agrees else "differs (expected)"


def compare(inputs, quantity, reference, got, want, must_agree=True, tolerance=EXACT_TOL) -> Row:
    """Errors of ``got`` against ``want`` (stacked over images): relative to max |want|."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    abs_err = float(np.max(np.abs(got - want)))
    scale = float(np.max(np.abs(want)))
    rel_err = abs_err / scale if scale > 0 else abs_err
    g, w = got.reshape(len(got), -1), want.reshape(len(want), -1)
    norms = np.linalg.norm(g, axis=1) * np.linalg.norm(w, axis=1)
    cos = np.where(norms > 0, np.sum(g * w, axis=1) / np.where(norms > 0, norms, 1), 1.0)
    return Row(inputs, quantity, reference, abs_err, rel_err, float(np.min(cos)), must_agree,
               tolerance)


def pool_reduce_window(x: jax.Array) -> jax.Array:
    """The 2x2 max-pool as ``lax.reduce_window``; its autodiff picks the first maximum."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (2, 2, 1), (2, 2, 1), "VALID")


def tie_share(conv_out: jax.Array) -> jax.Array:
    """Fraction of 2x2 pool windows of conv_out (26, 26, F) whose maximum is tied."""
    windows = model.pool_windows(conv_out)
    count = jnp.sum(windows == jnp.max(windows, axis=-1, keepdims=True), axis=-1)
    return jnp.mean(count > 1)


def _finite_differences(params, image, label, which: str, indices) -> jax.Array:
    """Central differences of the loss w.r.t. ``params.<which>`` at flat ``indices``."""
    leaf = getattr(params, which)

    def loss_at(i, sign):
        bumped = leaf.reshape(-1).at[i].add(sign * FD_EPS).reshape(leaf.shape)
        return model.loss(params._replace(**{which: bumped}), image, label)

    up = jax.vmap(lambda i: loss_at(i, 1.0))(indices)
    down = jax.vmap(lambda i: loss_at(i, -1.0))(indices)
    return (up - down) / (2 * FD_EPS)


def _comparisons(params, images, labels, weight_idx):
    """Every (got, want) pair for one input set, as one traceable function.

    Returns ``{(quantity, reference, must_agree, tolerance): (got, want)}``, each array
    stacked over the images (N, ...). Jitted whole: one compilation, not hundreds.
    """
    out = {}
    per = jax.vmap  # one image -> stacked over images

    def add(quantity, reference, got, want, must=True, tolerance=EXACT_TOL):
        out[(quantity, reference, must, tolerance)] = (got, want)

    # Softmax layer (step 2).
    logits = per(lambda x: model.logits(params, x))(images)
    add("softmax Jacobian (report's formulas)", "jax.jacobian(softmax)",
        per(backprop.softmax_jacobian)(logits), per(jax.jacobian(jax.nn.softmax))(logits))
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    add("dL/dt (report's chain)", "p - onehot", per(backprop.logits_backward)(logits, labels),
        jax.nn.softmax(logits) - onehot)
    conv = per(lambda x: model.conv3x3(x, params.filters))(images)
    pooled = per(model.maxpool2)(conv)

    def dense_loss(w, b, x, y):
        return model.cross_entropy(model.dense(x, w, b), y)

    hand = per(backprop.softmax_backward, (0, 0, 0, None))(logits, labels, pooled,
                                                          params.weights)
    auto = per(jax.grad(dense_loss, (0, 1, 2)), (None, None, 0, 0))(
        params.weights, params.biases, pooled, labels)
    for name, h, a in zip(("dL/dW", "dL/db", "dL/dinput"), hand, auto, strict=True):
        add(f"softmax_backward {name}", "jax.grad", h, a)

    # Max-pool (step 3): each tie rule against the autodiff rule it claims to match.
    upstream = jax.random.normal(jax.random.key(7), pooled.shape, pooled.dtype)

    def vjp_of(pool):
        return per(lambda x, g: jax.vjp(pool, x)[1](g)[0])(conv, upstream)

    true_pool_grad = vjp_of(model.maxpool2)
    for ties, reference, want, must in (
            ("first", "jax.vjp(lax.reduce_window)", vjp_of(pool_reduce_window), True),
            ("split", "jax.vjp(jnp.max)", true_pool_grad, True),
            ("report", "jax.vjp(jnp.max)", true_pool_grad, False)):
        got = per(lambda g, x, t=ties: backprop.maxpool2_backward(g, x, t))(upstream, conv)
        add(f"maxpool2_backward[{ties}]", reference, got, want, must)

    # Conv (step 4) and the input gradient the report leaves out.
    d_conv = jax.random.normal(jax.random.key(8), conv.shape, conv.dtype)
    add("conv3x3_backward (dL/dfilters)", "jax.vjp(conv3x3)",
        per(backprop.conv3x3_backward)(d_conv, images),
        per(lambda x, g: jax.vjp(lambda f: model.conv3x3(x, f), params.filters)[1](g)[0])(
            images, d_conv))
    add("conv3x3_input_backward (dL/dimage)", "jax.vjp(conv3x3)",
        per(backprop.conv3x3_input_backward, (0, None))(d_conv, params.filters),
        per(lambda x, g: jax.vjp(lambda im: model.conv3x3(im, params.filters), x)[1](g)[0])(
            images, d_conv))

    # End to end: backprop.grads (each tie rule) vs jax.grad(loss) and finite differences.
    true = per(lambda x, y: jax.grad(model.loss)(params, x, y))(images, labels)
    for ties in model.TIE_RULES:
        _, hand = per(lambda x, y, t=ties: backprop.grads(params, x, y, t))(images, labels)
        for field in model.Params._fields:
            must = ties != "report" or field != "filters"
            add(f"grads[{ties}] {field}", "jax.grad(loss)", getattr(hand, field),
                getattr(true, field), must)
    for field, idx in (("filters", jnp.arange(params.filters.size)),
                       ("biases", jnp.arange(params.biases.size)), ("weights", weight_idx)):
        fd = per(lambda x, y, f=field, i=idx: _finite_differences(params, x, y, f, i))(images,
                                                                                      labels)
        grad = getattr(true, field).reshape(len(images), -1)[:, idx]
        suffix = f" ({len(weight_idx)} entries)" if field == "weights" else ""
        add(f"jax.grad(loss) {field}{suffix}", "central differences", grad, fd, True, FD_TOL)
    return out


def check_set(name: str, params, images, labels, fd_weights: int = 40) -> list[Row]:
    """Every comparison for one input set; images (N, 28, 28) float64, labels (N,)."""
    weight_idx = jax.random.choice(jax.random.key(9), params.weights.size, (fd_weights,),
                                   replace=False)
    pairs = jax.jit(_comparisons)(params, images, labels, weight_idx)
    return [compare(name, quantity, reference, got, want, must, tolerance)
            for (quantity, reference, must, tolerance), (got, want) in pairs.items()]


def tie_statistics(params, images, labels) -> dict:
    """How often pool windows tie on these images, and what the report rule does to the
    filter gradient: ratio |report-rule dL/dfilters| / |true dL/dfilters| per image."""
    conv = jax.vmap(lambda x: model.conv3x3(x, params.filters))(images)
    shares = jax.vmap(tie_share)(conv)
    report = jax.vmap(lambda x, y: backprop.grads(params, x, y, "report")[1].filters)(images,
                                                                                     labels)
    true = jax.vmap(lambda x, y: jax.grad(model.loss)(params, x, y).filters)(images, labels)
    ratio = (jnp.linalg.norm(report.reshape(len(images), -1), axis=1)
             / jnp.linalg.norm(true.reshape(len(images), -1), axis=1))
    return {"images": len(images),
            "tie_share_mean": float(jnp.mean(shares)), "tie_share_min": float(jnp.min(shares)),
            "tie_share_max": float(jnp.max(shares)),
            "report_to_true_filter_grad_ratio_mean": float(jnp.mean(ratio)),
            "report_to_true_filter_grad_ratio_min": float(jnp.min(ratio)),
            "report_to_true_filter_grad_ratio_max": float(jnp.max(ratio))}


def real_digits(count: int):
    """The first ``count`` test digits of the embedded MNIST subset, uint8 and labels."""
    from jaxcnn import data

    ds = data.load("mnist-embedded", train_size=1, test_size=count)
    return ds.test_images, ds.test_labels


def run_checks(num_images: int = 8, seed: int = 0) -> dict:
    """All comparisons and tie statistics (float64). Returns a JSON-ready dict."""
    with jax.enable_x64(True):
        key_params, key_images, key_labels = jax.random.split(jax.random.key(seed), 3)
        params = model.init_params(key_params)
        random_images = jax.random.uniform(key_images, (num_images, 28, 28), jnp.float64,
                                           -0.5, 0.5)
        random_labels = jax.random.randint(key_labels, (num_images,), 0, 10)
        digits, digit_labels = real_digits(num_images)
        digit_images = model.normalize(digits, jnp.float64)
        digit_labels = jnp.asarray(digit_labels)
        rows = (check_set("random (tie-free)", params, random_images, random_labels)
                + check_set("MNIST digits", params, digit_images, digit_labels))
        random_conv = jax.vmap(lambda x: model.conv3x3(x, params.filters))(random_images)
        ties = {"random (tie-free)": float(jnp.mean(jax.vmap(tie_share)(random_conv))),
                "MNIST digits": tie_statistics(params, digit_images, digit_labels)}
    failed = [r for r in rows if r.must_agree and not r.agrees]
    return {"ok": not failed, "rows": [asdict(r) | {"verdict": r.verdict} for r in rows],
            "ties": ties, "num_images": num_images, "seed": seed}


def format_table(report: dict) -> str:
    header = ("inputs", "quantity", "reference", "max abs err", "max rel err", "cosine",
              "verdict")
    body = [(r["inputs"], r["quantity"], r["reference"], f"{r['max_abs_error']:.2e}",
             f"{r['max_rel_error']:.2e}", f"{r['cosine']:.6f}", r["verdict"])
            for r in report["rows"]]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    t = report["ties"]["MNIST digits"]
    lines += [
        "",
        f"Pool windows with a tied maximum: {report['ties']['random (tie-free)']:.1%} on random "
        f"images, {t['tie_share_mean']:.1%} on {t['images']} MNIST digits "
        f"(min {t['tie_share_min']:.1%}, max {t['tie_share_max']:.1%}).",
        f"|report-rule dL/dfilters| / |true dL/dfilters| on those digits: mean "
        f"{t['report_to_true_filter_grad_ratio_mean']:.3f} (min "
        f"{t['report_to_true_filter_grad_ratio_min']:.3f}, max "
        f"{t['report_to_true_filter_grad_ratio_max']:.3f}).",
        "The report's rule gives every tied maximum the full gradient, so its filter "
        "gradient is too large wherever windows tie; dL/dW and dL/db are exact.",
        "",
        "All required comparisons agree." if report["ok"] else "SOME REQUIRED COMPARISONS FAILED.",
    ]
    return "\n".join(lines)
