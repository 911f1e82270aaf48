"""The report's network as a JAX user would write it without jaxcnn: ``flax.linen``.

``nn.Conv(F, (3, 3), padding="VALID", use_bias=False) -> nn.max_pool((2, 2)) -> flatten
-> nn.Dense(C)``, ``optax.softmax_cross_entropy_with_integer_labels``, ``optax.sgd`` at
the report's learning rate 0.005, ``jax.value_and_grad`` and ``jax.jit`` on the step:
the textbook spelling, with no layout or fusion work. Images are NHWC (B, 28, 28, 1);
the flatten order is (H, W, F), so ``Dense``'s kernel is exactly
``jaxcnn.model.Params.weights`` and ``params_from`` takes jaxcnn's parameters as they are.

Three workloads, each the idiomatic spelling of one benchmark contender:

* ``per_sample_loop``: the jitted step called once per image from a Python loop;
* ``per_sample_scan``: the same step inside one jitted ``lax.scan`` over the images;
* ``batch_epoch``: the jitted step on mini-batches of 128, called from a Python loop.

Needs the ``bench`` extra (flax).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

LEARN_RATE = 0.005


class ReportNet(nn.Module):
    num_filters: int = 8
    num_classes: int = 10

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        """(B, 28, 28, 1) -> logits (B, C)."""
        x = nn.Conv(self.num_filters, (3, 3), padding="VALID", use_bias=False)(images)
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def params_from(filters, weights, biases) -> dict:
    """flax parameters from ``jaxcnn.model.Params`` arrays (F, 3, 3), (169F, C), (C,)."""
    kernel = jnp.asarray(np.transpose(np.asarray(filters, np.float32), (1, 2, 0))[:, :, None])
    return {"params": {"Conv_0": {"kernel": kernel},
                       "Dense_0": {"kernel": jnp.asarray(weights, jnp.float32),
                                   "bias": jnp.asarray(biases, jnp.float32)}}}


def to_inputs(images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """uint8 (N, 28, 28) -> normalised float32 (N, 28, 28, 1); labels int32 (N,)."""
    x = np.asarray(images, np.float32)[..., None] / 255 - 0.5
    return jnp.asarray(x), jnp.asarray(labels, jnp.int32)


def make_step(model: ReportNet, tx: optax.GradientTransformation):
    def loss_fn(params, x, y):
        logits = model.apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


class Trainer:
    """Parameters, optimizer state and the three compiled workloads."""

    def __init__(self, params: dict, num_filters: int = 8, num_classes: int = 10):
        self.model = ReportNet(num_filters, num_classes)
        self.tx = optax.sgd(LEARN_RATE)
        self.params, self.opt_state = params, self.tx.init(params)
        step = make_step(self.model, self.tx)
        self.step = jax.jit(step)

        def scan(params, opt_state, xs, ys):
            def body(carry, xy):
                p, o, loss = step(*carry, xy[0][None], xy[1][None])
                return (p, o), loss
            (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (xs, ys))
            return params, opt_state, losses

        self.scan = jax.jit(scan)

    def per_sample_loop(self, xs, ys) -> jax.Array:
        loss = None
        for i in range(xs.shape[0]):
            self.params, self.opt_state, loss = self.step(self.params, self.opt_state,
                                                          xs[i:i + 1], ys[i:i + 1])
        return jax.block_until_ready(loss)

    def per_sample_scan(self, xs, ys) -> jax.Array:
        self.params, self.opt_state, losses = self.scan(self.params, self.opt_state, xs, ys)
        return jax.block_until_ready(losses)

    def batch_epoch(self, xs, ys, size: int = 128, steps: int | None = None) -> jax.Array:
        loss = None
        for s in range(steps if steps is not None else xs.shape[0] // size):
            self.params, self.opt_state, loss = self.step(
                self.params, self.opt_state, xs[s * size:(s + 1) * size],
                ys[s * size:(s + 1) * size])
        return jax.block_until_ready(loss)
