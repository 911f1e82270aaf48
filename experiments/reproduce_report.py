"""Reproduce the report's results with many seeds, and say where its single runs fall.

The report ran each setting once. This script runs the report's protocol (per-image
SGD, learning rate 0.005, the report's hand-derived gradients and max-pool tie rule, one
pass, no shuffling) for 20 seeds at once (``TrainConfig(seeds=20)``, one vmapped
program per setting) and puts the report's number beside our mean ± std, min-max, the
95% t-interval of the mean and the 2.5-97.5 percentile range of the single runs:

(a) the untrained network (the same 20 initialisations that (c) trains), scored on the
    first 1,000 training images in windows of 100 (report: loss ~2.303, 6-14% per 100);
(b) only the softmax layer trained (``freeze_conv=True``) on 2,000 images, the report's
    second step (report: last 100 images 0.900 loss, 78% accuracy);
(c) the full network after 1,000 / 2,000 / 3,000 / 4,000 training images (plus 5,000
    when the data has them), tested on the first 800 test images (report: 70.6%,
    83.9%, 86.9% after 1,000 / 2,000 / 3,000).

Run from the repository root::

    python -m experiments.reproduce_report            # 20 seeds, ~1-2 minutes on 2 cores
    python -m experiments.reproduce_report --quick    # smoke run: 3 seeds, tiny sizes
    python -m experiments.reproduce_report --data mnist   # the report's own images

On ``mnist-embedded`` (the default) the images are 4,000 / 1,000 real MNIST digits but
not the report's (it used the first N of the full 60,000 / 10,000); ``--data mnist``
trains on exactly the report's images.

Writes to ``--out`` (default ``experiments/results``): ``reproduce_report.json`` (every
per-seed number, the report's logs, timings, provenance), ``reproduce_report_running.png``
(running 100-image accuracy with bands across seeds, the report's logs on top),
``reproduce_report_test.png`` (test accuracy and loss against training images) and the
regenerated ``README.md``.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from experiments import common

NAME = "reproduce_report"
WINDOW = 100

# The report's logs (report-zh.md, section 3.3): per-100-image loss and accuracy, test.
REPORT = {
    "untrained": {
        "loss": [2.303, 2.303, 2.303, 2.304, 2.303, 2.303, 2.303, 2.303, 2.303, 2.303],
        "accuracy": [0.06, 0.07, 0.10, 0.12, 0.08, 0.09, 0.09, 0.09, 0.09, 0.14],
    },
    "softmax_only": {
        "loss": [2.202, 2.048, 1.855, 1.685, 1.600, 1.633, 1.544, 1.392, 1.303, 1.290,
                 1.322, 1.242, 1.203, 1.096, 1.068, 1.075, 0.902, 0.788, 0.889, 0.900],
        "accuracy": [0.22, 0.38, 0.57, 0.68, 0.66, 0.59, 0.67, 0.72, 0.76, 0.74,
                     0.66, 0.74, 0.70, 0.79, 0.74, 0.84, 0.84, 0.88, 0.83, 0.78],
    },
    "full": {
        1000: {"test_loss": 0.8299098099688693, "test_accuracy": 0.70625,
               "accuracy": [0.19, 0.33, 0.59, 0.67, 0.71, 0.67, 0.75, 0.81, 0.76, 0.82]},
        2000: {"test_loss": 0.4979463480601525, "test_accuracy": 0.83875,
               "accuracy": [0.23, 0.42, 0.65, 0.75, 0.74, 0.69, 0.75, 0.81, 0.78, 0.82,
                            0.72, 0.79, 0.79, 0.81, 0.84, 0.81, 0.84, 0.88, 0.87, 0.85]},
        3000: {"test_loss": 0.4589509231631546, "test_accuracy": 0.86875,
               "accuracy": [0.20, 0.38, 0.62, 0.69, 0.72, 0.68, 0.73, 0.80, 0.76, 0.81,
                            0.72, 0.79, 0.77, 0.80, 0.84, 0.82, 0.85, 0.90, 0.87, 0.86,
                            0.82, 0.94, 0.91, 0.85, 0.84, 0.94, 0.84, 0.85, 0.86, 0.85]},
    },
    "claimed_5000": "close to 90% (no log)",
}


def settings(args, num_train: int) -> dict:
    if args.quick:
        return {"seeds": 2, "sizes": [200], "test_size": 100, "untrained_images": 200,
                "softmax_images": 200}
    sizes = [1000, 2000, 3000, 4000] + ([5000] if num_train >= 5000 else [])
    return {"seeds": 20, "sizes": [s for s in sizes if s <= num_train], "test_size": 800,
            "untrained_images": 1000, "softmax_images": 2000}


def windows_matrix(result) -> dict:
    """Running 100-image metrics of a TrainResult: steps and (windows, seeds) arrays."""
    return {"steps": [w.step for w in result.windows],
            "accuracy": np.stack([w.accuracy for w in result.windows]),
            "loss": np.stack([w.loss for w in result.windows])}


def score_untrained(config, ds, n: int) -> dict:
    """Forward only: the initial parameters of every seed scored in windows of 100."""
    import jax.numpy as jnp

    from jaxcnn import model
    from jaxcnn.training import train

    state = train.init_state(config, ds.num_classes)
    images = model.normalize(ds.train_images[:n], jnp.float32)
    labels = jnp.asarray(ds.train_labels[:n], jnp.int32)
    losses, accs = [], []
    for start in range(0, n, WINDOW):
        loss, acc = train.evaluate(state.params, images[start:start + WINDOW],
                                   labels[start:start + WINDOW])
        losses.append(loss)
        accs.append(acc)
    return {"steps": list(range(WINDOW, n + 1, WINDOW)), "loss": np.stack(losses),
            "accuracy": np.stack(accs)}


def main(args) -> int:

    log, ds, s, base, seeds = common.start(args, NAME, settings, log_every=WINDOW)
    timings = {}

    # (a) untrained
    log(f"(a) untrained: {s['seeds']} initialisations scored on {s['untrained_images']:,} "
        "training images")
    untrained = score_untrained(base, ds, s["untrained_images"])
    timings["untrained"] = log.elapsed
    window_acc = untrained["accuracy"]  # (windows, seeds)
    lo, hi = min(REPORT["untrained"]["accuracy"]), max(REPORT["untrained"]["accuracy"])
    out_untrained = {
        "images": s["untrained_images"],
        "loss": common.describe(untrained["loss"].mean(axis=0)),
        "accuracy": common.describe(window_acc.mean(axis=0)),
        "window_accuracy": common.describe(window_acc.reshape(-1)),
        "window_loss": common.describe(untrained["loss"].reshape(-1)),
        "windows_in_report_range": float(np.mean((window_acc >= lo - 1e-9)
                                                 & (window_acc <= hi + 1e-9))),
        "steps": untrained["steps"], "window_accuracy_matrix": window_acc,
    }

    # (b) softmax layer only; (c) full network. Each in the report's fixed image order
    # (all seeds see the same images, only the initialisation differs) and with an own
    # image order per seed (shuffle=True), which adds the order-to-order variation.
    def run(label, **changes) -> tuple[dict, dict]:
        out, running = {}, None
        for order, shuffle in (("fixed", False), ("shuffled", True)):
            config = dataclasses.replace(base, shuffle=shuffle, **changes)
            result = common.train_logged(config, ds, log, f"{label}, {order} order")
            w = windows_matrix(result)
            out[order] = {
                "config": config.to_dict(), "timings": result.timings,
                "test_loss": common.describe(result.test_loss),
                "test_accuracy": common.describe(result.test_accuracy),
                "last_window_loss": common.describe(w["loss"][-1]),
                "last_window_accuracy": common.describe(w["accuracy"][-1]),
            }
            if order == "fixed":
                running = {"steps": w["steps"], "window_accuracy_matrix": w["accuracy"],
                           "window_loss_matrix": w["loss"]}
        return out, running

    out_softmax, running_softmax = run("(b) softmax layer only, "
                                       f"{s['softmax_images']:,} images",
                                       train_size=s["softmax_images"], freeze_conv=True)
    out_softmax |= {"images": s["softmax_images"]} | running_softmax
    timings["softmax_only"] = log.elapsed
    out_full, running = {}, None
    for size in s["sizes"]:
        out_full[str(size)], running = run(f"(c) full network, {size:,} images",
                                           train_size=size)
        running["size"] = size
    timings["full"] = log.elapsed

    comparison = compare(out_untrained, out_softmax, out_full, s["test_size"])
    log("plotting")
    plots = [plot_running(args.out, out_untrained, out_softmax, running),
             plot_test(args.out, out_full, s["test_size"])]
    payload = {"settings": s, "seeds": seeds, "report": REPORT, "untrained": out_untrained,
               "softmax_only": out_softmax, "full": out_full, "running": running,
               "comparison": comparison, "plots": plots,
               "phase_end_seconds": timings | {"all": log.elapsed}}
    common.write_result(args, NAME, payload, log)
    for row in comparison:
        print(f"{row['setting']:<52} report {row['report']:<8} ours {row['ours']:<15} "
              f"{row['verdict']}; {row.get('verdict_shuffled') or ''}")
    return 0


def _row(setting: str, report_text: str, report_value, d: dict, kind: str,
         shuffled: dict | None = None, test_size: int | None = None) -> dict:
    """A comparison row: the report's number, our fixed-order runs ``d`` and, when given,
    our own-order runs ``shuffled``; for test accuracies also a z-score that adds the
    binomial sampling error of a different test set of ``test_size`` images."""
    pct = kind == "accuracy"
    scale, digits, unit = (100, 1, "%") if pct else (1, 3, "")
    row = {"setting": setting, "kind": kind, "report": report_text,
           "report_value": report_value, "ours": common.pm(d, scale, digits, unit),
           "min_max": common.minmax(d, scale, digits, unit),
           "mean_ci95": common.rng(d["mean_ci95"], scale, digits, unit),
           "runs_95": common.rng(d["runs_95"], scale, digits, unit), "n": d["n"]}
    if report_value is not None:
        where = common.place(report_value, d, scale, unit, digits)
        row |= {k: where[k] for k in ("rank", "inside_min_max", "inside_runs_95",
                                      "inside_mean_ci95", "verdict")}
    if shuffled is not None:
        row["ours_shuffled"] = (f"{common.pm(shuffled, scale, digits, unit)} "
                                f"({common.minmax(shuffled, scale, digits, unit)})")
        if report_value is not None:
            where = common.place(report_value, shuffled, scale, unit, digits)
            row["inside_runs_95_shuffled"] = where["inside_runs_95"]
            row["verdict_shuffled"] = where["verdict"]
    if pct and test_size and shuffled is not None and report_value is not None:
        p = shuffled["mean"]
        sd = float(np.sqrt(shuffled["std"] ** 2 + p * (1 - p) / test_size))
        z = (report_value - p) / sd
        row |= {"predictive_sd": sd, "z": z}
    return row


def compare(untrained: dict, softmax: dict, full: dict, test_size: int) -> list[dict]:
    """One row per number the report gives: its value, ours, and where it falls."""
    n = untrained["images"]
    wl = untrained["window_loss"]
    row = _row("untrained, loss per 100 images", "2.303–2.304", None, wl, "loss")
    f4 = lambda x: f"{x:.4f}"  # noqa: E731
    inside = all(wl["min"] <= v <= wl["max"] for v in (2.303, 2.304))
    row |= {"ours": common.pm(wl, 1, 4, ""), "min_max": common.minmax(wl, 1, 4, ""),
            "mean_ci95": common.rng(wl["mean_ci95"], 1, 4, ""),
            "runs_95": common.rng(wl["runs_95"], 1, 4, ""),
            "verdict": f"the report's 2.303 and 2.304 are {'inside' if inside else 'not inside'}"
                       f" our windows' {f4(wl['min'])}–{f4(wl['max'])}; all ≈ ln 10 = 2.3026, "
                       "the loss of a uniform guess"}
    rows = [row]
    rows.append(_row(f"untrained, accuracy over {n:,} images", "9.3% (its 10 windows)",
                     float(np.mean(REPORT["untrained"]["accuracy"])), untrained["accuracy"],
                     "accuracy"))
    wa = untrained["window_accuracy"]
    row = _row("untrained, accuracy per 100 images", "6–14%", None, wa, "accuracy")
    row["verdict"] = (f"{untrained['windows_in_report_range']:.0%} of our {wa['n']} windows "
                      f"({len(untrained['steps'])} per seed) lie in 6–14%")
    rows.append(row)
    m = softmax["images"]
    for kind in ("loss", "accuracy"):
        rows.append(_row(f"softmax layer only, {m:,} images: last 100, {kind}",
                         f"{REPORT['softmax_only'][kind][-1]:.3f}" if kind == "loss"
                         else f"{REPORT['softmax_only'][kind][-1]:.0%}",
                         REPORT["softmax_only"][kind][-1],
                         softmax["fixed"][f"last_window_{kind}"], kind,
                         softmax["shuffled"][f"last_window_{kind}"]))
    for size, ours in full.items():
        rep = REPORT["full"].get(int(size))
        if rep is None:
            continue
        rows.append(_row(f"full network, {int(size):,} images: test loss",
                         f"{rep['test_loss']:.3f}", rep["test_loss"],
                         ours["fixed"]["test_loss"], "loss", ours["shuffled"]["test_loss"]))
        rows.append(_row(f"full network, {int(size):,} images: test accuracy",
                         f"{rep['test_accuracy']:.1%}", rep["test_accuracy"],
                         ours["fixed"]["test_accuracy"], "accuracy",
                         ours["shuffled"]["test_accuracy"], test_size))
    return rows


def plot_running(out, untrained: dict, softmax: dict, running: dict | None) -> str:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, ours, key, title in ((axes[0], untrained, "untrained", "(a) untrained, forward only"),
                                 (axes[1], softmax, "softmax_only",
                                  "(b) softmax layer trained only")):
        common.band(ax, ours["steps"], np.asarray(ours["window_accuracy_matrix"]).T,
                    "ours: mean, 95% and min-max of seeds")
        rep = REPORT[key]["accuracy"]
        ax.plot(np.arange(1, len(rep) + 1) * WINDOW, np.asarray(rep) * 100, "k^", ms=5,
                label="report (one run)")
        ax.set_title(title)
    ax = axes[2]
    if running is not None:
        common.band(ax, running["steps"], np.asarray(running["window_accuracy_matrix"]).T,
                    f"ours ({running['size']:,} images)")
    for (size, rep), marker in zip(REPORT["full"].items(), ("o", "s", "^"), strict=True):
        acc = rep["accuracy"]
        ax.plot(np.arange(1, len(acc) + 1) * WINDOW, np.asarray(acc) * 100, marker,
                color="k", mfc="none", ms=5, label=f"report, {size:,}-image run")
    ax.set_title("(c) full network")
    for ax, where in zip(axes, ("upper right", "lower right", "lower right"), strict=True):
        ax.set_xlabel("training step (images seen)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc=where)
    axes[0].set_ylabel("accuracy over the past 100 images (%)")
    fig.suptitle("Running 100-image accuracy: band = our seeds (dark 2.5-97.5%, light "
                 "min-max), markers = the report's logs", fontsize=10)
    return common.save(fig, out, f"{NAME}_running.png")


def plot_test(out, full: dict, test_size: int) -> str:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = [int(s) for s in full]
    width = 0.06 * (max(sizes) - min(sizes) if len(sizes) > 1 else sizes[0])
    rng = np.random.default_rng(0)
    for ax, key, scale in ((axes[0], "test_accuracy", 100), (axes[1], "test_loss", 1)):
        for order, shift, color, text in (("fixed", -width, "C0", "report's image order"),
                                          ("shuffled", width, "C2", "own order per seed")):
            for size in sizes:
                d = full[str(size)][order][key]
                runs = np.asarray(d["per_seed"]) * scale
                x = size + shift + rng.uniform(-width / 3, width / 3, runs.size)
                ax.plot(x, runs, ".", color=color, alpha=0.5)
                ax.errorbar(size + shift, d["mean"] * scale, yerr=d["std"] * scale, fmt="o",
                            color=color, capsize=4,
                            label=f"ours, {text}: seeds, mean ± std" if size == sizes[0]
                            else None)
        rep = [(s, r[key]) for s, r in REPORT["full"].items()]
        ax.plot([s for s, _ in rep], [v * scale for _, v in rep], "r*", ms=12,
                label="report (one run each)")
        ax.set_xlabel("training images (one pass, per-image SGD)")
        ax.set_xticks(sorted(set(sizes) | set(REPORT["full"])))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"test accuracy on {test_size} images (%)")
    axes[1].set_ylabel(f"test loss on {test_size} images")
    return common.save(fig, out, f"{NAME}_test.png")


def markdown(r: dict) -> str:
    s = r["settings"]
    rows = r["comparison"]
    lines = [
        f"The report's protocol (per-image SGD, lr 0.005, hand-derived gradients with the "
        f"report's tie rule, one pass), **{s['seeds']} seeds** per setting, tested on the "
        f"first {s['test_size']} test images. \"Report's order\" runs see the images in "
        "the data's order like the report, so only the initialisation differs between "
        "seeds; \"own order\" runs (`shuffle=True`) also draw their own image order. "
        "Each report number is ONE run: compare it with the runs' spread (min–max, "
        "2.5–97.5%), not with the CI of the mean.",
        "",
        common.table(
            ["setting", "report (1 run)", "ours, report's order: mean ± std", "min–max",
             "95% CI of mean", "runs 2.5–97.5%", "the report's number vs these runs",
             "ours, own order: mean ± std (min–max)"],
            [[row["setting"], row["report"], row["ours"], row["min_max"], row["mean_ci95"],
              row["runs_95"], row["verdict"], row.get("ours_shuffled", "")]
             for row in rows]),
        "",
        _in_short(rows),
        "",
        "**Where the report's numbers fall:**",
        "",
        *[f"- {line}" for line in _sentences(rows)],
        "",
    ]
    zs = [row for row in rows if "z" in row]
    if zs:
        lines += [
            "Our seeds share one set of images; the report's runs used other images (and, "
            "on the default data, another test set). Adding the binomial sampling error of "
            f"a different {s['test_size']}-image test set to the spread of our own-order "
            "runs gives the z-score of each report accuracy: "
            + "; ".join(f"{row['setting'].split(':')[0].replace('full network, ', '')}: "
                        f"z = {row['z']:+.1f} ({_z_words(row['z'])})" for row in zs) + ".",
            ""]
    extra = []
    for size, d in r["full"].items():
        if int(size) > max(REPORT["full"]):
            f, sh = d["fixed"], d["shuffled"]
            extra.append(f"{int(size):,} images: test accuracy {common.pm(f['test_accuracy'])}"
                         f" (min–max {common.minmax(f['test_accuracy'])}) in the report's "
                         f"order, {common.pm(sh['test_accuracy'])} (min–max "
                         f"{common.minmax(sh['test_accuracy'])}) in own orders")
    if extra:
        lines += ["Beyond the report's sizes (it claims \"close to 90%\" after 5,000 images, "
                  "without a log): " + "; ".join(extra) + ".", ""]
    so = r["softmax_only"]["fixed"]
    lines += [f"With only the softmax layer trained, the test accuracy after "
              f"{s['softmax_images']:,} images is {common.pm(so['test_accuracy'])} "
              "(the report gives no test number for this step).", ""]
    if r["data"] == "mnist-embedded":
        lines += ["Caveat: the default data is the embedded 4,000 / 1,000 split of real MNIST "
                  "digits, not the report's images (the first N of the full 60,000 / "
                  "10,000); `--data mnist` trains and tests on exactly the report's images.",
                  ""]
    lines += [f"![running accuracy]({r['plots'][0]})", "", f"![test accuracy]({r['plots'][1]})"]
    return "\n".join(lines)


def _in_short(rows: list[dict]) -> str:
    """One paragraph: which report numbers are ordinary runs and which are not."""
    typical = [row["setting"] for row in rows if row.get("report_value") is not None
               and (row.get("inside_runs_95") or row.get("inside_runs_95_shuffled"))]
    zs = [row for row in rows if "z" in row]
    ok = [row for row in zs if abs(row["z"]) < 2]
    bad = [row for row in zs if abs(row["z"]) >= 2]
    size = lambda row: row["setting"].split(":")[0].replace("full network, ", "")  # noqa: E731
    text = ("**In short.** Inside the 2.5–97.5% range of our single runs (in the report's "
            "order or in own orders): " + ("; ".join(typical) if typical else "none") + ".")
    if ok:
        text += (" Test accuracies consistent with ordinary run-to-run and test-set variation"
                 " (|z| < 2): " + ", ".join(f"{size(r)} (z = {r['z']:+.1f})" for r in ok)
                 + ".")
    if bad:
        text += (" Outside it (|z| ≥ 2): " + ", ".join(
            f"{size(r)}: the report's {r['report']} (z = {r['z']:+.1f})" for r in bad) + ".")
    return text


def _z_words(z: float) -> str:
    if abs(z) < 2:
        return "within ordinary run-to-run and test-set variation"
    return "outside it: " + ("lower" if z < 0 else "higher") + " than such variation explains"


def _sentences(rows: list[dict]) -> list[str]:
    out = []
    inside = [row["setting"] for row in rows
              if row.get("inside_runs_95") and row.get("report_value") is not None]
    if inside:
        out.append(f"Inside the 2.5–97.5% range of our runs: {'; '.join(inside)}.")
    for row in rows:
        if row.get("report_value") is None:
            out.append(f"{row['setting'][0].upper()}{row['setting'][1:]}: {row['verdict']}.")
        elif not row.get("inside_runs_95"):
            shuffled = (f" (own-order runs: {row['verdict_shuffled']})"
                        if row.get("verdict_shuffled") else "")
            out.append(f"{row['setting'][0].upper()}{row['setting'][1:]}: the report's "
                       f"{row['report']} is {row['verdict']}{shuffled}.")
    return out


def build_parser():
    return common.make_parser(NAME, __doc__)


def run(argv=None) -> int:
    """Command-line entry point; ``argv`` defaults to ``sys.argv[1:]``."""
    return common.run_cli(build_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(run())
