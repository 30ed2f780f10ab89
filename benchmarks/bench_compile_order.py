"""Does the order of compilation change how fast a step runs? One program compiled k times.

    python benchmarks/bench_compile_order.py             # small, GPT and matrix trees
    python benchmarks/bench_compile_order.py --trees small --copies 3 --repeats 25

`bench_step.py` compiles several competitors in one process and times them taking
turns. That is fair only if a program runs as fast whichever was compiled first.
This script tests it with k copies of one program, optax's Adam step on a tree of
`bench_step.py`: the arrays of every copy are made first, then the copies are
compiled one after the other and timed taking turns (`bench_step.measure`); then the
same with fresh arrays and the copies compiled in the reverse order. A difference
between the copies then comes from the order of compilation (with the warm-up step
that follows each compile), not from the order in which the arrays were made.

Output: one line per (tree, order) with each copy's median step time, by position of
compilation, and `benchmarks/results/compile_order.json`, which `make_docs.py`
turns into a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
from pathlib import Path

import jax
import optax
from bench_step import TREES, build, make_arrays, measure, prepare_jax


def copies_by_position(shapes, copies, repeats, reverse, seed=0):
    """Median step time (s) of each of `copies` identical optax Adam steps, listed by the
    position in which it was compiled (first compiled first)."""
    made = []
    for _ in range(copies):  # every copy's arrays before any compile
        tx = build(optax, "adam")
        params = make_arrays(shapes, 0)
        made.append((tx, params, make_arrays(shapes, 1), tx.init(params)))
    order = list(range(copies))[::-1] if reverse else list(range(copies))
    runners = {}
    for i in order:
        tx, params, grads, state = made[i]

        def step(p, g, s, tx=tx):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        with jax.numpy_dtype_promotion("standard"):  # optax is not clean under strict
            runners[i] = prepare_jax(step, params, grads, state)
    # each copy right after another copy's step, as the recorded results were measured;
    # the copies are one program, so what a step leaves behind is the same for all
    res = measure(runners, repeats, seed=seed, settle_steps=0, flush_bytes=0)
    del runners, made
    gc.collect()
    return [res[i]["step_s"] for i in order]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default="small,gpt,matrix")
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--quick", action="store_true", help="a quarter of each tree")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "compile_order.json"))
    args = ap.parse_args(argv)
    if args.copies < 2:
        ap.error(f"--copies must be at least 2 to compare positions, got {args.copies}")
    rows = []
    for tree in [t for t in args.trees.split(",") if t]:
        if tree not in TREES:
            ap.error(f"--trees: unknown tree {tree!r}; choose from {sorted(TREES)}")
        shapes = TREES[tree]()
        if args.quick:
            shapes = dict(list(shapes.items())[: max(1, len(shapes) // 4)])
            if tree == "matrix":
                shapes = {"w": (1024, 1024)}
        for reverse in (False, True):
            times = copies_by_position(shapes, args.copies, args.repeats, reverse)
            row = {
                "tree": tree,
                "leaves": len(shapes),
                "order": "reverse" if reverse else "forward",
                "step_s_by_position": times,
            }
            rows.append(row)
            print(
                f"{tree} ({len(shapes)} leaves), {row['order']}: "
                + ", ".join(f"{t * 1e3:.2f} ms" for t in times)
                + f"  (last / first compiled {times[-1] / times[0]:.2f})",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {os.cpu_count()} cores)"
    info = {"device": device, "jax": jax.__version__, "optax": optax.__version__}
    out.write_text(json.dumps(info | {"rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
