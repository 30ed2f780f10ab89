"""A whole training step of an MLP (forward, gradient, optimizer) in each layout.

    python benchmarks/bench_mlp_step.py
    python benchmarks/bench_mlp_step.py --xla-cpu-multi-output-fusion

`bench_step.py` times the optimizer step alone, with the gradients handed in. In a
training step the loss reads every weight matrix in a matmul, and in the flat layout
it reads it through `FlatTree.unravel()`, a slice of a shared buffer: XLA:CPU copies a
slice before a reduction reads it (a matmul is one), into a temporary allocated, and
page-faulted, afresh each step; the gradient is concatenated back into a buffer. This
script measures what that costs, every variant in the same process (compiled one after
the other, then timed taking turns, in a new random order each round; the whole
repeated with the order of compilation rotated, `bench_step.measure_rotated`):

- `optax`: optax on the pytree; `ours_pytree`: jaxopt_edu on it;
- `ours_flat`: `flat.ravel(params)` with its default (on a CPU, leaves over 65536
  elements keep buffers of their own, in their own shape);
- `ours_flat_one_buffer`: `flat.ravel(params, max_leaf_size=None)`: every leaf in
  one buffer per dtype.

The model: `--layers` dense layers of `--width` units with GELU, a batch of `--batch`
rows, mean squared error against fixed targets. Output: one line per variant and
`benchmarks/results/mlp_step.json` (`mlp_step_cpu_mof.json` with the option), which
`make_docs.py` turns into a table.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import bench_step
import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_step import build, device_label, measure_rotated, prepare_jax

import jaxopt_edu as jo
from jaxopt_edu import flat

CHAINS = ("adam", "clip_adamw_cosine")
VARIANTS = ("optax", "ours_pytree", "ours_flat", "ours_flat_one_buffer")


def mlp_params(layers, width, seed=0):
    key = jax.random.PRNGKey(seed)
    out = {}
    for i in range(layers):
        k = jax.random.fold_in(key, i)
        out[f"layer{i}"] = {
            "w": jax.random.normal(k, (width, width), jnp.float32) / np.sqrt(width),
            "b": jnp.zeros((width,), jnp.float32),
        }
    return out


def make_loss(layers, width, batch):
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, width), jnp.float32)
    y = jax.random.normal(jax.random.PRNGKey(2), (batch, width), jnp.float32)

    def loss(params):
        h = x
        for i in range(layers):
            layer = params[f"layer{i}"]
            h = jax.nn.gelu(h @ layer["w"] + layer["b"][None, :])
        return jnp.mean((h - y) ** 2)

    return loss


def variant(name, chain, params, loss):
    """(step, params, state) of one variant: step(p, x, s) -> (p, s), as prepare_jax
    wants (the middle argument, unused here, stands for the batch)."""
    lib = optax if name == "optax" else jo
    tx = build(lib, chain)
    if name.startswith("ours_flat"):
        kw = {"max_leaf_size": None} if name == "ours_flat_one_buffer" else {}
        p = flat.ravel(params, **kw)

        def f(q):
            return loss(q.unravel())
    else:
        p, f = jax.tree.map(jnp.copy, params), loss
    state = tx.init(p)

    def step(p, batch, s):
        del batch
        g = jax.grad(f)(p)
        u, s = tx.update(g, s, p)
        return lib.apply_updates(p, u), s

    return step, p, state


def run(layers, width, batch, repeats, chains=CHAINS, order_rounds=None):
    params = mlp_params(layers, width)
    loss = make_loss(layers, width, batch)
    rows = []
    for chain in chains:

        def make(name, chain=chain):
            step, p, s = variant(name, chain, params, loss)
            promotion = "standard" if name == "optax" else jax.config.jax_numpy_dtype_promotion
            with jax.numpy_dtype_promotion(promotion):
                return prepare_jax(step, p, jnp.zeros(()), s)

        makers = {name: functools.partial(make, name) for name in VARIANTS}
        res = measure_rotated(makers, repeats, order_rounds)
        row = {"chain": chain} | {
            k: {"step_s": v["step_s"], "compile_s": v["compile_s"]} for k, v in res.items()
        }
        rows.append(row)
        print(
            f"{chain:18s} " + " | ".join(f"{k} {row[k]['step_s'] * 1e3:.2f} ms" for k in VARIANTS),
            flush=True,
        )
    return rows


def markdown(data) -> str:
    head = (
        f"Device: {data['device']}. MLP: {data['layers']} layers of {data['width']} units "
        f"({data['params'] / 1e6:.2f}M params), batch {data['batch']}. Median time of a "
        "jitted, donated training step (loss, gradient, optimizer); compile time in "
        "parentheses."
    )
    lines = [
        head,
        "",
        "| chain | optax | ours pytree | ours flat (default) | ours flat, one buffer "
        "| ours pytree / optax | ours flat / optax | one buffer / ours flat |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:

        def cell(k, r=r):
            return f"{r[k]['step_s'] * 1e3:.2f} ms ({r[k]['compile_s']:.2f} s)"

        def ratio(a, b, r=r):
            return f"{r[a]['step_s'] / r[b]['step_s']:.2f}"

        lines.append(
            f"| {r['chain']} | {cell('optax')} | {cell('ours_pytree')} | {cell('ours_flat')} "
            f"| {cell('ours_flat_one_buffer')} | {ratio('ours_pytree', 'optax')} "
            f"| {ratio('ours_flat', 'optax')} | {ratio('ours_flat_one_buffer', 'ours_flat')} |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--chains", default=",".join(CHAINS), help=f"from {CHAINS}")
    ap.add_argument(
        "--xla-cpu-multi-output-fusion",
        action="store_true",
        help="start XLA:CPU with its multi-output fusion on, for every variant",
    )
    ap.add_argument("--order-rounds", type=int, default=None, help="see bench_step.measure_rotated")
    ap.add_argument("--out", default=None, help="default: results/mlp_step.json")
    args = ap.parse_args(argv)
    chains = [c for c in args.chains.split(",") if c]
    bad = [c for c in chains if c not in CHAINS]
    if bad:
        ap.error(f"unknown chains {bad}; from {CHAINS}")
    device = device_label(args.xla_cpu_multi_output_fusion)
    rows = run(args.layers, args.width, args.batch, args.repeats, chains, args.order_rounds)
    n = args.layers * (args.width * args.width + args.width)
    data = {
        "device": device,
        "jax": jax.__version__,
        "layers": args.layers,
        "width": args.width,
        "batch": args.batch,
        "params": n,
        "order_rounds": args.order_rounds or len(VARIANTS),
        "settle_steps": bench_step.SETTLE_STEPS,
        "flush_bytes": bench_step.FLUSH_BYTES if bench_step.SETTLE_STEPS else 0,
        "rows": rows,
    }
    name = "mlp_step_cpu_mof.json" if args.xla_cpu_multi_output_fusion else "mlp_step.json"
    out = Path(args.out or Path(__file__).parent / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    print()
    print(markdown(data))
    return data


if __name__ == "__main__":
    main()
