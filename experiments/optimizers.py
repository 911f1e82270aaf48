"""Optimizers for the report's exact architecture: which trains it best, per epoch and
per second, how accuracy grows with the training set, and the best accuracy it reaches.

Same network (conv3x3 with 8 filters -> 2x2 max-pool -> softmax), same report
initialisation, the report's hand-derived gradients with the TRUE max-pool tie rule
(``ties="split"``, identical to ``jax.grad``; the report's own rule inflates the filter
gradient about 3x, see ``gradient_ties``, and would blur an optimizer comparison), images
reshuffled every epoch. Four optimizers:

* **per-sample SGD** (the report): one image per step, plain SGD;
* **mini-batch SGD**: batches of 32, plain SGD;
* **momentum**: batches of 32, heavy-ball SGD, momentum 0.9;
* **Adam** (optax): batches of 32.

Protocol (default settings; the embedded 4,000 / 1,000 MNIST split):

1. *Learning rates are chosen on a validation split, never on the test set*: each
   optimizer trains on the first 3,000 training images with three learning rates for 10
   epochs (3 seeds) and is scored on the last 1,000 training images after every epoch;
   the (learning rate, epochs) with the best mean validation accuracy is chosen.
2. *Equal epochs*: each optimizer, at its chosen learning rate, trains on all 4,000
   images for 10 epochs (5 seeds) and is tested on the 1,000 test images after every
   epoch.
3. *Equal wall time*: the training seconds per epoch of ONE model (1 seed, compile time
   excluded, measured on this machine) turn the epoch curves into time curves; the
   table reads each optimizer's accuracy after the time per-sample SGD needs for 1, 2
   and 5 epochs.
4. *Training-set size*: 250 ... 4,000 images (the whole split), 5 epochs each.
5. *Best accuracy*: the validation-chosen (optimizer, learning rate, epochs), tested;
   to beat: a prototype's 91.1-91.6% (Adam, batch 32, 5 epochs, 4,000 / 1,000).
6. *Fashion-MNIST* (60,000 / 10,000, ``--fashion DIR``, default
   ``/usr/share/datasets/fashion-mnist`` from the ``dataset-fashion-mnist`` package;
   skipped with a message when absent): the report's protocol at scale (per-sample SGD,
   lr 0.005, 3 epochs) and the chosen optimizer, learning rate and epochs, untuned.
7. With ``--data mnist`` (or any source larger than the embedded split): the report's
   protocol at full scale, next to the anchor of the blog series the report follows
   (Keras, this architecture, per-sample SGD lr 0.005, 3 epochs on 60,000: 97.44%).

Run from the repository root::

    python -m experiments.optimizers              # several minutes on 2 cores
    python -m experiments.optimizers --quick      # smoke run (no sweep, no Fashion)
    python -m experiments.optimizers --no-fashion # skip step 6

Writes to ``--out`` (default ``experiments/results``): ``optimizers.json``,
``optimizers_sweep.png`` (validation accuracy per learning rate), ``optimizers_epochs.png``
(test accuracy against epochs and against training seconds), ``optimizers_sizes.png``
(test accuracy against training-set size), ``optimizers_fashion.png`` (when Fashion-MNIST
ran) and the regenerated ``README.md``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from experiments import common

NAME = "optimizers"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
PROTOTYPE = (0.911, 0.916)  # Adam, batch 32, 5 epochs, 4,000 / 1,000: the accuracy to beat

# key -> (label, TrainConfig overrides, learning-rate grid; the middle one is the default)
OPTIMIZERS = {
    "per_sample_sgd": ("per-sample SGD (report)", {"optimizer": "sgd", "batch_size": 1},
                       [0.005, 0.01, 0.02]),
    "minibatch_sgd": ("mini-batch SGD (32)", {"optimizer": "sgd", "batch_size": 32},
                      [0.05, 0.1, 0.2]),
    "momentum": ("momentum 0.9 (32)", {"optimizer": "momentum", "batch_size": 32},
                 [0.01, 0.03, 0.1]),
    "adam": ("Adam (32)", {"optimizer": "adam", "batch_size": 32}, [0.003, 0.01, 0.03]),
}
GRADIENT = {"grad": "manual", "ties": "split"}  # the true gradient (== jax.grad)
REPORT_KEY = "per_sample_sgd"


def settings(args, num_train: int, num_test: int) -> dict:
    if args.quick:
        return {"sweep": False, "sweep_seeds": 1, "seeds": 2, "epochs": 2, "size_epochs": 2,
                "train_size": min(300, num_train), "test_size": min(100, num_test),
                "sweep_train": 200, "validation": 100, "sizes": [],
                "budgets_in_report_epochs": [1, 2], "timing_runs": False,
                "fashion_seeds": 0, "full_scale_seeds": 1}
    validation = min(1000, num_train // 4)
    sizes = ([250, 500, 1000, 2000] if num_train <= 5000
             else [1000, 4000, 15000])
    return {"sweep": True, "sweep_seeds": 3, "seeds": 5, "epochs": 10, "size_epochs": 5,
            "train_size": num_train, "test_size": num_test,
            "sweep_train": min(3000, num_train - validation), "validation": validation,
            "sizes": [s for s in sizes if s < num_train],
            "budgets_in_report_epochs": [1, 2, 5], "timing_runs": True,
            "fashion_seeds": 3, "full_scale_seeds": 2}


def base_config(args, key: str, lr: float, **changes):
    from jaxcnn.training.config import TrainConfig

    _, overrides, _ = OPTIMIZERS[key]
    return TrainConfig(**{"data": args.data, "seed": args.seed, "shuffle": True, "lr": lr,
                          "log_every": 1000 if overrides["batch_size"] == 1 else 100,
                          **GRADIENT, **overrides, **changes})


def train_per_epoch(config, dataset, log, label: str) -> tuple[object, list[dict]]:
    """Train; after every epoch score the dataset's test split (per seed)."""
    import jax.numpy as jnp

    from jaxcnn import model
    from jaxcnn.training import train

    n_test = config.test_size or len(dataset.test_labels)
    test_x = model.normalize(dataset.test_images[:n_test], jnp.float32)
    test_y = jnp.asarray(dataset.test_labels[:n_test], jnp.int32)
    per_epoch = []

    def on_epoch(result):
        loss, acc = train.evaluate(result.state.params, test_x, test_y)
        per_epoch.append({"epoch": result.epochs_done, "test_accuracy": common.describe(acc),
                          "test_loss": common.describe(loss)})

    result = common.train_logged(config, dataset, log, label, on_epoch=on_epoch)
    return result, per_epoch


def validation_split(ds, n_train: int, n_val: int):
    """First ``n_train`` training images to train on, the last ``n_val`` to validate."""
    from jaxcnn import data

    return data.Dataset(f"{ds.source} (validation split)", ds.train_images[:n_train],
                        ds.train_labels[:n_train], ds.train_images[-n_val:],
                        ds.train_labels[-n_val:], ds.class_names)


def sweep(args, ds, s: dict, log) -> dict:
    """Validation accuracy per (optimizer, lr, epoch); the chosen lr and epochs."""
    from jaxcnn.errors import DivergenceError

    val_ds = validation_split(ds, s["sweep_train"], s["validation"])
    out = {}
    for key, (label, _, grid) in OPTIMIZERS.items():
        runs = {}
        for lr in grid:
            config = base_config(args, key, lr, seeds=s["sweep_seeds"], epochs=s["epochs"],
                                 train_size=s["sweep_train"], test_size=s["validation"])
            try:
                _, per_epoch = train_per_epoch(config, val_ds, log,
                                               f"sweep {label} lr {lr:g}")
                runs[str(lr)] = {"val_accuracy": [e["test_accuracy"] for e in per_epoch]}
            except DivergenceError as exc:
                log(f"  diverged: {exc}")
                runs[str(lr)] = {"diverged": str(exc)}
        ranked = sorted(((float(lr), i + 1, d["mean"]) for lr, r in runs.items()
                         for i, d in enumerate(r.get("val_accuracy", []))),
                        key=lambda t: (-t[2], t[1]))
        if not ranked:
            raise DivergenceError(f"{label}: every learning rate of the sweep diverged")
        best = ranked[0]
        fallbacks = list(dict.fromkeys(lr for lr, _, _ in ranked))
        out[key] = {"runs": runs, "chosen_lr": best[0], "chosen_epochs": best[1],
                    "val_accuracy": best[2], "lr_ranking": fallbacks}
        log(f"  {label}: chose lr {best[0]:g}, {best[1]} epochs "
            f"(validation accuracy {best[2]:.2%})")
    return out


def main(args) -> int:
    from jaxcnn.errors import DivergenceError

    log = common.Log(NAME)
    common.setup(args)
    ds = common.load_data(args)
    s = settings(args, len(ds.train_labels), len(ds.test_labels))
    seeds = list(range(args.seed, args.seed + s["seeds"]))

    # 1. learning rates and epochs, on a validation split
    if s["sweep"]:
        chosen = sweep(args, ds, s, log)
    else:
        chosen = {key: {"runs": {}, "chosen_lr": grid[1], "chosen_epochs": s["epochs"],
                        "val_accuracy": None, "lr_ranking": [grid[1]]}
                  for key, (_, _, grid) in OPTIMIZERS.items()}

    # 2. equal epochs on the whole training split, tested after every epoch; should the
    # chosen learning rate diverge here, the next best of the sweep takes its place
    final = {}
    for key, (label, _, _) in OPTIMIZERS.items():
        for lr in chosen[key]["lr_ranking"]:
            config = base_config(args, key, lr, seeds=s["seeds"], epochs=s["epochs"],
                                 train_size=s["train_size"], test_size=s["test_size"])
            try:
                result, per_epoch = train_per_epoch(config, ds, log,
                                                    f"{label}, {s['epochs']} epochs")
            except DivergenceError as exc:
                log(f"  diverged: {exc}")
                chosen[key].setdefault("diverged_on_full_split", []).append(lr)
                continue
            break
        else:
            raise DivergenceError(f"{label}: every learning rate diverged")
        if lr != chosen[key]["chosen_lr"]:  # fell back: the best epoch of this lr instead
            accs = [d["mean"] for d in chosen[key]["runs"][str(lr)]["val_accuracy"]]
            best_epoch = int(np.argmax(accs))
            chosen[key] |= {"first_choice_lr": chosen[key]["chosen_lr"], "chosen_lr": lr,
                            "chosen_epochs": best_epoch + 1, "val_accuracy": accs[best_epoch]}
        final[key] = {"label": label, "config": config.to_dict(), "timings": result.timings,
                      "per_epoch": per_epoch}

    # 3. training seconds per epoch of one model
    throughput = {}
    for key, (label, _, _) in OPTIMIZERS.items():
        if s["timing_runs"]:
            config = base_config(args, key, chosen[key]["chosen_lr"], seeds=1, epochs=2,
                                 train_size=s["train_size"], test_size=s["test_size"])
            timings = common.train_logged(config, ds, log, f"timing {label}, 1 seed").timings
            source = "1 seed, 2 epochs"
        else:
            timings, source = final[key]["timings"], f"{s['seeds']} seeds (--quick)"
        steps = s["train_size"] // OPTIMIZERS[key][1]["batch_size"]
        images = steps * OPTIMIZERS[key][1]["batch_size"]
        throughput[key] = {"images_per_second": timings["images_per_second"],
                           "seconds_per_epoch": images / timings["images_per_second"],
                           "measured_with": source}

    # 4. training-set size, fixed epochs
    sizes = {}
    for key, (label, _, _) in OPTIMIZERS.items():
        sizes[key] = {}
        for size in s["sizes"]:
            config = base_config(args, key, chosen[key]["chosen_lr"], seeds=s["seeds"],
                                 epochs=s["size_epochs"], train_size=size,
                                 test_size=s["test_size"])
            try:
                result = common.train_logged(config, ds, log, f"{label}, {size:,} images")
            except DivergenceError as exc:
                log(f"  diverged: {exc}")
                sizes[key][str(size)] = {"diverged": str(exc)}
                continue
            sizes[key][str(size)] = common.describe(result.test_accuracy)
        sizes[key][str(s["train_size"])] = \
            final[key]["per_epoch"][s["size_epochs"] - 1]["test_accuracy"]

    equal_epochs, equal_time, best = summarise(s, chosen, final, throughput)

    # 6-7. larger data sets
    fashion = run_fashion(args, s, chosen, best, log)
    full_scale = run_full_scale(args, ds, s, log)

    log("plotting")
    plots = {"epochs": plot_epochs(args.out, final, throughput),
             "sizes": plot_sizes(args.out, sizes)}
    if s["sweep"]:
        plots["sweep"] = plot_sweep(args.out, chosen)
    if fashion.get("runs"):
        plots["fashion"] = plot_fashion(args.out, fashion)
    payload = {"settings": s, "seeds": seeds, "optimizers": OPTIMIZERS, "sweep": chosen,
               "final": final, "throughput": throughput, "equal_epochs": equal_epochs,
               "equal_time": equal_time, "sizes": sizes, "best": best, "fashion": fashion,
               "full_scale": full_scale, "prototype": PROTOTYPE, "plots": plots}
    common.write_result(args, NAME, payload, log)
    b = best["selected"]
    print(f"best on {args.data}: {b['label']} lr {b['lr']:g}, {b['epochs']} epochs: "
          f"{common.pm(b['test_accuracy'], 100, 2)} (min-max "
          f"{common.minmax(b['test_accuracy'], 100, 2)})")
    for run in fashion.get("runs", []):
        if "final_test_accuracy" in run:
            print(f"Fashion-MNIST, {run['label']}: "
                  f"{common.pm(run['final_test_accuracy'], 100, 2)}")
    if "skipped" in fashion:
        print(f"Fashion-MNIST skipped: {fashion['skipped']}")
    return 0


def summarise(s: dict, chosen: dict, final: dict, throughput: dict):
    """Tables of equal epochs and equal wall time, and the best accuracy."""
    equal_epochs = {key: {"label": f["label"], "lr": f["config"]["learning_rate"],
                          "test_accuracy": [e["test_accuracy"] for e in f["per_epoch"]]}
                    for key, f in final.items()}
    report_epoch_seconds = throughput[REPORT_KEY]["seconds_per_epoch"]
    budgets = [k * report_epoch_seconds for k in s["budgets_in_report_epochs"]]
    equal_time = {"budgets_seconds": budgets,
                  "budgets_in_report_epochs": s["budgets_in_report_epochs"], "rows": {}}
    for key, f in final.items():
        per = throughput[key]["seconds_per_epoch"]
        cells = []
        for budget in budgets:
            epochs = int(math.floor(budget / per + 1e-9))
            capped = epochs > s["epochs"]
            epochs = min(epochs, s["epochs"])
            cells.append({"epochs": epochs, "capped": capped,
                          "test_accuracy": None if epochs == 0
                          else f["per_epoch"][epochs - 1]["test_accuracy"]})
        equal_time["rows"][key] = cells
    per_optimizer = {}
    for key, f in final.items():
        e = min(chosen[key]["chosen_epochs"], s["epochs"])
        on_test = max(range(len(f["per_epoch"])),
                      key=lambda i: f["per_epoch"][i]["test_accuracy"]["mean"])
        per_optimizer[key] = {
            "label": f["label"], "lr": f["config"]["learning_rate"], "epochs": e,
            "batch_size": f["config"]["batch_size"],
            "validation_accuracy": chosen[key]["val_accuracy"],
            "test_accuracy": f["per_epoch"][e - 1]["test_accuracy"],
            "best_epoch_on_test": on_test + 1,
            "best_epoch_on_test_accuracy": f["per_epoch"][on_test]["test_accuracy"],
        }
    if s["sweep"]:
        pick = max(per_optimizer, key=lambda k: per_optimizer[k]["validation_accuracy"])
    else:  # no validation run: fall back to the last epoch's test accuracy (--quick only)
        pick = max(per_optimizer, key=lambda k: per_optimizer[k]["test_accuracy"]["mean"])
    selected = dict(per_optimizer[pick], key=pick)
    selected["beats_prototype"] = selected["test_accuracy"]["mean"] > PROTOTYPE[1]
    return equal_epochs, equal_time, {"selected": selected, "per_optimizer": per_optimizer}


def run_fashion(args, s: dict, chosen: dict, best: dict, log) -> dict:
    """Fashion-MNIST from IDX files: the report's protocol at scale and the chosen setup."""
    from jaxcnn import data
    from jaxcnn.errors import DataError, DivergenceError

    if args.no_fashion or s["fashion_seeds"] == 0:
        reason = "--no-fashion" if args.no_fashion else "--quick"
        log(f"Fashion-MNIST skipped ({reason})")
        return {"skipped": reason}
    directory = Path(args.fashion)
    if not directory.is_dir():
        message = (f"{directory} not found: install the dataset-fashion-mnist package "
                   "(apt-get install dataset-fashion-mnist) or pass --fashion DIR")
        log(f"Fashion-MNIST skipped: {message}")
        return {"skipped": message}
    source = f"idx:{directory}"
    try:
        fds = data.load(source)
    except DataError as exc:
        log(f"Fashion-MNIST skipped: {exc}")
        return {"skipped": str(exc)}
    sel = best["selected"]
    setups = [("report protocol: per-sample SGD lr 0.005, 3 epochs", REPORT_KEY, 0.005, 3),
              (f"{sel['label']} lr {sel['lr']:g}, {sel['epochs']} epochs (chosen on MNIST)",
               sel["key"], sel["lr"], sel["epochs"])]
    runs = []
    for label, key, lr, epochs in setups:
        config = dataclasses.replace(
            base_config(args, key, lr, seeds=s["fashion_seeds"], epochs=epochs,
                        train_size=None, test_size=None), data=source)
        try:
            result, per_epoch = train_per_epoch(config, fds, log, f"Fashion-MNIST, {label}")
        except DivergenceError as exc:
            log(f"  diverged: {exc}")
            runs.append({"label": label, "config": config.to_dict(), "diverged": str(exc)})
            continue
        runs.append({"label": label, "config": config.to_dict(), "timings": result.timings,
                     "per_epoch": per_epoch,
                     "final_test_accuracy": common.describe(result.test_accuracy),
                     "final_test_loss": common.describe(result.test_loss)})
    return {"source": source, "train_images": len(fds.train_labels),
            "test_images": len(fds.test_labels), "runs": runs}


def run_full_scale(args, ds, s: dict, log) -> dict:
    """The report's protocol on a whole large split (``--data mnist``): anchor 97.44%."""
    if len(ds.train_labels) <= 5000 or args.quick:
        return {"skipped": f"{args.data} has only {len(ds.train_labels):,} training images"
                if not args.quick else "--quick"}
    config = base_config(args, REPORT_KEY, 0.005, seeds=s["full_scale_seeds"], epochs=3,
                         train_size=None, test_size=None)
    result, per_epoch = train_per_epoch(config, ds, log, "report protocol at full scale")
    out = {"config": config.to_dict(), "timings": result.timings, "per_epoch": per_epoch,
           "test_accuracy": common.describe(result.test_accuracy)}
    if args.data == "mnist":
        out["anchor"] = common.FULL_MNIST_ANCHOR
    return out


# --------------------------------------------------------------------------- plots


def plot_sweep(out, chosen: dict) -> str:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 3.6), sharey=True)
    for ax, (key, c) in zip(np.atleast_1d(axes), chosen.items(), strict=True):
        for lr, run in c["runs"].items():
            if "val_accuracy" not in run:
                ax.plot([], [], label=f"lr {float(lr):g}: diverged")
                continue
            acc = [d["mean"] * 100 for d in run["val_accuracy"]]
            note = (" (diverged on the full split)"
                    if float(lr) in c.get("diverged_on_full_split", []) else "")
            ax.plot(range(1, len(acc) + 1), acc, marker=".", label=f"lr {float(lr):g}{note}")
        ax.plot(c["chosen_epochs"], c["val_accuracy"] * 100, "k*", ms=12, label="chosen")
        ax.set_title(OPTIMIZERS[key][0], fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("validation accuracy (%), mean of seeds")
    ax_min = min(min(d["mean"] for d in r["val_accuracy"]) for c in chosen.values()
                 for r in c["runs"].values() if "val_accuracy" in r)
    np.atleast_1d(axes)[0].set_ylim(max(ax_min * 100 - 1, 80), None)
    return common.save(fig, out, f"{NAME}_sweep.png")


def plot_epochs(out, final: dict, throughput: dict) -> str:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), sharey=True)
    for i, (key, f) in enumerate(final.items()):
        runs = np.array([e["test_accuracy"]["per_seed"] for e in f["per_epoch"]]).T
        epochs = np.arange(1, runs.shape[1] + 1)
        common.band(axes[0], epochs, runs, f"{f['label']}, lr {f['config']['learning_rate']:g}",
                    color=f"C{i}")
        seconds = epochs * throughput[key]["seconds_per_epoch"]
        common.band(axes[1], seconds, runs, f["label"], color=f"C{i}")
    for ax in axes:
        ax.axhspan(PROTOTYPE[0] * 100, PROTOTYPE[1] * 100, color="grey", alpha=0.25,
                   label="prototype (Adam, 5 epochs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_xlabel("epochs")
    axes[1].set_xlabel("training seconds of one model (compile excluded, this machine)")
    axes[1].set_xscale("log")
    axes[0].set_ylabel("test accuracy (%): mean, 95% and min-max of seeds")
    return common.save(fig, out, f"{NAME}_epochs.png")


def plot_sizes(out, sizes: dict) -> str:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for i, (key, by_size) in enumerate(sizes.items()):
        xs = sorted(int(n) for n, d in by_size.items() if "mean" in d)
        means = [by_size[str(n)]["mean"] * 100 for n in xs]
        stds = [by_size[str(n)]["std"] * 100 for n in xs]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=f"C{i}",
                    label=OPTIMIZERS[key][0])
    ax.set_xscale("log")
    ticks = sorted({int(n) for by in sizes.values() for n in by})
    ax.set_xticks(ticks, [f"{n:,}" for n in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy (%), mean ± std of seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return common.save(fig, out, f"{NAME}_sizes.png")


def plot_fashion(out, fashion: dict) -> str:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for i, run in enumerate(fashion["runs"]):
        if "per_epoch" not in run:
            continue
        runs = np.array([e["test_accuracy"]["per_seed"] for e in run["per_epoch"]]).T
        common.band(ax, np.arange(1, runs.shape[1] + 1), runs, run["label"], color=f"C{i}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Fashion-MNIST test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return common.save(fig, out, f"{NAME}_fashion.png")


# --------------------------------------------------------------------------- markdown


def markdown(r: dict) -> str:
    s, best = r["settings"], r["best"]
    sel = best["selected"]
    pct = lambda d: common.pm(d, 100, 2)  # noqa: E731
    lines = [
        f"**Best accuracy of this architecture on `{r['data']}`: {pct(sel['test_accuracy'])}** "
        f"(min–max {common.minmax(sel['test_accuracy'], 100, 2)}, {sel['test_accuracy']['n']} "
        f"seeds) with {sel['label']}, lr {sel['lr']:g}, {sel['epochs']} epochs on "
        f"{s['train_size']:,} images, tested on {s['test_size']:,}"
        + (": optimizer, learning rate and epochs chosen on a validation split, not on the "
           "test set." if s["sweep"] else " (--quick: no validation sweep).")
        + f" The prototype to beat got {PROTOTYPE[0]:.1%}–{PROTOTYPE[1]:.1%} (Adam, batch 32, "
        f"5 epochs): {'beaten' if sel['beats_prototype'] else 'NOT beaten'}.",
        "",
        _summary(r),
        "",
        common.table(
            ["optimizer", "lr (chosen)", "epochs (chosen)", "validation accuracy",
             "test accuracy at chosen epochs", "min–max", "best epoch on test (optimistic)"],
            [[p["label"], f"{p['lr']:g}", p["epochs"],
              "—" if p["validation_accuracy"] is None else f"{p['validation_accuracy']:.2%}",
              pct(p["test_accuracy"]), common.minmax(p["test_accuracy"], 100, 2),
              f"{pct(p['best_epoch_on_test_accuracy'])} (epoch {p['best_epoch_on_test']})"]
             for p in best["per_optimizer"].values()]),
        "",
    ]
    for key, c in r["sweep"].items():
        if c.get("diverged_on_full_split"):
            lines += [f"{OPTIMIZERS[key][0]}: the best learning rate on validation "
                      f"({', '.join(f'{lr:g}' for lr in c['diverged_on_full_split'])}) "
                      f"diverged when training on all {s['train_size']:,} images (5 seeds), so "
                      f"the next best, {c['chosen_lr']:g}, is used.", ""]
    if s["sweep"]:
        grids = "; ".join(f"{OPTIMIZERS[k][0]}: {', '.join(f'{float(lr):g}' for lr in c['runs'])}"
                          for k, c in r["sweep"].items())
        lines += [
            f"Learning rates tried ({grids}) on the first {s['sweep_train']:,} training "
            f"images ({s['epochs']} epochs, {s['sweep_seeds']} seeds), scored on the last "
            f"{s['validation']:,} training images after every epoch.", "",
            f"![learning-rate sweep]({r['plots']['sweep']})", ""]
    epochs_shown = sorted({1, 2, 3, 5, s["epochs"]} & set(range(1, s["epochs"] + 1)))
    rows = []
    for e in r["equal_epochs"].values():
        rows.append([e["label"], f"{e['lr']:g}"]
                    + [pct(e["test_accuracy"][k - 1]) for k in epochs_shown])
    lines += [f"**Equal epochs** (all {s['train_size']:,} training images reshuffled every "
              f"epoch, {s['seeds']} seeds, test accuracy mean ± std):", "",
              common.table(["optimizer", "lr"] + [f"{k} epoch{'s' if k > 1 else ''}"
                                                  for k in epochs_shown], rows), ""]
    et = r["equal_time"]
    rows = []
    for key, cells in et["rows"].items():
        t = r["throughput"][key]
        row = [OPTIMIZERS[key][0], f"{t['seconds_per_epoch']:.2f} s",
               f"{t['images_per_second']:,.0f}"]
        for c in cells:
            if c["test_accuracy"] is None:
                row.append("< 1 epoch")
            else:
                cap = f" (capped at {s['epochs']})" if c["capped"] else ""
                row.append(f"{pct(c['test_accuracy'])} ({c['epochs']} ep.{cap})")
        rows.append(row)
    measured = r["throughput"][REPORT_KEY]["measured_with"]
    lines += [f"**Equal wall time**: training seconds of one model per epoch (compile "
              f"excluded; measured with {measured}, on a shared 2-core CPU, so "
              "roughly), and the test accuracy each optimizer reaches in the time per-sample "
              "SGD needs for "
              + ", ".join(f"{k} epoch{'s' if k > 1 else ''}"
                          for k in et["budgets_in_report_epochs"]) + ":", "",
              common.table(["optimizer", "s / epoch", "images / s"]
                           + [f"{k} per-sample epoch{'s' if k > 1 else ''} = {b:.2g} s"
                              for k, b in zip(et["budgets_in_report_epochs"],
                                              et["budgets_seconds"], strict=True)], rows), "",
              f"![accuracy per epoch and per second]({r['plots']['epochs']})", ""]
    sizes = r["sizes"]
    all_sizes = sorted({int(n) for by in sizes.values() for n in by})
    cell = lambda d: "—" if d is None else ("diverged" if "diverged" in d else pct(d))  # noqa: E731
    rows = [[OPTIMIZERS[key][0]] + [cell(by.get(str(n))) for n in all_sizes]
            for key, by in sizes.items()]
    lines += [f"**Training-set size** ({s['size_epochs']} epochs each, chosen learning "
              f"rates, {s['seeds']} seeds, test accuracy):", "",
              common.table(["optimizer"] + [f"{n:,} images" for n in all_sizes], rows), "",
              f"![accuracy against training-set size]({r['plots']['sizes']})", ""]
    lines += _fashion_markdown(r)
    fs = r.get("full_scale", {})
    if "test_accuracy" in fs:
        anchor = (f" The anchor (Keras, same architecture and protocol): "
                  f"{fs['anchor']:.2%}." if "anchor" in fs else "")
        lines += [f"**Report protocol at full scale** on `{r['data']}` (per-sample SGD, lr "
                  f"0.005, 3 epochs, all training images): {pct(fs['test_accuracy'])}."
                  + anchor, ""]
    return "\n".join(lines)


def _summary(r: dict) -> str:
    """The findings in words, from the numbers."""
    s, ee, tp = r["settings"], r["equal_epochs"], r["throughput"]
    label = lambda k: OPTIMIZERS[k][0]  # noqa: E731
    last = {k: e["test_accuracy"][-1]["mean"] for k, e in ee.items()}
    first = {k: e["test_accuracy"][0]["mean"] for k, e in ee.items()}
    stds = [e["test_accuracy"][-1]["std"] for e in ee.values()]
    order = sorted(first, key=first.get, reverse=True)
    batched = [k for k in tp if k != REPORT_KEY]
    speedup = np.mean([tp[k]["images_per_second"] for k in batched]) / tp[REPORT_KEY][
        "images_per_second"]
    parts = [
        f"**Findings.** After {s['epochs']} epochs all four optimizers end within "
        f"{(max(last.values()) - min(last.values())) * 100:.1f} points of each other "
        f"({min(last.values()):.1%}–{max(last.values()):.1%}; seed std up to "
        f"{max(stds) * 100:.1f} points), so with tuned learning rates and a few epochs the "
        "optimizer hardly matters for this small network. They differ in how fast they get "
        "there: after one epoch " + ", ".join(f"{label(k)} {first[k]:.1%}" for k in order)
        + ".",
        f"Per second: one model trains at {tp[REPORT_KEY]['images_per_second']:,.0f} "
        "images/s with per-sample SGD and at "
        + ", ".join(f"{tp[k]['images_per_second']:,.0f}" for k in batched)
        + f" in batches of 32 on this CPU, only {speedup:.1f}x more, so equal wall time "
        "is close to equal epochs here.",
    ]
    sizes = r["sizes"]
    smallest = min((int(n) for by in sizes.values() for n in by), default=None)
    if smallest is not None and smallest < s["train_size"]:
        small = {k: by[str(smallest)]["mean"] for k, by in sizes.items()
                 if "mean" in by.get(str(smallest), {})}
        if small:
            lead = sorted(small, key=small.get, reverse=True)
            parts.append(f"With only {smallest:,} training images ({s['size_epochs']} "
                         "epochs): " + ", ".join(f"{label(k)} {small[k]:.1%}" for k in lead)
                         + ".")
    if not s["sweep"]:
        parts.append("(--quick: untuned learning rates, tiny sizes.)")
    return " ".join(parts)


def _fashion_markdown(r: dict) -> list[str]:
    f = r["fashion"]
    if "skipped" in f:
        return [f"**Fashion-MNIST**: skipped ({f['skipped']}).", ""]
    rows = [[run["label"], "diverged", "", ""] if "diverged" in run else
            [run["label"], common.pm(run["final_test_accuracy"], 100, 2),
             common.minmax(run["final_test_accuracy"], 100, 2),
             f"{run['timings']['wall_seconds']:.0f} s"] for run in f["runs"]]
    return [f"**Fashion-MNIST** (`{f['source']}`, {f['train_images']:,} training / "
            f"{f['test_images']:,} test images, {r['settings']['fashion_seeds']} seeds; "
            "settings from MNIST, not tuned here):", "",
            common.table(["setup", "test accuracy", "min–max", "wall time"], rows), "",
            f"![Fashion-MNIST]({r['plots']['fashion']})", ""]


def build_parser():
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--fashion", default=FASHION_DIR, metavar="DIR",
                        help="Fashion-MNIST IDX folder (skipped with a message if absent)")
    parser.add_argument("--no-fashion", action="store_true", help="skip Fashion-MNIST")
    return parser


def run(argv=None) -> int:
    """Command-line entry point; ``argv`` defaults to ``sys.argv[1:]``."""
    return common.run_cli(build_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(run())
