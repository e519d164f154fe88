"""The exercises (`python -m avb_np.exercises`): a fresh workspace fails cleanly, the package's own code
passes, the package's code pasted into a workspace passes, and the bugs learners make are caught.

Everything runs in-process through main(argv); the file takes a few seconds.
"""
import importlib
import inspect
import re

import pytest

from avb_np.exercise_checks import EXERCISES
from avb_np.exercises import main

N_EXERCISES = len(EXERCISES)


def package_object(ex, target):
    """The package's function (or method, for "Class.method") that exercise `ex` asks for."""
    obj = importlib.import_module(f"avb_np.{ex.module}")
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def paste_solution(text, ex):
    """The workspace file with every stub replaced by the package's own code, as a learner would paste it:
    from `def name(` through the stub's `raise NotImplementedError` line (a method keeps its indentation)."""
    for target in ex.targets:
        name = target.split(".")[-1]
        stub = re.compile(rf"^[ ]*def {name}\(.*?raise NotImplementedError\n", re.S | re.M)
        text, count = stub.subn(lambda _: inspect.getsource(package_object(ex, target)), text, count=1)
        assert count == 1, f"no stub for {target} in {ex.slug}.py"
    return text


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A workspace written by `start`, and its files' texts."""
    where = tmp_path_factory.mktemp("fresh") / "ws"
    assert main(["start", str(where)]) == 0
    return where, {ex.slug: (where / f"{ex.slug}.py").read_text() for ex in EXERCISES}


def workspace_with(tmp_path, texts):
    for slug, text in texts.items():
        (tmp_path / f"{slug}.py").write_text(text)
    return str(tmp_path)


def test_list_prints_every_exercise_numbered(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == N_EXERCISES >= 10
    assert [line.split(".")[0].strip() for line in lines] == [str(n) for n in range(1, N_EXERCISES + 1)]


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["start", "--help"], ["check", "--help"]])
def test_help_exits_zero(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0 and "usage" in capsys.readouterr().out


def test_workspace_keeps_signatures_and_docstrings_but_not_bodies(fresh):
    """Each target's signature and docstring are in its file, its body is not (two stub lines instead)."""
    _, texts = fresh
    for ex in EXERCISES:
        text = texts[ex.slug]
        assert text.count("raise NotImplementedError") == len(ex.targets) == text.count("# YOUR CODE HERE")
        for target in ex.targets:
            obj = package_object(ex, target)
            assert f"def {obj.__name__}(" in text
            if obj.__doc__:
                assert inspect.cleandoc(obj.__doc__).splitlines()[0] in text
    assert "from avb_np.layers import sigmoid, softplus" in texts["ex03_bernoulli_log_likelihood"]
    assert "dlogits = x - sigmoid(logits)" not in texts["ex03_bernoulli_log_likelihood"]


def test_fresh_workspace_is_not_implemented_yet_everywhere(fresh, capsys):
    """Exit status 1; every exercise says 'not implemented yet', in one line, and no traceback is printed."""
    where, _ = fresh
    assert main(["check", "--dir", str(where)]) == 1
    out = capsys.readouterr().out
    assert out.count("not implemented yet:") == N_EXERCISES and "Traceback" not in out
    assert f"0 of {N_EXERCISES} exercises pass, 0 fail, {N_EXERCISES} not implemented yet" in out


def test_start_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["start", str(tmp_path)]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]                 # nothing written
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_check_without_a_workspace_says_how_to_start(tmp_path, capsys):
    assert main(["check", "1", "--dir", str(tmp_path / "none")]) == 2
    assert "start" in capsys.readouterr().err


def test_solutions_and_a_workspace_together_are_refused(tmp_path, capsys):
    """--solutions checks the package, not a workspace: asked for both, the command says so
    instead of quietly ignoring --dir."""
    with pytest.raises(SystemExit) as stop:
        main(["check", "--solutions", "--dir", str(tmp_path)])
    assert stop.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_the_package_passes_every_exercise(capsys):
    assert main(["check", "--solutions"]) == 0
    out = capsys.readouterr().out
    assert f"{N_EXERCISES} of {N_EXERCISES} exercises pass" in out and "FAIL" not in out


def test_pasted_solutions_pass(fresh, tmp_path, capsys):
    _, texts = fresh
    where = workspace_with(tmp_path, {ex.slug: paste_solution(texts[ex.slug], ex) for ex in EXERCISES})
    assert main(["check", "--dir", where]) == 0, capsys.readouterr().out


# (exercise, package line, the line with a learner's bug, a check that must fail)
BUGS = [
    (1, "dout @ W.T if input_grad", "dout @ W if input_grad", "gradient check: x"),             # missing transpose
    (1, "db = dout.sum(axis=0)", "db = dout.mean(axis=0)", "gradient check: b"),               # averaged, not summed
    (1, "db = dout.sum(axis=0)", "db = dout", "dW = db = 3: db"),                              # not summed at all
    (1, "if not param_grads:", "if False:", "param_grads=False"),                                # flag ignored
    (2, "return dout * (neg + 1)", "return dout * neg", "gradient check: x"),                  # e^x - 1 for e^x
    (3, "dlogits = x - sigmoid(logits)", "dlogits = sigmoid(logits) - x", "gradient check: logits"),   # sign flip
    (4, "return kl, mu, sigma2 - 1", "return kl, -mu, sigma2 - 1", "gradient check: mu"),      # sign flip in dmu
    (5, "dmu = dmu + dz", "dmu = dz", "eps = 0"),                                              # dmu replaced
    (6, "return loss, -sigmoid(-T_q) / N", "return loss, -sigmoid(-T_q)", "gradient check: T_q"),   # not a mean
    (7, "-dlogp_dlogits / N", "dlogp_dlogits / N", "gradient check (directional): z"),         # sign of log p
    (8, "c1 = 1 - self.beta1 ** self.t", "c1 = 1", "step 1"),                                  # no bias correction
    (9, "(dT_dzt - zt) / sigma + z", "(dT_dzt - zt) + z", "gradient check: z"),                # chain rule lost
    (10, "z = z + step * p", "z = z - step * p", "1 - mean acceptance"),                       # wrong leapfrog sign
    (10, "p0 + 0.5 * step * g", "p0 + step * g", "1 - mean acceptance"),                       # full first step
    (10, "keep = log_u < log_a", "keep = log_u > log_a", "f kept over 10 steps"),              # Metropolis reversed
    (11, "to_host(lj - lr)", "to_host(lj)", "estimate exact"),                                 # log r forgotten
]


@pytest.mark.parametrize("n, line, bug, failing", BUGS, ids=[f"{n}:{bug}" for n, _, bug, _ in BUGS])
def test_a_planted_bug_is_caught(n, line, bug, failing, fresh, tmp_path, capsys):
    ex = EXERCISES[n - 1]
    solved = paste_solution(fresh[1][ex.slug], ex)
    assert solved.count(line) == 1, f"{line!r} is no longer in the package's {ex.module}.py"
    where = workspace_with(tmp_path, {ex.slug: solved.replace(line, bug)})
    assert main(["check", str(n), "--dir", where]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"FAIL  .*{re.escape(failing)}", out), out
    assert "Traceback" not in out


def test_an_exception_in_learner_code_is_one_line_with_its_place(fresh, tmp_path, capsys):
    """The missing transpose on a non-square W raises in the known-values check: one line, the file's line number."""
    ex = EXERCISES[0]
    where = workspace_with(tmp_path, {ex.slug: paste_solution(fresh[1][ex.slug], ex).replace("W.T if", "W if")})
    assert main(["check", "1", "--dir", where]) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAIL  x, dout ones .*: ValueError: .* \(line \d+ of ex01_affine_backward.py\)", out), out


def test_a_syntax_error_is_reported_not_raised(fresh, tmp_path, capsys):
    where = workspace_with(tmp_path, {EXERCISES[1].slug: fresh[1][EXERCISES[1].slug] + "\ndef broken(:\n"})
    assert main(["check", "2", "--dir", where]) == 1
    assert "could not load" in capsys.readouterr().out
