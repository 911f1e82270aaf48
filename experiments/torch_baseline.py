"""The report's network in PyTorch (CPU): the benchmark's framework baseline.

``Conv2d(1, 8, 3, bias=False) -> MaxPool2d(2) -> flatten in (H, W, F) order ->
Linear(13*13*8, 10)``, cross-entropy loss, ``torch.optim.SGD`` at the report's learning
rate 0.005: the same parameters and the same math as ``jaxcnn`` (the flatten order makes
``Linear.weight`` the transpose of ``jaxcnn.model.Params.weights``, so
``from_params`` takes jaxcnn's parameters as they are). Float32, like jaxcnn's training.

Three workloads, each the idiomatic PyTorch spelling of one benchmark contender:

* ``per_sample_sgd``: the report's per-image SGD as a Python loop
  (``zero_grad``, forward, ``backward``, ``step`` for every image);
* ``batch_step``: one mini-batch SGD step (the benchmark runs batch 128);
* ``evaluate``: forward only under ``torch.inference_mode`` (batch 1000).

``torch.set_num_threads`` is left at PyTorch's default (its intra-op pool uses the
physical cores, 2 on the benchmark machine), just as jaxcnn runs with XLA's defaults.
Needs the ``bench`` extra (``torch==2.13.0``, CPU build); the benchmark skips these
contenders when torch is not installed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LEARN_RATE = 0.005
POOL_SIZE = 13


class ReportNet(nn.Module):
    """conv3x3 (no bias) -> 2x2 max-pool -> dense + softmax (the loss applies the softmax)."""

    def __init__(self, num_filters: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, num_filters, 3, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.dense = nn.Linear(POOL_SIZE * POOL_SIZE * num_filters, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 1, 28, 28) -> logits (B, C)."""
        pooled = self.pool(self.conv(images))  # (B, F, 13, 13)
        features = pooled.permute(0, 2, 3, 1).reshape(images.shape[0], -1)  # (H, W, F) order
        return self.dense(features)

    @classmethod
    def from_params(cls, filters, weights, biases) -> ReportNet:
        """From ``jaxcnn.model.Params`` arrays: filters (F, 3, 3), weights (13*13*F, C)
        with rows in (H, W, F) order, biases (C,); copied to float32."""
        filters, weights, biases = (np.array(a, np.float32) for a in (filters, weights, biases))
        net = cls(filters.shape[0], biases.shape[0])
        with torch.no_grad():
            net.conv.weight.copy_(torch.from_numpy(filters[:, None]))
            net.dense.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights.T)))
            net.dense.bias.copy_(torch.from_numpy(biases))
        return net


def report_init(num_filters: int = 8, num_classes: int = 10, seed: int = 0) -> ReportNet:
    """The report's initialisation: filters ``randn / 9``, weights ``randn / input_len``,
    biases 0 (drawn with NumPy, so no torch RNG state is involved)."""
    rng = np.random.default_rng(seed)
    inputs = POOL_SIZE * POOL_SIZE * num_filters
    return ReportNet.from_params(rng.standard_normal((num_filters, 3, 3)) / 9,
                                 rng.standard_normal((inputs, num_classes)) / inputs,
                                 np.zeros(num_classes))


def to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) -> normalised float32 (N, 1, 28, 28) (``x / 255 - 0.5``,
    the report's step 1) and int64 labels (N,)."""
    x = torch.from_numpy(np.asarray(images, np.float32) / 255 - 0.5).unsqueeze(1)
    return x.contiguous(), torch.from_numpy(np.asarray(labels, np.int64))


def make_optimizer(net: ReportNet, lr: float = LEARN_RATE) -> torch.optim.SGD:
    return torch.optim.SGD(net.parameters(), lr=lr)


def per_sample_sgd(net: ReportNet, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                   labels: torch.Tensor) -> float:
    """One SGD step per image, in order, as a Python loop; returns the mean loss."""
    loss_fn = nn.functional.cross_entropy
    total = 0.0
    for i in range(images.shape[0]):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(images[i:i + 1]), labels[i:i + 1])
        loss.backward()
        optimizer.step()
        total += loss.item()  # the per-step host sync a logging loop does anyway
    return total / images.shape[0]


def batch_step(net: ReportNet, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor) -> torch.Tensor:
    """One mini-batch SGD step on the batch-mean loss; returns the loss (a tensor)."""
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(net(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def evaluate(net: ReportNet, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """Forward only: (summed loss, number correct) over the batch."""
    with torch.inference_mode():
        logits = net(images)
        loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
        correct = (logits.argmax(-1) == labels).sum()
    return float(loss), int(correct)
