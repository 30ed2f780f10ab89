"""Can pytree mode keep its optimizer state flat? Adam three ways, same process.

    python benchmarks/bench_pytree_layouts.py                  # gpt and small trees
    python benchmarks/bench_pytree_layouts.py --trees small --leaves 1000

Pytree mode takes the user's params and grads as separate leaves and must return
separate leaves, so XLA has at least one kernel per leaf whatever the state layout.
This script measures whether moving the *state* into one flat buffer (fewer arrays
crossing the jit boundary, one elementwise kernel for the moments) pays for the
concatenation of the gradients and the per-leaf slices of the update it needs:

- `per_leaf`: Adam with one m and one v per leaf (what optax and `jaxopt_edu.adam` do);
- `flat_state`: m and v flat; grads concatenated, the update sliced back per leaf;
- `flat_state_barrier`: the same with optimization barriers around the flat part, so
  XLA cannot fuse the concatenation or the slices into the elementwise kernel.

All three are written by hand here (same arithmetic, same traffic per parameter) so
only the layout differs. Output: one line per (tree, variant): step time (median of
donated steps, variants taking turns, prepared in
rotated orders: `bench_step.measure_rotated`) and compile time; the same in
`benchmarks/results/pytree_layouts.json`, which `make_docs.py` turns into a table.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_step import TREES, make_arrays, measure_rotated, prepare_jax


def _concat(tree):
    return jnp.concatenate([x.reshape(-1) for x in jax.tree.leaves(tree)])


def _split_like(flat, tree):
    leaves, treedef = jax.tree.flatten(tree)
    out, offset = [], 0
    for x in leaves:
        out.append(jax.lax.slice(flat, (offset,), (offset + x.size,)).reshape(x.shape))
        offset += x.size
    return jax.tree.unflatten(treedef, out)


def _adam(g, m, v, t):
    t = t + 1
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    tf = t.astype(jnp.float32)
    u = -1e-3 * (m / (1 - 0.9**tf)) / (jnp.sqrt(v / (1 - 0.999**tf)) + 1e-8)
    return u, m, v, t


def per_leaf(p, g, s):
    m, v, t = s
    t1 = t + 1
    out = jax.tree.map(lambda gi, mi, vi: _adam(gi, mi, vi, t)[:3], g, m, v)
    is_out = lambda o: isinstance(o, tuple)  # noqa: E731
    u, m, v = (jax.tree.map(lambda o, i=i: o[i], out, is_leaf=is_out) for i in range(3))
    return jax.tree.map(jnp.add, p, u), (m, v, t1)


def flat_state(p, g, s, barrier=False):
    m, v, t = s
    gf = _concat(g)
    if barrier:
        gf = jax.lax.optimization_barrier(gf)
    u, m, v, t = _adam(gf, m, v, t)
    if barrier:
        u = jax.lax.optimization_barrier(u)
    return jax.tree.map(jnp.add, p, _split_like(u, p)), (m, v, t)


def flat_state_barrier(p, g, s):
    return flat_state(p, g, s, barrier=True)


VARIANTS = {
    "per_leaf": per_leaf,
    "flat_state": flat_state,
    "flat_state_barrier": flat_state_barrier,
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default="gpt,small")
    ap.add_argument("--leaves", type=int, default=0, help="keep only the first N leaves")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--order-rounds", type=int, default=None, help="see bench_step.measure_rotated")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pytree_layouts.json"))
    args = ap.parse_args(argv)
    rows = []
    for tree in args.trees.split(","):
        shapes = TREES[tree]()
        if args.leaves:
            shapes = dict(list(shapes.items())[: args.leaves])
        n = sum(int(np.prod(s)) for s in shapes.values())
        g = make_arrays(shapes, 1)

        def make(name, fn, shapes=shapes, n=n, g=g):
            p = make_arrays(shapes, 0)
            if name == "per_leaf":
                s = (jax.tree.map(jnp.zeros_like, p), jax.tree.map(jnp.zeros_like, p))
            else:
                s = (jnp.zeros(n, jnp.float32), jnp.zeros(n, jnp.float32))
            return prepare_jax(fn, p, g, s + (jnp.zeros([], jnp.int32),))

        makers = {name: functools.partial(make, name, fn) for name, fn in VARIANTS.items()}
        res = measure_rotated(makers, args.repeats, args.order_rounds)
        rows.append({"tree": tree, "leaves": len(shapes), "params": n, **res})
        for name, r in res.items():
            print(
                f"{tree} ({len(shapes)} leaves): {name:20s} step {r['step_s'] * 1e3:8.2f} ms"
                f" ({r['step_s'] / res['per_leaf']['step_s']:.2f}x per_leaf)"
                f"  compile {r['compile_s']:6.2f} s"
                f" ({r['compile_s'] / res['per_leaf']['compile_s']:.2f}x)",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": jax.devices()[0].device_kind, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
