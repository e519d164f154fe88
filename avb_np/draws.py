"""Where training's randomness comes from: minibatches and noise, drawn on the host (the default)
or on the backend's device. Not part of AVB itself; avb_np.training asks for `draws.batch()` and
`draws.normal(width)` and does not care which.
"""
from .backend import to_device
from .data import sample_batch


class HostDraws:
    """Minibatches and noise from the run's NumPy generator, moved to the backend: the default,
    which gives the same numbers on NumPy and CuPy and makes resuming exact."""

    def __init__(self, run, data):
        self.run, self.data = run, data              # data: the host array

    def batch(self):
        """A fresh minibatch x: (N, Dx), binary rows (binarised afresh if cfg.dynamic)."""
        cfg = self.run.cfg
        x = sample_batch(self.run.rng, self.data, cfg.batch_size, dynamic=cfg.dynamic)
        return to_device(x.astype(cfg.dtype), self.run.xp)

    def normal(self, width):
        """Standard normal noise: (N, width)."""
        cfg = self.run.cfg
        return to_device(self.run.rng.standard_normal((cfg.batch_size, width)).astype(cfg.dtype), self.run.xp)

    def restart(self):
        """The draws a new call of `train` would make (here: the same, from the run's generator)."""
        return self


class DeviceDraws(HostDraws):
    """Minibatches and noise drawn by the backend's own generator, so on a GPU no step copies
    from the host. The generator is seeded from the run's when `train` starts: a seed still
    gives the same run, but other numbers than host draws, and a resumed run equals an
    uninterrupted one only when both were trained in the same calls of `train`."""

    def __init__(self, run, data, on_device=None):
        super().__init__(run, to_device(data.astype(run.cfg.dtype), run.xp) if on_device is None else on_device)
        self.gen = run.xp.random.RandomState(int(run.rng.integers(2**32)))

    def batch(self):
        cfg = self.run.cfg
        x = self.data[self.gen.randint(0, len(self.data), size=cfg.batch_size)]
        if cfg.dynamic:                              # P(x_i = 1) = intensity_i
            x = (self.gen.random_sample(x.shape) < x).astype(cfg.dtype)
        return x

    def normal(self, width):
        return self.gen.standard_normal((self.run.cfg.batch_size, width)).astype(self.run.cfg.dtype)

    def restart(self):
        return DeviceDraws(self.run, None, self.data)


DRAWS = {"host": HostDraws, "device": DeviceDraws}
