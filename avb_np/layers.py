"""Layers as forward/backward pairs, written once for NumPy and CuPy.

Each `*_forward` returns `(out, cache)`; the matching `*_backward(dout, cache)` returns the
gradient for the input first, then one per parameter. `dout` is the gradient of some scalar
loss with respect to `out` and has its shape. Shapes: N is the batch size, D the input width,
H the output width.
"""
from .backend import array_module


# ----------------------------------------------------------------------------- initialiser

def init_affine(rng, n_in, n_out, xp, dtype, gain=1.0):
    """W ~ N(0, gain^2 / n_in) of shape (n_in, n_out), b = 0 of shape (n_out,).

    gain=1 keeps the output variance of a layer equal to its input variance (LeCun-normal),
    gain=sqrt(2) is He-normal for ReLU-like activations, a small gain (e.g. 0.1) starts an
    output layer near zero and gain=0 gives the zero-initialised last layer of a residual block.
    The draw happens on the host from the NumPy generator `rng`, so NumPy and CuPy runs with
    the same seed start from the same weights.
    """
    W = rng.standard_normal((n_in, n_out)) * (gain / n_in ** 0.5)
    return xp.asarray(W, dtype=dtype), xp.zeros(n_out, dtype=dtype)


# ----------------------------------------------------------------------------- affine

def affine_forward(x, W, b):
    """out = x W + b.   x: (N, D), W: (D, H), b: (H,) -> out: (N, H)."""
    out = x @ W                      # (N, H)
    out += b                         # in place: the bias adds no second (N, H) array
    return out, (x, W)


def affine_backward(dout, cache, param_grads=True, input_grad=True):
    """dout: (N, H) -> dx: (N, D), dW: (D, H), db: (H,).

    Each gradient costs work, so a caller can skip what it does not use:
    param_grads=False returns dW = db = None (the parameters are held fixed, e.g. the
    adversary's in the primal step); input_grad=False returns dx = None (the first layer of a
    network, whose input is data or noise).
    """
    x, W = cache
    dx = dout @ W.T if input_grad else None        # (N, D)
    if not param_grads:
        return dx, None, None
    dW = x.T @ dout                  # (D, H)
    db = dout.sum(axis=0)            # (H,)
    return dx, dW, db


# ----------------------------------------------------------------------------- activations
# Elementwise: out has the shape of x, and dx = dout * f'(x).

def elu_forward(x):
    """ELU: x for x > 0, e^x - 1 otherwise.

    Three passes over x: e^x - 1 is taken of min(x, 0) only, so it cannot overflow, and with
    expm1, which stays accurate near 0 where e^x - 1 would cancel. The cache `neg` is what the
    backward needs: f'(x) = neg + 1.
    """
    xp = array_module(x)
    neg = xp.minimum(x, 0)                         # min(x, 0)
    xp.expm1(neg, out=neg)                         # e^x - 1 for x <= 0, and 0 for x > 0
    return xp.maximum(x, neg), neg                 # x for x > 0; e^x - 1 (>= x) otherwise


def elu_backward(dout, neg):
    return dout * (neg + 1)                        # f'(x) = 1 for x > 0, e^x = neg + 1 otherwise


def relu_forward(x):
    """ReLU: max(x, 0). The derivative at the kink x = 0 is taken to be 0.

    The cache is the output, which is > 0 exactly where x > 0, so x need not be kept.
    """
    out = array_module(x).maximum(x, 0)
    return out, out


def relu_backward(dout, out):
    return dout * (out > 0)                        # f'(x) = 1 for x > 0, 0 otherwise


def leaky_relu_forward(x, slope=0.2):
    """Leaky ReLU: x for x > 0, slope * x otherwise (0 <= slope <= 1)."""
    return array_module(x).maximum(x, slope * x), (x, slope)


def leaky_relu_backward(dout, cache):
    x, slope = cache                               # f'(x) = 1 for x > 0, slope otherwise
    return dout * (slope + (1 - slope) * (x > 0).astype(x.dtype))


def tanh_forward(x):
    out = array_module(x).tanh(x)
    return out, out


def tanh_backward(dout, out):
    return dout * (1 - out * out)                  # tanh' = 1 - tanh^2


def softplus(x):
    """log(1 + e^x), stably: max(x, 0) + log1p(e^-|x|). Exact to rounding for any finite x."""
    xp = array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def sigmoid(x):
    """1 / (1 + e^-x), stably: e^-|x| only ever underflows, it never overflows."""
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))                         # in (0, 1]
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softplus_forward(x):
    return softplus(x), x


def softplus_backward(dout, x):
    return dout * sigmoid(x)                       # softplus' = sigmoid


def sigmoid_forward(x):
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout, out):
    return dout * out * (1 - out)                  # sigmoid' = sigmoid (1 - sigmoid)


def identity_forward(x):
    return x, None


def identity_backward(dout, cache):
    return dout


ACTIVATIONS = {  # name -> (forward, backward), for configs that name an activation
    "elu": (elu_forward, elu_backward),
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "softplus": (softplus_forward, softplus_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "identity": (identity_forward, identity_backward),
}


# ----------------------------------------------------------------------------- residual block

def residual_forward(h, W1, b1, W2, b2, act="relu"):
    """out = h + W2 act(W1 h + b1) + b2 (row-vector form: h W1, r W2).

    h: (N, H), W1: (H, H), b1: (H,), W2: (H, H), b2: (H,) -> out: (N, H).
    """
    act_forward, _ = ACTIVATIONS[act]
    a, cache1 = affine_forward(h, W1, b1)          # (N, H) pre-activation
    r, cache_act = act_forward(a)                  # (N, H)
    out, cache2 = affine_forward(r, W2, b2)        # (N, H) residual branch f
    out += h                                       # out = h + f, in place
    return out, (cache1, cache_act, cache2, act)


def residual_backward(dout, cache, param_grads=True):
    """dout: (N, H) -> dh, dW1, db1, dW2, db2 (the last four None if param_grads=False).

    The skip path passes dout straight to h.
    """
    cache1, cache_act, cache2, act = cache
    _, act_backward = ACTIVATIONS[act]
    dr, dW2, db2 = affine_backward(dout, cache2, param_grads)
    da = act_backward(dr, cache_act)
    dh, dW1, db1 = affine_backward(da, cache1, param_grads)
    dh += dout                                     # dL/dh = dout (skip) + branch, in place
    return dh, dW1, db1, dW2, db2
