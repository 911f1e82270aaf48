"""The report's algorithm in plain NumPy, as it ran: the speed and correctness baseline.

The lab report (digested, with every formula and number, in ``docs/report.md``)
follows the code of Victor Zhou's blog posts "CNNs, Part 1: An Introduction to
Convolutional Neural Networks" and "CNNs, Part 2: Training a Convolutional Neural
Network" (victorzhou.com, 2019): three classes ``Conv3x3``, ``MaxPool2`` and
``Softmax``, each with a ``forward`` that caches what its ``backprop`` needs and a
``backprop`` that returns dL/d(input) and updates the layer's parameters in place.
This module is that algorithm, restated with type hints and docstrings but with its
structure kept on purpose: Python loops over every 3x3 (conv) and 2x2 (pool) region,
float64 arrays, one image per step, plain SGD. It answers "how slow was the report's
original algorithm" (the report's own complaint 1) and, in the tests, "does the JAX
implementation compute exactly what the report computed", max-pool ties included.

Equation numbers are the steps of the report's section 2.1 (see the digest):

* (1) ``dL/dout_i = -1/p_c`` for the label ``i = c``, 0 otherwise;
* (2) softmax: ``d out_c / d t_k = -e^{t_c} e^{t_k} / S^2`` (k != c) and
  ``e^{t_c} (S - e^{t_c}) / S^2`` (k = c), ``S = sum_i e^{t_i}``; with
  ``t = W . input + b``: ``dL/dW = input (x) dL/dt``, ``dL/db = dL/dt``,
  ``dL/dinput = W . dL/dt``;
* (3) max-pool: the gradient goes to the window's maximum; as in the blog code, EVERY
  pixel equal to the maximum receives the full upstream gradient (the report's tie
  rule, ``ties="report"`` in ``jaxcnn.model``);
* (4) conv: ``out(i,j) = sum_{x,y} image(i+x, j+y) * filter(x,y)``, so
  ``dL/dfilter(x,y) = sum_{i,j} dL/dout(i,j) * image(i+x, j+y)``.

Parameter layouts are those of ``jaxcnn.model.Params``: filters (F, 3, 3), weights
(13*13*F, C) with rows in (H, W, F) flatten order, biases (C,). ``Network.from_params``
accepts them directly (JAX arrays included) and ``Network.params`` gives them back.

Deliberately kept from the blog: the logits are exponentiated without subtracting
their maximum (fine while |t| stays far below ~709, which it does here), and the loss
is ``-log(out[label])`` of the probabilities (``inf`` if that probability underflows).
No JAX here: this module needs only NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

IMAGE_SIZE = 28
POOL_SIZE = (IMAGE_SIZE - 2) // 2  # 13
LEARN_RATE = 0.005  # the blog's value, the report's ``study``

RngLike = np.random.Generator | int | None


def _float64_copy(array, shape: tuple[int, ...] | None = None, name: str = "array") -> np.ndarray:
    """A fresh, writable float64 copy (layers update their parameters in place)."""
    out = np.array(array, dtype=np.float64, copy=True)
    if shape is not None and out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    return out


class Conv3x3:
    """Valid 3x3 convolution (cross-correlation), stride 1, no bias: (H, W) -> (H-2, W-2, F).

    Step (4) of the report. The first layer, so ``backprop`` returns no input gradient.
    """

    def __init__(self, num_filters: int = 8, rng: RngLike = None) -> None:
        """The report's initialisation: filters ``randn(F, 3, 3) / 9``."""
        rng = np.random.default_rng(rng)
        self._set_filters(rng.standard_normal((num_filters, 3, 3)) / 9)

    @classmethod
    def from_filters(cls, filters) -> Conv3x3:
        """A layer starting from given filters (F, 3, 3), copied to float64."""
        filters = _float64_copy(filters, name="filters")
        if filters.ndim != 3 or filters.shape[1:] != (3, 3):
            raise ValueError(f"filters must have shape (F, 3, 3), got {filters.shape}")
        layer = cls.__new__(cls)
        layer._set_filters(filters)
        return layer

    def _set_filters(self, filters: np.ndarray) -> None:
        self.num_filters = filters.shape[0]
        self.filters = filters
        self.last_input: np.ndarray | None = None

    @staticmethod
    def iterate_regions(image: np.ndarray) -> Iterator[tuple[np.ndarray, int, int]]:
        """Every 3x3 region ``image[i:i+3, j:j+3]`` with its output position (i, j)."""
        h, w = image.shape
        for i in range(h - 2):
            for j in range(w - 2):
                yield image[i:i + 3, j:j + 3], i, j

    def forward(self, input: np.ndarray) -> np.ndarray:
        """``out(i, j, f) = sum_{x,y} image(i+x, j+y) * filter_f(x, y)`` (step 4).

        Caches the input for ``backprop``.
        """
        self.last_input = input
        h, w = input.shape
        output = np.zeros((h - 2, w - 2, self.num_filters))
        for im_region, i, j in self.iterate_regions(input):
            output[i, j] = np.sum(im_region * self.filters, axis=(1, 2))
        return output

    def backprop(self, d_L_d_out: np.ndarray, learn_rate: float) -> None:
        """``dL/dfilter_f(x, y) = sum_{i,j} dL/dout(i, j, f) * image(i+x, j+y)`` (step 4).

        Updates the filters in place, ``filters <- filters - learn_rate * dL/dfilters``.
        Returns None: the conv is the first layer, the report needs no input gradient.
        """
        d_L_d_filters = np.zeros(self.filters.shape)
        for im_region, i, j in self.iterate_regions(self.last_input):
            for f in range(self.num_filters):
                d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region
        self.filters -= learn_rate * d_L_d_filters
        return None


class MaxPool2:
    """2x2 max-pool, stride 2: (H, W, F) -> (H/2, W/2, F). No parameters. Step (3)."""

    def __init__(self) -> None:
        self.last_input: np.ndarray | None = None

    @staticmethod
    def iterate_regions(image: np.ndarray) -> Iterator[tuple[np.ndarray, int, int]]:
        """Every 2x2 window ``image[2i:2i+2, 2j:2j+2]`` (all filters) with its position."""
        h, w, _ = image.shape
        for i in range(h // 2):
            for j in range(w // 2):
                yield image[2 * i:2 * i + 2, 2 * j:2 * j + 2], i, j

    def forward(self, input: np.ndarray) -> np.ndarray:
        """The maximum of each window, per filter. Caches the input for ``backprop``."""
        self.last_input = input
        h, w, num_filters = input.shape
        output = np.zeros((h // 2, w // 2, num_filters))
        for im_region, i, j in self.iterate_regions(input):
            output[i, j] = np.amax(im_region, axis=(0, 1))
        return output

    def backprop(self, d_L_d_out: np.ndarray) -> np.ndarray:
        """Step (3): each pixel equal to its window's maximum gets dL/dout of that window.

        The report's (and blog's) tie rule: when several pixels of a window tie for the
        maximum, EVERY one of them receives the full upstream gradient; all other
        pixels get 0. Returns dL/dinput with the input's shape.
        """
        d_L_d_input = np.zeros(self.last_input.shape)
        for im_region, i, j in self.iterate_regions(self.last_input):
            h, w, f = im_region.shape
            amax = np.amax(im_region, axis=(0, 1))
            for i2 in range(h):
                for j2 in range(w):
                    for f2 in range(f):
                        if im_region[i2, j2, f2] == amax[f2]:
                            d_L_d_input[2 * i + i2, 2 * j + j2, f2] = d_L_d_out[i, j, f2]
        return d_L_d_input


class Softmax:
    """Fully connected layer + softmax: input (any shape, flattened) -> probabilities (C,).

    ``t = W . input + b`` (the logits, the blog's ``totals``), ``out = e^t / sum e^t``.
    Step (2) of the report.
    """

    def __init__(self, input_len: int, nodes: int, rng: RngLike = None) -> None:
        """The report's initialisation: weights ``randn(input_len, nodes) / input_len``,
        biases 0."""
        rng = np.random.default_rng(rng)
        self._set_params(rng.standard_normal((input_len, nodes)) / input_len, np.zeros(nodes))

    @classmethod
    def from_params(cls, weights, biases) -> Softmax:
        """A layer starting from given weights (input_len, C) and biases (C,), as float64."""
        weights = _float64_copy(weights, name="weights")
        if weights.ndim != 2:
            raise ValueError(f"weights must have shape (input_len, C), got {weights.shape}")
        layer = cls.__new__(cls)
        layer._set_params(weights, _float64_copy(biases, (weights.shape[1],), "biases"))
        return layer

    def _set_params(self, weights: np.ndarray, biases: np.ndarray) -> None:
        self.weights = weights
        self.biases = biases
        self.last_input_shape: tuple[int, ...] | None = None
        self.last_input: np.ndarray | None = None
        self.last_totals: np.ndarray | None = None

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Probabilities ``e^{t_i} / sum_j e^{t_j}`` for ``t = W . input + b``.

        (The report prints ``S_i = e^i / sum_j e^j``, a typo for this.) Caches the input's
        shape, the flattened input and the logits for ``backprop``.
        """
        self.last_input_shape = input.shape
        input = input.flatten()
        self.last_input = input
        totals = np.dot(input, self.weights) + self.biases
        self.last_totals = totals
        exp = np.exp(totals)
        return exp / np.sum(exp, axis=0)

    def backprop(self, d_L_d_out: np.ndarray, learn_rate: float) -> np.ndarray:
        """Step (2): chain dL/dout through the softmax and the dense layer.

        For each non-zero entry ``dL/dout_c`` (step (1) leaves exactly one, at the
        label) the report's Jacobian row is
        ``d out_c / d t_k = -e^{t_c} e^{t_k} / S^2`` (k != c),
        ``e^{t_c} (S - e^{t_c}) / S^2`` (k = c), and ``dL/dt = dL/dout_c * d out_c / dt``.
        Then ``dL/dW = input (x) dL/dt``, ``dL/db = dL/dt`` and
        ``dL/dinput = W . dL/dt``, the last with the weights BEFORE this step's update.
        Updates W and b in place (``W <- W - learn_rate * dL/dW``) and returns dL/dinput
        in the input's shape.

        The blog returns from inside the loop after the first non-zero entry; here the
        contributions of all non-zero entries are summed before one update, which is
        the same for the one-hot gradient of step (1) and the full chain rule otherwise.
        """
        t_exp = np.exp(self.last_totals)
        S = np.sum(t_exp)
        d_L_d_t = np.zeros(t_exp.shape)
        for i, gradient in enumerate(d_L_d_out):
            if gradient == 0:
                continue
            d_out_d_t = -t_exp[i] * t_exp / (S**2)
            d_out_d_t[i] = t_exp[i] * (S - t_exp[i]) / (S**2)
            d_L_d_t += gradient * d_out_d_t

        d_t_d_w = self.last_input  # dt/dW = input
        d_t_d_b = 1  # dt/db = 1
        d_t_d_inputs = self.weights  # dt/dinput = W
        d_L_d_w = d_t_d_w[np.newaxis].T @ d_L_d_t[np.newaxis]  # outer product
        d_L_d_b = d_L_d_t * d_t_d_b
        d_L_d_inputs = d_t_d_inputs @ d_L_d_t  # before the in-place update below

        self.weights -= learn_rate * d_L_d_w
        self.biases -= learn_rate * d_L_d_b
        return d_L_d_inputs.reshape(self.last_input_shape)


class Network:
    """The report's CNN: Conv3x3(F) -> MaxPool2 -> Softmax(13*13*F, C), trained image by image.

    ``forward`` and ``train_step`` are the blog's ``forward`` and ``train`` functions.
    Images are raw pixels 0..255 (uint8 or float) of shape (28, 28); they are
    normalised to ``image / 255 - 0.5`` here, as in the report's step 1.
    """

    def __init__(self, num_filters: int = 8, num_classes: int = 10,
                 rng: RngLike = None) -> None:
        """Fresh layers with the report's initialisation, drawn from ``rng``."""
        rng = np.random.default_rng(rng)
        self.conv = Conv3x3(num_filters, rng)
        self.pool = MaxPool2()
        self.softmax = Softmax(POOL_SIZE * POOL_SIZE * num_filters, num_classes, rng)

    @classmethod
    def from_params(cls, filters, weights, biases) -> Network:
        """A network starting from given parameters in ``jaxcnn.model.Params`` layout
        (NumPy or JAX arrays), copied to float64; the caller's arrays are never modified."""
        conv = Conv3x3.from_filters(filters)
        softmax = Softmax.from_params(weights, biases)
        expected = POOL_SIZE * POOL_SIZE * conv.num_filters
        if softmax.weights.shape[0] != expected:
            raise ValueError(f"weights need {expected} rows for {conv.num_filters} filters, "
                             f"got {softmax.weights.shape[0]}")
        network = cls.__new__(cls)
        network.conv, network.pool, network.softmax = conv, MaxPool2(), softmax
        return network

    def params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of (filters (F, 3, 3), weights (13*13*F, C), biases (C,))."""
        return self.conv.filters.copy(), self.softmax.weights.copy(), self.softmax.biases.copy()

    def forward(self, image, label: int) -> tuple[np.ndarray, float, int]:
        """The blog's ``forward``: ``(probabilities (C,), loss = -ln p_label, correct 0/1)``."""
        out = self.conv.forward(np.asarray(image, dtype=np.float64) / 255 - 0.5)
        out = self.pool.forward(out)
        out = self.softmax.forward(out)
        loss = -np.log(out[label])
        correct = 1 if np.argmax(out) == label else 0
        return out, float(loss), correct

    def train_step(self, image, label: int, lr: float = LEARN_RATE) -> tuple[float, int]:
        """The blog's ``train``: forward, then backprop softmax -> pool -> conv with SGD.

        The initial gradient is step (1): zeros except ``-1 / p_label`` at the label.
        Returns ``(loss, correct)`` of the forward pass (before the update).
        """
        out, loss, correct = self.forward(image, label)
        gradient = np.zeros(out.shape)
        gradient[label] = -1 / out[label]
        gradient = self.softmax.backprop(gradient, lr)
        gradient = self.pool.backprop(gradient)
        self.conv.backprop(gradient, lr)
        return loss, correct
