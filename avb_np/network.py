"""Compose layers into a network whose backward runs the forwards in reverse.

A network is a plain list of layer descriptions; its parameters live in one flat dictionary
`{name: array}` (e.g. "enc.0.W"), and its gradients come back under the same names, so a
single structure serves Adam, the gradient check, counting and saving.
"""
from dataclasses import dataclass

from . import layers


@dataclass(frozen=True)
class Affine:
    """x W + b with parameters `<name>.W` (n_in, n_out) and `<name>.b` (n_out,)."""
    name: str
    n_in: int
    n_out: int
    gain: float = 1.0   # initial weight std is gain / sqrt(n_in); small for output layers


@dataclass(frozen=True)
class Act:
    """An elementwise activation, one of layers.ACTIVATIONS."""
    kind: str


@dataclass(frozen=True)
class Residual:
    """h + W2 act(W1 h + b1) + b2, width `width`; W2 starts at zero, so the block starts as h."""
    name: str
    width: int
    act: str = "relu"
    gain: float = 2 ** 0.5  # W1's gain (He-normal for the ReLU inside)


def mlp(name, sizes, act, out_gain=1.0, hidden_gain=1.0):
    """Affine, act, ..., Affine through `sizes` = [n_in, h1, ..., n_out]; no activation at the end."""
    net = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        net.append(Affine(f"{name}.{i}", n_in, n_out, out_gain if last else hidden_gain))
        if not last:
            net.append(Act(act))
    return net


def init_params(net, rng, xp, dtype):
    """Fresh parameters for every layer of `net`, drawn from the NumPy generator `rng`."""
    params = {}
    for layer in net:
        if isinstance(layer, Affine):
            W, b = layers.init_affine(rng, layer.n_in, layer.n_out, xp, dtype, layer.gain)
            params[layer.name + ".W"], params[layer.name + ".b"] = W, b
        elif isinstance(layer, Residual):
            H = layer.width
            W1, b1 = layers.init_affine(rng, H, H, xp, dtype, layer.gain)
            W2, b2 = layers.init_affine(rng, H, H, xp, dtype, gain=0.0)
            params.update({layer.name + ".W1": W1, layer.name + ".b1": b1,
                           layer.name + ".W2": W2, layer.name + ".b2": b2})
    return params


def param_shapes(net):
    """{name: shape} of every parameter `init_params` creates for `net` (to check a loaded file)."""
    shapes = {}
    for layer in net:
        if isinstance(layer, Affine):
            shapes[layer.name + ".W"], shapes[layer.name + ".b"] = (layer.n_in, layer.n_out), (layer.n_out,)
        elif isinstance(layer, Residual):
            H = layer.width
            shapes.update({f"{layer.name}.{k}": s for k, s in
                           (("W1", (H, H)), ("b1", (H,)), ("W2", (H, H)), ("b2", (H,)))})
    return shapes


def forward(net, params, x):
    """Run `net` on x: (N, n_in). Returns (out, caches); caches feed `backward`."""
    caches = []
    for layer in net:
        if isinstance(layer, Affine):
            x, cache = layers.affine_forward(x, params[layer.name + ".W"], params[layer.name + ".b"])
        elif isinstance(layer, Act):
            x, cache = layers.ACTIVATIONS[layer.kind][0](x)
        else:
            p = [params[f"{layer.name}.{k}"] for k in ("W1", "b1", "W2", "b2")]
            x, cache = layers.residual_forward(x, *p, act=layer.act)
        caches.append(cache)
    return x, caches


def backward(net, dout, caches, param_grads=True, input_grad=True):
    """Backpropagate dout = dLoss/dout through `net`. Returns (dx, grads) with grads keyed like params.

    By default everything is computed (what a gradient check wants). A training step can skip
    the work it would throw away: param_grads=False gives grads = {} (the parameters are held
    fixed, only dx is wanted), input_grad=False gives dx = None (the input is data or noise).
    """
    grads = {}
    for i, (layer, cache) in enumerate(zip(reversed(net), reversed(caches))):
        first = i == len(net) - 1                  # the layer that saw the network's input
        if isinstance(layer, Affine):
            dout, dW, db = layers.affine_backward(dout, cache, param_grads, input_grad or not first)
            if param_grads:
                grads[layer.name + ".W"], grads[layer.name + ".b"] = dW, db
        elif isinstance(layer, Act):
            dout = layers.ACTIVATIONS[layer.kind][1](dout, cache)
        else:
            dout, *g = layers.residual_backward(dout, cache, param_grads)
            if param_grads:
                grads.update({f"{layer.name}.{k}": gk for k, gk in zip(("W1", "b1", "W2", "b2"), g)})
    return (dout if input_grad else None), grads
