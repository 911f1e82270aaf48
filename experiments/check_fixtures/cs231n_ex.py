"""The README's CS231n example (`jaxcnn check cs231n_ex.py`): an affine layer whose dw
is divided by N (a mean where the reference sums): ``scaled x0.25``."""


def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout / x.shape[0]   # a mean, not a sum
    db = dout.sum(axis=0)
    return dx, dw, db
