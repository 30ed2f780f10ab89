"""Run several optimizers on one problem over several seeds, and record how they behave.

Optimizers that share a structure (the same factory, hyperparameters differing only
in value: `adam(1e-3)` and `adam(1e-2)`) run in one compiled program: `jax.vmap` over
optimizers and seeds around a `lax.scan` over steps; the others get a program each.
Per step it records the loss, the gradient norm, the update norm, the
update/parameter ratio and the learning rate in use; every `eval_every` steps and
after the last step, the validation metric.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_edu as jo
from jaxopt_edu.lab.problems import Problem, get_problem

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "CompareResult",
    "OptimizerSpec",
    "compare",
    "optimizer_from_name",
]


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """A named optimizer of the lab's registry.

    `build(learning_rate)` returns the `GradientTransformation`; `learning_rate` is the
    default used when none is given; `fn` is the `jaxopt_edu` function it calls (its
    docstring holds the math, the PyTorch equivalent and the pitfalls).

    PyTorch: a `torch.optim` class with a default `lr`. Pitfall: `build` fixes the
    other arguments (e.g. momentum=0.9 for "momentum"); `fn` alone does not.
    Reference: Ruder 2016, https://arxiv.org/abs/1609.04747
    """

    name: str
    description: str
    learning_rate: float
    build: Callable[[float], jo.GradientTransformation]
    fn: Callable[..., jo.GradientTransformation]


def _spec(name, desc, lr, fn, **kw) -> OptimizerSpec:
    return OptimizerSpec(name, desc, lr, lambda learning_rate: fn(learning_rate, **kw), fn)


# Default learning rates: chosen so that every optimizer makes progress without
# diverging on both Rosenbrock from (-1.2, 1) and the spirals MLP in 500 full-batch
# steps. They are starting points, not tuned answers (run `lr_find` or `sweep`).
DEFAULT_OPTIMIZERS: dict[str, OptimizerSpec] = {
    s.name: s
    for s in [
        _spec("sgd", "plain gradient descent", 1e-3, jo.sgd),
        _spec("momentum", "SGD with heavy-ball momentum 0.9", 1e-3, jo.sgd, momentum=0.9),
        _spec(
            "nesterov", "SGD with Nesterov momentum 0.9", 1e-3, jo.sgd, momentum=0.9, nesterov=True
        ),  # fmt: skip
        _spec("rmsprop", "divide by a moving RMS of gradients", 1e-2, jo.rmsprop),
        _spec("adagrad", "divide by the root of the summed squared gradients", 1e-1, jo.adagrad),
        _spec("adadelta", "AdaDelta: unit-consistent steps, no learning rate", 1.0, jo.adadelta),
        _spec("adam", "momentum / RMS, bias-corrected", 3e-2, jo.adam),
        _spec("adamw", "Adam with decoupled weight decay 1e-4", 3e-2, jo.adamw),
        _spec("nadam", "Adam with a Nesterov look-ahead", 3e-2, jo.nadam),
        _spec("amsgrad", "Adam whose denominator never shrinks", 3e-2, jo.amsgrad),
        _spec("adamax", "Adam with an infinity-norm denominator", 5e-2, jo.adamax),
        _spec("nadamw", "Nadam with decoupled weight decay 1e-4", 3e-2, jo.nadamw),
        _spec("adamaxw", "Adamax with decoupled weight decay 1e-4", 5e-2, jo.adamaxw),
        _spec("lion", "sign of an interpolated momentum (weight decay 1e-3)", 3e-3, jo.lion),
        _spec("adafactor", "factored second moments, relative step size", 1e-2, jo.adafactor),
        _spec("muon", "orthogonalized momentum for matrices, Nadam for the rest", 2e-2, jo.muon),
    ]
}
"""The lab's named optimizers: name -> `OptimizerSpec` (description, default learning rate).

The learning rates are starting points chosen so that none diverges on Rosenbrock or
the spirals MLP in 500 steps, not tuned optima: sweep or `lr_find` before trusting a
comparison.
"""


def optimizer_from_name(name: str, learning_rate: float | None = None) -> jo.GradientTransformation:
    """The registry's optimizer `name`, at `learning_rate` (default: its entry's).

    Names: sgd, momentum, nesterov, rmsprop, adagrad, adadelta, adam, adamw, nadam,
    amsgrad, adamax, nadamw, adamaxw, lion, adafactor, muon (`DEFAULT_OPTIMIZERS`). Raises `ValueError` listing them for an
    unknown name.

    PyTorch: `getattr(torch.optim, name)(params, lr=...)`.
    Pitfall: one default learning rate per optimizer cannot suit every problem; on a
    new problem run `lr_find` first.
    Reference: Ruder, An overview of gradient descent optimization algorithms, 2016,
    https://arxiv.org/abs/1609.04747
    """
    if not isinstance(name, str) or name not in DEFAULT_OPTIMIZERS:
        raise ValueError(
            f"optimizer_from_name: unknown optimizer {name!r}; choose one of: "
            f"{', '.join(DEFAULT_OPTIMIZERS)}."
        )
    spec = DEFAULT_OPTIMIZERS[name]
    return spec.build(spec.learning_rate if learning_rate is None else learning_rate)


def _check_count(owner: str, name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{owner}: `{name}` must be an integer >= {lo}, got {value!r}.")
    return int(value)


def _as_key(key: Any) -> jax.Array:
    if isinstance(key, int | np.integer):
        return jax.random.PRNGKey(int(key))
    return jnp.asarray(key)


def _optimizers(optimizers: Any) -> dict[str, jo.GradientTransformation]:
    if isinstance(optimizers, str):
        optimizers = [s.strip() for s in optimizers.split(",") if s.strip()]
    if isinstance(optimizers, Mapping):
        out = dict(optimizers)
    elif isinstance(optimizers, Sequence):
        out = {n: optimizer_from_name(n) for n in optimizers}
    else:
        raise ValueError(
            "compare: `optimizers` must be a dict name -> GradientTransformation or a list "
            f"of names from: {', '.join(DEFAULT_OPTIMIZERS)}; got {type(optimizers).__name__}."
        )
    if not out:
        raise ValueError(
            f"compare: `optimizers` is empty; give at least one of: {', '.join(DEFAULT_OPTIMIZERS)}."
        )
    for n, tx in out.items():
        if not isinstance(tx, jo.GradientTransformation):
            raise ValueError(
                f"compare: `optimizers[{n!r}]` must be a GradientTransformation "
                f"(e.g. jaxopt_edu.adam(1e-3)), got {type(tx).__name__}."
            )
    return out


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.nan)


def make_runner(
    tx: jo.GradientTransformation, problem: Problem, steps: int, eval_every: int
) -> Callable[..., tuple[Any, dict[str, jax.Array]]]:
    """`run(params, key, state=None) -> (final_params, history)` for one seed.

    `params` is the seed's start, `key` drives dropout, `state` the optimizer state
    to start from (default `tx.init(params)`; `compare` passes each member's own
    initial state, so one `tx.update` serves optimizers whose hyperparameters differ
    only in value). The scan runs `steps // eval_every` blocks of `eval_every` steps
    with the validation metric after each block, then the remaining steps and, when
    there are some, one more validation measurement. `compare` wraps it in
    `jit(vmap(vmap(.)))` (members x seeds).

    PyTorch: none (a training loop). Pitfall: a learning rate is recorded only when
    the state holds exactly one `learning_rate` (NaN otherwise).
    Reference: Schmidt et al. 2021, https://arxiv.org/abs/2007.01547
    """
    abstract_state = jax.eval_shape(lambda: tx.init(problem.init(jax.random.PRNGKey(0))))
    has_lr = len(jo.tree.get_all_with_path(abstract_state, "learning_rate")) == 1
    trajectory = problem.kind == "function" and problem.dim <= 3
    grad_fn = jax.value_and_grad(problem.loss)

    def step(carry, t):
        params, state, key = carry
        loss, g = grad_fn(params, jax.random.fold_in(key, t))
        lr = jo.tree.get(state, "learning_rate") if has_lr else jnp.nan
        updates, state = tx.update(g, state, params)
        new_params = jo.apply_updates(params, updates)
        u, p = jo.tree.norm(updates), jo.tree.norm(params)
        rec = {
            "loss": loss.astype(jnp.float32),
            "grad_norm": jo.tree.norm(g).astype(jnp.float32),
            "update_norm": u.astype(jnp.float32),
            "update_ratio": _ratio(u, p).astype(jnp.float32),
            "learning_rate": jnp.asarray(lr).astype(jnp.float32),
        }
        if trajectory:
            rec["trajectory"] = new_params.astype(jnp.float32)
        return (new_params, state, key), rec

    def block(carry, start, length):
        return jax.lax.scan(step, carry, start + jnp.arange(length))

    def val(params):
        if problem.val_metric is None:
            return jnp.full([], jnp.nan, jnp.float32)
        return problem.val_metric(params).astype(jnp.float32)

    def run(params, k_run, state=None):
        carry = (params, tx.init(params) if state is None else state, k_run)
        n_blocks, rest = divmod(steps, eval_every)

        def outer(carry, b):
            carry, rec = block(carry, b * eval_every, eval_every)
            return carry, (rec, val(carry[0]))

        carry, (recs, vals) = jax.lax.scan(outer, carry, jnp.arange(n_blocks))
        hist = jax.tree.map(lambda x: x.reshape((n_blocks * eval_every,) + x.shape[2:]), recs)
        if rest:
            carry, tail = block(carry, n_blocks * eval_every, rest)
            hist = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), hist, tail)
            vals = jnp.concatenate([vals, val(carry[0])[None]])  # the final step too
        hist["val_metric"] = vals
        if trajectory:
            p0 = params.astype(jnp.float32)[None, :]
            hist["trajectory"] = jnp.concatenate([p0, hist["trajectory"]])
        return carry[0], hist

    return run


def val_steps(steps: int, eval_every: int) -> np.ndarray:
    """The steps after which `compare` measures the validation metric.

    Every `eval_every` steps, and after the last step when `steps` is not a multiple
    of `eval_every`: `val_steps(25, 10)` is `[10, 20, 25]`.
    """
    out = list(range(eval_every, steps + 1, eval_every))
    if steps % eval_every:
        out.append(steps)
    return np.asarray(out, dtype=np.int64)


def _signature(tx: jo.GradientTransformation, params: Any) -> tuple[Any, list[Any]] | None:
    """The tree structure and avals of `tx.init(params)`, or None when it cannot say."""
    try:
        leaves, treedef = jax.tree.flatten(jax.eval_shape(tx.init, params))
    except Exception:  # an init that cannot be traced abstractly gets its own program
        return None
    avals = [
        (tuple(x.shape), np.dtype(x.dtype), bool(getattr(x, "weak_type", False))) for x in leaves
    ]
    return treedef, avals


def _same_bits(a: Any, b: Any) -> bool:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb or len(la) != len(lb):
        return False
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if not np.array_equal(x, y, equal_nan=np.issubdtype(x.dtype, np.inexact)):
            return False
    return True


def _behaves_like(
    leader: jo.GradientTransformation,
    member: jo.GradientTransformation,
    problem: Problem,
    params: Any,
    key: jax.Array,
    n_steps: int = 2,
) -> bool:
    """Whether `leader.update` on `member`'s state reproduces `member.update` exactly.

    Runs `n_steps` real steps of `problem` from `params` both ways and compares the
    updates, the new states and the new params bit for bit: closures cannot be
    compared, so this is how `compare` checks that two optimizers differ only in
    the hyperparameter values their states hold.
    """
    try:
        grad = jax.grad(problem.loss)
        pa = pb = params
        sa = sb = member.init(params)
        for t in range(n_steps):
            k = jax.random.fold_in(key, t)
            ua, sa = member.update(grad(pa, k), sa, pa)
            ub, sb = leader.update(grad(pb, k), sb, pb)
            if not (_same_bits(ua, ub) and _same_bits(sa, sb)):
                return False
            pa, pb = jo.apply_updates(pa, ua), jo.apply_updates(pb, ub)
        return _same_bits(pa, pb)
    except Exception:  # the leader cannot run the member's state: not the same optimizer
        return False


def _group(
    txs: Mapping[str, jo.GradientTransformation], problem: Problem, params: Any, key: jax.Array
) -> list[list[str]]:
    """Partition `txs` into groups that one compiled program can run (see `compare`)."""
    groups: list[tuple[Any, list[str]]] = []
    for name, tx in txs.items():
        sig = _signature(tx, params)
        for gsig, members in groups:
            if (
                sig is not None
                and gsig is not None
                and gsig[0] == sig[0]
                and gsig[1] == sig[1]
                and _behaves_like(txs[members[0]], tx, problem, params, key)
            ):
                members.append(name)
                break
        else:
            groups.append((sig, [name]))
    return [members for _, members in groups]


def compare(
    optimizers: Mapping[str, jo.GradientTransformation] | Sequence[str],
    problem: Problem | str,
    steps: int = 500,
    seeds: int = 1,
    eval_every: int = 10,
    key: int | jax.Array = 0,
) -> CompareResult:
    """Train every optimizer on `problem` from the same starts, over `seeds` seeds.

    For seed $s$ the start is `problem.initial_params(fold_in(key, s), s)` (the
    standard start of a test function for seed 0), the same for every optimizer;
    step $t$ uses the key `fold_in(., t)` for dropout.

    Programs: optimizers whose initial states have the same tree structure and the
    same shapes and dtypes, and for which the first one's `update`, fed another's
    state, reproduces that one's first steps bit for bit (the same factory with
    hyperparameters that differ only in value, as they live in the state), share
    one compiled program, `jit(vmap(vmap(scan)))` over members x seeds; the others
    get one each. `result.groups` lists the groups, `result.programs` counts them,
    `result.group_compile_time` times their compilations; `wall_time[name]` and
    `compile_time[name]` are those of the member's program (shared by its group).

    Recorded per step, shape `(seeds, steps)`: `loss` $L(\\theta_t)$ (before the
    update), `grad_norm` $\\|g_t\\|$, `update_norm` $\\|u_t\\|$, `update_ratio`
    $\\|u_t\\| / \\|\\theta_t\\|$, `learning_rate` (`jo.tree.get(state, "learning_rate")`
    when the state has exactly one, else NaN); `val_metric`, `(seeds, len(val_steps))`,
    measured after the steps in `val_steps`: every `eval_every` steps and after the
    last step (`steps=25, eval_every=10` measures after 10, 20 and 25). Test functions of at most
    3 dimensions also record `trajectory`, `(seeds, steps + 1, dim)`, the start first.

    Args:
      optimizers: `{name: GradientTransformation}`, or names from `DEFAULT_OPTIMIZERS`.
      problem: a `Problem` or a name for `get_problem`.
      steps: training steps per run, a positive integer.
      seeds: independent starts (and dropout keys) per optimizer, a positive integer.
      eval_every: steps between validation measurements, a positive integer.
      key: an int seed or a PRNG key.

    PyTorch: none (a loop over `torch.optim` classes and `torch.manual_seed`).
    Pitfall: default learning rates differ per optimizer, and a comparison at one
    learning rate each ranks the learning rates as much as the algorithms; sweep
    them (`sweep`) before concluding. An update ratio far from ~1e-3 per step on a
    network hints that the learning rate is off.
    Reference: Schmidt, Schneider & Hennig, Descending through a crowded valley,
    2021, https://arxiv.org/abs/2007.01547
    """
    txs = _optimizers(optimizers)
    problem = get_problem(problem) if isinstance(problem, str) else problem
    if not isinstance(problem, Problem):
        raise ValueError(
            f"compare: `problem` must be a Problem or a name; got {type(problem).__name__}."
        )
    steps = _check_count("compare", "steps", steps, 1)
    seeds = _check_count("compare", "seeds", seeds, 1)
    eval_every = _check_count("compare", "eval_every", eval_every, 1)
    base = _as_key(key)
    idx = jnp.arange(seeds)
    k_init, k_run = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(base, s)))(idx).swapaxes(
        0, 1
    )
    # The starts are computed once, outside the optimizers' programs (less to compile).
    starts = jax.jit(jax.vmap(problem.initial_params))(k_init, idx)

    start0 = jax.tree.map(lambda x: x[0], starts)
    groups = _group(txs, problem, start0, jax.random.fold_in(k_run[0], 0))
    measured = val_steps(steps, eval_every)

    history, params, wall, compile_time, group_compile = {}, {}, {}, {}, []
    for members in groups:
        t0 = time.perf_counter()
        # Each member's own initial states (its hyperparameters, as arrays), stacked.
        states = [jax.vmap(txs[n].init)(starts) for n in members]
        state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        run = jax.vmap(make_runner(txs[members[0]], problem, steps, eval_every))  # seeds
        fn = jax.jit(jax.vmap(run, in_axes=(None, None, 0)))  # members
        compiled = fn.lower(starts, k_run, state).compile()
        t1 = time.perf_counter()
        final, hist = jax.block_until_ready(compiled(starts, k_run, state))
        t2 = time.perf_counter()
        for i, name in enumerate(members):
            history[name] = {k: np.asarray(v[i]) for k, v in hist.items()}
            history[name]["val_steps"] = measured.copy()
            params[name] = jax.tree.map(lambda x, i=i: x[i], final)
            wall[name], compile_time[name] = t2 - t0, t1 - t0
        group_compile.append(t1 - t0)
    return CompareResult(
        problem, list(txs), history, params, wall, compile_time, steps, seeds,
        groups, group_compile,
    )  # fmt: skip


def _steps_to_1pct(loss: np.ndarray, reference: float) -> int | float | None:
    """Median over seeds of the first step with `L_t - L* <= 0.01 (L_0 - L*)` (see `table`)."""
    if not math.isfinite(reference):
        return None
    firsts = []
    for curve in loss:
        target = reference + 0.01 * (curve[0] - reference)
        hit = (
            np.nonzero(np.isfinite(curve) & (curve <= target))[0] if math.isfinite(curve[0]) else []
        )
        firsts.append(float(hit[0]) if len(hit) else math.inf)
    median = float(np.median(firsts))
    if not math.isfinite(median):
        return None
    return int(median) if median.is_integer() else median


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Write through a temporary file and rename: a failure leaves nothing half-written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@dataclasses.dataclass
class CompareResult:
    """What `compare` measured.

    Fields: `problem`; `names` (optimizer order); `history[name][metric]` (numpy
    arrays, see `compare`); `params[name]` (final params, leading axis = seeds);
    `wall_time[name]` (seconds, compilation included) and `compile_time[name]`, those
    of the program that ran it; `steps`, `seeds`; `groups` (the optimizers that
    shared one compiled program) with `group_compile_time[i]`; `programs`, their
    count.

    PyTorch: none. Pitfall: `wall_time` on tiny problems is mostly compilation.
    Reference: Schmidt et al. 2021, https://arxiv.org/abs/2007.01547
    """

    problem: Problem
    names: list[str]
    history: dict[str, dict[str, np.ndarray]]
    params: dict[str, Any]
    wall_time: dict[str, float]
    compile_time: dict[str, float] = dataclasses.field(default_factory=dict)
    steps: int = 0
    seeds: int = 0
    groups: list[list[str]] = dataclasses.field(default_factory=list)
    group_compile_time: list[float] = dataclasses.field(default_factory=list)

    @property
    def programs(self) -> int:
        """How many compiled programs ran the optimizers (one per group)."""
        return len(self.groups) if self.groups else len(self.names)

    def table(self) -> list[dict[str, Any]]:
        """One row per optimizer, in `names` order.

        Columns: `optimizer`; `final_loss_mean`, `final_loss_std` (last recorded loss
        over seeds); `best_loss` (lowest finite loss, any step and seed);
        `final_val` (mean over seeds of the validation metric after the last step;
        NaN without one) and `val_metric` (its name); `steps_to_1pct` (below);
        `diverged`: seeds whose loss went non-finite; `wall_time` (seconds, compile
        included, of the program that ran it).

        `steps_to_1pct`: for each seed, the first step $t$ (updates applied so far)
        with $L_t - L^* \\le 0.01\\,(L_0 - L^*)$, where $L_0$ is that seed's own
        starting loss and $L^*$ the problem's `optimum_value` when known, else the
        lowest finite loss any optimizer reached on any seed; then the median over
        seeds (a float when it falls between two steps). A seed that never gets there
        (its loss dropped by less than 99% of the way, or went non-finite) counts as
        never; the column is None when the median seed never gets there.
        """
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in diverged runs
            return self._table()

    def _table(self) -> list[dict[str, Any]]:
        losses = {n: self.history[n]["loss"].astype(np.float64) for n in self.names}
        optimum = getattr(self.problem, "optimum_value", None)
        if optimum is not None:
            reference = float(optimum)
        else:
            finite = [np.min(v[np.isfinite(v)]) for v in losses.values() if np.isfinite(v).any()]
            reference = float(min(finite)) if finite else math.nan
        rows = []
        for n in self.names:
            loss = losses[n]
            ok = np.isfinite(loss)
            val = self.history[n]["val_metric"]
            rows.append(
                {
                    "optimizer": n,
                    "final_loss_mean": float(np.mean(loss[:, -1])),
                    "final_loss_std": float(np.std(loss[:, -1])),
                    "best_loss": float(np.min(loss[ok])) if ok.any() else math.nan,
                    "final_val": float(np.mean(val[:, -1])) if val.shape[1] else math.nan,
                    "val_metric": self.problem.val_metric_name,
                    "steps_to_1pct": _steps_to_1pct(loss, reference),
                    "diverged": int(np.sum(~ok.all(axis=1))),
                    "wall_time": float(self.wall_time[n]),
                }
            )
        return rows

    def to_pandas(self):
        """The table as a `pandas.DataFrame` (needs pandas: `pip install jaxopt_edu[lab]`)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "CompareResult.to_pandas needs pandas, which is not installed. "
                "Install it with `pip install jaxopt_edu[lab]` (or `pip install pandas`), "
                "or use `.table()`, a list of dicts."
            ) from None
        return pd.DataFrame(self.table())

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the table, the full history and the timings as strict JSON (NaN -> null)."""
        hist = {
            n: {k: np.where(np.isfinite(v), v, np.nan).tolist() for k, v in h.items()}
            for n, h in self.history.items()
        }
        doc = {
            "problem": self.problem.name,
            "options": self.problem.options,
            "names": self.names,
            "steps": self.steps,
            "seeds": self.seeds,
            "table": [{k: _finite_or_none(v) for k, v in r.items()} for r in self.table()],
            "wall_time": self.wall_time,
            "compile_time": self.compile_time,
            "groups": self.groups,
            "group_compile_time": self.group_compile_time,
            "history": _nan_to_none(hist),
        }
        _atomic_write(path, lambda f: json.dump(doc, f, allow_nan=False))

    def to_csv(self, path: str | os.PathLike, history: bool = False) -> None:
        """Write the table (or, with `history=True`, one row per optimizer, seed and step)."""
        if not history:
            rows = self.table()
        else:
            keys = ["loss", "grad_norm", "update_norm", "update_ratio", "learning_rate"]
            rows = [
                {"optimizer": n, "seed": s, "step": t}
                | {k: float(self.history[n][k][s, t]) for k in keys}
                for n in self.names
                for s in range(self.history[n]["loss"].shape[0])
                for t in range(self.history[n]["loss"].shape[1])
            ]

        def write(f):
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

        _atomic_write(path, write)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return _finite_or_none(x)
