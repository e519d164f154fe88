"""Training loops: AVB (Algorithm 1 of the paper) and the VAE baseline, with a divergence guard.

A `Run` holds everything a run needs to continue (configuration, parameters, both optimisers,
the random generator, the iteration count and the history), so training can be resumed
(avb_np.checkpoint saves and loads it). All randomness (minibatches, eps, z_p) is drawn on the
host from one NumPy generator and then moved to the backend (HostDraws), so a seed gives the
same numbers on NumPy and (up to rounding) on CuPy; `train(..., draws="device")` draws them
with the backend's own generator instead (DeviceDraws).

Divergence guard. A step evaluates its player's loss and gradients at the current parameters,
then updates them. So the loss and gradients a step computes check the step BEFORE it (the one
that made those parameters), and the parameters a step makes check the step itself. A step is
sane when the parameters it made are finite and at most validate.PARAM_BOUND in size, and the
loss and gradients computed next from them are finite, the loss at most `loss_bound(cfg)` in
size: runaway growth that stays finite is caught as well as NaN and inf. At the first failure
`train` puts back the state at the start of the iteration of the step to blame (it keeps the
last two) and raises DivergenceError, naming that step's player and learning rate. Before it
returns, `train` evaluates the loss that the next iteration computes first (and puts the
generator back), so the last step is checked too: a run that `train` leaves behind, saved or
not, trains on when continued with a lower learning rate.
"""
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass, replace

import numpy as np

from . import evaluation, models, validate
from .backend import to_device, to_host
from .config import FIXED
from .data import sample_batch
from .network import Affine, Residual, param_shapes
from .objectives import dual_loss, primal_loss, vae_loss
from .optim import Adam

PLAYERS = {"primal": ("enc.", "dec."), "dual": ("adv.",)}  # parameter prefixes of each player
PLAYER_NAMES = {"primal": "the encoder/decoder (primal)", "dual": "the adversary (dual)"}
SIZE_FIELDS = ("x_dim", "z_dim", "eps_dim", "enc_hidden", "dec_hidden", "adv_width", "adv_blocks")
PENDING = 99      # checks gathered before the guard reads them, at the latest (33 steps)
LOSS_SCALE = 1e4  # a loss this many times that of a model that knows nothing is a runaway (loss_bound)


class DivergenceError(FloatingPointError):
    """A step made a loss, gradient or parameter NaN, inf or runaway; the run was restored to
    the start of that step's iteration, where everything is finite and within bounds."""

    def __init__(self, message, step, player, lrs, lower):
        super().__init__(message)
        self.step, self.player = step, player   # the iteration of the step to blame; "primal" or "dual"
        self.lrs = lrs                          # the Config field to lower, e.g. ["lr_dual"]
        self.lower = lower                      # a suggested lower value for it, e.g. {"lr_dual": 0.004}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; the run was restored to the end of its last whole iteration."""


class _Diverged(Exception):
    """A failed check inside `train`, turned into DivergenceError after restoring."""

    def __init__(self, blame, what, mixed=False):
        super().__init__(what)
        self.blame, self.what = blame, what     # (player, iteration) of the step that made the bad state
        self.mixed = mixed                      # the primal loss after adversary steps: both players moved


@dataclass
class Run:
    cfg: object                # Config; steps, learning rates, batch size, dual steps, logging may change
    method: str                # "avb" or "vae"
    nets: dict                 # layer lists {"enc", "dec"[, "adv"]}
    params: dict               # name -> array, all networks
    opt_primal: Adam           # encoder + decoder (theta, phi)
    opt_dual: object           # adversary (psi); None for the VAE
    rng: np.random.Generator   # the only source of randomness after initialisation
    xp: object                 # array module
    step: int = 0              # iterations done
    seconds: float = 0.0       # training time so far
    history: dict = field(default_factory=lambda: {"step": [], "primal": [], "dual": [],
                                                    "ll_step": [], "log_likelihood": []})
    applied: dict = None       # cfg as last applied: the FIXED fields at creation, the optimisers' learning rates

    def __post_init__(self):
        if self.applied is None:
            self.applied = {k: getattr(self.cfg, k, None) for k in FIXED + ("lr_primal", "lr_dual")}


def new_run(cfg, method, xp):
    """A fresh run: parameters initialised from cfg.seed, optimisers with zero state. The run
    keeps a checked copy of cfg (plain ints, floats, strs, tuples)."""
    cfg = validate.config(cfg, method)
    nets = models.build_nets(cfg, method)
    check_size(cfg, nets)
    validate.array_library("xp", xp)
    rng = np.random.default_rng(cfg.seed)
    params = models.init_params(nets, rng, xp, cfg.dtype)
    opt_dual = Adam(cfg.lr_dual) if method == "avb" else None
    return Run(cfg, method, nets, params, Adam(cfg.lr_primal), opt_dual, rng, xp)


def check_size(cfg, nets, name="Config"):
    """Refuse a configuration whose arrays would exceed validate.MAX_BYTES, before any exists.

    Each parameter is held 10 times (itself, its gradient, Adam's two moments and the guard's
    two copies of all three); one step holds about 2 N rows of activations (the adversary sees
    encoder and prior samples) across the inputs and outputs of every layer of every network.
    """
    itemsize = np.dtype(cfg.dtype).itemsize
    counts = {net: sum(math.prod(s) for s in param_shapes(layers).values()) for net, layers in nets.items()}
    biggest, n_params = max(counts, key=counts.get), sum(counts.values())
    sizes = ", ".join(f"{name}.{k}={getattr(cfg, k)!r}" for k in SIZE_FIELDS)
    validate.memory(f"{name} network sizes", sizes, 10 * n_params * itemsize,
                    f"the networks' {n_params:.3g} parameters ({counts[biggest]:.3g} in {biggest}), held "
                    f"in {cfg.dtype} with their gradients, Adam's moments and the guard's copies,")
    per_row = sum(layer.n_in + layer.n_out if isinstance(layer, Affine) else 4 * layer.width
                  for net in nets.values() for layer in net if isinstance(layer, (Affine, Residual)))
    validate.memory(f"{name}.batch_size", cfg.batch_size, 2 * cfg.batch_size * per_row * itemsize,
                    f"one step's activations (2 x {cfg.batch_size} rows x {per_row} values of {cfg.dtype})")


def check_run(run, name="run"):
    """Check everything `train` and `checkpoint.save` rely on, naming what is wrong (TypeError
    or ValueError): the configuration, its FIXED fields as at creation; the parameters (names,
    shapes, dtype and backend of the networks; finite, within validate.PARAM_BOUND); both
    optimisers' state; the generator, the counters and the history. Then normalise run.cfg in
    place (plain ints, floats, strs, tuples) and give the optimisers its learning rates.
    """
    if not isinstance(run, Run):
        raise TypeError(f"{name} must be a training.Run (from new_run or checkpoint.load), got {type(run).__name__}")
    method = validate.choice(f"{name}.method", run.method, validate.METHODS)
    cfg = validate.config(run.cfg, method, f"{name}.cfg")
    changed = [f"{k} from {run.applied.get(k)!r} to {getattr(cfg, k)!r}" for k in FIXED
               if getattr(cfg, k) != run.applied.get(k)]
    if changed:
        raise ValueError(f"{name}.cfg changed {', '.join(changed)} after the run was created; these fields "
                         "define its networks, the numbers they hold and its seed. Start a new run "
                         "(training.new_run) for another model")
    nets = models.build_nets(cfg, method)
    check_size(cfg, nets, f"{name}.cfg")
    if not isinstance(run.nets, dict) or _without_gains(run.nets) != _without_gains(nets):
        raise ValueError(f"{name}.nets are not the networks of {name}.cfg; keep the layer lists that "
                         "new_run or checkpoint.load made")
    xp = validate.array_library(f"{name}.xp", run.xp)
    shapes = {k: s for net in nets.values() for k, s in param_shapes(net).items()}
    validate.arrays(f"{name}.params", run.params, shapes, cfg.dtype, xp)
    step = validate.non_negative_int(f"{name}.step", run.step)
    seconds = validate.finite_float(f"{name}.seconds", run.seconds, minimum=0.0)
    if method == "vae" and run.opt_dual is not None:
        raise ValueError(f"{name}.opt_dual must be None for the VAE, which has no adversary")
    for player in ("primal", "dual") if method == "avb" else ("primal",):
        opt, lr = getattr(run, f"opt_{player}"), f"lr_{player}"
        own = {k: s for k, s in shapes.items() if k.startswith(PLAYERS[player])}
        validate.adam(f"{name}.opt_{player}", opt, own, cfg.dtype, xp)
        if opt.lr != run.applied.get(lr) and opt.lr != getattr(cfg, lr):  # set by hand on the optimiser
            raise ValueError(f"{name}.opt_{player}.lr was set to {opt.lr:g}, but training takes the learning "
                             f"rate from {name}.cfg.{lr} ({getattr(cfg, lr):g}); set that instead")
        if opt.t < step or (player == "primal" and opt.t != step):      # one primal step per iteration,
            raise ValueError(f"{name}.opt_{player}.t={opt.t} does not fit {name}.step={step}: "   # >= 1 dual step
                             "each iteration takes one primal step and at least one adversary step")
    validate.generator(f"{name}.rng", run.rng)
    validate.history(f"{name}.history", run.history, step)
    for f in fields(cfg):                                  # all is well: normalise and apply
        setattr(run.cfg, f.name, getattr(cfg, f.name))
    run.step, run.seconds = step, seconds
    for player, opt in (("primal", run.opt_primal), ("dual", run.opt_dual)):
        if opt is not None:
            opt.lr = run.applied[f"lr_{player}"] = getattr(cfg, f"lr_{player}")
    return run


def _without_gains(nets):
    """The layer lists with their initial gains set to 0: gains act at initialisation only."""
    return {key: [replace(layer, gain=0.0) if is_dataclass(layer) and hasattr(layer, "gain") else layer
                  for layer in (layers if isinstance(layers, list) else [layers])]
            for key, layers in nets.items()}


def loss_bound(cfg):
    """The largest sane |loss|, in nats per data point: LOSS_SCALE times (Dx + 2) log 2, the loss
    of a model that knows nothing (a uniform decoder has -log p(x|z) = Dx log 2, an adversary
    T = 0 has softplus(0) + softplus(0) = 2 log 2). Both players' losses and the VAE's are in
    these units: the bound is 4.2e4 for the toy problem (Dx = 4), 5.4e6 for MNIST (Dx = 784);
    a diverging adversary passes 1e17 within a step or two."""
    return LOSS_SCALE * (cfg.x_dim + 2) * math.log(2)


def lr_scale(cfg, step):
    """The learning-rate factor of iteration step + 1 (step iterations done) under cfg.lr_schedule:
    1 for "constant"; (1 + cos(pi step / cfg.steps)) / 2 for "cosine", from 1 at the first
    iteration down to ~0 at the last, so the game's noise dies out and the players settle."""
    if cfg.lr_schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * step / cfg.steps))


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


def avb_primal(run, draws):
    """The primal loss on a fresh minibatch, mean[T(x, z_q) - log p(x|z_q)], z_q = g_phi(x, eps),
    and its gradients for theta and phi (psi held fixed)."""
    x, eps = draws.batch(), draws.normal(run.cfg.eps_dim)
    return primal_loss(run.nets, run.params, x, eps, run.cfg.prior_term)


def avb_dual(run, draws):
    """The adversary's loss on a fresh minibatch, mean[softplus(-T(x, z_q)) + softplus(T(x, z_p))],
    and its gradients for psi (phi held fixed)."""
    x, eps = draws.batch(), draws.normal(run.cfg.eps_dim)
    z_p = draws.normal(run.cfg.z_dim)                                 # z_p ~ p(z) = N(0, I)
    return dual_loss(run.nets, run.params, x, eps, z_p, run.cfg.prior_term)


def vae_primal(run, draws):
    """The VAE's loss on a fresh minibatch, mean[KL(q(z|x) || p(z)) - log p(x|z)] with
    z = mu + sigma * eps, and its gradients for theta and phi."""
    x, eps = draws.batch(), draws.normal(run.cfg.z_dim)
    return vae_loss(run.nets, run.params, x, eps)


def avb_iteration(run, guard):
    """One iteration of Algorithm 1: a primal step, then cfg.dual_steps adversary steps. Each
    step evaluates its loss and gradients on a fresh draw, then takes its player's Adam step;
    guard.step does both and gathers the checks of the divergence guard."""
    primal = guard.step("primal", run.opt_primal, avb_primal)
    for _ in range(run.cfg.dual_steps):
        dual = guard.step("dual", run.opt_dual, avb_dual)
    return primal, dual


def vae_iteration(run, guard):
    """One VAE step: minimise the negative ELBO over theta and phi."""
    return guard.step("primal", run.opt_primal, vae_primal), float("nan")


def _largest(xp, arrays):
    """max |a| over all `arrays` as a device vector of one element (NaN if any holds a NaN): one
    concatenation and one reduction however many arrays, so few kernel launches on a GPU."""
    return xp.abs(xp.concatenate([a.ravel() for a in arrays])).max(keepdims=True)


def _snapshot(run):
    """Copies of everything an iteration changes (parameters and Adam moments: ~270k floats,
    ~1 MB, for the default sizes; under 1% of an AVB iteration)."""
    return {"params": {k: v.copy() for k, v in run.params.items()},
            "primal": run.opt_primal.state(),
            "dual": run.opt_dual.state() if run.opt_dual else None,
            "rng": run.rng.bit_generator.state,            # a fresh dict of plain ints
            "step": run.step, "seconds": run.seconds,
            "history": {k: len(v) for k, v in run.history.items()}}


def _restore(run, saved):
    """Put a snapshot back: parameters in place (views stay valid), optimisers, generator, counters."""
    for k, v in saved["params"].items():
        run.params[k][...] = v
    run.opt_primal.load_state(saved["primal"])
    if run.opt_dual:
        run.opt_dual.load_state(saved["dual"])
    run.rng.bit_generator.state = saved["rng"]
    run.step, run.seconds = saved["step"], saved["seconds"]
    for k, n in saved["history"].items():
        del run.history[k][n:]


class _Guard:
    """The divergence guard of one `train` call (see the module docstring).

    It keeps the state at the start of the last two iterations and gathers the checks of every
    step as device vectors |value| / bound (NaN stays NaN), read with one host sync per
    iteration (`verify`). A failed check blames the step that made the state it measured.
    """

    def __init__(self, run, draws):
        self.run, self.draws, self.xp = run, draws, run.xp
        self.loss_bound = loss_bound(run.cfg)
        self.grad_bound = math.sqrt(float(np.finfo(run.cfg.dtype).max))   # Adam squares the gradient
        self.mover = (None, run.step)  # (player, iteration) of the step that made the parameters; None: before this call
        self.saved = {}                # iteration -> (state at its start, mover then), the last two
        self.pending = []              # checks not yet read: (|a| / bound, arrays, bound, blame, what, mixed)

    def step(self, player, optimiser, loss_and_grads):
        """`player`'s step: its loss and gradients at the current parameters, then its update."""
        run = self.run
        loss, grads = self.evaluate(player, loss_and_grads)
        here = (player, run.step + 1)
        with self.blaming(here, "its update raised"):
            optimiser.step(run.params, grads, lr_scale(run.cfg, run.step))
        self._expect({k: run.params[k] for k in grads}, validate.PARAM_BOUND, here,
                     "its parameter {name} became {value:.3g}")
        self.mover = here
        return loss

    def evaluate(self, player, loss_and_grads, draws=None):
        """`player`'s loss and gradients on a fresh draw, checked as the work of the previous step."""
        mixed = player == "primal" and self.mover[0] == "dual"   # both players moved since the last primal loss
        with self.blaming(self.mover, f"evaluating the {player} loss raised", mixed):
            loss, grads = loss_and_grads(self.run, draws or self.draws)
        self._expect({"loss": self.xp.reshape(loss, (1,))}, self.loss_bound, self.mover,
                     f"the {player} loss became {{value:.3g}}", mixed)
        self._expect(grads, self.grad_bound, self.mover,
                     f"the gradient of the {player} loss became {{value:.3g}} in {{name}}", mixed)
        return loss, grads

    def _expect(self, arrays, bound, blame, what, mixed=False):
        """Gather the check |a| <= bound for the arrays {name: array}, read by `verify`."""
        self.pending.append((_largest(self.xp, arrays.values()) / bound, arrays, bound, blame, what, mixed))
        if len(self.pending) >= PENDING:                   # many adversary steps: read them now
            self.verify()

    def verify(self, *values):
        """Read the gathered checks and the scalars `values` (the losses) in one transfer to the
        host; raise _Diverged for the first check that failed, else return `values` as floats."""
        checks, self.pending, xp = self.pending, [], self.xp
        if not checks and not values:
            return ()
        host = to_host(xp.concatenate([c[0].astype(np.float64) for c in checks] +
                                      [xp.reshape(xp.asarray(v, dtype=np.float64), (1,)) for v in values]))
        ratios, values = host[:len(checks)], tuple(float(v) for v in host[len(checks):])
        if np.all(ratios <= 1):                            # NaN fails
            return values
        for ratio, (_, arrays, bound, blame, what, mixed) in zip(ratios, checks):
            value = float(ratio) * bound
            if not value <= bound:                         # the first that failed; find its array
                sizes = {k: float(self.xp.abs(a).max()) for k, a in arrays.items()}
                name = next((k for k, v in sizes.items() if not v <= bound), next(iter(arrays)))
                sane = f" (sane: at most {bound:.3g} in size)" if math.isfinite(value) else ""
                raise _Diverged(blame, what.format(name=name, value=value) + sane, mixed)

    @contextmanager
    def blaming(self, blame, doing, mixed=False):
        """Turn a FloatingPointError (under np.errstate(...='raise')) into a failed check."""
        try:
            yield
        except FloatingPointError as err:
            self.verify()                                  # an earlier check may have failed first
            raise _Diverged(blame, f"{doing} FloatingPointError ({err})", mixed) from None

    def probe(self):
        """Check the last step as the next iteration would, by evaluating the loss it computes
        first (the same minibatch and noise), then put the generator back: training goes on
        exactly as without the probe."""
        state = self.run.rng.bit_generator.state
        try:
            self.evaluate("primal", avb_primal if self.run.method == "avb" else vae_primal, self.draws.restart())
        finally:
            self.run.rng.bit_generator.state = state
        self.verify()

    def begin(self):
        """Keep the state at the start of the next iteration (and the one before it)."""
        run = self.run
        self.saved = {k: v for k, v in self.saved.items() if k == run.step}
        self.saved[run.step + 1] = (_snapshot(run), self.mover)

    @contextmanager
    def restoring(self):
        """Turn a failed check into DivergenceError and Ctrl-C into Interrupted, each after putting
        back a state that trains on."""
        try:
            yield
        except _Diverged as err:
            self._give_up(err)
        except KeyboardInterrupt:                          # Ctrl-C may land between two players' steps
            run = self.run
            during = run.step + 1 in self.saved            # inside an iteration, not after it
            if during:
                self._restore(run.step + 1)
            try:
                self.probe()                               # the state left behind must train on
            except _Diverged as err:
                self._give_up(err)
            where = f"during iteration {run.step + 1}; the run was restored to" if during else "after"
            raise Interrupted(f"training interrupted {where} the end of iteration {run.step}") from None

    def _restore(self, iteration):
        state, self.mover = self.saved[iteration]
        _restore(self.run, state)
        self.pending = []

    def _give_up(self, err):
        """Put back the state at the start of the blamed step's iteration; raise DivergenceError."""
        run, (player, iteration) = self.run, err.blame
        if player is None:                                 # the state this call started from
            if self.saved:
                self._restore(min(self.saved))
            advice = ("its configuration gives a model whose losses are out of bounds from the start "
                      "(look at Config.prior_term and out_gain)" if iteration == 0 else
                      "load an earlier checkpoint or start a new run (training.new_run)")
            raise ValueError(f"run does not train from its state at iteration {iteration}: {err.what}, "
                             f"before any step of this call; {advice}") from None
        cause = f"after the step of {PLAYER_NAMES[player]}, {err.what}"
        if err.mixed:                                      # the primal loss after both players' steps
            if self._sane_with_old_adversary(iteration):
                cause = (f"after the steps of {PLAYER_NAMES[player]}, {err.what}; with the adversary as "
                         "before them it is sane")
            else:
                player = "primal"
                cause = (f"{err.what}, also with the adversary as before its steps: the step of "
                         f"{PLAYER_NAMES[player]} is to blame")
        self._restore(iteration)
        lr, name = getattr(run, f"opt_{player}").lr, f"lr_{player}"
        lower = lr / 10 if iteration <= 100 else lr / 2    # far off if it breaks a model this young
        scale = lr_scale(run.cfg, iteration - 1)
        scaled = f" (times {scale:.3g} by the {run.cfg.lr_schedule} schedule)" if scale != 1 else ""
        message = (f"{run.method.upper()} training diverged at iteration {iteration}: {cause}. The run was "
                   f"restored to iteration {iteration - 1}, where losses and parameters are finite and within "
                   f"bounds. That step used {name}={lr:g}{scaled}: train on with a lower learning rate, e.g. "
                   f"run.cfg.{name} = {lower:g}.")
        raise DivergenceError(message, iteration, player, [name], {name: lower}) from None

    def _sane_with_old_adversary(self, iteration):
        """Is the failed primal loss (right after the adversary's steps of `iteration`) sane, on the
        same draw (with host draws), with the adversary put back as it was at the start of
        `iteration`? Then the adversary's steps broke it; if not, the encoder/decoder's step did."""
        run = self.run
        new = self.saved[iteration + 1][0] if iteration + 1 in self.saved else _snapshot(run)
        self._restore(iteration)                           # the adversary before its steps ...
        for k, v in new["params"].items():
            if not k.startswith(PLAYERS["dual"]):          # ... with the encoder/decoder after theirs
                run.params[k][...] = v
        run.rng.bit_generator.state = new["rng"]           # the draw of the failed evaluation
        try:
            self.evaluate("primal", avb_primal)
            self.verify()
            return True
        except _Diverged:
            return False


def train(run, data, steps, log=print, valid=None, draws="host"):
    """Advance `run` by `steps` iterations on host array `data`, logging progress and history.

    Every cfg.eval_every iterations a model with z_dim = 2 records its exact log-likelihood
    (quadrature, 100 x 100 grid) on `valid` if given (a binary host array), else on `data`.
    run.cfg is checked first (check_run); its learning rates are the ones used.
    draws: "host" (minibatches and noise from run.rng, copied to the backend: the same numbers
    on NumPy and CuPy, exact resume) or "device" (drawn by the backend's generator; see DeviceDraws).
    One transfer to the host per iteration carries the guard's checks and both losses.

    Raises DivergenceError when a step diverges (see the module docstring), and Interrupted on
    Ctrl-C; either way `run` is left at the end of a whole iteration that trains on.
    """
    check_run(run)
    steps = validate.positive_int("steps", steps)
    if run.cfg.lr_schedule == "cosine" and run.step + steps > run.cfg.steps:
        raise ValueError(f"steps={steps} would take the run from iteration {run.step} beyond run.cfg.steps="
                         f"{run.cfg.steps}, where the cosine schedule has brought the learning rates to 0; "
                         f"raise run.cfg.steps to at least {run.step + steps} (the schedule then stretches "
                         "over it), or set run.cfg.lr_schedule = 'constant'")
    if log is not None and log is not False and not callable(log):
        raise TypeError(f"log must be a function that takes a line of text (e.g. print), or None, got {log!r}")
    data = validate.binary_data("data", data, run.cfg.x_dim, intensities=run.cfg.dynamic)
    track = data if valid is None else validate.binary_data("valid", valid, run.cfg.x_dim)
    track = track if run.cfg.z_dim == 2 and not (valid is None and run.cfg.dynamic) else None
    draws = DRAWS[validate.choice("draws", draws, tuple(DRAWS))](run, data)
    cfg, hist, guard = run.cfg, run.history, _Guard(run, draws)
    iteration = avb_iteration if run.method == "avb" else vae_iteration
    last = run.step + steps
    t_log, step_log = time.perf_counter(), run.step
    # Underflow to 0 is a correct result, not divergence; the guard reports overflow and invalid
    # values itself, so NumPy's default warnings about them would only repeat it ("raise" stays).
    quiet = {k: "ignore" for k, how in np.geterr().items() if how == "warn"}
    with np.errstate(**{**quiet, "under": "ignore"}), guard.restoring():
        for _ in range(steps):
            guard.begin()
            t0 = time.perf_counter()
            primal, dual = guard.verify(*iteration(run, guard))   # floats: one transfer
            run.seconds += time.perf_counter() - t0
            run.step += 1
            hist["step"].append(run.step)
            hist["primal"].append(primal)
            hist["dual"].append(dual)
            if track is not None and cfg.eval_every and run.step % cfg.eval_every == 0:
                with guard.blaming(guard.mover, "the exact log-likelihood raised"):
                    ll = evaluation.log_likelihood(run.nets, run.params, track, n=100)   # exact, coarse grid
                hist["ll_step"].append(run.step)
                hist["log_likelihood"].append(ll)
            if log and cfg.log_every and (run.step % cfg.log_every == 0 or run.step == last):
                now = time.perf_counter()
                rate = (run.step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, run.step
                ll = ""
                if hist["log_likelihood"]:                 # the latest exact value, and when it was taken
                    at = "" if hist["ll_step"][-1] == run.step else f" (at {hist['ll_step'][-1]})"
                    ll = f"  log p(x) {hist['log_likelihood'][-1]:.4f}{at}"
                dual_text = f"  dual {hist['dual'][-1]:.4f}" if run.method == "avb" else ""
                log(f"[{run.method}] iter {run.step:>6}  primal {hist['primal'][-1]:.4f}{dual_text}{ll}  {rate:.0f} it/s")
        guard.probe()                                      # the last step, checked as the next iteration would
    return run
