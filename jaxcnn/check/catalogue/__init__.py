"""The catalogue: reference layers (the exact oracle), their inputs and their kinks.

One module per layer family (``conv``, ``pool``, ``dense``, ``activations``, ``losses``,
``network``, ``norms``, ``dropout``, ``embedding``, ``recurrent``, ``attention``,
``shape``); each
defines its entries as small factories returning a ``Spec`` (the kind, its differentiable
arguments, a JAX reference forward differentiated by ``jax.vjp`` in
float64, the input sets that expose each kind of mistake, and the alternates that explain
a disagreement, and the names its code goes by: ``Spec.names``, asked first by discovery
through ``match``; ``names["module"]`` / ``names["module_loss"]``: module-style classes,
tried in turn through ``matches``, see ``adapters.module_catalogue``) and lists them in
its ``SPECS``. This module only merges them: adding a
kind touches its family's module and its test file, nothing in the engine. The
references are jaxcnn's own layers where the report defines them (``model.conv3x3``,
``model.maxpool2``, ``model.dense`` + softmax) and the textbook definitions of CS231n's
layers otherwise:

====================  =============================================  ===================
kind                  arguments (shapes of the default inputs)       reference
====================  =============================================  ===================
conv3x3               input (28, 28), filters (F, 3, 3)              model.conv3x3
maxpool2              input (26, 26, F)                              model.maxpool2
dense_softmax         input (13, 13, F), weights (13*13*F, C),       softmax(model.dense)
                      biases (C,) -> probabilities
dense                 same -> logits                                 model.dense
softmax               logits (C,)                                    jax.nn.softmax
cross_entropy         logits (C,); static label                      model.cross_entropy
affine                x (N, d1, ..., dk), w (D, M), b (M,)           x.reshape(N, D) @ w + b
relu                  x (any)                                        max(x, 0)
sigmoid, tanh         x (any)                                        jax.nn.sigmoid, tanh
conv                  x (N, C, H, W), w (F, C, HH, WW), b (F,);      lax.conv_general_dilated
                      static conv_param {"stride", "pad"}            (cross-correlation)
max_pool              x (N, C, H, W); static pool_param              window max
                      {"pool_height", "pool_width", "stride"}
softmax_loss          x (N, C); static y (N,)                        mean cross-entropy
softmax_loss_sum      the same, summed over samples                  sum cross-entropy
conv3x3_bias          conv3x3 with biases (F,)                       model.conv3x3 + biases
dense_cross_entropy   input, weights, biases; static label -> loss   the report's softmax
                                                                     layer with its loss
report_network        image, filters, weights, biases; static label  model.loss
conv_nchw(_nobias)    conv without a config dict: stride 1, pad 0    as conv
conv_nhwc(_nobias)    x (N, H, W, C), w (HH, WW, C, F)[, b]          NHWC/HWIO conv
conv_nhwc_param       conv, channels last (NHWC / HWIO), conv_param  as conv
conv+relu+max_pool    a CS231n sandwich: the parts composed (also     the parts' references
                      affine+relu, conv+relu)
max_pool_nchw         max_pool without a config dict: 2x2, stride 2  as max_pool
max_pool_nhwc(_param) channels last (N, H, W, C)[, pool_param]       as max_pool
max_pool_chw          one (C, H, W) image, 2x2 stride 2              as max_pool
avg_pool              x (N, C, H, W); static pool_param              window mean
avg_pool_nhwc         A_prev (m, H, W, C); static hparameters        window mean (the
                      {"f", "stride"}                                specialisation's)
leaky_relu(_alpha)    x (any)[; static alpha]                        max(x, 0.01 x)
elu(_alpha)           x (any)[; static alpha]                        x or alpha (e^x - 1)
gelu, gelu_tanh       x (any)                                        jax.nn.gelu (erf, tanh)
softplus              x (any)                                        jax.nn.softplus
log_softmax           x (N, C)                                       jax.nn.log_softmax
svm_loss(_sum)        x (N, C); static y (N,)                        multiclass hinge
mse(_half)(_sample)   x (N, D); static y (N, D)                      mean squared error
mse(_half)_sum        the same, summed over every entry              sum of squares
bce, bce_logits       x (...); static y in {0, 1}                    binary cross-entropy
(_sum)                                                               (``_sum``: summed)
batchnorm             x (N, D), gamma, beta (D,); static bn_param    train mode, biased var
spatial_batchnorm     x (N, C, H, W), gamma, beta (C,); bn_param     over N, H, W
layernorm             x (N, D), gamma, beta (D,); static ln_param    over D
spatial_groupnorm     x (N, C, H, W), gamma, beta (1, C, 1, 1);      over C/G channels,
                      static G, gn_param                             H, W
dropout               x (any); static dropout_param {"p", "mode",    x * your mask (train),
                      "seed"}                                        x (test)
word_embedding        W (V, D); static x (N, T) int (called (x, W))  W[x]
rnn_step, gru_step    x (N, D), prev_h (N, H), Wx, Wh, b             tanh / GRU cell
gru_step_reset_       gru_step, blocks z, r, n, the reset gate       (1 - z) prev_h + z n
before                before Wh: tanh(x Wx_n + (r prev_h) Wh_n)
rnn, lstm             x (N, T, D), h0 (N, H), Wx, Wh, b              the step over T
lstm_ifgo, lstm_fgio  lstm, gates i, f, g, o (PyTorch) / f, g, i, o  the step over T
gru, gru_zrn,         x (N, T, D), h0 (N, H), Wx (D, 3H), Wh, b      gru_step (or its
gru_reset_before                                                     layouts) over T
lstm_step             x, prev_h, prev_c, Wx (D, 4H), Wh, b ->        gates i, f, o, g
                      next_h, next_c (two outputs)
lstm_step_ifgo,       lstm_step, gates i, f, g, o / f, g, i, o       as lstm_step
lstm_step_fgio        (layouts of code named lstm_step, and of step
                      classes ``forward(x, h_prev, c_prev)``)
rnn_cell, lstm_cell   the specialisation's cells: xt (n_x, m),       the cells, examples
                      a_prev (n_a, m), parameters as arguments        in columns
rnn_columns,          the specialisation's sequences: x (n_x, m,     the cell over the
lstm_columns          T_x), a0 (n_a, m), the cell's weights          last axis, c0 = 0
temporal_affine       x (N, T, D), w (D, M), b (M,)                  x @ w + b
temporal_softmax_     x (N, T, V); static y (N, T), mask (N, T)      masked sum / N
loss
time_softmax_loss     x (N, T, V); static y (N, T), -1: ignored      mean over the steps
                                                                     kept
attention             q (N, Tq, d), k (N, Tk, d), v (N, Tk, dv)      softmax(q k^T/sqrt d) v
attention_masked      the same; static mask (Tq, Tk)                 masked scores -> -inf
causal_attention      q, k, v with Tq = Tk                           causal mask
self_attention        x (N, T, D), Wq, Wk, Wv, Wo (D, D), bq, bk,    heads, causal and
                      bv, bo (D,); static heads, causal, transposed  (out, in) weights from
                      (a module's; Wo and the biases optional)       the module
self_attention_       x, Wqkv (D, 3D), Wo, bqkv (3D,), bo            as self_attention
packed
global_avg_pool       x (N, C, H, W) -> (N, C); ``_keepdims`` ->     mean over H, W
(_keepdims, _nhwc)    (N, C, 1, 1); ``_nhwc``: x (N, H, W, C)
cross_entropy_probs   x (N, C) probabilities; static y (N,)          mean -log x[y]
(_sum)                                                               (or the sum)
mae                   x (N, D); static y (N, D)                      mean |x - y|
flatten(_all)         x (N, d1, ..., dk) -> (N, d1...dk) [(-1,)]     reshape (C order)
upsample_nearest      x (N, C, H, W); static scale s                 x repeated s x s
====================  =============================================  ===================

Input families: ``random`` (tie-free), ``digits`` (real MNIST from the embedded subset:
its flat -0.5 background makes pool windows tie), ``flat`` (every window tied),
``boundary`` (exact zeros at ReLU's kink), ``overlap`` and ``strided`` (windows that
overlap: the ``=`` vs ``+=`` bug only shows there), ``large-gap`` (confident wrong
logits: a float32 softmax chain underflows there), ``batch-of-one`` (N = 1 for the batched
CS231n kinds: affine, conv, softmax_loss); some random inputs are not square, so that
swapped row and column indices show.

Each reference may also carry alternates (other valid tie rules, and known wrong
formulas: the report's overcount, overwriting windows, wrong derivatives, the stride left
out, batch statistics treated as constants, the unbiased variance, a norm's gradient over
the other axis, dropout's mask not applied, repeated embedding indices that overwrite,
tanh' at the input, LSTM/GRU gates in another order, a recurrence dropped, an LSTM's
slips (a gate given the other activation's derivative, the forget gate from next_c, ...),
a norm's backward without its mean's or variance's term, attention without the softmax's
Jacobian, with its diagonal only, its scale left out of the backward or its mask left out
of the backward, a global pool
without its 1/(H W), a cross-entropy of probabilities given the combined softmax-loss
derivative, an upsampling's gradient read at one position per block), a subgradient
test (any convex combination at ties and zeros; any slope in [0, 1] at an exact hinge
margin), and its kinks. More input families: ``repeated`` (embedding indices that
repeat), exact hinge margins (``boundary``), ``batch-of-one`` for the norms, recurrent
and attention kinds; N != D and non-square shapes throughout.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from jaxcnn.check.catalogue import (
    activations,
    attention,
    conv,
    dense,
    dropout,
    embedding,
    losses,
    network,
    norms,
    pool,
    recurrent,
    shape,
)
from jaxcnn.check.catalogue.base import Spec as Spec
from jaxcnn.check.catalogue.base import digits as digits
from jaxcnn.check.catalogue.network import SANDWICH_PARTS as SANDWICH_PARTS
from jaxcnn.check.catalogue.network import sandwich_spec as sandwich_spec

FAMILIES = (conv, pool, dense, activations, losses, network, norms, dropout, embedding,
            recurrent, attention, shape)
SPECS: dict[str, Callable[[], Spec]] = {
    kind: make for family in FAMILIES for kind, make in family.SPECS.items()}


def spec(kind: str) -> Spec:
    """The catalogue entry for ``kind`` (a key of ``SPECS``, or parts of ``SANDWICH_PARTS``
    joined by "+", e.g. "conv+relu+max_pool"); ValueError if unknown."""
    if "+" in kind:
        return sandwich_spec(tuple(kind.split("+")))
    try:
        return SPECS[kind]()
    except KeyError:
        raise ValueError(f"unknown layer kind {kind!r}; known: {', '.join(SPECS)}") from None


@functools.lru_cache(maxsize=1)
def _names() -> tuple[tuple[str, str, str], ...]:
    """(style, pattern, kind) of every entry that names its code (``Spec.names``)."""
    return tuple((style, pattern, kind) for kind, make in SPECS.items()
                 for style, pattern in (make().names or {}).items())


def match(name: str, style: str) -> str | None:
    """The catalogue kind whose ``Spec.names[style]`` pattern the whole lower-cased
    ``name`` matches (``"batchnorm"`` for ``match("batchnorm", "cs231n")``), or None.
    Several matches: the first entry in ``SPECS`` order."""
    lowered = name.lower()
    return next((kind for s, pattern, kind in _names()
                 if s == style and re.fullmatch(pattern, lowered)), None)


def matches(name: str, style: str) -> list[str]:
    """Every catalogue kind whose ``Spec.names[style]`` pattern the whole lower-cased
    ``name`` matches, in ``SPECS`` order (``["batchnorm", "spatial_batchnorm"]`` for
    ``matches("BatchNorm", "module")``): a module-style class is tried against each."""
    lowered = name.lower()
    return [kind for s, pattern, kind in _names()
            if s == style and re.fullmatch(pattern, lowered)]


def layouts(kind: str) -> tuple[str, ...]:
    """The kinds to try for code matched to ``kind`` (``Spec.layouts``, else the kind)."""
    return spec(kind).layouts or (kind,)
