"""A whole training step (loss, gradient, Adam) on many small leaves: compile and step time.

    python benchmarks/bench_train_step.py                 # 2000 leaves, 0.32M params
    python benchmarks/bench_train_step.py --leaves 500

`bench_step.py` times the optimizer step alone. A user's jitted step also holds the
loss and its gradient, and in the flat layout the loss reads the leaves through
`FlatTree.unravel()`: one slice per leaf. XLA's compile time grows faster than
linearly with the number of slices taken from one buffer, so how many leaves share
a buffer (`max_buffer_leaves`) decides the compile time of the whole step. This
script measures it, every variant in the same process (compiled one after the
other, then timed taking turns; in rounds with the order of compilation rotated,
`bench_step.measure_rotated`):

- `model_sgd`: the loss's gradient and a plain `p - lr * g` update on the pytree,
  no optimizer state: what the model alone costs to compile;
- `optax`: `optax.adam` on the pytree; `ours_pytree`: `jaxopt_edu.adam` on it;
- `ours_flatten`: `jaxopt_edu.flatten(adam)` with its defaults (pytree params, flat
  state); `ours_flatten_one_buffer`: the same with `max_buffer_leaves=None`;
- `ours_flat`: params raveled into one buffer (`flat.ravel` default);
  `ours_flat_64`: `flat.ravel(params, max_buffer_leaves=64)`.

The loss is `sum(tanh(x * leaf)^2)` over the leaves: elementwise, so the compile
time is the layout's and the optimizer's, not a model's. Output: one line per
variant, and `benchmarks/results/train_step.json`, which `make_docs.py` turns
into a table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_step import TREES, make_arrays, measure_rotated, prepare_jax

import jaxopt_edu as jo
from jaxopt_edu import flat

LR = 1e-3


def loss(tree, x):
    return sum(jnp.sum(jnp.tanh(x * leaf) ** 2) for leaf in jax.tree.leaves(tree))


def _optimizer_step(tx, apply, unravel=lambda p: p):
    def step(p, x, s):
        g = jax.grad(lambda q: loss(unravel(q), x))(p)
        u, s = tx.update(g, s, p)
        return apply(p, u), s

    return step


def model_sgd(p, x, s):
    g = jax.grad(loss)(p, x)
    return jax.tree.map(lambda a, b: a - LR * b, p, g), s


VARIANTS = (
    "model_sgd",
    "optax",
    "ours_pytree",
    "ours_flatten",
    "ours_flatten_one_buffer",
    "ours_flat",
    "ours_flat_64",
)


def variant(name, params, buffer_leaves=64):
    """(step, params, state) of one variant; every variant starts from the same numbers.

    `buffer_leaves`: the cap of `ours_flatten` and `ours_flat_64` (64, the value the
    names and the docs refer to; smaller in the smoke test, to exercise the cap)."""
    if name == "model_sgd":
        return model_sgd, params, jnp.zeros([])
    if name == "optax":
        tx = optax.adam(LR)
        return _optimizer_step(tx, optax.apply_updates), params, tx.init(params)
    if name == "ours_pytree":
        tx = jo.adam(LR)
        return _optimizer_step(tx, jo.apply_updates), params, tx.init(params)
    if name in ("ours_flatten", "ours_flatten_one_buffer"):
        cap = buffer_leaves if name == "ours_flatten" else None
        tx = jo.flatten(jo.adam(LR), max_buffer_leaves=cap)
        return _optimizer_step(tx, jo.apply_updates), params, tx.init(params)
    if name in ("ours_flat", "ours_flat_64"):
        fp = flat.ravel(
            params, **({"max_buffer_leaves": buffer_leaves} if name == "ours_flat_64" else {})
        )
        tx = jo.adam(LR)
        step = _optimizer_step(tx, jo.apply_updates, unravel=lambda q: q.unravel())
        return step, fp, tx.init(fp)
    raise ValueError(f"unknown variant {name!r}; from {VARIANTS}")


def variants(params, buffer_leaves=64):
    """name -> (step, params, state) of every variant (`variant`)."""
    return {name: variant(name, params, buffer_leaves) for name in VARIANTS}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--order-rounds", type=int, default=None, help="see bench_step.measure_rotated")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_step.json"))
    args = ap.parse_args(argv)
    shapes = TREES["small"](args.leaves)
    params = make_arrays(shapes, 0)
    x = jnp.asarray(0.5, jnp.float32)

    def make(name):
        step, p, s = variant(name, params)
        p = jax.tree.map(jnp.copy, p)  # each variant donates its own copy
        with jax.numpy_dtype_promotion("standard"):  # optax is not clean under strict
            return prepare_jax(step, p, x, s)

    makers = {name: functools.partial(make, name) for name in VARIANTS}
    res = measure_rotated(makers, args.repeats, args.order_rounds)
    base = res["optax"]
    for name, r in res.items():
        print(
            f"{args.leaves} leaves: {name:24s} compile {r['compile_s']:6.2f} s "
            f"({r['compile_s'] / base['compile_s']:.2f}x optax)  step "
            f"{r['step_s'] * 1e3:8.3f} ms ({r['step_s'] / base['step_s']:.2f}x optax)",
            flush=True,
        )
    row = {
        "leaves": len(shapes),
        "params": int(sum(np.prod(s) for s in shapes.values())),
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}, "
        f"{os.cpu_count()} cores)",
        "jax": jax.__version__,
        "order_rounds": res["optax"]["order_rounds"],
        "settle_steps": res["optax"]["settle_steps"],
        "flush_bytes": res["optax"]["flush_bytes"],
        "results": {
            k: {"compile_s": v["compile_s"], "step_s": v["step_s"]} for k, v in res.items()
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1))
    return row


if __name__ == "__main__":
    main()
