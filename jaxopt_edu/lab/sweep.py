"""Hyperparameter grids as one compiled program: hyperparameters are state, so a grid is data.

Because every numeric hyperparameter lives in the optimizer state, a grid of
settings is a batch of states built with `jaxopt_edu.tree.set`, and one compiled
`lax.scan` trains them all: one compilation for the whole grid instead of one per
setting. On a GPU/TPU the points run side by side (`jax.vmap`); on a CPU, where a
vmapped program compiles twice as long and runs no faster, each core runs a chunk
of points one after the other inside the same compiled program.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_edu as jo
from jaxopt_edu.lab.compare import _as_key, _check_count
from jaxopt_edu.lab.problems import Problem, get_problem

__all__ = ["SweepResult", "make_sweep_program", "sweep"]

METRICS = ("final_loss", "best_loss", "val_metric")


def _validate_grid(grid: Any) -> dict[str, list[float]]:
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(
            "sweep: `grid` must be a non-empty dict {hyperparameter name: list of values}, "
            f"e.g. {{'learning_rate': [1e-3, 1e-2]}}; got {grid!r}."
        )
    out = {}
    for name, values in grid.items():
        if not isinstance(name, str):
            raise ValueError(f"sweep: `grid` keys must be hyperparameter names, got {name!r}.")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
            raise ValueError(f"sweep: `grid[{name!r}]` must be a list of numbers, got {values!r}.")
        values = list(np.asarray(values).ravel()) if isinstance(values, np.ndarray) else values
        if not values:
            raise ValueError(f"sweep: `grid[{name!r}]` is empty; give at least one value.")
        for v in values:
            if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real):
                raise ValueError(
                    f"sweep: `grid[{name!r}]` holds {v!r}, which is not a number; "
                    "grid values must be real numbers."
                )
            if not math.isfinite(v):
                raise ValueError(f"sweep: `grid[{name!r}]` holds {v!r}; values must be finite.")
        out[name] = [float(v) for v in values]
    return out


def _build(factory: Callable[..., jo.GradientTransformation], grid: dict, problem: Problem):
    """Call `factory` once with the first value of each axis; check the state has the names."""
    first = {n: v[0] for n, v in grid.items()}
    try:
        tx = factory(**first)
    except TypeError as e:
        raise ValueError(
            f"sweep: `factory(**{first})` failed: {e}. The grid's names must be keyword "
            "arguments of `factory` (and hyperparameter names of its state)."
        ) from None
    if not isinstance(tx, jo.GradientTransformation):
        raise ValueError(
            f"sweep: `factory` must return a GradientTransformation, got {type(tx).__name__}."
        )
    state = jax.eval_shape(lambda: tx.init(problem.init(jax.random.PRNGKey(0))))
    for name in grid:
        if not jo.tree.get_all_with_path(state, name):
            try:
                jo.tree.set(state, **{name: first[name]})
                listing = ""
            except KeyError as e:
                listing = " " + str(e.args[0])
            raise ValueError(
                f"sweep: `grid` entry {name!r} is not a hyperparameter in the optimizer's "
                f"state, so it cannot be swept.{listing}"
            )
    return tx


def _resolve_batch(batch_size: int | None) -> int | None:
    """`None` (auto): every point at once on an accelerator, one at a time on a CPU."""
    if batch_size is None:
        return 1 if jax.default_backend() == "cpu" else 0  # 0 = the whole grid
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(
            f"sweep: `batch_size` must be None (auto), 0 (all points at once) or a positive "
            f"int, got {batch_size!r}."
        )
    return batch_size


def make_sweep_program(
    tx: jo.GradientTransformation, problem: Problem, steps: int, batch_size: int | None = None
) -> Callable[[dict[str, jax.Array], jax.Array, jax.Array], tuple[jax.Array, ...]]:
    """A jitted `program(points, params, key) -> (curves, val_metric)`.

    `points` maps each hyperparameter name to a 1-D array (one entry per grid point);
    every point starts from the same `params` (computed outside, so the random
    initialisation is not compiled into the program) with the state
    `jo.tree.set(tx.init(params), **point)`; `key` drives dropout. `curves` is
    (points, steps), the loss before each update; `val_metric` is measured after the
    last update (NaN without one). Changing the values (not the number of points)
    reuses the compiled program.

    `batch_size` sets how many points run side by side inside the one program
    (`jax.lax.map` with a `batch_size`, i.e. `vmap` over chunks): 0 runs the whole
    grid as one `vmap`; `None` picks 0 on an accelerator and 1 on a CPU, where a
    vmapped program compiles about twice as long and runs no faster (two cores
    have nothing to gain from wider arrays), so points go one after the other.

    PyTorch: none (`torch.func.vmap` over `functional_call` comes closest).
    Pitfall: memory grows with the number of points (one optimizer state and one set
    of activations per point); split a huge grid into several calls.
    Reference: JAX automatic vectorization,
    https://docs.jax.dev/en/latest/automatic-vectorization.html
    """
    grad_fn = jax.value_and_grad(problem.loss)

    def run(point, params, k_run):
        state = jo.tree.set(tx.init(params), **point)

        def step(carry, t):
            params, state = carry
            loss, g = grad_fn(params, jax.random.fold_in(k_run, t))
            updates, state = tx.update(g, state, params)
            return (jo.apply_updates(params, updates), state), loss

        (params, _), curve = jax.lax.scan(step, (params, state), jnp.arange(steps))
        val = jnp.nan if problem.val_metric is None else problem.val_metric(params)
        return curve, jnp.asarray(val).astype(curve.dtype)

    batch = _resolve_batch(batch_size)

    def program(points, params, k_run):
        n = len(jax.tree.leaves(points)[0])
        if batch == 0 or batch >= n:
            return jax.vmap(run, in_axes=(0, None, None))(points, params, k_run)
        return jax.lax.map(
            lambda p: run(p, params, k_run), points, batch_size=None if batch == 1 else batch
        )

    return jax.jit(program)


def _run_on_all_cores(program, points, params, k_run, batch_size):
    """Run `program` over `points`; on a multi-core CPU (auto batch), in one chunk per core.

    The chunks have equal shapes (the last is padded by repeating its final point and
    trimmed afterwards), so the program compiles once; XLA executes the calls made from
    separate threads at the same time.
    """
    n = len(jax.tree.leaves(points)[0])
    workers = min(os.cpu_count() or 1, n) if batch_size is None else 1
    if jax.default_backend() != "cpu" or workers < 2:
        return jax.block_until_ready(program(points, params, k_run))
    size = -(-n // workers)
    index = np.minimum(np.arange(workers * size), n - 1).reshape(workers, size)
    host = jax.tree.map(np.asarray, points)  # slice on the host: no extra compilations
    chunks = [jax.tree.map(lambda v, i=i: v[i], host) for i in index]
    compiled = program.lower(chunks[0], params, k_run).compile()  # once, before the threads
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        outs = list(pool.map(lambda c: jax.block_until_ready(compiled(c, params, k_run)), chunks))
    return tuple(
        np.concatenate([np.asarray(x) for x in parts])[:n] for parts in zip(*outs, strict=True)
    )


def sweep(
    factory: Callable[..., jo.GradientTransformation],
    grid: Mapping[str, Sequence[float]],
    problem: Problem | str,
    steps: int = 300,
    seed: int = 0,
    metric: str = "final_loss",
    batch_size: int | None = None,
) -> SweepResult:
    """Train one optimizer at every point of a hyperparameter grid, all in one program.

    `factory(**hyperparams)` is called once, with the first value of each axis, to
    build the structure; point $p$ of the grid $\\prod_k$ `grid[k]` then runs with
    the state `jo.tree.set(tx.init(params), **p)`, and one compiled `scan` trains every
    point (vmapped on an accelerator; on a CPU a chunk of points per core, see
    `batch_size`). All points start from the same params (seed `seed`, the same
    start as seed `seed` of `compare(..., key=0)`).

    Args:
      factory: e.g. `lambda learning_rate, b1: jo.adam(learning_rate, b1=b1)`, or
        `jo.adam` itself; the grid's names must be hyperparameter names of its state
        (`learning_rate`, `b1`, `b2`, `eps`, `weight_decay`, `momentum`...).
      grid: `{name: [values...]}`; the grid is their Cartesian product.
      problem: a `Problem` or a name.
      steps: training steps per point.
      seed: which start (and dropout keys).
      metric: "final_loss" (the last recorded loss, `curves[..., -1]`, as in
        `compare`), "best_loss" (the lowest loss seen) or "val_metric" (the
        problem's validation metric after the last step, in its own direction);
        picks `best`. Non-finite values rank worst.
      batch_size: points run side by side in the program (see
        `make_sweep_program`): None = all at once on GPU/TPU, one by one on a CPU.

    Raises `ValueError` for an empty or non-numeric grid entry, a name that is not a
    hyperparameter of the state (listing those that are), or an unknown metric.

    PyTorch: none built in (a Python loop over fresh optimizers, or Ray Tune).
    Pitfall: the factory only validates the first point; other values (say b1 = 1.2)
    are not range-checked and show up as diverged runs. Static choices (nesterov,
    centered) cannot be swept: they change the program. A grid over the learning
    rate alone is better done on a log scale ([1e-4, 3e-4, 1e-3, ...]).
    Reference: Bergstra & Bengio, Random search for hyper-parameter optimization,
    2012, https://jmlr.org/papers/v13/bergstra12a.html
    """
    problem = get_problem(problem) if isinstance(problem, str) else problem
    if not isinstance(problem, Problem):
        raise ValueError(f"sweep: `problem` must be a Problem or a name, got {problem!r}.")
    steps = _check_count("sweep", "steps", steps, 1)
    seed = _check_count("sweep", "seed", seed, 0)
    if metric not in METRICS:
        raise ValueError(
            f"sweep: unknown `metric` {metric!r}; choose one of: {', '.join(METRICS)}."
        )
    if metric == "val_metric" and problem.val_metric is None:
        raise ValueError(
            f"sweep: metric='val_metric' but problem {problem.name!r} has no validation "
            "metric; choose 'final_loss' or 'best_loss'."
        )
    grid = _validate_grid(grid)
    tx = _build(factory, grid, problem)

    names = list(grid)
    values = [np.asarray(grid[n], np.float64) for n in names]
    shape = tuple(len(v) for v in values)
    mesh = np.meshgrid(*values, indexing="ij")
    dtype = np.dtype(jnp.asarray(1.0).dtype)  # float64 only under jax_enable_x64
    points = {n: jnp.asarray(m.ravel().astype(dtype)) for n, m in zip(names, mesh, strict=True)}

    t0 = time.perf_counter()
    program = make_sweep_program(tx, problem, steps, batch_size)
    k_init, k_run = jax.random.split(jax.random.fold_in(_as_key(0), seed))
    params = problem.initial_params(k_init, seed)
    curves, val = _run_on_all_cores(program, points, params, k_run, batch_size)
    wall = time.perf_counter() - t0

    curves = np.asarray(curves).reshape(shape + (steps,))
    final = curves[..., -1]
    val = None if problem.val_metric is None else np.asarray(val).reshape(shape)
    lowest = np.where(np.isfinite(curves), curves, np.inf).min(axis=-1)
    best_loss = np.where(np.isinf(lowest), np.nan, lowest)
    scores = {"final_loss": final, "best_loss": best_loss, "val_metric": val}[metric]
    higher = metric == "val_metric" and problem.higher_is_better
    ranked = np.where(np.isfinite(scores), -scores if higher else scores, np.inf)
    idx = np.unravel_index(int(np.argmin(ranked)), shape)
    best = {n: float(values[k][idx[k]]) for k, n in enumerate(names)}
    best.update({metric: float(scores[idx]), "index": tuple(int(i) for i in idx)})
    return SweepResult(problem, names, values, final, curves, best, metric, scores, best_loss,
                       val, wall)  # fmt: skip


@dataclasses.dataclass
class SweepResult:
    """What `sweep` measured, each array shaped by the grid (axis k = `names[k]`).

    Fields: `problem`; `names`; `values` (one array per axis); `final_loss`
    (`curves[..., -1]`);
    `curves` (grid shape + (steps,), the loss before each step); `best` (the best
    point: `{name: value, ..., metric: score, "index": grid index}`); `metric` and
    `scores` (the metric's values); `best_loss` (lowest loss seen per point);
    `val_metric` (None without one); `wall_time` (seconds, compile included).

    PyTorch: none. Pitfall: a best point on the edge of the grid means the grid is
    too narrow: extend it in that direction.
    Reference: Bergstra & Bengio 2012, https://jmlr.org/papers/v13/bergstra12a.html
    """

    problem: Problem
    names: list[str]
    values: list[np.ndarray]
    final_loss: np.ndarray
    curves: np.ndarray
    best: dict[str, Any]
    metric: str = "final_loss"
    scores: np.ndarray | None = None
    best_loss: np.ndarray | None = None
    val_metric: np.ndarray | None = None
    wall_time: float = 0.0

    def table(self) -> list[dict[str, Any]]:
        """One row per grid point, best first (non-finite scores last).

        Columns: each hyperparameter, `final_loss`, `best_loss`, and the validation
        metric under the problem's `val_metric_name` when there is one.
        """
        shape = self.final_loss.shape
        scores = self.final_loss if self.scores is None else self.scores
        higher = self.metric == "val_metric" and self.problem.higher_is_better
        ranked = np.where(np.isfinite(scores), -scores if higher else scores, np.inf)
        rows = []
        for flat in np.argsort(ranked, axis=None, kind="stable"):
            idx = np.unravel_index(int(flat), shape)
            row = {n: float(self.values[k][idx[k]]) for k, n in enumerate(self.names)}
            row["final_loss"] = float(self.final_loss[idx])
            if self.best_loss is not None:
                row["best_loss"] = float(self.best_loss[idx])
            if self.val_metric is not None:
                row[self.problem.val_metric_name or "val_metric"] = float(self.val_metric[idx])
            rows.append(row)
        return rows
