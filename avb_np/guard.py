"""The divergence guard of `training.train`: every step is checked, and a run that diverges is
put back to a state that trains on.

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
from contextlib import contextmanager

import numpy as np

from . import validate
from .backend import to_host
from .optim import lr_scale

PLAYERS = {"primal": ("enc.", "dec."), "dual": ("adv.",)}  # parameter prefixes of each player
PLAYER_NAMES = {"primal": "the encoder/decoder (primal)", "dual": "the adversary (dual)"}
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


def loss_bound(cfg):
    """The largest sane |loss|, in nats per data point: LOSS_SCALE times (Dx + 2) log 2, the loss
    of a model that knows nothing (a uniform decoder has -log p(x|z) = Dx log 2, an adversary
    T = 0 has softplus(0) + softplus(0) = 2 log 2). Both players' losses and the VAE's are in
    these units: the bound is 4.2e4 for the toy problem (Dx = 4), 5.4e6 for MNIST (Dx = 784);
    a diverging adversary passes 1e17 within a step or two."""
    return LOSS_SCALE * (cfg.x_dim + 2) * math.log(2)


def _largest(xp, arrays):
    """max |a| over all `arrays` as a device vector of one element (NaN if any holds a NaN): one
    concatenation and one reduction however many arrays, so few kernel launches on a GPU."""
    return xp.abs(xp.concatenate([a.ravel() for a in arrays])).max(keepdims=True)


def _snapshot(run):
    """Copies of everything an iteration changes: the parameters, both players' Adam moments, the
    generator's state, the counters and the history's lengths (benchmarks/speed.py times it)."""
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


class Guard:
    """The divergence guard of one `train` call (see the module docstring).

    It keeps the state at the start of the last two iterations and gathers the checks of every
    step as device vectors |value| / bound (NaN stays NaN), read with one host sync per
    iteration (`read`). A failed check blames the step that made the state it measured.
    """

    def __init__(self, run, draws, primal_loss, max_loss=None, cfg_name="run.cfg", lr_names=None,
                 start_hint="look at Config.prior_term and out_gain"):
        self.run, self.draws, self.xp = run, draws, run.xp
        self.primal_loss = primal_loss  # (run, draws) -> (loss, grads): what each iteration evaluates first
        self.loss_bound = max_loss or loss_bound(run.cfg)   # the largest sane |loss|
        self.cfg_name = cfg_name        # how messages name the configuration
        self.lr_names = lr_names or {"primal": "lr_primal", "dual": "lr_dual"}   # each player's learning-rate field
        self.start_hint = start_hint    # where to look when the very first loss is out of bounds
        self.grad_bound = math.sqrt(float(np.finfo(run.cfg.dtype).max))   # Adam squares the gradient
        self.mover = (None, run.step)  # (player, iteration) of the step that made the parameters; None: before this call
        self.next = "primal"           # the loss the loop evaluates next (a FloatingPointError there blames mover)
        self.updating = None           # (player, iteration) of an update under way, between check_loss and check_step
        self.dual_steps = 0            # adversary steps taken in this iteration
        self.saved = {}                # iteration -> (state at its start, mover then), the last two
        self.pending = []              # checks not yet read: (|a| / bound, arrays, bound, blame, what, mixed)

    def check_loss(self, player, loss, grads):
        """Check `player`'s loss and gradients, computed at the parameters the previous step made
        (so they check that step). Called between evaluating a loss and taking its step."""
        mixed = player == "primal" and self.mover[0] == "dual"   # both players moved since the last primal loss
        self._expect({"loss": self.xp.reshape(loss, (1,))}, self.loss_bound, self.mover,
                     f"the {player} loss became {{value:.3g}}", mixed)
        self._expect(grads, self.grad_bound, self.mover,
                     f"the gradient of the {player} loss became {{value:.3g}} in {{name}}", mixed)
        self.updating = (player, self.run.step + 1)

    def check_step(self, player, params, grads):
        """Check the parameters that `player`'s step just made (those named in grads)."""
        here = (player, self.run.step + 1)
        self._expect({k: params[k] for k in grads}, validate.PARAM_BOUND, here,
                     "its parameter {name} became {value:.3g}")
        self.mover, self.updating = here, None
        self.dual_steps += player == "dual"
        more_dual = self.run.opt_dual is not None and self.dual_steps < self.run.cfg.dual_steps
        self.next = "dual" if more_dual else "primal"

    def _evaluate(self, draws=None):
        """The primal loss on a fresh draw, checked as the work of the previous step (for `probe`)."""
        mixed = self.mover[0] == "dual"
        with self.blaming(self.mover, "evaluating the primal loss raised", mixed):
            loss, grads = self.primal_loss(self.run, draws or self.draws)
        self.check_loss("primal", loss, grads)
        self.updating = None

    def _expect(self, arrays, bound, blame, what, mixed=False):
        """Gather the check |a| <= bound for the arrays {name: array}, read by `read`."""
        self.pending.append((_largest(self.xp, arrays.values()) / bound, arrays, bound, blame, what, mixed))
        if len(self.pending) >= PENDING:                   # many adversary steps: read them now
            self.read()

    def read(self, *values):
        """Read the gathered checks and the scalars `values` (the losses) in one transfer to the
        host; raise _Diverged for the first check that failed, else return `values` as floats."""
        checks, self.pending, xp = self.pending, [], self.xp
        if not checks and not values:
            return ()
        losses = [xp.full((1,), v, dtype=np.float64) if isinstance(v, float)      # a Python float (the VAE's
                  else xp.reshape(xp.asarray(v, dtype=np.float64), (1,)) for v in values]   # dual) is not copied over
        host = to_host(xp.concatenate([c[0].astype(np.float64) for c in checks] + losses))
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
            self.read()                                  # an earlier check may have failed first
            raise _Diverged(blame, f"{doing} FloatingPointError ({err})", mixed) from None

    def probe(self):
        """Check the last step as the next iteration would, by evaluating the loss it computes
        first (the same minibatch and noise), then put the generator back: training goes on
        exactly as without the probe."""
        state = self.run.rng.bit_generator.state
        try:
            self._evaluate(self.draws.restart())
        finally:
            self.run.rng.bit_generator.state = state
        self.read()

    def snapshot(self):
        """Keep the state at the start of the next iteration (and the one before it)."""
        run = self.run
        self.next, self.updating, self.dual_steps = "primal", None, 0
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
        except FloatingPointError as err:                  # under np.errstate(...="raise"), from the loop
            self._give_up(self._floating_point(err))
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

    def _floating_point(self, err):
        """A FloatingPointError raised by the loop, as a failed check of the step to blame: the
        update under way, or (while a loss was being evaluated) the step before it."""
        try:
            self.read()                                    # an earlier check may have failed first
        except _Diverged as earlier:
            return earlier
        if self.updating:
            return _Diverged(self.updating, f"its update raised FloatingPointError ({err})")
        mixed = self.next == "primal" and self.mover[0] == "dual"
        return _Diverged(self.mover, f"evaluating the {self.next} loss raised FloatingPointError ({err})", mixed)

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
                      f"({self.start_hint})" if iteration == 0 else
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
        lr, name = getattr(run, f"opt_{player}").lr, self.lr_names[player]
        lower = lr / 10 if iteration <= 100 else lr / 2    # far off if it breaks a model this young
        default = getattr(type(run.cfg)(), name, None)     # the configuration's default rate: from far
        if isinstance(default, float) and lower > default:  # above it, go there in one rerun
            lower = default
        scale = lr_scale(run.cfg, iteration - 1)
        scaled = f" (times {scale:.3g} by the {run.cfg.lr_schedule} schedule)" if scale != 1 else ""
        message = (f"{run.method.upper()} training diverged at iteration {iteration}: {cause}. The run was "
                   f"restored to iteration {iteration - 1}, where losses and parameters are finite and within "
                   f"bounds. That step used {name}={lr:g}{scaled}: train on with a lower learning rate, e.g. "
                   f"{self.cfg_name}.{name} = {lower:g}.")
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
            self._evaluate()
            self.read()
            return True
        except _Diverged:
            return False
