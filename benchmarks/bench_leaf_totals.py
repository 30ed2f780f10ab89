"""Compile time of a global-norm clip against the number of leaves: the fold fenced or not.

    python benchmarks/bench_leaf_totals.py                 # 128 to 2000 leaves
    python benchmarks/bench_leaf_totals.py --quick         # a smoke run

`clip_by_global_norm` adds one sum of squares per leaf into a total. Written as a
chain of scalar additions (as optax writes it, and as `jaxopt_edu.tree.norm` did),
XLA:CPU's fusion pass grows one fusion out of the chain and, each time it considers
fusing another per-leaf reduction into it, counts the reductions already inside: the
compile time grows with about the cube of the number of leaves. `jaxopt_edu.tree`
folds the total inside a `jax.lax.cond` on a CPU from a few hundred leaves up
(`_FENCED_FOLD_MIN_PARTS`), which keeps the chain out of the fusion pass's reach and
adds the same numbers in the same order.

For each number of leaves (half of shape (64,), half (16, 16), as bench_step's small
tree), one process compiles `params + clip_by_global_norm(1.0)(grads)` three ways:

- `ours`: `jaxopt_edu.clip_by_global_norm` as it is;
- `ours_unfenced`: the same with the fold left as a plain chain (the threshold raised);
- `optax`: `optax.clip_by_global_norm`.

It reports the compile time (lower + compile, the fastest of `--rounds`, the three
taking turns), the median step time, whether the fenced and unfenced steps give
bitwise equal parameters, and the largest difference to optax's parameters over the
largest magnitude in the leaf (optax's clip rescales as $(g / \\|g\\|) \\cdot c$, ours
as $g \\cdot (c / \\|g\\|)$).
Output: one line per leaf count and a JSON file that `make_docs.py` turns into a table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import numpy as np
from bench_step import device_label, make_arrays, small_leaves_tree, write_result

import jaxopt_edu as jo
from jaxopt_edu import tree as jo_tree

NAMES = ("ours", "ours_unfenced", "optax")


def _clip(name: str):
    if name == "optax":
        import optax

        return optax.clip_by_global_norm(1.0), optax.apply_updates
    return jo.clip_by_global_norm(1.0), jo.apply_updates


def compile_one(name: str, params, grads):
    """(seconds to lower and compile, the compiled step, its state) for one competitor."""
    tx, apply = _clip(name)
    state = tx.init(params)

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return apply(p, u), s

    saved = jo_tree._FENCED_FOLD_MIN_PARTS
    if name == "ours_unfenced":
        jo_tree._FENCED_FOLD_MIN_PARTS = 1 << 62
    try:
        t0 = time.perf_counter()
        compiled = jax.jit(step).lower(params, grads, state).compile()
        seconds = time.perf_counter() - t0
    finally:
        jo_tree._FENCED_FOLD_MIN_PARTS = saved
    return seconds, compiled, state


def row(n: int, rounds: int, repeats: int) -> dict:
    shapes = small_leaves_tree(n)
    params, grads = make_arrays(shapes, 0), make_arrays(shapes, 1)
    # scale the gradients so that the clip is active (global norm > 1)
    grads = jax.tree.map(lambda x: x * 10.0, grads)
    compile_s = {k: [] for k in NAMES}
    compiled = {}
    order = np.random.default_rng(n)
    for _ in range(rounds):
        for i in order.permutation(len(NAMES)):
            k = NAMES[i]
            seconds, fn, state = compile_one(k, params, grads)
            compile_s[k].append(seconds)
            compiled[k] = (fn, state)
    outs = {k: jax.tree.leaves(fn(params, grads, s)[0]) for k, (fn, s) in compiled.items()}
    fenced_same = all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(outs["ours"], outs["ours_unfenced"], strict=True)
    )
    # optax scales by (g / norm) * max_norm, ours by g * (max_norm / norm): last-bit apart
    rel = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
        for a, b in zip(outs["ours"], outs["optax"], strict=True)
    )
    times = {k: [] for k in NAMES}
    for _ in range(repeats):
        for i in order.permutation(len(NAMES)):
            k = NAMES[i]
            fn, s = compiled[k]
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, grads, s))
            times[k].append(time.perf_counter() - t0)
    return {
        "leaves": n,
        "fenced_equals_unfenced": bool(fenced_same),
        "max_rel_diff_optax": rel,
        **{
            k: {"compile_s": min(compile_s[k]), "step_s": statistics.median(times[k])}
            for k in NAMES
        },
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", default="128,256,400,512,1000,2000")
    ap.add_argument("--rounds", type=int, default=1, help="compiles per competitor (fastest)")
    ap.add_argument("--repeats", type=int, default=21, help="timed steps per competitor")
    ap.add_argument("--quick", action="store_true", help="16 and 450 leaves, a smoke run")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "leaf_totals.json"))
    args = ap.parse_args(argv)
    counts = [16, 450] if args.quick else [int(x) for x in args.leaves.split(",")]
    rows = []
    for n in counts:
        r = row(n, args.rounds, args.repeats)
        rows.append(r)
        print(
            f"{n:5d} leaves  compile s: ours {r['ours']['compile_s']:6.2f}  unfenced "
            f"{r['ours_unfenced']['compile_s']:6.2f}  optax {r['optax']['compile_s']:6.2f}  "
            f"(ours / optax {r['ours']['compile_s'] / r['optax']['compile_s']:.2f})  step ms: "
            + "  ".join(f"{k} {r[k]['step_s'] * 1e3:.3f}" for k in NAMES)
            + f"  fenced == unfenced: {r['fenced_equals_unfenced']}"
            f"  max rel diff to optax {r['max_rel_diff_optax']:.1e}",
            flush=True,
        )
    out = {
        "device": device_label(),
        "jax": jax.__version__,
        "fenced_from": jo_tree._FENCED_FOLD_MIN_PARTS,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "quick": args.quick,
        "rows": rows,
    }
    return write_result(args.out, out)


if __name__ == "__main__":
    main()
