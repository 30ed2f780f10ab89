"""A learning-rate x b1 sweep of Adam on the spirals MLP, three ways, in one process.

    python benchmarks/bench_sweep.py [--points 64 --steps 500]

(a) ours: `jaxopt_edu.lab.sweep`: every grid point is a state made with
    `jo.tree.set`, all trained by ONE `jit(vmap(lax.scan))` program.
(b) the usual way: for each configuration a new `optax.adam(lr, b1)` and a freshly
    jitted training loop (`lax.scan`), so one compilation per configuration.
(c) one compiled program run once per point: our single-point training loop, the
    hyperparameters passed in the state, compiled once and called `points` times.

Reported: wall time with compilation, the steady-state time (compiled programs
only, best of `--repeats`), process CPU time, and the ratios usual/ours and
one-program/ours. Writes `benchmarks/results/sweep.json` and prints a Markdown table.
On a machine shared with other jobs, wall times are noisy; CPU times less so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jaxopt_edu as jo  # noqa: E402
from jaxopt_edu.lab import get_problem, sweep  # noqa: E402
from jaxopt_edu.lab.sweep import _run_on_all_cores, make_sweep_program  # noqa: E402


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def grid_for(points: int) -> dict[str, list[float]]:
    n_lr = max(1, int(round(points**0.5)))
    n_b1 = max(1, points // n_lr)
    return {
        "learning_rate": [float(v) for v in np.geomspace(1e-3, 1e-1, n_lr)],
        "b1": [float(v) for v in np.linspace(0.0, 0.95, n_b1)],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "sweep.json")
    )
    args = ap.parse_args(argv)
    problem = get_problem("spirals", hidden=args.hidden)
    grid = grid_for(args.points)
    configs = [(lr, b1) for lr in grid["learning_rate"] for b1 in grid["b1"]]
    n, steps = len(configs), args.steps
    key = jax.random.fold_in(jax.random.PRNGKey(0), 0)  # sweep(seed=0)'s key
    k_init, k_run = jax.random.split(key)
    params0 = problem.initial_params(k_init, 0)
    grad_fn = jax.value_and_grad(problem.loss)
    out: dict = {}
    # Warm up process-wide machinery (backend start, first-jit costs) so no way pays for it.
    jax.block_until_ready(jax.jit(grad_fn)(params0, k_run))

    # (a) ours: one vmapped program for the whole grid.
    with Clock() as c:
        res = sweep(jo.adam, grid, problem, steps=steps, seed=0)
    program = make_sweep_program(  # the same program sweep() built (batch_size auto)
        jo.adam(grid["learning_rate"][0], b1=grid["b1"][0]), problem, steps
    )
    pts = {
        "learning_rate": jnp.asarray([lr for lr, _ in configs], jnp.float32),
        "b1": jnp.asarray([b1 for _, b1 in configs], jnp.float32),
    }
    with Clock() as cc:
        program.lower(pts, params0, k_run).compile()
    _run_on_all_cores(program, pts, params0, k_run, None)  # compiles the chunk shape once
    steady = []
    for _ in range(args.repeats):
        with Clock() as s:
            _run_on_all_cores(program, pts, params0, k_run, None)  # as sweep() runs it
        steady.append((s.wall, s.cpu))
    ours_final = res.final_loss.ravel()
    out["ours"] = {"total_s": c.wall, "total_cpu_s": c.cpu, "steady_s": min(steady)[0],
                   "steady_cpu_s": min(steady)[1], "compile_s": cc.wall}  # fmt: skip

    # (a') the same sweep as one full vmap (what `batch_size=None` picks on GPU/TPU)
    with Clock() as c:
        sweep(jo.adam, grid, problem, steps=steps, seed=0, batch_size=0)
    out["ours_vmap"] = {"total_s": c.wall, "total_cpu_s": c.cpu}

    # (b) the usual way: a new optax optimizer and a fresh jit per configuration.
    usual_final, compile_s, run_s = [], 0.0, 0.0
    with Clock() as c:
        for lr, b1 in configs:
            tx = optax.adam(lr, b1=b1)

            def train(params, tx=tx):
                def step(carry, t):
                    params, state = carry
                    loss, g = grad_fn(params, jax.random.fold_in(k_run, t))
                    updates, state = tx.update(g, state, params)
                    return (optax.apply_updates(params, updates), state), loss

                _, losses = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
                return losses[-1]  # the last recorded loss, as sweep's final_loss

            t0 = time.perf_counter()
            compiled = jax.jit(train).lower(params0).compile()
            t1 = time.perf_counter()
            usual_final.append(float(compiled(params0)))
            compile_s, run_s = compile_s + t1 - t0, run_s + time.perf_counter() - t1
    out["usual"] = {
        "total_s": c.wall,
        "total_cpu_s": c.cpu,
        "steady_s": run_s,
        "compile_s": compile_s,
    }

    # (c) one compiled single-point program (hyperparameters in the state), run n times.
    tx = jo.adam(grid["learning_rate"][0], b1=grid["b1"][0])

    def run_one(point):
        state = jo.tree.set(tx.init(params0), **point)

        def step(carry, t):
            params, state = carry
            loss, g = grad_fn(params, jax.random.fold_in(k_run, t))
            updates, state = tx.update(g, state, params)
            return (jo.apply_updates(params, updates), state), loss

        _, losses = jax.lax.scan(step, (params0, state), jnp.arange(steps))
        return losses[-1]

    singles = [{k: v[i] for k, v in pts.items()} for i in range(n)]
    with Clock() as c:
        one = jax.jit(run_one)
        one_final = [float(one(p)) for p in singles]
    steady = []
    for _ in range(args.repeats):
        with Clock() as s:
            for p in singles:
                r = one(p)
            jax.block_until_ready(r)
        steady.append((s.wall, s.cpu))
    out["one_program"] = {"total_s": c.wall, "total_cpu_s": c.cpu, "steady_s": min(steady)[0],
                          "steady_cpu_s": min(steady)[1]}  # fmt: skip

    ours, usual, single = out["ours"], out["usual"], out["one_program"]
    out["ratios"] = {
        "usual_over_ours": usual["total_s"] / ours["total_s"],
        "one_program_over_ours": single["total_s"] / ours["total_s"],
        "usual_over_ours_steady": usual["steady_s"] / ours["steady_s"],
        "one_program_over_ours_steady": single["steady_s"] / ours["steady_s"],
        "one_program_over_ours_steady_cpu": single["steady_cpu_s"] / ours["steady_cpu_s"],
        "one_program_over_ours_vmap": single["total_s"] / out["ours_vmap"]["total_s"],
    }
    finite = np.isfinite(ours_final) & np.isfinite(usual_final)
    out["check"] = {
        "max_abs_diff_final_loss_ours_vs_optax": float(
            np.max(np.abs(ours_final[finite] - np.asarray(usual_final)[finite]))
        ),
        "median_abs_diff_final_loss_ours_vs_optax": float(
            np.median(np.abs(ours_final[finite] - np.asarray(usual_final)[finite]))
        ),
        "max_abs_diff_final_loss_ours_vs_one_program": float(
            np.nanmax(np.abs(ours_final - np.asarray(one_final)))
        ),
        "best": res.best,
        "final_loss": {"ours": ours_final.tolist(), "usual": usual_final, "one_program": one_final},
    }
    out["config"] = {
        "points": n, "steps": steps, "hidden": args.hidden, "problem": "spirals",
        "grid": grid, "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(), "jax": jax.__version__, "optax": optax.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }  # fmt: skip

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2, default=float)
    print(f"{n}-point lr x b1 sweep of adam, spirals MLP (hidden {args.hidden}), {steps} steps, "
          f"{out['config']['device']} ({os.cpu_count()} cores)\n")  # fmt: skip
    print("| way | wall, compile included (s) | steady state (s) | CPU, steady (s) |")
    print("|---|---|---|---|")
    names = {"ours": "(a) ours: `sweep` (one program; on CPU one chunk of points per core)",
             "usual": "(b) usual: new optax.adam + fresh jit per point",
             "one_program": "(c) one compiled program, run per point"}  # fmt: skip
    for k, label in names.items():
        cpu = out[k].get("steady_cpu_s")
        cpu = "-" if cpu is None else f"{cpu:.2f}"
        print(f"| {label} | {out[k]['total_s']:.2f} | {out[k]['steady_s']:.2f} | {cpu} |")
    r = out["ratios"]
    print(f"\nusual / ours: {r['usual_over_ours']:.1f}x (steady {r['usual_over_ours_steady']:.2f}x); "
          f"one-program / ours: {r['one_program_over_ours']:.2f}x "
          f"(steady {r['one_program_over_ours_steady']:.2f}x, CPU "
          f"{r['one_program_over_ours_steady_cpu']:.2f}x)")  # fmt: skip
    print(f"(a') full-vmap sweep program: {out['ours_vmap']['total_s']:.2f} s wall; "
          f"one-program / vmap: {r['one_program_over_ours_vmap']:.2f}x")  # fmt: skip
    print("checks:", {k: v for k, v in out["check"].items() if k != "final_loss"})
    return out


if __name__ == "__main__":
    main()
