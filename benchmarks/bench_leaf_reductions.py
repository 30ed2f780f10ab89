"""Per-leaf reductions: over arrays of their own, or over slices of one flat buffer.

    python benchmarks/bench_leaf_reductions.py           # the GPT tree's 50 matrices
    python benchmarks/bench_leaf_reductions.py --quick   # a smoke run

Per-leaf optimizers (adafactor's block RMS and parameter scale, trust ratios) take
one reduction per original leaf, such as $\\sum_k x_k^2$. In pytree mode each leaf is
an array of its own; in the flat layout it is a slice of a shared buffer
(`FlatTree.leaves()`). This script computes the sum of squares of each matrix of the
GPT-like tree of `bench_step.py` both ways, in one process, the runners taking turns:

- `leaves`: one array per matrix (what pytree mode and optax reduce);
- `slices`: the same values as slices of one flat buffer (what the flat layout reduces).

For each it reports the median time per call, its ratio to `leaves`, XLA's temporary
bytes for the call (over the bytes reduced), and the minor page faults per call
(Linux `getrusage`; -1 elsewhere). Output: one line per runner and a JSON file that
`make_docs.py` turns into a table.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_step import gpt_tree, make_arrays, write_result

from jaxopt_edu import flat


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def matrices(quick: bool) -> dict:
    """The GPT tree's leaves of 2 dims (50 matrices); `quick`: a smaller model."""
    shapes = gpt_tree(layers=1, d=64, vocab=256, ctx=64) if quick else gpt_tree()
    return {k: s for k, s in shapes.items() if len(s) == 2}


def runners(shapes: dict) -> tuple[dict, int]:
    tree = make_arrays(shapes, 0)
    fp = flat.ravel(tree)
    leaves = jax.tree.leaves(tree)

    def sums(xs):
        return [jnp.sum(x * x) for x in xs]

    out = {}
    for name, fn, arg in (
        ("leaves", sums, leaves),
        ("slices", lambda buffers: sums(flat.FlatTree(buffers, fp.layout).leaves()), fp.buffers),
    ):
        compiled = jax.jit(fn).lower(arg).compile()
        result = [float(x) for x in compiled(arg)]
        mem = compiled.memory_analysis()
        out[name] = {
            "call": (lambda c=compiled, a=arg: jax.block_until_ready(c(a))),
            "temp_bytes": int(mem.temp_size_in_bytes) if mem is not None else -1,
            "result": result,
        }
    nbytes = sum(x.size * x.dtype.itemsize for x in leaves)
    return out, nbytes


def measure(rs: dict, repeats: int, seed: int = 0) -> dict:
    """Median seconds and minor page faults per call, runners taking turns in random order."""
    names = list(rs)
    times = {k: [] for k in names}
    faults = {k: [] for k in names}
    for r in rs.values():
        r["call"]()  # warm up
    order = np.random.default_rng(seed)
    for _ in range(repeats):
        for i in order.permutation(len(names)):
            k = names[i]
            f0, t0 = _faults(), time.perf_counter()
            rs[k]["call"]()
            times[k].append(time.perf_counter() - t0)
            faults[k].append(_faults() - f0)
    return {
        k: {"step_s": statistics.median(times[k]), "faults": statistics.median(faults[k])}
        for k in names
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="a small model, a smoke run")
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "leaf_reductions.json")
    )
    args = ap.parse_args(argv)
    shapes = matrices(args.quick)
    rs, nbytes = runners(shapes)
    a, b = np.asarray(rs["leaves"]["result"]), np.asarray(rs["slices"]["result"])
    # float32 sums in XLA's two reduction orders; any real mismatch is far larger
    np.testing.assert_allclose(b, a, rtol=1e-5)
    res = measure(rs, args.repeats)
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {os.cpu_count()} cores)"
    rows = {
        k: res[k]
        | {"temp_bytes": rs[k]["temp_bytes"], "temp_over_reduced": rs[k]["temp_bytes"] / nbytes}
        for k in rs
    }
    for k, r in rows.items():
        print(
            f"{k:7s} {r['step_s'] * 1e3:8.2f} ms ({r['step_s'] / rows['leaves']['step_s']:.2f}x)"
            f"  temp/reduced {r['temp_over_reduced']:.3f}  page faults {r['faults']:.0f}"
        )
    out = {
        "device": device,
        "jax": jax.__version__,
        "leaves": len(shapes),
        "params": int(sum(np.prod(s) for s in shapes.values())),
        "bytes": nbytes,
        "repeats": args.repeats,
        "quick": args.quick,
        "rows": rows,
    }
    return write_result(args.out, out)


if __name__ == "__main__":
    main()
