"""Images per second of the report's CNN: the NumPy reference, jaxcnn, PyTorch (CPU).

    python -m experiments.benchmark [--quick] [--json FILE] [--markdown FILE]

One process measures every contender. After each one is compiled and warmed up, the
contenders run round by round, interleaved (A B C ... A B C ...), so that a change in
machine load hits all of them alike; every ratio is taken between two measurements of
the SAME round and then summarised (median, min-max over the rounds).

Contenders (all on the 4,000 embedded MNIST training images, 1,000 test images):

* ``numpy-reference``: ``jaxcnn.reference.Network.train_step``, the report's original
  algorithm (Python loops, float64), one image per step;
* ``jaxcnn-per-sample-{manual,autodiff}``: the report's per-image SGD as jaxcnn trains it
  (``train.make_train_chunk``: ``lax.scan`` over chunks of 1,000 steps), with the
  hand-derived or the ``jax.grad`` gradients;
* ``jaxcnn-per-sample-16-seeds``: ``TrainConfig(seeds=16)``, 16 models in one program
  (no shuffling: all seeds see the same images); images/s counts all 16 models;
* ``jaxcnn-per-sample-16-seeds-all-cores``: the same with the seed axis sharded over one
  JAX CPU device per core (``jax_num_cpu_devices``, set at start-up as
  ``jaxcnn train --seeds K`` does); the other contenders run on the first device;
* ``jaxcnn-batch-{32,128,1024}``: mini-batch SGD, one chunk = one epoch of full batches;
* ``jaxcnn-batch-128-all-cores``: the same batch-128 training with each batch split over
  two JAX CPU devices, as ``jaxcnn train --batch-size 128`` does by default on a CPU with
  two cores or more (``train.Placement``'s batch axis: one model, each device computing
  one half of every batch, the halves' gradients summed across the devices as one device
  sums its two halves, ``fast.BATCH_PARTS``: the numbers of ``jaxcnn-batch-128``);
* ``jaxcnn-evaluate``: ``train.make_evaluate()``, forward only, a batch of 1,000;
* ``torch-per-sample``, ``torch-batch-{32,128}``, ``torch-evaluate``: the same network in
  PyTorch (``experiments.torch_baseline``), when the ``bench`` extra is installed;
* ``flax-per-sample-{loop,scan}``, ``flax-batch-{32,128}``: the same network in
  flax.linen as a JAX user writes it (``experiments.flax_baseline``), same extra.

It also reports the compile time of each jitted function (lower + compile for the
benchmark's fixed shapes), the cold wall time of ``jaxcnn train`` with its defaults (a
fresh ``python -m jaxcnn train --no-progress`` subprocess: interpreter start, imports,
compiles, 3,000 training steps, test), and the physical context: XLA's
``cost_analysis`` FLOPs and bytes per image of each compiled step and the GFLOP/s
achieved, next to a large matmul's GFLOP/s as this machine's practical peak.

``--json FILE`` writes everything (per contender ``images_per_second`` and
``ratio_to_numpy``; top-level ``per_sample_ratio_to_numpy`` and
``per_sample_ratio_to_torch``); the markdown report goes to stdout and to
``--markdown FILE``. ``--quick`` (CI smoke test) shrinks every workload and runs one
round: its numbers are not measurements to quote.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn import data, fast, model, reference
from jaxcnn.training import train, xla_options
from jaxcnn.training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
NUM_CLASSES = 10
EVAL_BATCH = 1000
COLD_COMMAND = ["-m", "jaxcnn", "train", "--no-progress"]

# Targets for this 2-core CPU, from the issues (name, contender, baseline, threshold).
# baseline "numpy"/"torch": the contender's per-round ratio to that baseline (torch: at
# PyTorch's best thread count); "images/s": the contender's own images/s; "roof": its
# images/s as a fraction of its roof (the Roofline section); any other name: the ratio
# to that contender in the same round (None when that contender was skipped).
TARGETS = [
    ("per-sample SGD >= 800x the NumPy reference", "jaxcnn-per-sample-manual", "numpy", 800),
    ("per-sample SGD >= 10x PyTorch per-sample", "jaxcnn-per-sample-manual", "torch", 10),
    ("per-sample SGD, one seed >= 50k images/s", "jaxcnn-per-sample-manual", "images/s",
     50_000),
    ("mini-batch 128 >= 80k images/s", "jaxcnn-batch-128", "images/s", 80_000),
    ("mini-batch 32 >= 50% of its roof", "jaxcnn-batch-32", "roof", 0.5),
    ("mini-batch 128 >= 50% of its roof", "jaxcnn-batch-128", "roof", 0.5),
    ("mini-batch 128 >= 2x per-sample SGD, one seed", "jaxcnn-batch-128",
     "jaxcnn-per-sample-manual", 2),
    ("mini-batch 128 >= mini-batch 32 (images/s)", "jaxcnn-batch-128", "jaxcnn-batch-32", 1),
    ("mini-batch 1024 >= mini-batch 32 (images/s)", "jaxcnn-batch-1024", "jaxcnn-batch-32", 1),
    ("mini-batch 128 split over two cores (the default on a multi-core CPU) >= 2x "
     "per-sample SGD, one seed", "jaxcnn-batch-128-all-cores", "jaxcnn-per-sample-manual", 2),
    ("mini-batch 128 >= 3x flax batch 128", "jaxcnn-batch-128", "flax-batch-128", 3),
    ("mini-batch 128 >= 2x PyTorch batch 128 (best threads)", "jaxcnn-batch-128", "torch", 2),
    ("16 seeds on one device >= 1.6x one seed (aggregate images/s)",
     "jaxcnn-per-sample-16-seeds", "jaxcnn-per-sample-manual", 1.6),
    ("16 seeds, seeds sharded over both cores >= 2.5x one seed",
     "jaxcnn-per-sample-16-seeds-all-cores", "jaxcnn-per-sample-manual", 2.5),
    ("64 seeds, seeds sharded over both cores >= 2.5x one seed",
     "jaxcnn-per-sample-64-seeds-all-cores", "jaxcnn-per-sample-manual", 2.5),
    ("evaluation >= 1.5x PyTorch", "jaxcnn-evaluate", "torch", 1.5),
]
TORCH_THREADS = (1, 2)  # PyTorch runs each workload at each count; the best one is its row
COLD_TARGETS = {"empty_cache": 2.5, "warm_cache": 2.0}  # seconds, jaxcnn train defaults
BANDWIDTH_SIZES = (16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20)


@dataclass
class Settings:
    rounds: int  # interleaved measurement rounds after warm-up
    seconds_per_measurement: float  # each contender's calls per round are sized to about this
    numpy_images: int  # images per NumPy-reference call
    torch_per_sample_images: int  # images per PyTorch per-sample call
    steps_per_chunk: int  # per-sample SGD steps per compiled chunk
    cold_runs: int  # cold `jaxcnn train` subprocesses
    torch_batch_steps: int | None  # batch-128 steps per PyTorch call (None: one epoch)
    cost_all: bool  # cost analysis of every training step (else per-sample manual only)
    flax_loop_images: int  # images per call of flax's Python loop


FULL = Settings(rounds=5, seconds_per_measurement=0.6, numpy_images=100,
                torch_per_sample_images=500, steps_per_chunk=1000, cold_runs=3,
                torch_batch_steps=None, cost_all=True, flax_loop_images=500)
QUICK = Settings(rounds=1, seconds_per_measurement=0.02, numpy_images=3,
                 torch_per_sample_images=20, steps_per_chunk=1000, cold_runs=1,
                 torch_batch_steps=3, cost_all=False, flax_loop_images=20)


@dataclass
class Contender:
    """One workload: ``run()`` does one blocking call that processes ``images_per_call``."""

    name: str
    group: str  # "numpy", "jaxcnn" or "torch"
    description: str
    images_per_call: int
    run: Callable[[], object]
    torch_equivalent: str | None = None
    compile_seconds: float | None = None
    cost: dict | None = None  # XLA cost analysis per image: flops, bytes accessed
    calls_per_round: int = 1
    rates: list[float] = field(default_factory=list)  # images/s, one per round
    check: Callable[[], bool] | None = None  # after the rounds: losses still finite?


# ---------------------------------------------------------------------------- helpers

def _now() -> float:
    return time.perf_counter()


def _cost(compiled, images: int) -> dict | None:
    """FLOPs and bytes accessed per image from XLA's cost analysis (dict or [dict])."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    out = {"flops_per_image": float(analysis["flops"]) / images}
    if "bytes accessed" in analysis:
        out["bytes_per_image"] = float(analysis["bytes accessed"]) / images
    return out


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict:
    import jaxlib
    import optax

    out = {"python": platform.python_version(), "jax": jax.__version__,
           "jaxlib": jaxlib.__version__, "numpy": np.__version__, "optax": optax.__version__,
           "torch": None}
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


# ------------------------------------------------------------------------- contenders

def numpy_contender(dataset, params: model.Params, n: int) -> Contender:
    """The report's NumPy algorithm, ``n`` consecutive images per call (cycling)."""
    network = reference.Network.from_params(*params)
    images, labels = dataset.train_images, dataset.train_labels
    offset = [0]

    def run():
        start = offset[0]
        for i in range(start, start + n):
            network.train_step(images[i % len(images)], int(labels[i % len(labels)]))
        offset[0] = (start + n) % len(images)

    return Contender("numpy-reference", "numpy",
                     "jaxcnn.reference.Network.train_step: the report's algorithm "
                     "(Python loops, float64), per-sample SGD", n, run)


class _Chunks:
    """A compiled training chunk, called over consecutive index chunks with its state."""

    def __init__(self, compiled, state, images, labels, chunks):
        self.compiled, self.state, self.images, self.labels = compiled, state, images, labels
        self.chunks, self.i, self.losses = chunks, 0, None

    def __call__(self):
        indices = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        self.state, (self.losses, *_) = jax.block_until_ready(
            self.compiled(self.state, self.images, self.labels, indices))

    def finite(self) -> bool:
        return bool(np.isfinite(np.asarray(self.losses)).all())


def train_contender(name: str, description: str, config: TrainConfig, images, labels,
                    steps_per_chunk: int, torch_equivalent: str | None = None,
                    cost: bool = True, devices=None) -> Contender:
    """A jaxcnn training configuration, exactly as ``train.train`` compiles and calls it
    (on ``devices``, sharded as ``train.Placement`` decides; default: the first device)."""
    placement = train.Placement(config, devices if devices is not None else jax.devices()[:1])
    state = placement.state(train.init_state(config, NUM_CLASSES))
    images, labels = placement.replicated(images), placement.replicated(labels)
    chunk_fn = train.make_train_chunk(config, train.make_optimizer(config), placement)
    indices = train.epoch_indices(config, images.shape[0], 0)  # (S, steps, B)
    k = min(steps_per_chunk, indices.shape[1])
    chunks = [placement.indices(indices[:, s:s + k])
              for s in range(0, indices.shape[1] - k + 1, k)]
    t0 = _now()
    compiled = chunk_fn.lower(state, images, labels, chunks[0]).compile()
    compile_seconds = _now() - t0
    costs = None
    if cost:
        costs = step_cost(config, placement)
    runner = _Chunks(compiled, state, images, labels, chunks)
    return Contender(name, "jaxcnn", description, config.seeds * k * config.batch_size, runner,
                     torch_equivalent, compile_seconds, costs, check=runner.finite)


def step_cost(config: TrainConfig, placement) -> dict | None:
    """XLA's cost analysis of ONE step of one loop body of the chunk: one seed group's
    (``train.seed_group_size`` seeds, vmapped) or one seed's optimizer step on its batch,
    compiled on its own from images already gathered. (The chunk itself cannot be used:
    XLA counts a loop body once, and a gather's operand, the whole 12.5 MB training set,
    as bytes accessed.) A batch step that runs in ``fast.batch_slices`` slices gets the
    other slices' gradient costs added (XLA counts its scan body once, too). Per image:
    FLOPs and bytes accessed; ``bytes_per_step``, the bytes that step allocates
    (``memory_analysis``: arguments, results and temporaries), its working set.
    """
    local = config.seeds // (placement.num_devices if placement.axis == "seeds" else 1)
    group = train.seed_group_size(config, local) if placement.seed_loop == "map" else local
    batch = config.batch_size // (placement.num_devices if placement.axis == "batch" else 1)
    optimizer = train.make_optimizer(config)
    split = placement.axis == "batch" and placement.split_batch
    if split:  # one device's step: its part of the batch (the cross-device sum left out)
        def step(state, x, y):
            (_, logits), grads = fast.manual_grads_part(state.params, x, y, config.ties,
                                                        config.batch_size)
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            return train.TrainState(optax.apply_updates(state.params, updates), opt_state), logits
    else:
        step = train.make_train_step(config, optimizer)
    state = jax.tree.map(lambda a: a[:group], train.init_state(config, NUM_CLASSES))
    x = jnp.zeros((batch, 28, 28), jnp.float32)
    y = jnp.zeros((batch,), jnp.int32)
    if group == 1:
        fn, state = step, jax.tree.map(lambda a: a[0], state)
    else:
        fn = jax.vmap(step, in_axes=(0, None, None))
    compiled = xla_options.jit(fn).lower(state, x, y).compile()
    costs = _cost(compiled, group * batch)
    parts = 1 if split else fast.batch_parts(batch)
    slices, size = fast.batch_slices(batch // parts)
    if (costs and group == 1 and batch > 1 and parts * slices > 1
            and config.grad == "manual"):
        # the step's lax.scans over parts and slices: XLA counts their body (one slice) once
        body = xla_options.jit(lambda p, x, y: fast.manual_grads_part(
            p, x, y, config.ties, config.batch_size))
        body = _cost(body.lower(state.params, x[:size], y[:size]).compile(), group * batch)
        for key in ("flops_per_image", "bytes_per_image"):
            if body and key in body and key in costs:
                costs[key] += (parts * slices - 1) * body[key]
    if costs and "bytes_per_image" in costs:
        memory = compiled.memory_analysis()
        # the working set: every buffer the step allocates (arguments, results, XLA's
        # temporaries), each counted once; XLA's bytes accessed counts re-reads too
        costs["bytes_per_step"] = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                                   + memory.temp_size_in_bytes) if memory else (
            costs["bytes_per_image"] * group * batch)
        costs["devices"] = placement.num_devices  # each streams from its own core's caches
    return costs


def evaluate_contender(params, images, labels) -> Contender:
    evaluate_fn = train.make_evaluate()
    mask = jnp.ones(images.shape[0], bool)
    t0 = _now()
    compiled = evaluate_fn.lower(params, images, labels, mask).compile()
    compile_seconds = _now() - t0

    def run():
        jax.block_until_ready(compiled(params, images, labels, mask))

    return Contender("jaxcnn-evaluate", "jaxcnn",
                     f"train.make_evaluate(): forward, loss and accuracy, batch {images.shape[0]}",
                     images.shape[0], run, "torch-evaluate", compile_seconds,
                     # XLA counts the body of evaluation's lax.map (one chunk) once
                     _cost(compiled, min(train.EVAL_CHUNK, images.shape[0])))


def torch_contenders(dataset, params: model.Params, settings: Settings, enabled: bool = True
                     ) -> tuple[list[Contender], str | None]:
    """PyTorch's per-sample loop, batch-128 step and evaluation; ([], why) without torch."""
    if not enabled:
        return [], "--no-torch"
    try:
        import torch  # noqa: F401

        from experiments import torch_baseline as tb
    except ImportError as exc:
        return [], (f"torch is not installed ({exc}); install the bench extra: "
                    "pip install -e '.[bench]'")
    x, y = tb.to_tensors(dataset.train_images, dataset.train_labels)
    tx, ty = tb.to_tensors(dataset.test_images[:EVAL_BATCH], dataset.test_labels[:EVAL_BATCH])
    n = x.shape[0]

    def per_sample():
        net = tb.ReportNet.from_params(*params)
        optimizer = tb.make_optimizer(net)
        m, offset = settings.torch_per_sample_images, [0]

        def run():
            start = offset[0]
            tb.per_sample_sgd(net, optimizer, x[start:start + m], y[start:start + m])
            offset[0] = (start + m) % (n - m + 1)

        return Contender("torch-per-sample", "torch",
                         "PyTorch per-sample SGD, Python loop (zero_grad, forward, backward, "
                         "step, loss.item())", m, run)

    def batch(size: int = 128):
        net = tb.ReportNet.from_params(*params)
        optimizer = tb.make_optimizer(net)
        steps = settings.torch_batch_steps or n // size

        def run():
            for s in range(steps):
                tb.batch_step(net, optimizer, x[s * size:(s + 1) * size],
                              y[s * size:(s + 1) * size])

        return Contender(f"torch-batch-{size}", "torch",
                         f"PyTorch mini-batch SGD, batch {size}, {steps} steps per call",
                         steps * size, run)

    def evaluation():
        net = tb.ReportNet.from_params(*params)
        return Contender("torch-evaluate", "torch",
                         f"PyTorch forward, loss and accuracy under inference_mode, batch "
                         f"{EVAL_BATCH}", EVAL_BATCH, lambda: tb.evaluate(net, tx, ty))

    contenders = []
    for threads in TORCH_THREADS:
        for make in (per_sample, lambda: batch(32), batch, evaluation):
            c = make()
            c.name, c.description = (f"{c.name}@{threads}t",
                                     f"{c.description}; {threads} thread(s)")
            c.run = _with_threads(c.run, threads)
            contenders.append(c)
    return contenders, None


def _with_threads(run, threads: int):
    import torch

    def call():
        torch.set_num_threads(threads)
        return run()

    return call


def flax_contenders(dataset, params: model.Params, settings: Settings
                    ) -> tuple[list[Contender], str | None]:
    """The same network in flax.linen as a JAX user writes it (``experiments/
    flax_baseline.py``): a Python loop per image, lax.scan per image, batches of 32 and
    128."""
    try:
        from experiments import flax_baseline as fb
    except ImportError as exc:
        return [], f"flax is not installed ({exc}); install the bench extra"
    x, y = fb.to_inputs(dataset.train_images, dataset.train_labels)
    n, m, k = x.shape[0], settings.flax_loop_images, settings.steps_per_chunk
    loop, scan, batch32, batch128 = (fb.Trainer(fb.params_from(*params)) for _ in range(4))
    offset = [0, 0]

    def run_loop():
        s = offset[0]
        loop.per_sample_loop(x[s:s + m], y[s:s + m])
        offset[0] = (s + m) % (n - m + 1)

    def run_scan():
        s = offset[1]
        scan.per_sample_scan(x[s:s + k], y[s:s + k])
        offset[1] = (s + k) % (n - k + 1)

    def batches(size: int, trainer) -> Contender:
        steps = settings.torch_batch_steps or n // size
        return Contender(f"flax-batch-{size}", "flax", f"the same jitted step on batches of "
                         f"{size}, {steps} steps per call from a Python loop", steps * size,
                         lambda: trainer.batch_epoch(x, y, size, steps))

    return [
        Contender("flax-per-sample-loop", "flax", "flax.linen Conv/max_pool/Dense, optax.sgd, "
                  "jax.jit on the step, called once per image from a Python loop", m,
                  run_loop),
        Contender("flax-per-sample-scan", "flax", f"the same jitted step in one jitted "
                  f"lax.scan over {k} images", k, run_scan),
        batches(32, batch32), batches(128, batch128),
    ], None


def build_contenders(dataset, settings: Settings, progress, use_torch: bool = True
                     ) -> tuple[list[Contender], dict]:
    """Every contender, compiled; returns (contenders, notes)."""
    images = model.normalize(dataset.train_images, jnp.float32)
    labels = jnp.asarray(dataset.train_labels, jnp.int32)
    test_images = model.normalize(dataset.test_images[:EVAL_BATCH], jnp.float32)
    test_labels = jnp.asarray(dataset.test_labels[:EVAL_BATCH], jnp.int32)
    base = TrainConfig()
    params_fast = train.init_state(base, NUM_CLASSES).params  # seed 0, (1, ...)
    params = jax.tree.map(np.asarray, fast.from_fast(jax.tree.map(lambda a: a[0], params_fast)))

    contenders = [numpy_contender(dataset, params, settings.numpy_images)]
    k = settings.steps_per_chunk
    jobs = [
        ("jaxcnn-per-sample-manual", f"per-sample SGD, hand-derived gradients, lax.scan of {k} "
         "steps", TrainConfig(grad="manual"), "torch-per-sample"),
        ("jaxcnn-per-sample-autodiff", f"per-sample SGD, jax.grad gradients, lax.scan of {k} "
         "steps", TrainConfig(grad="autodiff"), "torch-per-sample"),
        ("jaxcnn-per-sample-16-seeds", f"16 models on one JAX device (seed groups of "
         f"{train.SEED_GROUP}, one after another), per-sample SGD, manual gradients, lax.scan "
         f"of {k} steps; images/s summed over the 16", TrainConfig(seeds=16),
         "torch-per-sample"),
        ("jaxcnn-per-sample-64-seeds", "as jaxcnn-per-sample-16-seeds with 64 models",
         TrainConfig(seeds=64), "torch-per-sample"),
    ] + [(f"jaxcnn-batch-{b}", f"mini-batch SGD, batch {b}, one epoch of full batches "
          "(lax.scan) per call",
          TrainConfig(batch_size=b), f"torch-batch-{b}" if b in (32, 128) else None)
         for b in (32, 128, 1024)]
    cpu_devices = jax.devices("cpu")
    if len(cpu_devices) > 1:  # what `jaxcnn train --seeds K` does on a multi-core CPU
        for seeds, at in ((16, 3), (64, 5)):
            jobs.insert(at, (f"jaxcnn-per-sample-{seeds}-seeds-all-cores",
                             f"as jaxcnn-per-sample-{seeds}-seeds, the seed axis sharded over "
                             f"{len(cpu_devices)} CPU devices (one per core)",
                             TrainConfig(seeds=seeds), "torch-per-sample"))
        if fast.batch_parts(128) > 1:  # one model, its batch split (train.Placement)
            at = 1 + next(i for i, job in enumerate(jobs) if job[0] == "jaxcnn-batch-128")
            jobs.insert(at, ("jaxcnn-batch-128-all-cores",
                             f"as jaxcnn-batch-128, each batch split over "
                             f"{fast.batch_parts(128)} CPU devices (one per core; the default "
                             "of jaxcnn train on a multi-core CPU), one half each, the halves' "
                             "gradients summed across them: the same numbers",
                             TrainConfig(batch_size=128), "torch-batch-128"))
    for name, description, config, torch_eq in jobs:
        progress.set_postfix_str(f"compiling {name}")
        cost = settings.cost_all or name == "jaxcnn-per-sample-manual"
        devices = None
        if name.endswith("-all-cores"):  # a batch: as many devices as it has parts
            devices = cpu_devices[:fast.batch_parts(128)] if "batch" in name else cpu_devices
        contenders.append(train_contender(name, description, config, images, labels, k,
                                          torch_eq, cost, devices))
        progress.update()
    progress.set_postfix_str("compiling jaxcnn-evaluate")
    contenders.append(evaluate_contender(params_fast, test_images, test_labels))
    progress.update()
    progress.set_postfix_str("compiling flax")
    flax_list, flax_skip = flax_contenders(dataset, params, settings)
    contenders += flax_list
    torch_list, torch_skip = torch_contenders(dataset, params, settings, use_torch)
    contenders += torch_list
    return contenders, {"torch_skipped": torch_skip, "flax_skipped": flax_skip}


# -------------------------------------------------------------------------- measuring

def warm_up_and_size(contender: Contender, seconds: float) -> None:
    """One untimed call (warm-up), then one timed call to size ``calls_per_round``."""
    contender.run()
    t0 = _now()
    contender.run()
    elapsed = _now() - t0
    contender.calls_per_round = max(1, math.ceil(seconds / max(elapsed, 1e-9)))


def measure_round(contender: Contender) -> None:
    t0 = _now()
    for _ in range(contender.calls_per_round):
        contender.run()
    elapsed = _now() - t0
    contender.rates.append(contender.images_per_call * contender.calls_per_round / elapsed)


def matmul_gflops(n: int = 1024, calls: int = 10) -> float:
    """A large float32 matmul's GFLOP/s under XLA: the practical peak of this machine."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    dot = jax.jit(jnp.dot).lower(a, a).compile()
    jax.block_until_ready(dot(a, a))
    t0 = _now()
    for _ in range(calls):
        out = dot(a, a)
    jax.block_until_ready(out)
    return 2 * n**3 * calls / (_now() - t0) / 1e9


def cold_train(runs: int) -> dict:
    """Wall time of fresh ``python -m jaxcnn train --no-progress`` processes (defaults):
    with an empty compilation cache (a first run on a machine), then repeated with the
    cache that run left (``JAXCNN_CACHE_DIR``, a temporary folder); alternating."""
    import tempfile

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    times: dict[str, list[float]] = {"empty_cache": [], "warm_cache": []}
    codes = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="jaxcnn-bench-cache-") as cache:
            for kind in ("empty_cache", "warm_cache"):
                t0 = _now()
                proc = subprocess.run([sys.executable, *COLD_COMMAND], cwd=REPO,
                                      env=env | {"JAXCNN_CACHE_DIR": cache},
                                      capture_output=True, text=True, check=False)
                times[kind].append(_now() - t0)
                codes.append(proc.returncode)
                if proc.returncode != 0:
                    print(f"warning: jaxcnn train exited {proc.returncode}: "
                          f"{proc.stderr[-500:]}", file=sys.stderr)
    out = {"command": "python " + " ".join(COLD_COMMAND), "return_codes": codes,
           "runs_seconds": times["empty_cache"],
           "median_seconds": statistics.median(times["empty_cache"])}
    for kind, values in times.items():
        out[kind] = _summary(values) | {"runs_seconds": values,
                                        "target_seconds": COLD_TARGETS[kind],
                                        "met": statistics.median(values) <= COLD_TARGETS[kind]}
    return out


def memory_bandwidth(sizes=BANDWIDTH_SIZES, seconds: float = 0.2) -> list[dict]:
    """GB/s of a compiled loop that reads and writes an array of each size (one device):
    ``x = x * a + b`` repeated inside ``lax.fori_loop``, 2 x size bytes per pass. Small
    sizes stay in L1/L2, large ones stream from L3 or DRAM: each workload's memory roof
    is the bandwidth at its working-set size."""
    out = []
    for size in sizes:
        n = size // 4
        x = jnp.ones((n,), jnp.float32)
        passes = max(4, int(2e8 // size))
        loop = jax.jit(lambda x, k=passes: jax.lax.fori_loop(
            0, k, lambda i, v: v * 1.0000001 + 1e-7, x))
        compiled = loop.lower(x).compile()
        jax.block_until_ready(compiled(x))
        best = math.inf
        t_end = _now() + seconds
        while _now() < t_end or best == math.inf:
            t0 = _now()
            jax.block_until_ready(compiled(x))
            best = min(best, _now() - t0)
        out.append({"bytes": size, "gb_per_second": 2 * size * passes / best / 1e9})
    return out


def bandwidth_at(bandwidth: list[dict], working_set: float) -> dict:
    """The measured bandwidth at the smallest measured size holding ``working_set``."""
    for row in bandwidth:
        if row["bytes"] >= working_set:
            return row
    return bandwidth[-1]


def one_core_probe(rounds: int, quick: bool) -> dict | None:
    """1 seed vs 16 seeds per-image, interleaved, in a child process pinned to one core
    (``os.sched_setaffinity`` before JAX starts): the one-core target, measured with
    nothing of XLA's thread pool on the other core."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    args = [sys.executable, "-m", "experiments.benchmark", "--one-core-probe",
            "--rounds", str(rounds)] + (["--quick"] if quick else [])
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=1800)
    if proc.returncode != 0:
        print(f"warning: the one-core probe failed: {proc.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _one_core_probe_main(rounds: int, quick: bool) -> int:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    settings = QUICK if quick else FULL
    dataset = data.load("mnist-embedded")
    images = model.normalize(dataset.train_images, jnp.float32)
    labels = jnp.asarray(dataset.train_labels, jnp.int32)
    contenders = [train_contender(f"one-core-{s}-seeds", "", TrainConfig(seeds=s), images,
                                  labels, settings.steps_per_chunk, cost=False)
                  for s in (1, 16)]
    for c in contenders:
        warm_up_and_size(c, settings.seconds_per_measurement)
    for _ in range(rounds):
        for c in contenders:
            measure_round(c)
    one, many = contenders
    print(json.dumps({"cpu": sorted(os.sched_getaffinity(0)),
                      "one_seed": _summary(one.rates), "sixteen_seeds": _summary(many.rates),
                      "ratio": _ratios(many, one), "rounds": rounds}))
    return 0


# ------------------------------------------------------------------------- reporting

def _ratios(contender: Contender, baseline: Contender | None) -> dict | None:
    if baseline is None or not baseline.rates:
        return None
    return _summary([a / b for a, b in zip(contender.rates, baseline.rates, strict=True)])


def best_torch(contenders: list[Contender]) -> list[Contender]:
    """One row per PyTorch workload: its thread count with the highest median images/s,
    named without the ``@Nt`` suffix (the baseline of every ratio to PyTorch)."""
    families: dict[str, list[Contender]] = {}
    for c in contenders:
        if c.group == "torch" and "@" in c.name:
            families.setdefault(c.name.split("@")[0], []).append(c)
    best = []
    for family, members in families.items():
        top = max(members, key=lambda c: statistics.median(c.rates))
        threads = top.name.split("@")[1]
        best.append(Contender(family, "torch", f"best of {', '.join(m.name for m in members)}:"
                              f" {threads}", top.images_per_call, top.run,
                              calls_per_round=top.calls_per_round, rates=top.rates))
    return best


def results(contenders: list[Contender], notes: dict, bandwidth: list[dict] | None = None,
            peak_gflops: float | None = None) -> dict:
    contenders = contenders + best_torch(contenders)
    by_name = {c.name: c for c in contenders}
    numpy_ref = by_name["numpy-reference"]
    rows = []
    for c in contenders:
        rate = _summary(c.rates)
        to_numpy = _ratios(c, numpy_ref)
        to_torch = _ratios(c, by_name.get(c.torch_equivalent)) if c.torch_equivalent else None
        row = {
            "name": c.name, "group": c.group, "description": c.description, "skipped": False,
            "images_per_second": rate["median"],
            "images_per_second_min": rate["min"], "images_per_second_max": rate["max"],
            "images_per_second_rounds": c.rates,
            "ratio_to_numpy": to_numpy["median"],
            "ratio_to_numpy_min": to_numpy["min"], "ratio_to_numpy_max": to_numpy["max"],
            "torch_equivalent": c.torch_equivalent,
            "ratio_to_torch": to_torch["median"] if to_torch else None,
            "ratio_to_torch_min": to_torch["min"] if to_torch else None,
            "ratio_to_torch_max": to_torch["max"] if to_torch else None,
            "images_per_call": c.images_per_call, "calls_per_round": c.calls_per_round,
            "compile_seconds": c.compile_seconds,
        }
        if c.cost:
            row.update(c.cost)
            row["gflops_per_second"] = c.cost["flops_per_image"] * rate["median"] / 1e9
            if bandwidth and peak_gflops and c.cost.get("bytes_per_step"):
                at = bandwidth_at(bandwidth, c.cost["bytes_per_step"])
                compute_roof = peak_gflops * 1e9 / c.cost["flops_per_image"]
                memory_roof = (at["gb_per_second"] * 1e9 / c.cost["bytes_per_image"]
                               * c.cost.get("devices", 1))
                row["roofline"] = {
                    "working_set_bytes": c.cost["bytes_per_step"],
                    "bandwidth_gb_per_second": at["gb_per_second"],
                    "bandwidth_measured_at_bytes": at["bytes"],
                    "compute_roof_images_per_second": compute_roof,
                    "memory_roof_images_per_second": memory_roof,
                    "bound": "memory" if memory_roof < compute_roof else "compute",
                    "roof_images_per_second": min(compute_roof, memory_roof),
                    "fraction_of_roof": rate["median"] / min(compute_roof, memory_roof)}
        if c.check is not None:
            row["losses_finite"] = c.check()
        rows.append(row)
    if notes.get("flax_skipped"):
        for name in ("flax-per-sample-loop", "flax-per-sample-scan", "flax-batch-32",
                     "flax-batch-128"):
            rows.append({"name": name, "group": "flax", "skipped": True,
                         "reason": notes["flax_skipped"], "images_per_second": None,
                         "ratio_to_numpy": None})
    if notes.get("torch_skipped"):
        for name in ("torch-per-sample", "torch-batch-32", "torch-batch-128",
                     "torch-evaluate"):
            rows.append({"name": name, "group": "torch", "skipped": True,
                         "reason": notes["torch_skipped"], "images_per_second": None,
                         "ratio_to_numpy": None})

    targets = []
    for text, name, baseline, threshold in TARGETS:
        c = by_name.get(name)
        if c is None:  # a row this machine does not run (one core: no -all-cores rows)
            targets.append({"target": text, "contender": name, "baseline": baseline,
                            "threshold": threshold, "measured": None, "measured_min": None,
                            "measured_max": None, "met": None})
            continue
        if baseline == "images/s":
            ratio = _summary(c.rates)
        elif baseline == "numpy":
            ratio = _ratios(c, numpy_ref)
        elif baseline == "torch":
            ratio = _ratios(c, by_name.get(c.torch_equivalent))
        elif baseline == "roof":  # the images/s of each round over the row's roof
            roof = next((r.get("roofline") for r in rows if r["name"] == name), None)
            ratio = _summary([rate / roof["roof_images_per_second"] for rate in c.rates]
                             ) if roof else None
        else:
            ratio = _ratios(c, by_name.get(baseline))
        targets.append({"target": text, "contender": name, "baseline": baseline,
                        "threshold": threshold,
                        "measured": ratio["median"] if ratio else None,
                        "measured_min": ratio["min"] if ratio else None,
                        "measured_max": ratio["max"] if ratio else None,
                        "met": (ratio["median"] >= threshold) if ratio else None})
    per_sample = next(r for r in rows if r["name"] == "jaxcnn-per-sample-manual")
    return {"contenders": rows, "targets": targets,
            "per_sample_ratio_to_numpy": per_sample["ratio_to_numpy"],
            "per_sample_ratio_to_torch": per_sample["ratio_to_torch"]}


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    v = m["versions"]
    lines = [
        "# jaxcnn benchmark", "",
        f"`{report['command']}` ({report['mode']} mode), {report['date']}.", "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores; load average before the run "
        f"{m['load_average_before']} (1, 5, 15 min), after {m['load_average_after']}. "
        f"Python {v['python']}, jax {v['jax']}, jaxlib {v['jaxlib']}, numpy {v['numpy']}, "
        f"optax {v['optax']}, torch {v['torch'] or 'not installed'}"
        + (f" (default {v['torch_threads']} threads; measured at "
           f"{', '.join(map(str, TORCH_THREADS))}, the best is the baseline)"
           if v.get("torch_threads") else "")
        + ".", "",
        f"{s['rounds']} interleaved round(s) after warm-up; each contender's calls per round "
        f"sized to about {s['seconds_per_measurement']} s. Images/s: median and min–max over "
        "the rounds; ratios: median of the per-round ratios (same round). Compile s: lower + "
        "compile of the jitted function for these shapes.", "",
        "| contender | images/s median | min–max | ratio to NumPy | ratio to torch | compile s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["contenders"]:
        if r["skipped"]:
            lines.append(f"| {r['name']} | skipped | | | | |")
            continue
        torch_col = (f"{_fmt(r['ratio_to_torch'])} (vs {r['torch_equivalent']})"
                     if r["ratio_to_torch"] is not None else "–")
        lines.append(
            f"| {r['name']} | {_fmt(r['images_per_second'])} | "
            f"{_fmt(r['images_per_second_min'])}–{_fmt(r['images_per_second_max'])} | "
            f"{_fmt(r['ratio_to_numpy'])} | {torch_col} | {_fmt(r['compile_seconds'])} |")
    for r in report["contenders"]:
        if r["skipped"] and r["name"] in ("torch-per-sample", "flax-per-sample-loop"):
            lines += ["", f"{r['group']} contenders skipped: {r['reason']}."]
    lines += ["", "Workloads:", ""]
    lines += [f"- `{r['name']}`: {r['description']}" for r in report["contenders"]
              if not r["skipped"]]
    lines += ["", "## Targets (this 2-core CPU, from the issues)", "",
              "| target | measured (median, min–max) | met? |", "| --- | ---: | --- |"]
    for t in report["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a (baseline skipped or no roof)"}[
            t["met"]]
        if t["measured"] is None:
            measured = "–"
        elif t["baseline"] == "roof":
            measured = (f"{100 * t['measured']:.0f}% ({100 * t['measured_min']:.0f}–"
                        f"{100 * t['measured_max']:.0f}%)")
        else:
            unit = "" if t["baseline"] == "images/s" else "x"
            measured = (f"{_fmt(t['measured'])}{unit} ({_fmt(t['measured_min'])}–"
                        f"{_fmt(t['measured_max'])})")
        lines.append(f"| {t['target']} | {measured} | {met} |")
    one = report.get("one_core")
    if one:
        r = one["ratio"]
        lines.append(f"| 16 seeds >= 1.6x one seed, process pinned to one core (cpu "
                     f"{one['cpu']}) | {_fmt(r['median'])}x ({_fmt(r['min'])}–"
                     f"{_fmt(r['max'])}) | {'yes' if r['median'] >= 1.6 else '**no**'} |")
    cold = report["cold_train"]
    for kind, text in (("empty_cache", "empty compilation cache (first run)"),
                       ("warm_cache", "repeated (cache from the run before)")):
        c = cold[kind]
        lines.append(f"| `jaxcnn train` defaults, fresh process, {text} <= "
                     f"{c['target_seconds']} s | {c['median']:.2f} s ({c['min']:.2f}–"
                     f"{c['max']:.2f}) | {'yes' if c['met'] else '**no**'} |")
    if one:
        lines += ["", f"One-core probe (a child process pinned to cpu {one['cpu']}, "
                  f"{one['rounds']} interleaved rounds): one seed "
                  f"{_fmt(one['one_seed']['median'])} images/s "
                  f"({_fmt(one['one_seed']['min'])}–{_fmt(one['one_seed']['max'])}), 16 seeds "
                  f"{_fmt(one['sixteen_seeds']['median'])} "
                  f"({_fmt(one['sixteen_seeds']['min'])}–{_fmt(one['sixteen_seeds']['max'])})."]
    lines += ["", f"Cold `{cold['command']}` (defaults: 3,000 per-sample steps, 800 test "
              f"images, fresh process), {len(cold['empty_cache']['runs_seconds'])} run(s) "
              "each, alternating: empty cache "
              f"{', '.join(f'{t:.2f}' for t in cold['empty_cache']['runs_seconds'])} s; warm "
              f"{', '.join(f'{t:.2f}' for t in cold['warm_cache']['runs_seconds'])} s.", ""]
    ctx = report["flops"]
    bw = report.get("memory_bandwidth") or []
    lines += [
        "## Roofline", "",
        "Two roofs per workload: the matmul peak (a 1024x1024 float32 matmul under XLA, "
        f"{_fmt(ctx['matmul_gflops'])} GFLOP/s here) and the memory bandwidth measured at the "
        "workload's working-set size (a compiled loop reading and writing an array of that "
        "size, on one core; small sizes include the loop's per-pass overhead). Bandwidth by "
        "size: "
        + ", ".join(f"{b['bytes'] // 1024:,} KiB {b['gb_per_second']:.0f} GB/s" for b in bw)
        + ". FLOPs and bytes per image come from XLA's `cost_analysis` of one step (one "
        "device's program); the working set is every buffer one step of one loop body "
        "allocates (one seed group's, or one batch's: XLA's `memory_analysis`). Roof = the "
        "lower of peak / (FLOPs/image) and "
        "bandwidth / (bytes/image), the latter times the devices for sharded rows (each core "
        "its own caches); the matmul peak already uses both cores.", "",
        "| contender | FLOPs/image | bytes/image | working set | bandwidth there GB/s | "
        "compute roof img/s | memory roof img/s | bound | achieved | % of roof |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in report["contenders"]:
        roof = r.get("roofline")
        if not roof:
            continue
        lines.append(
            f"| {r['name']} | {r['flops_per_image']:,.0f} | {r['bytes_per_image']:,.0f} | "
            f"{roof['working_set_bytes'] / 1024:,.0f} KiB | "
            f"{roof['bandwidth_gb_per_second']:.0f} | "
            f"{roof['compute_roof_images_per_second']:,.0f} | "
            f"{roof['memory_roof_images_per_second']:,.0f} | {roof['bound']} | "
            f"{r['images_per_second']:,.0f} | {100 * roof['fraction_of_roof']:.0f}% |")
    fl = ctx["per_sample_flops_per_image"]
    lines += ["", "At the same FLOPs per image (the algorithm's, as XLA counts it for one "
              f"per-sample step, {fl:,.0f}), the NumPy reference achieves "
              f"{_fmt(ctx['numpy_gflops'])} GFLOP/s"
              + (f" and PyTorch per-sample {_fmt(ctx['torch_per_sample_gflops'])} GFLOP/s"
                 if ctx.get("torch_per_sample_gflops") is not None else "") + ".", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny workloads, one round, one cold run (CI smoke test; "
                             "the numbers are not measurements)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="write the markdown report here (it is printed in any case)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 1)")
    parser.add_argument("--no-torch", dest="torch", action="store_false",
                        help="skip the PyTorch contenders even when torch is installed")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr")
    parser.add_argument("--one-core-probe", action="store_true",
                        help=argparse.SUPPRESS)  # the child process of one_core_probe
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    args = parse_args(argv)
    if args.one_core_probe:
        return _one_core_probe_main(args.rounds or (QUICK if args.quick else FULL).rounds,
                                    args.quick)
    # One JAX device per core, as `jaxcnn train --seeds K` does (before JAX starts);
    # contenders other than the sharded 16-seed one run on the first device.
    cores = os.cpu_count() or 1
    if cores > 1 and 16 % cores == 0:
        jax.config.update("jax_num_cpu_devices", cores)
    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = Settings(**{**settings.__dict__, "rounds": args.rounds})
    load_before = load_average()
    command = "python -m experiments.benchmark " + " ".join(
        sys.argv[1:] if argv is None else argv)
    t_start = _now()
    dataset = data.load("mnist-embedded")

    n_contenders = 25
    total = 7 + n_contenders * (1 + settings.rounds) + 2
    with tqdm(total=total, desc="benchmark", file=sys.stderr,
              disable=not args.progress or args.quick, leave=False) as progress:
        contenders, notes = build_contenders(dataset, settings, progress, args.torch)
        progress.total = 7 + len(contenders) * (1 + settings.rounds) + 2
        for c in contenders:
            progress.set_postfix_str(f"warm-up {c.name}")
            warm_up_and_size(c, settings.seconds_per_measurement)
            progress.update()
        for r in range(settings.rounds):
            for c in contenders:
                progress.set_postfix_str(f"round {r + 1}/{settings.rounds} {c.name}")
                measure_round(c)
                progress.update()
        progress.set_postfix_str("matmul peak")
        peak = matmul_gflops()
        progress.update()
        progress.set_postfix_str("memory bandwidth")
        bandwidth = memory_bandwidth(BANDWIDTH_SIZES[:3] if args.quick else BANDWIDTH_SIZES,
                                     0.02 if args.quick else 0.3)
        progress.set_postfix_str("one core")
        one_core = one_core_probe(settings.rounds, args.quick)
        progress.set_postfix_str("cold jaxcnn train")
        cold = cold_train(settings.cold_runs)
        progress.update()

    report = {
        "schema": 1,
        "command": command.strip(),
        "mode": "quick" if args.quick else "full",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu_model(), "cores": os.cpu_count(),
                    "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": load_average(),
                    "xla_flags": os.environ.get("XLA_FLAGS"),
                    "jax_devices": [str(d) for d in jax.devices()], "versions": versions()},
        "settings": settings.__dict__ | {"train_images": len(dataset.train_labels),
                                         "eval_batch": EVAL_BATCH},
        **results(contenders, notes, bandwidth, peak),
        "cold_train": cold,
        "memory_bandwidth": bandwidth,
        "one_core": one_core,
    }
    by_name = {r["name"]: r for r in report["contenders"]}
    per_sample_flops = by_name["jaxcnn-per-sample-manual"]["flops_per_image"]
    torch_ps = by_name.get("torch-per-sample")
    report["flops"] = {
        "matmul_gflops": peak,
        "per_sample_flops_per_image": per_sample_flops,
        "forward_flops_per_image": by_name["jaxcnn-evaluate"]["flops_per_image"],
        "numpy_gflops": per_sample_flops * by_name["numpy-reference"]["images_per_second"] / 1e9,
        "torch_per_sample_gflops": (per_sample_flops * torch_ps["images_per_second"] / 1e9
                                    if torch_ps and not torch_ps["skipped"] else None),
    }
    report["total_seconds"] = _now() - t_start
    text = markdown(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
