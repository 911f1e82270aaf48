"""Max pools: the report's 2x2 pool (``maxpool2``) and CS231n's ``max_pool`` (NCHW,
``pool_param``), with the tie rules (valid subgradients), the report's overcount and the
classic wrong backwards (overwriting windows, average/min pool, the stride left out)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import model
from jaxcnn.check.autodiff import as_np, device_array, vjp, vjps
from jaxcnn.check.catalogue.base import (
    Spec,
    default_static,
    digits,
    module_name,
    permuted,
    unbatched,
    wrong,
)
from jaxcnn.check.layer import Alternate, InputSet, Kinks, Reference

TIE_NOTES = {
    "split": "tied maxima share the upstream gradient equally (autodiff of jnp.max)",
    "first": "the first maximum in row-major window order takes it (np.argmax, "
             "lax.reduce_window)",
    "last": "the last maximum in row-major window order takes it",
}
MAX_POSITION_NOTE = ("the gradient goes to the maximum's position in its window with row and "
                     "column read in the other order: the flat argmax unravelled with the "
                     "window's shape swapped (unravel_index(k, (pw, ph)), or divmod's parts "
                     "exchanged)")
OVERCOUNT_NOTE = ("every tied maximum receives the FULL upstream gradient (the report's and "
                  "blog's `==` mask): a window with k tied maxima passes back k times its "
                  "gradient; not a subgradient")


def tie_rule_max(windows, rule: str):
    """Max over the last axis with the tie rule that autodiff will use."""
    if rule == "last":
        return model.window_max(windows[..., ::-1], "first")
    return model.window_max(windows, rule)


def overcount_max(windows):
    """The report's max over the last axis, ``model.window_max(windows, "report")``: every
    tied maximum receives the whole upstream gradient. The same VJP, ``where(windows ==
    max, g, 0)``, from autodiff alone, without that function's custom_vjp: its jaxpr
    spells the rule out, so a check stores and reads its results by the forward
    (``autodiff.forward_keys``) without tracing the VJP. Only the VJP is used: the value
    is not the max where a window's max is -0.0 (+0.0) or infinite (NaN)."""
    flat = jax.lax.stop_gradient(windows)
    top = jnp.max(flat, axis=-1, keepdims=True)
    return jnp.squeeze(top, -1) + jnp.sum(jnp.where(flat == top, windows - flat, 0.0), axis=-1)


def window_ties(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_max (..., K) bool, number of maxima per window (...))."""
    is_max = windows == windows.max(axis=-1, keepdims=True)
    return is_max, is_max.sum(axis=-1)


def window_subgradient(windows: np.ndarray, hand_windows: np.ndarray, g: np.ndarray,
                       tol: float, denominator: float) -> bool:
    """Whether each window's hand gradient (..., K) is a valid subgradient of its max:
    zero off the maxima, and on the tied maxima a convex combination of the window's
    upstream gradient ``g`` (...): same sign as g, summing to g."""
    atol = tol * max(denominator, 1e-300)
    is_max = windows == windows.max(axis=-1, keepdims=True)
    off = np.where(is_max, 0.0, hand_windows)
    if np.max(np.abs(off), initial=0.0) > atol:
        return False
    on = np.where(is_max, hand_windows, 0.0)
    if np.min(on * g[..., None], initial=0.0) < -atol * np.max(np.abs(g), initial=1.0):
        return False
    return float(np.max(np.abs(on.sum(axis=-1) - g), initial=0.0)) <= atol


def tie_alternates(window_fn: Callable, args: tuple, cotangent) -> list[Alternate]:
    """The three subgradient tie rules (valid) and the report's overcount (wrong)."""
    x = args[0]
    rules = ("split", "first", "last")
    funs = [lambda v, r=rule: tie_rule_max(window_fn(v), r) for rule in rules]
    funs.append(lambda v: overcount_max(window_fn(v)))
    grads = vjps(funs, (x,), cotangent)  # one program for the four rules
    out = [Alternate(rule, g, True, "correct", TIE_NOTES[rule])
           for rule, g in zip(rules, grads[:3], strict=True)]
    report = grads[3]
    out.append(Alternate("report", report, False, "tie-overcount", OVERCOUNT_NOTE))
    return out


def report_pool_kinks(s: InputSet) -> Kinks:
    x = np.asarray(s.args[0])
    windows = np.asarray(model.pool_windows(x))  # (H, W, F, 4)
    is_max, count = window_ties(windows)
    tied = count > 1
    mask = np.asarray(model.unpool_windows(is_max & tied[..., None]))
    stats = {"windows": int(tied.size), "tied_windows": int(tied.sum())}
    summary = f"{stats['tied_windows']} of {stats['windows']} pool windows tied"
    if s.provenance and "image" in s.provenance:
        # A tie is structural when the tied conv pixels sit on identical 3x3 patches:
        # they then move together for any filter, and the loss stays differentiable.
        patches = np.asarray(model.pool_windows(np.asarray(model.im2col(
            device_array(s.provenance["image"])))))  # (H, W, 9, 4)
        same = np.all(patches[..., :, None] == patches[..., None, :], axis=-3)  # (H, W, 4, 4)
        pair_ok = same[:, :, None] | ~(is_max[..., :, None] & is_max[..., None, :])
        structural = tied & np.all(pair_ok, axis=(-1, -2))
        stats["structural_ties"] = int(structural.sum())
        summary += (f" ({stats['structural_ties']} structural: identical conv patches, no "
                    "kink for the filters)")
    return Kinks((mask,), stats, summary)


def maxpool2_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((8, 3, 3)) / 9
    images, labels = digits(2)
    sets = [InputSet("random", "random (26, 26, 8) (tie-free)",
                     (rng.uniform(-1, 1, (26, 26, 8)),)),
            InputSet("random", "random (20, 24, 8): not square",
                     (rng.uniform(-1, 1, (20, 24, 8)),),
                     note="rows and columns differ: swapped indices show")]
    for i in range(len(images)):
        conv = as_np(model.conv3x3(device_array(images[i]), device_array(filters)))
        sets.append(InputSet("digits", f"conv of MNIST digit {i} (label {labels[i]})", (conv,),
                             note="tie-rich: the flat background gives bit-identical conv "
                                  "outputs", provenance={"image": images[i],
                                                         "filters": filters}))
    blank = np.full((28, 28), -0.5)
    sets.append(InputSet("flat", "conv of a blank image (every window tied)",
                         (as_np(model.conv3x3(device_array(blank), device_array(filters))),),
                         provenance={"image": blank, "filters": filters}))
    return sets


def _maxpool2_swapped(x, cotangent) -> Alternate:
    """The report's pool with each window's first maximum sent to its transposed position
    in the 2x2 window (row and column exchanged)."""
    windows = np.asarray(model.pool_windows(as_np(x)))  # (H, W, F, 4), row-major window order
    first = np.eye(4)[np.argmax(windows, axis=-1)]
    swapped = first[..., [0, 2, 1, 3]] * as_np(cotangent)[..., None]
    return Alternate("max position swapped", (as_np(model.unpool_windows(swapped)),), False,
                     "transposed", MAX_POSITION_NOTE)


def maxpool2_spec() -> Spec:
    def alternates(args, static, cotangent):
        return tie_alternates(model.pool_windows, args, cotangent) + [
            _maxpool2_swapped(args[0], cotangent)]

    def subgradient(args, static, cotangent, i, hand, tol):
        x = as_np(args[0])
        if hand.shape != x.shape:
            return None
        ok = window_subgradient(np.asarray(model.pool_windows(x)),
                                np.asarray(model.pool_windows(hand)), as_np(cotangent), tol,
                                float(np.max(np.abs(cotangent), initial=0.0)))
        return "other subgradient" if ok else None

    reference = Reference("jaxcnn.model.maxpool2",
                          lambda args, static: model.maxpool2(args[0], "split"),
                          alternates, report_pool_kinks, subgradient)
    return Spec("maxpool2", ("input",),
                {"input": ("row", "column", "filter"), "out": ("row", "column", "filter")},
                reference, maxpool2_sets)


def pool_geometry(pool_param) -> tuple[int, int, int]:
    return (int(pool_param["pool_height"]), int(pool_param["pool_width"]),
            int(pool_param["stride"]))


def _pool_index(shape, pool_param) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (Ho, Wo, ph, pw) of every window of an (N, C, H, W) input."""
    ph, pw, s = pool_geometry(pool_param)
    ho, wo = 1 + (shape[2] - ph) // s, 1 + (shape[3] - pw) // s
    rows = np.arange(ho)[:, None] * s + np.arange(ph)[None, :]
    cols = np.arange(wo)[:, None] * s + np.arange(pw)[None, :]
    return rows[:, None, :, None], cols[None, :, None, :]


def nchw_windows(pool_param):
    def windows(x):
        r, c = _pool_index(x.shape, pool_param)
        win = x[:, :, r, c]  # (N, C, Ho, Wo, ph, pw)
        return win.reshape(*win.shape[:4], -1)
    return windows


def _pool_overwrite(x: np.ndarray, pool_param, cotangent) -> list[Alternate]:
    """dx of overlapping windows written with ``=`` (whole window, or at the maxima)."""
    ph, pw, s = pool_geometry(pool_param)
    if s >= ph and s >= pw:
        return []
    dout = as_np(cotangent)
    out = []
    for mode, rule in itertools.product(("window", "maxima"), ("all", "first")):
        dx = np.zeros_like(x)
        for n, ch in itertools.product(range(x.shape[0]), range(x.shape[1])):
            for i, j in itertools.product(range(dout.shape[2]), range(dout.shape[3])):
                win = x[n, ch, i * s:i * s + ph, j * s:j * s + pw]
                mask = win == win.max()
                if rule == "first":
                    first = np.zeros(win.size, bool)
                    first[np.argmax(win)] = True
                    mask = first.reshape(win.shape)
                view = dx[n, ch, i * s:i * s + ph, j * s:j * s + pw]
                if mode == "window":
                    view[...] = mask * dout[n, ch, i, j]
                else:
                    view[mask] = dout[n, ch, i, j]
        what = ("each window's slice is assigned (zeros included)" if mode == "window"
                else "each window's maximum is assigned")
        out.append(Alternate(f"overwrite ({mode}, {rule})", (dx,), False,
                             "missing-accumulation",
                             f"overlapping windows overwrite dx instead of adding to it: {what} "
                             "with `=` where `+=` belongs"))
    return out


def _pool_wrong(x: np.ndarray, pool_param, cotangent) -> list[Alternate]:
    """Known wrong pool backwards: an average pool's, a min pool's, windows read at the
    wrong positions (the stride left out of the backward's window index)."""
    ph, pw, s = pool_geometry(pool_param)
    dout = as_np(cotangent)
    average, minimum, unstrided = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    swapped, swap_fits = np.zeros_like(x), True
    for n, ch in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for i, j in itertools.product(range(dout.shape[2]), range(dout.shape[3])):
            g = dout[n, ch, i, j]
            win = x[n, ch, i * s:i * s + ph, j * s:j * s + pw]
            average[n, ch, i * s:i * s + ph, j * s:j * s + pw] += g / win.size
            a, b = np.unravel_index(np.argmin(win), win.shape)
            minimum[n, ch, i * s + a, j * s + b] += g
            if ph == pw:  # (b, a) for (a, b)
                b, a = np.unravel_index(np.argmax(win), win.shape)
            else:  # unravelled with the window's shape swapped
                a, b = np.unravel_index(np.argmax(win), (pw, ph))
            swap_fits = swap_fits and a < ph and b < pw
            if swap_fits:
                swapped[n, ch, i * s + a, j * s + b] += g
            if i + ph <= x.shape[2] and j + pw <= x.shape[3]:
                near = x[n, ch, i:i + ph, j:j + pw]
                a, b = np.unravel_index(np.argmax(near), near.shape)
                unstrided[n, ch, i + a, j + b] += g
    out = [wrong("average pool", (average,), "each window's gradient spread evenly over the "
                                             "window: the derivative of an average pool"),
           wrong("min pool", (minimum,), "the gradient goes to each window's minimum "
                                         "(argmin where argmax belongs)")]
    if swap_fits:
        out.append(Alternate("max position swapped", (swapped,), False, "transposed",
                             MAX_POSITION_NOTE))
    if s > 1:
        out.append(Alternate("stride left out", (unstrided,), False, "wrong-window",
                             f"the backward reads window (i, j) at rows i:i+{ph}, columns "
                             f"j:j+{pw}: the stride {s} is left out of its index"))
    return out


def _nchw_pool_kinks(s: InputSet) -> Kinks:
    x = np.asarray(s.args[0])
    pool_param = s.static[0]
    r, c = _pool_index(x.shape, pool_param)
    win = x[:, :, r, c]
    flat = win.reshape(*win.shape[:4], -1)
    is_max, count = window_ties(flat)
    tied = count > 1
    mask = np.zeros(x.shape, bool)
    hit = (is_max & tied[..., None]).reshape(win.shape)
    idx = np.nonzero(hit)
    rr = np.broadcast_to(r, win.shape[2:])[idx[2], idx[3], idx[4], idx[5]]
    cc = np.broadcast_to(c, win.shape[2:])[idx[2], idx[3], idx[4], idx[5]]
    mask[idx[0], idx[1], rr, cc] = True
    per_sample = [int(t) for t in tied.reshape(tied.shape[0], -1).sum(axis=1)]
    stats = {"windows": int(tied.size), "tied_windows": int(tied.sum()),
             "tied_windows_per_sample": per_sample}
    return Kinks((mask,), stats, f"{stats['tied_windows']} of {stats['windows']} windows tied "
                                 f"(per sample: {per_sample})")


def _pool_sets(seed: int) -> list[InputSet]:
    rng = np.random.default_rng(seed)
    p2 = {"pool_height": 2, "pool_width": 2, "stride": 2}
    images, _ = digits(2)
    return [
        InputSet("random", "random x (2, 3, 6, 6), pool 2x2 stride 2",
                 (rng.standard_normal((2, 3, 6, 6)),), (p2,)),
        InputSet("random", "random x (2, 2, 4, 6), pool 2x2 stride 2: not square",
                 (rng.standard_normal((2, 2, 4, 6)),), (p2,),
                 note="rows and columns differ: swapped indices show"),
        InputSet("overlap", "random x (1, 2, 5, 7), pool 2x3 stride 1",
                 (rng.standard_normal((1, 2, 5, 7)),),
                 ({"pool_height": 2, "pool_width": 3, "stride": 1},),
                 note="a window that is not square, overlapping"),
        InputSet("digits", "MNIST crops x (2, 1, 12, 12), pool 2x2 stride 2",
                 (images[:, None, 4:16, 4:16].copy(),), (p2,),
                 note="tie-rich: flat -0.5 background"),
        InputSet("overlap", "random x (2, 2, 5, 5), pool 2x2 stride 1",
                 (rng.standard_normal((2, 2, 5, 5)),),
                 ({"pool_height": 2, "pool_width": 2, "stride": 1},),
                 note="overlapping windows: `=` instead of `+=` shows here"),
        InputSet("overlap", "random x (1, 2, 7, 7), pool 3x3 stride 2",
                 (rng.standard_normal((1, 2, 7, 7)),),
                 ({"pool_height": 3, "pool_width": 3, "stride": 2},),
                 note="overlapping windows"),
        InputSet("flat", "constant x (1, 2, 4, 4), pool 2x2 stride 2 (every window tied)",
                 (np.full((1, 2, 4, 4), 0.25),), (p2,)),
    ]


def max_pool_spec() -> Spec:
    def forward(args, static):
        return tie_rule_max(nchw_windows(static[0])(args[0]), "split")

    def alternates(args, static, cotangent):
        return (tie_alternates(nchw_windows(static[0]), args, cotangent)
                + _pool_overwrite(as_np(args[0]), static[0], cotangent)
                + _pool_wrong(as_np(args[0]), static[0], cotangent))

    def subgradient(args, static, cotangent, i, hand, tol):
        x = as_np(args[0])
        ph, pw, stride = pool_geometry(static[0])
        if hand.shape != x.shape or stride < ph or stride < pw:
            return None  # overlapping windows share inputs: no per-window test
        r, c = _pool_index(x.shape, static[0])
        windows = x[:, :, r, c].reshape(*x.shape[:2], *r.shape[:1], c.shape[1], -1)
        hand_windows = hand[:, :, r, c].reshape(windows.shape)
        covered = np.zeros(x.shape, bool)
        covered[:, :, r, c] = True
        g = as_np(cotangent)
        atol = tol * max(float(np.max(np.abs(g), initial=0.0)), 1e-300)
        if np.max(np.abs(np.where(covered, 0.0, hand)), initial=0.0) > atol:
            return None
        ok = window_subgradient(windows, hand_windows, g, tol,
                                float(np.max(np.abs(g), initial=0.0)))
        return "other subgradient" if ok else None

    reference = Reference("max over each window (NCHW)", forward, alternates, _nchw_pool_kinks,
                          subgradient)
    return Spec("max_pool", ("x",), {"x": ("sample", "channel", "row", "column"),
                                   "out": ("sample", "channel", "row", "column")}, reference,
                _pool_sets, ("pool_param",), layouts=("max_pool", "max_pool_nhwc_param"))


SPECS = {
    "maxpool2": maxpool2_spec, "max_pool": max_pool_spec,
    # JAX code without a config dict: a 2x2 pool, stride 2
    "max_pool_nchw": lambda: default_static(max_pool_spec(), "max_pool_nchw",
                                            ({"pool_height": 2, "pool_width": 2,
                                              "stride": 2},)),
    # code that pools one (C, H, W) image, 2x2 stride 2
    "max_pool_chw": lambda: unbatched(SPECS["max_pool_nchw"](), "max_pool_chw"),
    # CS231n's signature, channels last: x (N, H, W, C), pool_param
    "max_pool_nhwc_param": lambda: permuted(max_pool_spec()._replace(layouts=()),
                                            "max_pool_nhwc_param", (0, 2, 3, 1)),
    # channels last, (N, H, W, C) (Keras's, the specialisation's), 2x2 stride 2
    "max_pool_nhwc": lambda: permuted(SPECS["max_pool_nchw"](), "max_pool_nhwc",
                                      (0, 2, 3, 1)),
}


def max_pool_at(layout: str, window: int, stride: int) -> Spec | None:
    """A ``window`` x ``window``, ``stride`` max pool in ``layout`` ("nchw", "chw",
    "nhwc") for code that takes no pool_param, on the catalogue's inputs of that setting;
    None where there are none (only 2x2 stride 2, 2x2 stride 1, 3x3 stride 2 have)."""
    setting = ({"pool_height": window, "pool_width": window, "stride": stride},)
    base = default_static(max_pool_spec(), "max_pool_nchw", setting)
    if not base.input_sets(0):
        return None
    kind = f"max_pool_{layout}"
    if layout == "chw":
        return unbatched(base, kind)
    return permuted(base, kind, (0, 2, 3, 1)) if layout == "nhwc" else base


# ------------------------------------------------------------------ average pools

def _avg_overwrite(x: np.ndarray, pool_param, cotangent) -> list[Alternate]:
    """dx of an average pool whose overlapping windows are assigned with ``=``."""
    ph, pw, s = pool_geometry(pool_param)
    if s >= ph and s >= pw:
        return []
    dout = as_np(cotangent)
    dx = np.zeros_like(x)
    for i, j in itertools.product(range(dout.shape[2]), range(dout.shape[3])):
        dx[:, :, i * s:i * s + ph, j * s:j * s + pw] = dout[:, :, i, j][..., None, None] / (
            ph * pw)
    return [Alternate("overwrite", (dx,), False, "missing-accumulation",
                      "overlapping windows overwrite dx instead of adding to it (`=` where "
                      "`+=` belongs)")]


def _avg_as_max(x: np.ndarray, pool_param, cotangent) -> list[Alternate]:
    """The max pool's backward (each window's gradient to its first maximum)."""
    out = vjp(lambda v: tie_rule_max(nchw_windows(pool_param)(v), "first"), (x,), cotangent)
    return [wrong("max pool's backward", out, "each window's gradient goes to its maximum: "
                                              "the derivative of a max pool, not an average")]


def _avg_sets(seed: int) -> list[InputSet]:
    sets = _pool_sets(seed)
    return [s for s in sets if s.family != "flat"]


def avg_pool_spec() -> Spec:
    """CS231n-style average pool: x (N, C, H, W), ``pool_param`` {"pool_height",
    "pool_width", "stride"}; out = the mean of each window."""
    def forward(args, static):
        return jnp.mean(nchw_windows(static[0])(args[0]), axis=-1)

    def alternates(args, static, cotangent):
        x = as_np(args[0])
        return _avg_overwrite(x, static[0], cotangent) + _avg_as_max(x, static[0], cotangent)

    return Spec("avg_pool", ("x",), {"x": ("sample", "channel", "row", "column"),
                                     "out": ("sample", "channel", "row", "column")},
                Reference("mean over each window (NCHW)", forward, alternates), _avg_sets,
                ("pool_param",), names={"cs231n": r"(avg|average|mean)_?pool(ing)?",
                                        "module": module_name(r"(avg|average|mean)_?pool(ing)?")})


def _hparameters(pool_param) -> dict:
    return {"f": int(pool_param["pool_height"]), "stride": int(pool_param["stride"])}


def _as_pool_param(hparameters) -> dict:
    f = int(hparameters["f"])
    return {"pool_height": f, "pool_width": f, "stride": int(hparameters["stride"])}


def avg_pool_nhwc_spec() -> Spec:
    """The deep-learning specialisation's average pool, ``pool_forward(A_prev,
    hparameters, mode="average")``: A_prev (m, n_H, n_W, n_C), hparameters {"f",
    "stride"} (square f x f windows); its backward spreads each gradient over the window
    with ``distribute_value``. The inputs and alternates are the NCHW pool's, transposed
    (square windows only)."""
    base = avg_pool_spec()

    def to_nchw(x):
        return np.transpose(as_np(x), (0, 3, 1, 2))

    def forward(args, static):
        x = jnp.transpose(args[0], (0, 3, 1, 2))
        out = base.reference.forward((x,), (_as_pool_param(static[0]),))
        return jnp.transpose(out, (0, 2, 3, 1))

    def alternates(args, static, cotangent):
        return [a._replace(grads=(np.transpose(a.grads[0], (0, 2, 3, 1)),))
                for a in base.reference.alternates(
                    (to_nchw(args[0]),), (_as_pool_param(static[0]),),
                    np.transpose(as_np(cotangent), (0, 3, 1, 2)))]

    def input_sets(seed):
        return [s._replace(args=(np.transpose(s.args[0], (0, 2, 3, 1)),),
                           static=(_hparameters(s.static[0]),),
                           name=s.name.replace("x (", "A_prev NCHW (") + ", given channels last")
                for s in base.input_sets(seed)
                if s.static[0]["pool_height"] == s.static[0]["pool_width"]]

    return Spec("avg_pool_nhwc", ("A_prev",),
                {"A_prev": ("sample", "row", "column", "channel"),
                 "out": ("sample", "row", "column", "channel")},
                Reference("mean over each f x f window (NHWC)", forward, alternates),
                input_sets, ("hparameters",))


SPECS.update({"avg_pool": avg_pool_spec, "avg_pool_nhwc": avg_pool_nhwc_spec})


# ------------------------------------------------------------------ global average pools

GAP_LAYOUTS = {
    "global_avg_pool": ("x (N, C, H, W) -> (N, C)", (2, 3), False),
    "global_avg_pool_keepdims": ("x (N, C, H, W) -> (N, C, 1, 1)", (2, 3), True),
    "global_avg_pool_nhwc": ("x (N, H, W, C) -> (N, C)", (1, 2), False),
}


def _gap_sets(kind: str):
    """Rows and columns differ, channels differ from both, and a batch of one."""
    spatial = GAP_LAYOUTS[kind][1]

    def input_sets(seed):
        rng = np.random.default_rng([seed, 18, 5])
        sets = []
        for n, c, h, w, family in ((2, 3, 4, 5, "random"), (3, 2, 5, 3, "random"),
                                   (1, 4, 3, 2, "batch-of-one")):
            shape = (n, c, h, w) if spatial == (2, 3) else (n, h, w, c)
            sets.append(InputSet(family, f"random x {shape}" + (
                ": a batch of one (N = 1)" if n == 1 else ""),
                (rng.standard_normal(shape),),
                note="H != W and C != H, W: a mean over the wrong axes shows"))
        return sets
    return input_sets


def global_avg_pool_spec(kind: str = "global_avg_pool") -> Spec:
    """Global average pooling: each channel's mean over its H x W positions (kind
    ``global_avg_pool``: NCHW -> (N, C); ``_keepdims``: -> (N, C, 1, 1); ``_nhwc``: channels
    last -> (N, C)). Its backward spreads each gradient evenly, ``dout / (H W)``, over the
    channel's positions. Alternates: the ``1/(H W)`` left out (a sum pool's derivative),
    the batch counted in the mean (``/ (N H W)``), the gradient sent to one position of
    each map (a max pool's backward at the first entry)."""
    what, spatial, keep = GAP_LAYOUTS[kind]

    def forward(args, static):
        return jnp.mean(args[0], axis=spatial, keepdims=keep)

    def alternates(args, static, cotangent):
        x = as_np(args[0])
        g = as_np(cotangent)
        g = g if keep else np.expand_dims(g, spatial)
        h, w = (x.shape[a] for a in spatial)
        spread = np.broadcast_to(g, x.shape)
        first = np.zeros_like(x)
        index = [slice(None)] * 4
        index[spatial[0]], index[spatial[1]] = slice(0, 1), slice(0, 1)
        first[tuple(index)] = g
        out = [wrong("1/(H W) left out", (spread.copy(),),
                     f"dout spread over the {h} x {w} positions without dividing by H W = "
                     f"{h * w}: a sum pool's derivative"),
               wrong("one position", (first,),
                     "each channel's gradient sent to its first position only (a max "
                     "pool's backward), where it spreads evenly over H x W")]
        if x.shape[0] > 1:
            out.append(wrong("batch in the mean", (spread / (x.shape[0] * h * w),),
                             f"divided by N H W = {x.shape[0] * h * w}: the batch counted "
                             f"in the mean, where H W = {h * w} belongs"))
        return out

    axes = ("sample", "channel", "row", "column") if spatial == (2, 3) else (
        "sample", "row", "column", "channel")
    out_axes = ("sample", "channel", "1", "1") if keep else ("sample", "channel")
    core = r"global_?(avg|average|mean)_?pool(ing)?|gap|g_?avg_?pool"
    return Spec(kind, ("x",), {"x": axes, "out": out_axes},
                Reference(f"mean over H, W ({what})", forward, alternates),
                _gap_sets(kind),
                names={"cs231n": core + r"(_?2d)?", "module": module_name(core)}
                if kind == "global_avg_pool" else None,
                layouts=tuple(GAP_LAYOUTS) if kind == "global_avg_pool" else ())


SPECS.update({kind: (lambda k=kind: global_avg_pool_spec(k)) for kind in GAP_LAYOUTS})
