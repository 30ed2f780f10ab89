"""The `jaxopt-edu` command (also `python -m jaxopt_edu`): the optimizer lab in a terminal.

    jaxopt-edu compare                      # sgd, momentum, rmsprop, adagrad, adam on
                                            # rosenbrock and spirals -> ./jaxopt_edu_out
    jaxopt-edu compare --optimizers adam,rmsprop --problem beale --steps 300 --seeds 3
    jaxopt-edu compare --problem spirals:dropout=0.1,l2=1e-4 --problem rastrigin:dim=10
    jaxopt-edu sweep --optimizer adam --grid learning_rate=1e-4:1e-1:8:log,b1=0.8,0.9,0.99
    jaxopt-edu lr-find --optimizer adam --problem spirals
    jaxopt-edu problems | optimizers | explain adam

Exit status: 0 on success, 2 for bad input (the message on stderr says what is
wrong and lists the valid choices; nothing is written), 1 when a run fails.
Outputs go to a temporary folder next to `--out` and are moved into place at the
end, so an interrupted or failed run leaves nothing half-written. An existing
`--out` folder keeps its other files (earlier runs' too); the results JSON's
"files" lists exactly the files of this run.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import inspect
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "parse_grid"]

PROG = "jaxopt-edu"
DEFAULT_OUT = "jaxopt_edu_out"
MAIN_OPTIMIZERS = "sgd,momentum,rmsprop,adagrad,adam"
MAIN_PROBLEMS = "rosenbrock,spirals"
GRID_HELP = """\
grid syntax: NAME=VALUES[,NAME=VALUES...] (or one --grid per axis); VALUES is
  a comma list         b1=0.8,0.9,0.99
  or a range           learning_rate=1e-4:1e-1:8:log   (START:STOP:NUM[:log|lin],
                       NUM points, both ends included; lin is the default)
NAMES are hyperparameters in the optimizer's state (learning_rate, b1, b2, eps,
momentum, decay, weight_decay...); the grid is the product of the axes."""


class UsageError(Exception):
    """Bad input: reported on stderr with exit status 2."""


# ------------------------------------------------------------------------ terminal output


def _use_rich(stream: Any) -> bool:
    """rich renders only to a terminal; pipes and files get plain text."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and importlib.util.find_spec("rich") is not None


def _console(stream: Any):
    from rich.console import Console

    return Console(file=stream, highlight=False)


def _out(text: str = "") -> None:
    print(text, file=sys.stdout, flush=True)


def _print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], wrap_last: bool = False
) -> None:
    """A rich table on a terminal, aligned plain text otherwise.

    `wrap_last`: on a narrow terminal only the last column wraps (the others stay whole).
    """
    if _use_rich(sys.stdout):
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, c in enumerate(columns):
            numeric = all(_is_number(r[i]) for r in rows)
            no_wrap = wrap_last and i < len(columns) - 1
            table.add_column(c, justify="right" if numeric else "left", no_wrap=no_wrap)
        for r in rows:
            table.add_row(*r)
        _console(sys.stdout).print(table)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r[i]) for r in rows) for i in range(len(columns))]

    def line(cells):
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    _out(title)
    _out(line(columns))
    _out("  ".join("-" * w for w in widths))
    for r in rows:
        _out(line(r))


def _is_number(cell: str) -> bool:
    head = cell.split(" ")[0].split("/")[0]
    try:
        float(head)
    except ValueError:
        return head == "-"
    return True


class _Progress:
    """Progress on stderr: a rich spinner and bar on a terminal, one plain line per step else."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.done, self.quiet = total, 0, quiet
        self.rich = None if quiet or not _use_rich(sys.stderr) else self._make_rich()

    def _make_rich(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                       MofNCompleteColumn(), TimeElapsedColumn(), console=_console(sys.stderr),
                       transient=True)  # fmt: skip
        self.task = bar.add_task("", total=self.total)
        return bar

    def __enter__(self):
        if self.rich is not None:
            self.rich.start()
        return self

    def __exit__(self, *exc):
        if self.rich is not None:
            self.rich.stop()

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        self.done += 1
        t0 = time.perf_counter()
        if self.rich is not None:
            self.rich.update(self.task, description=description)
        elif not self.quiet:
            print(f"[{self.done}/{self.total}] {description} ...", end="", file=sys.stderr,
                  flush=True)  # fmt: skip
        try:
            yield
        except BaseException:
            if self.rich is None and not self.quiet:
                print(" failed", file=sys.stderr, flush=True)
            raise
        if self.rich is not None:
            self.rich.advance(self.task)
        elif not self.quiet:
            print(f" {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def _g(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float | np.floating):
        return f"{float(x):.{digits}g}" if math.isfinite(x) else str(float(x))
    return str(x)


# ------------------------------------------------------------------------ the --out folder


class _Staging:
    """Outputs are written into a temporary folder, then moved to `target` in one go.

    The folder is created before the run (so an unwritable target fails at once),
    next to the target (same file system, so the final move is a rename), and
    removed if anything goes wrong. An existing target keeps its other files
    (earlier runs' included: the results JSON lists exactly the files of this run);
    files of the same name are replaced. `names` are the files the command may write:
    one that is a directory in the target is refused (exit 2) before anything runs.
    Into an existing folder the move is all-or-nothing: every collision is checked
    first, replaced files are kept aside, and on any failure the files moved so far
    are removed and the replaced ones restored.
    """

    def __init__(self, target: str, names: Sequence[str] = ()):
        self.target = Path(target).expanduser().absolute()
        if self.target.exists() and not self.target.is_dir():
            raise UsageError(f"--out {target}: exists and is not a directory.")
        anchor = self.target if self.target.exists() else self.target.parent
        while not anchor.exists():
            anchor = anchor.parent
        if not anchor.is_dir():
            raise UsageError(f"--out {target}: {anchor} is a file, not a directory.")
        self._check_collisions(names)
        try:
            self.dir = Path(tempfile.mkdtemp(prefix=".jaxopt_edu-partial-", dir=anchor))
            umask = os.umask(0)
            os.umask(umask)
            self.dir.chmod(0o777 & ~umask)  # mkdtemp's 0o700 would stay on the final folder
        except OSError as e:
            raise UsageError(
                f"--out {target}: cannot write there ({e.strerror or e}); "
                "choose a directory you can write to."
            ) from None
        self.files: list[str] = []

    def _check_collisions(self, names: Sequence[str]) -> None:
        if not self.target.is_dir():
            return
        blocked = [n for n in names if (self.target / n).is_dir()]
        if blocked:
            raise UsageError(
                f"--out {self.target}: {', '.join(blocked)} "
                f"{'is a directory' if len(blocked) == 1 else 'are directories'} there, "
                "where this run would write a file; move it away or choose another --out. "
                "Nothing was written."
            )

    def path(self, name: str) -> Path:
        self.files.append(name)
        return self.dir / name

    def commit(self) -> Path:
        names = sorted(n for n in os.listdir(self.dir) if n in self.files)
        if not self.target.exists():
            self.target.parent.mkdir(parents=True, exist_ok=True)
            for n in os.listdir(self.dir):  # stray temporaries stay out of the result
                if n not in self.files:
                    (self.dir / n).unlink()
            os.rename(self.dir, self.target)
            return self.target
        self._check_collisions(names)  # again: the folder may have changed during the run
        aside = Path(tempfile.mkdtemp(prefix="previous-", dir=self.dir))
        moved, kept = [], []
        try:
            for n in names:
                final = self.target / n
                if final.exists() or final.is_symlink():
                    os.replace(final, aside / n)
                    kept.append(n)
                os.replace(self.dir / n, final)
                moved.append(n)
        except BaseException:
            for n in moved:
                with contextlib.suppress(OSError):
                    (self.target / n).unlink()
            for n in kept:
                with contextlib.suppress(OSError):
                    os.replace(aside / n, self.target / n)
            raise
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def _output(args, names: Sequence[str] = ()) -> Iterator[_Staging | None]:
    """The staging folder for `--out` (None with `--no-out`); `names`: the files the run may write."""
    if args.out is None:
        yield None
        return
    staging = _Staging(args.out, names)
    try:
        yield staging
        target = staging.commit()
    except BaseException:
        staging.abort()
        raise
    if staging.files:
        _out(f"\nwrote {len(staging.files)} files to {target}: {', '.join(staging.files)}")


def _plots_available(staging) -> bool:
    if staging is None:
        return False
    if importlib.util.find_spec("matplotlib") is None:
        print('note: matplotlib is not installed, so no plots were drawn; pip install '
              '"jaxopt_edu[lab]"', file=sys.stderr)  # fmt: skip
        return False
    return True


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(_jsonable(doc), indent=1, allow_nan=False))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# ------------------------------------------------------------------------ validation


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _split_names(values: Sequence[str] | str | None, default: str) -> list[str]:
    values = [default] if not values else [values] if isinstance(values, str) else values
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _optimizer_specs(names: Sequence[str]) -> dict:
    from jaxopt_edu.lab.compare import DEFAULT_OPTIMIZERS

    unknown = [n for n in names if n not in DEFAULT_OPTIMIZERS]
    if unknown or not names:
        raise UsageError(
            f"unknown optimizer {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from: {', '.join(DEFAULT_OPTIMIZERS)}."
        )
    return {n: DEFAULT_OPTIMIZERS[n] for n in dict.fromkeys(names)}


PROBLEM_HELP = """\
problem syntax: NAME[:OPTION=VALUE,OPTION=VALUE...], e.g. spirals:dropout=0.1,l2=1e-4
  or ill_conditioned_quadratic:dim=50,condition_number=1000 (see `jaxopt-edu problems`
  for each problem's options). Several problems: repeat --problem, or separate them
  by commas; after a comma, a token without `=` starts the next problem
  (`rosenbrock,spirals:dropout=0.1,l2=1e-4,beale` is three problems)."""


OUT_HELP = """

--out DIR: an existing folder keeps its other files, earlier runs' included; files of
  the same name are replaced, and the results JSON's "files" lists exactly the files
  of this run. A name this run would write that is a directory there: exit 2 before
  running. The final move is all-or-nothing."""


def _problem_builder(name: str):
    from jaxopt_edu.lab import problems as problems_module

    return problems_module._REGISTRY[name][0]


def _problem_options(name: str) -> dict[str, inspect.Parameter]:
    """The options of problem `name` (its builder's keyword parameters), from the signature."""
    try:
        return dict(inspect.signature(_problem_builder(name)).parameters)
    except (KeyError, AttributeError, TypeError, ValueError):
        return {}


def _option_kind(param: inspect.Parameter | None) -> type:
    """bool, int (a count such as dim or hidden) or float, from the default or the annotation."""
    if param is None:
        return float
    default, annotation = param.default, param.annotation
    for kind in (bool, int):
        if type(default) is kind or annotation in (kind, kind.__name__):
            return kind
    return float


def _option_value(problem: str, key: str, text: str, param: inspect.Parameter | None) -> Any:
    kind = _option_kind(param)
    low = text.strip().lower()
    if kind is bool and low in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return low in ("true", "yes", "on", "1")
    try:
        value = float(text)
    except ValueError:
        raise UsageError(
            f"--problem {problem}: cannot read {text!r} for option `{key}`: use a number"
            + (" (or true/false)." if kind is bool else ".")
        ) from None
    if kind is int and math.isfinite(value) and value == int(value):
        return int(value)
    return value  # a fractional count is passed on: the problem's own check says what is wrong


def _parse_problem_specs(values: Sequence[str] | str | None, default: str) -> list[tuple]:
    """`--problem` values -> `[(name, {option: value}, text)]`.

    A value is a comma list; a token without `=` before its first `:` starts a problem
    (`NAME` or `NAME:OPTION=VALUE`), a token `OPTION=VALUE` adds an option to the last
    problem. Repeating `--problem` works too. Unknown names and options are left to
    `_problems` (`get_problem` says which are valid).
    """
    values = [default] if not values else [values] if isinstance(values, str) else values
    specs: list[list] = []
    for value in values:
        for token in (t.strip() for t in value.split(",")):
            if not token:
                continue
            head, sep, rest = token.partition(":")
            if "=" not in head:
                specs.append([head.strip(), {}, []])
                token = rest.strip() if sep else ""
                if sep and not token:
                    raise UsageError(f"--problem {value}: nothing after `{head}:`.\n{PROBLEM_HELP}")
                if not token:
                    continue
            elif not specs:
                raise UsageError(
                    f"--problem {value}: an option ({token!r}) before any problem name.\n"
                    f"{PROBLEM_HELP}"
                )
            name, options, texts = specs[-1]
            key, eq, text = (x.strip() for x in token.partition("="))
            if not eq or not re.fullmatch(r"[A-Za-z_]\w*", key) or not text:
                raise UsageError(
                    f"--problem {value}: cannot read {token!r}: use OPTION=VALUE.\n{PROBLEM_HELP}"
                )
            if key in options:
                raise UsageError(f"--problem {value}: option `{key}` given twice for {name}.")
            params = _problem_options(name) if name in _problem_names() else {}
            options[key] = _option_value(name, key, text, params.get(key))
            texts.append(f"{key}={text}")
    return [(n, o, n + (":" + ",".join(t) if t else "")) for n, o, t in specs]


def _one_problem(value: str, command: str):
    specs = _parse_problem_specs(value, "spirals")
    if len(specs) != 1:
        raise UsageError(
            f"--problem {value}: {command} runs one problem, got {len(specs)} "
            f"({', '.join(t for _, _, t in specs)}); use compare for several."
        )
    return _problems(specs)[0]


def _problem_names() -> dict[str, str]:
    from jaxopt_edu.lab.problems import list_problems

    return list_problems()


def _problems(specs: Sequence[tuple]) -> list:
    """Build each `(name, options, text)` from `_parse_problem_specs` (duplicates dropped)."""
    from jaxopt_edu.lab.problems import get_problem

    valid = _problem_names()
    unknown = [n for n, _, _ in specs if n not in valid]
    if unknown or not specs:
        raise UsageError(
            f"unknown problem {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from: {', '.join(valid)}."
        )
    out, seen = [], set()
    for name, options, text in specs:
        key = (name, tuple(sorted(options.items())))
        if key in seen:
            continue
        seen.add(key)
        try:
            problem = get_problem(name, **options)
        except (ImportError, ValueError, TypeError) as e:
            raise UsageError(f"--problem {text}: {e}") from None
        out.append(problem)
        _GIVEN_OPTIONS[problem] = dict(options)
    stems = [_stem(p) for p in out]
    if len(set(stems)) < len(stems):  # e.g. dim=10 and dim=10.0 would share file names
        raise UsageError(f"--problem: the same problem twice ({', '.join(stems)}).")
    return out


# problem -> the options given on the command line (weak: a problem outlives no run)
_GIVEN_OPTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _given_options(problem) -> dict[str, Any]:
    try:
        return _GIVEN_OPTIONS.get(problem, {})
    except TypeError:  # not weak-referenceable
        return {}


def _label(problem) -> str:
    """`spirals` or `spirals(dropout=0.1, l2=0.0001)`: the name with the options given."""
    opts = _given_options(problem)
    return problem.name + (f"({', '.join(f'{k}={v!r}' for k, v in opts.items())})" if opts else "")


def _stem(problem) -> str:
    """File-name stem: `spirals`, or `spirals_dropout0.1_l20.0001` with options."""
    opts = _given_options(problem)
    text = problem.name + "".join(f"_{k}{v!r}" for k, v in opts.items())
    return re.sub(r"[^\w.+-]", "-", text)


def parse_grid(specs: Sequence[str] | str) -> dict[str, list[float]]:
    """Parse the command line's grid syntax into `{name: [values...]}` for `sweep`.

    `"learning_rate=1e-4:1e-1:4:log,b1=0.8,0.9"` ->
    `{"learning_rate": [1e-4, 1e-3, 1e-2, 1e-1], "b1": [0.8, 0.9]}`. A value is a
    number or a range `START:STOP:NUM[:log|lin]` (NUM points, both ends included);
    several `specs` (one per `--grid`) add axes. Raises `ValueError` saying what is
    malformed (a value before any `NAME=`, an empty name or value, a name given
    twice, a bad range, a log range through zero).
    """
    specs = [specs] if isinstance(specs, str) else list(specs)
    grid: dict[str, list[float]] = {}
    for spec in specs:
        name = None
        for token in (t.strip() for t in spec.split(",")):
            if "=" in token:
                name, token = (s.strip() for s in token.split("=", 1))
                if not re.fullmatch(r"[A-Za-z_]\w*", name):
                    raise ValueError(f"{name!r} is not a hyperparameter name (in {spec!r}).")
                if name in grid:
                    raise ValueError(f"{name!r} appears twice in the grid.")
                grid[name] = []
            elif name is None:
                raise ValueError(f"{spec!r} must start with NAME=, e.g. learning_rate=1e-3,1e-2.")
            if not token:
                raise ValueError(f"empty value for {name!r} in {spec!r}.")
            grid[name].extend(_grid_values(name, token))
    if not grid:
        raise ValueError("the grid is empty.")
    return grid


def _grid_values(name: str, token: str) -> list[float]:
    parts = token.split(":")
    bad = ValueError(
        f"cannot read {token!r} for {name!r}: use a number or START:STOP:NUM[:log|lin]."
    )
    if len(parts) not in (1, 3, 4):
        raise bad
    try:
        numbers = [float(x) for x in parts[:2]]
        num = int(parts[2]) if len(parts) > 2 else 1
    except ValueError:
        raise bad from None
    mode = parts[3].strip().lower() if len(parts) == 4 else "lin"
    if num < 1 or mode not in ("log", "lin"):
        raise bad
    if len(parts) == 1:
        values = numbers
    elif mode == "log":
        if numbers[0] <= 0 or numbers[1] <= 0:
            raise ValueError(f"a log range for {name!r} needs positive ends, got {token!r}.")
        values = list(np.geomspace(numbers[0], numbers[1], num))
    else:
        values = list(np.linspace(numbers[0], numbers[1], num))
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name!r}: values must be finite, got {token!r}.")
    return [float(v) for v in values]


def _hyperparameter_names(tx, problem) -> list[str]:
    import jax

    from jaxopt_edu import HyperParams

    state = jax.eval_shape(lambda: tx.init(problem.init(jax.random.PRNGKey(0))))
    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, HyperParams))
    return sorted({k for x in leaves if isinstance(x, HyperParams) for k in x.values})


# ------------------------------------------------------------------------ compare


def _cmd_compare(args) -> int:
    specs = _optimizer_specs(_split_names(args.optimizers, MAIN_OPTIMIZERS))
    problems = _problems(_parse_problem_specs(args.problem, MAIN_PROBLEMS))
    from jaxopt_edu.lab import plots
    from jaxopt_edu.lab.compare import compare
    from jaxopt_edu.lab.diagnostics import diagnose, format_findings

    lrs = {n: args.lr if args.lr is not None else s.learning_rate for n, s in specs.items()}
    txs = {n: s.build(lrs[n]) for n, s in specs.items()}
    names = ["results.json", "results.csv"]
    for problem in problems:
        names.append(f"{_stem(problem)}_losses.png")
        if _has_trajectories(problem):
            names.append(f"{_stem(problem)}_trajectories.png")
            names += [f"{_stem(problem)}_trajectories.gif"] if args.gif else []
    with _output(args, names) as staging:
        draw = _plots_available(staging)
        title_ok = _accepts(plots.plot_trajectories, "title")
        docs, csv_rows = [], []
        with _Progress(len(problems) * (2 if draw else 1), args.quiet) as progress:
            for problem in problems:
                seeds = f"{args.seeds} seed{'s' if args.seeds > 1 else ''}"
                what = f"{_label(problem)}: {len(txs)} optimizers x {seeds} x {args.steps} steps"
                with progress.step(what):
                    result = compare(txs, problem, args.steps, args.seeds, args.eval_every)
                if draw:
                    with progress.step(f"{_label(problem)}: plots"):
                        _compare_plots(plots, result, staging, txs, args, title_ok)
                _compare_report(result, lrs, args, diagnose, format_findings)
                if draw and args.seeds > 1 and _has_trajectories(problem) and not title_ok:
                    _out(f"note: {_stem(problem)}_trajectories.png shows seed 0 of "
                         f"{args.seeds} (the standard start) only.")  # fmt: skip
                label = {"problem": problem.name, "problem_options": _given_options(problem)}
                csv_rows += [{"problem": _label(problem)} | r for r in result.table()]
                if staging is not None:  # the result's own JSON, gathered into one file
                    tmp = staging.dir / f".{_stem(problem)}.json"
                    result.to_json(tmp)
                    docs.append(json.loads(tmp.read_text()) | label)
                    tmp.unlink()
        if staging is not None:
            files = [*staging.files, "results.json", "results.csv"]
            doc = {"command": "compare", "files": files, "results": docs}
            _write_json(staging.path("results.json"), doc)
            _write_csv(staging.path("results.csv"), csv_rows)
    return 0


def _has_trajectories(problem) -> bool:
    return problem.kind == "function" and problem.dim == 2


def _accepts(fn: Callable, name: str) -> bool:
    """Whether `fn` takes the keyword `name` (checked, so the CLI works with older versions)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _compare_plots(plots, result, staging, txs, args, title_ok: bool) -> None:
    problem = result.problem
    stem = _stem(problem)
    plots.plot_losses(result, staging.path(f"{stem}_losses.png"))
    if not _has_trajectories(problem):
        return
    paths = {}
    for n in result.names:
        traj = result.history[n].get("trajectory")  # compare records them for 2-D functions
        paths[n] = np.asarray(traj[0]) if traj is not None else None
        if paths[n] is None:
            paths[n] = plots.trajectory(txs[n], problem, result.steps)
    extra = {}
    if args.seeds > 1 and title_ok:  # otherwise the report prints a note
        extra["title"] = f"{_label(problem)}: seed 0 of {args.seeds} (the standard start)"
    plots.plot_trajectories(problem, paths, staging.path(f"{stem}_trajectories.png"), **extra)
    if args.gif:
        plots.plot_trajectories(
            problem, paths, staging.path(f"{stem}_trajectories.gif"), animate=True, **extra
        )


def _compare_report(result, lrs, args, diagnose, format_findings) -> None:
    problem = result.problem
    rows = result.table()
    val_name = problem.val_metric_name
    columns = ["optimizer", "lr", "final loss", "best loss"]
    columns += [val_name] if val_name else []
    columns += ["steps to 1%", "diverged", "time (s)"]
    body = []
    for r in rows:
        final = _g(r["final_loss_mean"])
        if args.seeds > 1:
            final += f" ± {_g(r['final_loss_std'], 2)}"
        cells = [r["optimizer"], _g(lrs[r["optimizer"]]), final, _g(r["best_loss"])]
        cells += [_g(r["final_val"])] if val_name else []
        diverged = f"{r['diverged']}/{args.seeds}" if r["diverged"] else "-"
        cells += [_g(r["steps_to_1pct"]), diverged, f"{r['wall_time']:.1f}"]
        body.append(cells)
    seeds = f"{args.seeds} seed{'s' if args.seeds > 1 else ''}"
    _out()
    _print_table(f"{_label(problem)} ({problem.description}); {args.steps} steps, {seeds}",
                 columns, body)  # fmt: skip
    _out(f"\ndiagnosis ({_label(problem)}):")
    extra = {}
    if problem.name == "bilinear" and _accepts(diagnose, "gradient_field"):
        extra["gradient_field"] = True  # its "gradient" is the game's field, not a loss slope
    finals = [r["final_loss_mean"] for r in rows if math.isfinite(r["final_loss_mean"])]
    reference = problem.optimum_value if problem.optimum_value is not None else None
    if reference is None and finals and problem.kind == "task":
        reference = min(finals)
    for name in result.names:
        h = result.history[name]
        found: dict[str, tuple[Any, int]] = {}
        for s in range(h["loss"].shape[0]):
            run = {k: v[s] for k, v in h.items() if k in _PER_SEED and np.ndim(v) == 2}
            run["val_steps"] = h["val_steps"]
            mode = "max" if problem.higher_is_better else "min"
            for f in diagnose(run, lr=lrs[name], reference_loss=reference, val_mode=mode,
                              **extra):  # fmt: skip
                first, count = found.get(f.trap, (f, 0))
                found[f.trap] = (first, count + 1)
        text = format_findings([f for f, _ in found.values()])
        if args.seeds > 1:
            for f, count in found.values():
                text = text.replace(f"] {f.trap}", f"] {f.trap} [{count}/{args.seeds} seeds]", 1)
        if found:
            _out(f"  {name}:")
            _out("\n".join(f"    {line}" if line else "" for line in text.splitlines()))
        else:
            _out(f"  {name}: {text}")


_PER_SEED = ("loss", "grad_norm", "update_norm", "update_ratio", "learning_rate", "val_metric")


# ------------------------------------------------------------------------ sweep, lr-find


def _sweep_factory(spec, grid: dict[str, list[float]], lr: float | None):
    """A factory for `sweep` that checks every grid value with the optimizer's own validation."""
    sig = inspect.signature(spec.fn).parameters
    base_lr = spec.learning_rate if lr is None else lr
    for name, values in grid.items():
        for v in values:
            kwargs = {name: v} if name in sig and name != "learning_rate" else {}
            try:
                spec.fn(v if name == "learning_rate" else base_lr, **kwargs)
            except (ValueError, TypeError) as e:
                raise UsageError(f"grid value {name}={v:g}: {e}") from None

    def factory(**hp):
        return spec.build(hp.get("learning_rate", base_lr))

    return factory


def _cmd_sweep(args) -> int:
    (name,) = _optimizer_specs([args.optimizer]).keys()
    spec = _optimizer_specs([args.optimizer])[name]
    problem = _one_problem(args.problem, args.command)
    try:
        grid = parse_grid(args.grid or ["learning_rate=1e-4:1e-1:8:log"])
    except ValueError as e:
        raise UsageError(f"malformed --grid: {e}\n{GRID_HELP}") from None
    valid = _hyperparameter_names(spec.build(spec.learning_rate), problem)
    unknown = [n for n in grid if n not in valid]
    if unknown:
        raise UsageError(
            f"--grid: {', '.join(map(repr, unknown))} is not a hyperparameter of {name}; "
            f"choose from: {', '.join(valid)}."
        )
    factory = _sweep_factory(spec, grid, args.lr)
    from jaxopt_edu.lab import plots
    from jaxopt_edu.lab.sweep import sweep

    points = int(np.prod([len(v) for v in grid.values()]))
    names = ["sweep.png", "sweep_results.json", "sweep_results.csv"]
    with _output(args, names) as staging:
        draw = _plots_available(staging)
        with _Progress(1 + draw, args.quiet) as progress:
            with progress.step(
                f"sweep {name} on {_label(problem)}: {points} points x {args.steps} steps"
            ):
                result = sweep(factory, grid, problem, args.steps, args.seed)
            if draw:
                with progress.step("heat map"):
                    plots.plot_sweep(result, staging.path("sweep.png"))
        rows = result.table()
        columns = list(rows[0])
        shown = rows[: args.top]
        _out()
        _print_table(f"sweep of {name} on {_label(problem)}: {points} points, {args.steps} steps, "
                     f"{result.wall_time:.1f} s (best {len(shown)} of {points})",
                     columns, [[_g(r[c]) for c in columns] for r in shown])  # fmt: skip
        best = ", ".join(f"{n}={_g(result.best[n])}" for n in result.names)
        _out(f"\nbest: {best} ({result.metric} {_g(result.best[result.metric])})")
        edges = [n for k, n in enumerate(result.names)
                 if len(result.values[k]) > 2 and result.best["index"][k] in (0, len(result.values[k]) - 1)]  # fmt: skip
        if edges:
            _out(f"note: the best point is on the edge of the grid in {', '.join(edges)}: "
                 "the optimum may lie outside; widen the grid there.")  # fmt: skip
        if staging is not None:
            files = [*staging.files, "sweep_results.json", "sweep_results.csv"]
            doc = {"command": "sweep", "files": files, "optimizer": name,
                   "problem": problem.name, "problem_options": _given_options(problem),
                   "steps": args.steps, "names": result.names, "values": result.values,
                   "final_loss": result.final_loss, "metric": result.metric,
                   "best": result.best, "wall_time": result.wall_time}  # fmt: skip
            _write_json(staging.path("sweep_results.json"), doc)
            _write_csv(staging.path("sweep_results.csv"), rows)
    return 0


def _cmd_lr_find(args) -> int:
    spec = next(iter(_optimizer_specs([args.optimizer]).values()))
    problem = _one_problem(args.problem, args.command)
    if args.steps < 3:
        raise UsageError(f"--steps must be at least 3 for a range test, got {args.steps}.")
    if args.max_lr <= args.min_lr:
        raise UsageError(
            f"--max-lr ({args.max_lr:g}) must be larger than --min-lr ({args.min_lr:g})."
        )
    from jaxopt_edu.lab import plots
    from jaxopt_edu.lab.lr_find import lr_find

    names = ["lr_find.png", "lr_find_results.json", "lr_find_results.csv"]
    with _output(args, names) as staging:
        draw = _plots_available(staging)
        with _Progress(1 + draw, args.quiet) as progress:
            with progress.step(f"lr-find {spec.name} on {_label(problem)}: {args.steps} steps"):
                result = lr_find(
                    spec.build, problem, args.min_lr, args.max_lr, args.steps, args.seed
                )
            if draw:
                with progress.step("plot"):
                    plots.plot_lr_find(result, staging.path("lr_find.png"))
        lrs, losses = np.asarray(result.lrs), np.asarray(result.losses)
        smoothed = np.asarray(result.smoothed)
        picks = np.unique(np.linspace(0, len(lrs) - 1, min(len(lrs), 12)).astype(int))
        _out()
        _print_table(f"lr-find: {spec.name} on {_label(problem)}, {args.steps} steps",
                     ["learning rate", "loss", "smoothed"],
                     [[_g(lrs[i]), _g(losses[i]), _g(smoothed[i])] for i in picks])  # fmt: skip
        _out(f"\nsuggested learning rate: {_g(result.suggestion)} "
             f"(default for {spec.name}: {_g(spec.learning_rate)})")  # fmt: skip
        if staging is not None:
            files = [*staging.files, "lr_find_results.json", "lr_find_results.csv"]
            doc = {"command": "lr-find", "files": files, "optimizer": spec.name,
                   "problem": problem.name, "problem_options": _given_options(problem),
                   "lrs": lrs, "losses": losses, "smoothed": smoothed,
                   "suggestion": result.suggestion}  # fmt: skip
            _write_json(staging.path("lr_find_results.json"), doc)
            _write_csv(staging.path("lr_find_results.csv"),
                       [{"learning_rate": float(a), "loss": float(b), "smoothed": float(c)}
                        for a, b, c in zip(lrs, losses, smoothed, strict=True)])  # fmt: skip
    return 0


# ------------------------------------------------------------------------ listings, explain


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _public(kind: str) -> dict[str, Any]:
    """Public functions of `jaxopt_edu` defined in `jaxopt_edu.<kind>` (optimizers/transforms)."""
    import jaxopt_edu

    out = {}
    for name in jaxopt_edu.__all__:
        obj = getattr(jaxopt_edu, name, None)
        if inspect.isfunction(obj) and obj.__module__.startswith(f"jaxopt_edu.{kind}"):
            out[name] = obj
    return out


def _cmd_problems(args) -> int:
    from jaxopt_edu.lab.problems import list_problems

    rows = []
    for n, d in list_problems().items():
        params = _problem_options(n).values()
        opts = ", ".join(f"{p.name}={p.default!r}" if p.default is not p.empty else p.name
                         for p in params) or "-"  # fmt: skip
        rows.append([n, d, opts])
    _print_table("problems (jaxopt-edu compare --problem NAME[:OPTION=VALUE,...])",
                 ["name", "description", "options (defaults)"], rows, wrap_last=True)  # fmt: skip
    return 0


def _cmd_optimizers(args) -> int:
    from jaxopt_edu.lab.compare import DEFAULT_OPTIMIZERS

    rows = [[n, _first_line(f)] for n, f in _public("optimizers").items()]
    _print_table("optimizers of jaxopt_edu (jaxopt-edu explain NAME for the math)",
                 ["name", "description"], rows)  # fmt: skip
    _out()
    rows = [[n, _g(s.learning_rate), s.description] for n, s in DEFAULT_OPTIMIZERS.items()]
    _print_table("names for compare/sweep/lr-find --optimizer(s)",
                 ["name", "default lr", "what it is"], rows)  # fmt: skip
    return 0


_LABELS = ("PyTorch", "Pitfall", "Pitfalls", "Reference", "References", "Args", "Returns",
           "Raises", "Fields", "Example", "optax differs")  # fmt: skip


def _markdown(title: str, doc: str) -> str:
    r"""Docstring -> Markdown that rich renders faithfully.

    Display math (`$$ ... $$`) goes into a verbatim block; labelled paragraphs
    (PyTorch:, Pitfall:, ...) are set apart in bold; indented `name: text` entries
    under Args:/Fields: become list items; a backslash before punctuation is doubled
    so Markdown keeps LaTeX such as `\,` intact.
    """
    out, in_math, in_list = [f"## {title}", ""], False, False
    for line in doc.splitlines():
        stripped = line.strip()
        if in_math or stripped.startswith("$$"):
            if not in_math:
                out += ["", "```text"]
            in_math = not (stripped.endswith("$$") and (in_math or len(stripped) > 2))
            out.append(line)
            if not in_math:
                out += ["```", ""]
            continue
        line = re.sub(r"\\(?=[!-/:-@\[-`{-~])", r"\\\\", line)
        label = next((lab for lab in _LABELS if line.startswith(lab + ":")), None)
        if label is not None:
            out += ["", f"**{label}:**{line[len(label) + 1 :]}"]
            in_list = label in ("Args", "Fields", "Returns", "Raises")
        elif in_list and re.match(r"  \S", line) and ":" in line:
            out.append(f"- {stripped}")
        elif in_list and line.startswith("    "):
            out.append(f"  {stripped}")
        else:
            in_list = in_list and bool(stripped)
            out.append(line)
    return "\n".join(out)


_NOT_THE_MATH = ("scale_by_learning_rate", "scale_by_schedule")


def _math_owner(name: str, transforms: dict[str, Any], optimizers: dict[str, Any], depth=0):
    """The transforms whose docstrings hold the math of the optimizer `name`.

    In order: what its docstring sends the reader to ("math ... in `X`"); for an
    optimizer, the `scale_by_*` transforms it names (`chain(scale_by_adam, ...)`); `scale_by_<name>`
    (without a trailing "w" for the decoupled-decay variants); else the math of the
    optimizer it is built on (`adam(nesterov=True)` for nadam).
    """
    obj = optimizers.get(name, transforms.get(name))
    text = " ".join((inspect.getdoc(obj) or "").split())
    found = [n for n in re.findall(r"[Mm]ath[^.]*?`(\w+)`", text) if n in transforms]
    words = [w for tick in re.findall(r"`([^`]*)`", text) for w in re.findall(r"\w+", tick)]
    if not found and name in optimizers:
        found = [w for w in words if w.startswith("scale_by_") and w in transforms]
        found = [w for w in found if w not in _NOT_THE_MATH]
    if not found and name in optimizers:
        found = [t for t in (f"scale_by_{name}", f"scale_by_{name[:-1]}") if t in transforms][:1]
    if not found and depth == 0:
        for w in (w for w in words if w in optimizers and w != name):
            found = _math_owner(w, transforms, optimizers, 1)
            if found:
                break
    return [n for n in dict.fromkeys(found) if n != name]


def _cmd_explain(args) -> int:
    import jaxopt_edu
    from jaxopt_edu.lab.compare import DEFAULT_OPTIMIZERS

    name = args.name.removeprefix("jaxopt_edu.").removeprefix("optax.")
    if name in DEFAULT_OPTIMIZERS and name not in jaxopt_edu.__all__:
        name = DEFAULT_OPTIMIZERS[name].fn.__name__  # e.g. "momentum" -> sgd
    transforms = _public("transforms")
    explainable = {n for n in jaxopt_edu.__all__ if callable(getattr(jaxopt_edu, n, None))}
    if name not in explainable:
        close = difflib.get_close_matches(name, sorted(explainable), n=5, cutoff=0.7)
        close += [n for n in sorted(explainable) if name.lower() in n.lower()]
        close = list(dict.fromkeys(close))[:8]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UsageError(
            f"nothing called {args.name!r} to explain.{hint} Choose an optimizer "
            f"({', '.join(_public('optimizers'))}), a transform ({', '.join(transforms)}), "
            "or any name from `jaxopt-edu optimizers`."
        )
    obj = getattr(jaxopt_edu, name)
    doc = inspect.getdoc(obj) or "(no docstring)"
    sections = [(f"{name}{_signature(obj)}", doc)]
    for owner in _math_owner(name, transforms, _public("optimizers")):
        t = transforms[owner]
        sections.append((f"the math: {owner}{_signature(t)}", inspect.getdoc(t) or ""))
    if _use_rich(sys.stdout):
        from rich.markdown import Markdown

        console = _console(sys.stdout)
        for title, text in sections:
            console.print(Markdown(_markdown(title, text)))
            console.print()
    else:
        for i, (title, text) in enumerate(sections):
            if i:
                _out()
            _out(f"{title}\n{'=' * min(len(title), 88)}\n{text}")
    return 0


def _signature(obj: Any) -> str:
    """`(learning_rate, b1=0.9, ...)`: the call signature without type annotations."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return ""
    parts, star = [], False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        star |= p.kind is p.VAR_POSITIONAL
        default = "" if p.default is p.empty else f"={p.default!r}"
        parts.append(f"{prefix}{p.name}{default}")
    return f"({', '.join(parts)})"


# ------------------------------------------------------------------------ the parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: usage, message, exit 2
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="The optimizer lab of jaxopt_edu: compare optimizers, "
                "sweep hyperparameters, find the learning rate, read the math.")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def run_options(sp, steps: int, out: str | None, lr: bool = True):
        sp.add_argument("--steps", type=_positive_int, default=steps,
                        help=f"training steps (default {steps})")  # fmt: skip
        if lr:
            sp.add_argument("--lr", type=_positive_float, default=None,
                            help="learning rate (default: each optimizer's own)")  # fmt: skip
        sp.add_argument("--out", default=out, metavar="DIR",
                        help=f"write the PNGs and the results (JSON, CSV) here (default {out})")  # fmt: skip
        sp.add_argument(
            "--no-out",
            dest="out",
            action="store_const",
            const=None,
            help="print only; write no files",
        )
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    c = sub.add_parser("compare", help="several optimizers on one or more problems",
                       description="Train each optimizer on each problem (all seeds in one "
                       "compiled program); print a table and the diagnosis; plot.",
                       epilog=PROBLEM_HELP + OUT_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    c.add_argument(
        "--optimizers",
        action="append",
        metavar="LIST",
        help=f"comma list (default {MAIN_OPTIMIZERS}); see `{PROG} optimizers`",
    )
    c.add_argument(
        "--problem",
        "--problems",
        action="append",
        metavar="NAME[:OPT=VAL,...]",
        help=f"problem with options, repeatable or a comma list (default {MAIN_PROBLEMS}); "
        "see the problem syntax below",
    )
    c.add_argument("--seeds", type=_positive_int, default=1, help="seeds per optimizer (default 1)")
    c.add_argument("--eval-every", type=_positive_int, default=10,
                   help="steps between validation evaluations (default 10)")  # fmt: skip
    c.add_argument("--gif", action="store_true",
                   help="also write animated trajectories (GIF) for 2-D problems")  # fmt: skip
    run_options(c, 500, DEFAULT_OUT)
    c.set_defaults(func=_cmd_compare)

    s = sub.add_parser("sweep", help="one optimizer over a grid of hyperparameters",
                       description="Train one optimizer at every point of a grid, all points "
                       "in one compiled program; print the best and draw a heat map.",
                       epilog=GRID_HELP + "\n" + PROBLEM_HELP + OUT_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    s.add_argument("--optimizer", default="adam", help="optimizer name (default adam)")
    s.add_argument("--grid", action="append", metavar="SPEC", help="see the grid syntax below "
                   "(default learning_rate=1e-4:1e-1:8:log)")  # fmt: skip
    s.add_argument("--problem", default="spirals", metavar="NAME[:OPT=VAL,...]",
                   help="one problem, with options (default spirals)")  # fmt: skip
    s.add_argument("--seed", type=_nonneg_int, default=0, help="which start (default 0)")
    s.add_argument("--top", type=_positive_int, default=10, help="rows to print (default 10)")
    run_options(s, 300, DEFAULT_OUT)
    s.set_defaults(func=_cmd_sweep)

    f = sub.add_parser("lr-find", help="learning-rate range test (Smith 2017)",
                       description="Raise the learning rate exponentially from --min-lr to "
                       "--max-lr over --steps steps and suggest one.",
                       epilog=PROBLEM_HELP + OUT_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    f.add_argument("--optimizer", default="adam", help="optimizer name (default adam)")
    f.add_argument("--problem", default="spirals", metavar="NAME[:OPT=VAL,...]",
                   help="one problem, with options (default spirals)")  # fmt: skip
    f.add_argument("--min-lr", type=_positive_float, default=1e-6, help="(default 1e-6)")
    f.add_argument("--max-lr", type=_positive_float, default=10.0, help="(default 10)")
    f.add_argument("--seed", type=_nonneg_int, default=0, help="which start (default 0)")
    run_options(f, 200, DEFAULT_OUT, lr=False)
    f.set_defaults(func=_cmd_lr_find)

    sub.add_parser("problems", help="list the problems").set_defaults(func=_cmd_problems)
    sub.add_parser("optimizers", help="list the optimizers").set_defaults(func=_cmd_optimizers)
    e = sub.add_parser("explain", help="the math, PyTorch equivalent and pitfalls of a name")
    e.add_argument("name", help="an optimizer or transform, e.g. adam or scale_by_adam")
    e.set_defaults(func=_cmd_explain)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `jaxopt-edu` command line with `argv` (default `sys.argv[1:]`); return the exit status.

    0: success; 2: bad input (unknown optimizer or problem, a step count below 1, a
    malformed grid, an unwritable `--out`), with a message on stderr that lists the
    valid choices, and no files written; 130: interrupted (nothing written). Any
    other failure of a run raises (the console script then exits with status 1),
    and nothing is written either.
    Call it in-process in tests and notebooks: `main(["compare", "--steps", "50"])`.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return int(e.code or 0)
    handler: Callable[[Any], int] = args.func
    try:
        return handler(args)
    except UsageError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; nothing written.", file=sys.stderr)
        return 130
