"""Optimisers that update named parameter arrays in place, one instance per player.

`step(params, grads, scale=1)` takes two dictionaries with the same keys; `scale` multiplies
the learning rate for this step (a schedule), while `lr` stays the rate the run was given. The state (Adam's moments)
is kept per parameter name in plain dictionaries, so it can be saved and restored, and the
primal player (encoder + decoder) and the dual player (adversary) each own an optimiser.
"""
import math

from .backend import array_module


class SGD:
    """theta <- theta - lr * g."""

    def __init__(self, lr):
        self.lr = lr

    def step(self, params, grads, scale=1.0):
        for name, g in grads.items():
            params[name] -= scale * self.lr * g

    def state(self):
        return {}

    def load_state(self, state):
        pass


class Adam:
    """Adam (Kingma & Ba, 2015, Algorithm 1), with bias correction.

        t <- t + 1
        m <- beta1 m + (1 - beta1) g                 first moment
        v <- beta2 v + (1 - beta2) g^2               second moment
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)
        theta <- theta - lr m_hat / (sqrt(v_hat) + eps)

    The last line is computed in the equivalent order the paper suggests for efficiency (end of
    its Section 2), which folds both bias corrections into scalars:

        theta <- theta - lr_t m / (sqrt(v) + eps_t),
        lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t),   eps_t = eps sqrt(1 - beta2^t)

    so a step needs one scratch array per parameter, not one per operation.
    """

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.m, self.v = {}, {}  # per parameter name, created at the first step

    def step(self, params, grads, scale=1.0):
        self.t += 1
        c1 = 1 - self.beta1 ** self.t                      # bias corrections
        c2 = 1 - self.beta2 ** self.t
        lr_t, eps_t = scale * self.lr * c2 ** 0.5 / c1, self.eps * c2 ** 0.5
        for name, g in grads.items():
            xp = array_module(g)
            if name not in self.m:
                self.m[name], self.v[name] = xp.zeros_like(g), xp.zeros_like(g)
            m, v = self.m[name], self.v[name]
            tmp = (1 - self.beta1) * g                     # the one scratch array
            m *= self.beta1
            m += tmp                                       # m <- beta1 m + (1 - beta1) g
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - self.beta2
            v *= self.beta2
            v += tmp                                       # v <- beta2 v + (1 - beta2) g^2
            xp.sqrt(v, out=tmp)
            tmp += eps_t
            xp.divide(m, tmp, out=tmp)
            tmp *= lr_t
            params[name] -= tmp                            # theta <- theta - lr_t m / (sqrt(v) + eps_t)

    def state(self):
        """A snapshot of everything `load_state` needs: the step count and both moments per name."""
        return {"t": self.t, "m": _copy(self.m), "v": _copy(self.v)}

    def load_state(self, state):
        self.t, self.m, self.v = state["t"], _copy(state["m"]), _copy(state["v"])


def _copy(arrays):
    """Copies, since `step` updates the moment arrays in place."""
    return {name: a.copy() for name, a in arrays.items()}


def lr_scale(cfg, step):
    """The learning-rate factor of iteration step + 1 (step iterations done) under cfg.lr_schedule:
    1 for "constant"; (1 + cos(pi step / cfg.steps)) / 2 for "cosine", from 1 at the first
    iteration down to ~0 at the last, so the game's noise dies out and the players settle."""
    if cfg.lr_schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
