"""Gradient-check exercises in the style of CS231n's assignments, cut from avb_np's own source.

    python -m avb_np.exercises list                    the exercises, in the order of the math
    python -m avb_np.exercises start [DIR]             a workspace, one file per exercise (default DIR:
                                                       ./avb_exercises), the bodies to write removed
    python -m avb_np.exercises check [N] [--dir DIR]   check exercise N (default: all) in DIR
    python -m avb_np.exercises check --solutions       check the package's own code

`start` copies each target function from the package as it is at that moment, keeping its
signature and docstring and replacing its body by `# YOUR CODE HERE` / `raise NotImplementedError`,
so an exercise cannot drift from the code the tests check. `check` loads the learner's file,
takes the target functions from it and runs the checks of avb_np.exercise_checks on them, with
the package's code for everything else. Exit status: 0 when every check passes, 1 otherwise,
2 for a usage error (a non-empty DIR for `start`, no workspace for `check`).
"""
import argparse
import ast
import importlib
import inspect
import sys
import textwrap
import traceback
import types
import warnings
from pathlib import Path

import numpy as np

from .exercise_checks import EXERCISES

DEFAULT_DIR = "avb_exercises"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError")
FILE_HEADER = '''r"""Exercise {n}: {title}.

    {teaches}

Write {names} below, where it says YOUR CODE HERE, from the docstring (shapes, formula).
The imports are those the package's own code uses. Then check your code with

    python -m avb_np.exercises check {n} --dir {where}

The code comes from avb_np/{module}.py, whose docstring reads:

{doc}
"""
'''


# ----------------------------------------------------------------------------- the workspace

def _node(tree, qualname):
    """The ast node of a top-level function or class, or of a method ("Class.method")."""
    node = tree
    for part in qualname.split("."):
        node = next(n for n in node.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part)
    return node


def _cut(lines, top, stubbed):
    """The source lines of the top-level node `top`, with the body of each function in `stubbed`
    (everything after its docstring, or after its signature when it has none) replaced by STUB."""
    out = lines[top.lineno - 1:top.end_lineno]
    for fn in sorted(stubbed, key=lambda node: node.lineno, reverse=True):   # bottom up: line numbers stay valid
        first = fn.body[0]
        keep = first.end_lineno if ast.get_docstring(fn) is not None else first.lineno - 1   # last line kept
        out[keep - top.lineno + 1:fn.end_lineno - top.lineno + 1] = [" " * first.col_offset + s for s in STUB]
    return out


def _defined(tree):
    """The names a module defines at its top level: functions, classes and constants."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _from(base, names):
    line = f"from {base} import {', '.join(names)}"
    return line if len(line) <= 100 else textwrap.fill(
        ", ".join(names), 100, initial_indent=f"from {base} import (", subsequent_indent="    ") + ")"


def _imports(tree, module, used, here):
    """Import lines for the names `used` by the copied code and not defined `here`: the module's
    own imports made absolute (from . import x -> from avb_np import x), then what it defines."""
    lines = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            lines += [f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                      for a in node.names if (a.asname or a.name.split(".")[0]) in used]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(["avb_np"] + ([node.module] if node.module else [])) if node.level else node.module
            names = [a.name + (f" as {a.asname}" if a.asname else "") for a in node.names
                     if (a.asname or a.name) in used]
            lines += [_from(base, names)] if names else []
    own = sorted((used & _defined(tree)) - here)
    return lines + ([_from(f"avb_np.{module}", own)] if own else [])


def workspace_file(n, ex, where):
    """The text of exercise n's file: a header, the imports, the functions to read and to write."""
    module = importlib.import_module(f"avb_np.{ex.module}")
    source = inspect.getsource(module)
    tree, lines = ast.parse(source), source.splitlines()
    tops = {}                                              # top-level node -> functions to stub inside it
    for name in ex.context + ex.targets:
        tops.setdefault(_node(tree, name.split(".")[0]), [])
    for name in ex.targets:
        tops[_node(tree, name.split(".")[0])].append(_node(tree, name))
    used = {node.id for top in tops for node in ast.walk(top) if isinstance(node, ast.Name)}
    pieces = [("" if tops[top] else "# Given, to read (the checks use the package's own copy).\n")
              + "\n".join(_cut(lines, top, tops[top])) for top in sorted(tops, key=lambda node: node.lineno)]
    header = FILE_HEADER.format(n=n, title=ex.title, teaches=ex.teaches, names=" and ".join(ex.targets), where=where,
                           module=ex.module, doc=textwrap.indent(inspect.getdoc(module), "    "))
    imports = "".join(line + "\n" for line in _imports(tree, ex.module, used, {top.name for top in tops}))
    return header + imports + "\n\n" + "\n\n\n".join(pieces) + "\n"


def start(where):
    path = Path(where)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        print(f"error: {where} exists and is not an empty directory; nothing was written (choose a new DIR)",
              file=sys.stderr)
        return 2
    files = {f"{ex.slug}.py": workspace_file(n, ex, where) for n, ex in enumerate(EXERCISES, 1)}
    files["README.txt"] = (
        "Exercises of avb_np: write each function where it says YOUR CODE HERE, then check it.\n\n"
        f"    python -m avb_np.exercises check N --dir {where}     exercise N\n"
        f"    python -m avb_np.exercises check --dir {where}       all of them\n"
        "    python -m avb_np.exercises check --solutions       the package's own code\n\n"
        + "".join(f"{n:>3}  {ex.slug + '.py':<36} {ex.teaches}\n" for n, ex in enumerate(EXERCISES, 1)))
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    print(f"wrote {len(EXERCISES)} exercises and README.txt to {where}; begin with {EXERCISES[0].slug}.py and "
          f"run: python -m avb_np.exercises check 1 --dir {where}")
    return 0


# ----------------------------------------------------------------------------- checking

def load(path):
    """The learner's file as a fresh module, compiled from its current text (no cached bytecode)."""
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def package_impl(ex):
    """The package's own targets, in a namespace like a learner's module."""
    module = importlib.import_module(f"avb_np.{ex.module}")
    return types.SimpleNamespace(**{t.split(".")[0]: getattr(module, t.split(".")[0]) for t in ex.targets})


def one_line(err, path=None):
    """'ValueError: message (line 12 of ex01_affine_backward.py)': the error and where in the learner's file."""
    text = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if path and f.filename == str(path)]
    return text + (f" (line {lines[-1]} of {path.name})" if lines else "")


def run_exercise(n, ex, impl, path=None):
    """Run exercise n's checks on impl and print one line per row; 'pass', 'FAIL' or 'not implemented'."""
    print(f"Exercise {n}: {ex.title} ({path or 'avb_np.' + ex.module})")
    status = "pass"
    for c in ex.checks:
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():   # a NaN or inf fails the check anyway
                warnings.simplefilter("ignore")
                result = c.run(impl)
        except NotImplementedError:
            print(f"  not implemented yet: write {' and '.join(ex.targets)}" + (f" in {path}" if path else ""))
            return "not implemented"
        except Exception as err:                   # the learner's code raised: one line, then the hint
            print(f"  FAIL  {c.label}: {one_line(err, path)}\n        hint: {c.hint}")
            status = "FAIL"
            continue
        rows = result if isinstance(result, dict) else {"": result}
        for row, err in rows.items():
            ok = err <= c.tol                      # False for NaN
            print(f"  {'pass' if ok else 'FAIL'}  {c.label + (': ' + row if row else ''):<66} "
                  f"{err:9.1e}  (tol {c.tol:.2g})")
        if not all(err <= c.tol for err in rows.values()):   # a group's hint says whose it is
            print(f"        hint{f' ({c.label})' if len(rows) > 1 else ''}: {c.hint}")
            status = "FAIL"
    return status


def check_exercises(numbers, where, solutions):
    if not solutions and not Path(where).is_dir():
        print(f"error: no workspace at {where}: run `python -m avb_np.exercises start {where}` first "
              "(or pass --dir, or --solutions)", file=sys.stderr)
        return 2
    print("error = relative error |a - b| / max(1e-8, |a| + |b|) unless the check says otherwise\n")
    results = []
    for n in numbers:
        ex = EXERCISES[n - 1]
        path = None if solutions else Path(where) / f"{ex.slug}.py"
        try:
            impl = package_impl(ex) if solutions else load(path)
        except FileNotFoundError:
            print(f"Exercise {n}: {ex.title}\n  FAIL  {path} is missing (`start` writes it into a new DIR)\n")
            results.append("FAIL")
            continue
        except Exception as err:                   # a syntax error, an import that fails
            print(f"Exercise {n}: {ex.title}\n  FAIL  could not load {path}: {one_line(err, path)}\n")
            results.append("FAIL")
            continue
        results.append(run_exercise(n, ex, impl, path))
        print()
    print(f"{results.count('pass')} of {len(results)} exercises pass, {results.count('FAIL')} fail, "
          f"{results.count('not implemented')} not implemented yet")
    return 0 if results.count("pass") == len(results) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m avb_np.exercises", description=(
        "Gradient-check exercises cut from avb_np's own source: write a function from its docstring, "
        "then check it against finite differences and a known answer."))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the exercises, in order", description="Print the exercises in order, "
                   "each with what it teaches.")
    p = sub.add_parser("start", help="write a workspace", description="Write one file per exercise to DIR, "
                       "the bodies to write replaced by a stub, and a README.txt. Refuses a non-empty DIR.")
    p.add_argument("dir", nargs="?", default=DEFAULT_DIR, metavar="DIR", help=f"default: {DEFAULT_DIR}")
    p = sub.add_parser("check", help="check your code", description="Run the checks of exercise N (default: "
                       "all) on the code in DIR: exit status 0 when every check passes.")
    p.add_argument("n", nargs="?", type=int, metavar="N", help=f"the exercise, 1 to {len(EXERCISES)}")
    where = p.add_mutually_exclusive_group()             # --solutions reads no workspace
    where.add_argument("--dir", default=DEFAULT_DIR, help=f"the workspace (default: {DEFAULT_DIR})")
    where.add_argument("--solutions", action="store_true", help="check the package's own code instead of a workspace")
    args = parser.parse_args(argv)
    if args.command == "list":
        for n, ex in enumerate(EXERCISES, 1):
            print(f"{n:>2}. {ex.title} -- {ex.teaches}")
        return 0
    if args.command == "start":
        return start(args.dir)
    if args.n is not None and not 1 <= args.n <= len(EXERCISES):
        parser.error(f"N must be between 1 and {len(EXERCISES)}, got {args.n}")
    return check_exercises([args.n] if args.n else range(1, len(EXERCISES) + 1), args.dir, args.solutions)


if __name__ == "__main__":
    raise SystemExit(main())
