"""What one scalar array in the optimizer state costs per jitted call.

    python benchmarks/bench_scalars.py              # a 4096 x 4096 matrix
    python benchmarks/bench_scalars.py --n 256      # small: the per-call cost dominates

Hyperparameters live in the state (one scalar array each) and some transformations
keep a step count. Every array that enters and leaves a jitted call costs a fixed
amount of bookkeeping, and a counter's increment is a computation of its own (a
kernel launch on a GPU). This script measures both on the roofline kernel of SGD
with momentum (one flat buffer, donated), in the same process, the runners taking
turns:

- `roof_sgd_pass{k}`: the kernel with k int32 scalars passed through the state;
- `roof_sgd_inc{k}`: the same with each scalar incremented, like a step count;
- `jaxopt_edu_{chain}` / `optax_{chain}`: the two libraries' steps on the same matrix.

Output: one line per runner (time and ratio to `roof_sgd_pass0`) and a JSON file
(device, jax version and `step_s`: runner -> median step seconds) that `make_docs.py`
turns into a table.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from bench_step import make_arrays, measure, prepare_jax, prepare_lib

import jaxopt_edu as jo

COUNTS = (0, 2, 4, 8, 16)
CHAINS = ("sgd_momentum", "adam")


def scalar_step(increment: bool):
    """SGD with momentum on one buffer; the state's other entries pass through (or +1)."""

    def step(p, g, s):
        m = g + 0.9 * s[0]
        rest = tuple(x + 1 if increment else x for x in s[1:])
        return p - 1e-2 * m, (m,) + rest

    return step


def runners(n: int) -> dict:
    out = {}
    shapes = {"w": (n, n)}
    for kind in ("pass", "inc"):
        for k in COUNTS:
            p, g = make_arrays(shapes, 0)["w"], make_arrays(shapes, 1)["w"]
            s = (jnp.zeros_like(p),) + tuple(jnp.zeros([], jnp.int32) for _ in range(k))
            out[f"roof_sgd_{kind}{k}"] = prepare_jax(scalar_step(kind == "inc"), p, g, s)
    for chain in CHAINS:
        for lib in (jo, optax):
            out[f"{lib.__name__}_{chain}"] = prepare_lib(lib, chain, shapes)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096, help="the matrix is n x n")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scalars.json"))
    args = ap.parse_args(argv)
    res = measure(runners(args.n), args.repeats)
    base = res["roof_sgd_pass0"]["step_s"]
    for k, r in res.items():
        print(f"{k:28s} {r['step_s'] * 1e6:9.1f} us  {r['step_s'] / base:.3f}x roof_sgd_pass0")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {os.cpu_count()} cores)"
    data = {"device": device, "jax": jax.__version__, "n": args.n, "repeats": args.repeats}
    data["step_s"] = {k: r["step_s"] for k, r in res.items()}
    first = next(iter(res.values()))
    data["settle_steps"], data["flush_bytes"] = first["settle_steps"], first["flush_bytes"]
    out.write_text(json.dumps(data, indent=1))
    return res


if __name__ == "__main__":
    main()
