"""Does a step pay for the competitor that ran before it? Timed with and without a settling step.

    python benchmarks/bench_settle.py                      # adam, lion; 2000 leaves
    python benchmarks/bench_settle.py --chains adam --repeats 11

`bench_step.measure` times competitors taking turns. On the 2000-leaf tree optax's
step (about 30 ms) frees thousands of small buffers, and a 0.3 ms flat step timed
right after it may pay for some of that work. This script measures the JAX
competitors of a `bench_step.py` row (roofline, ours flat, pytree and flatten, optax)
three times in one process, in rotated orders (`bench_step.measure_rotated`): each
timed step right after another competitor's (`settle_0`), right after an untimed step
of its own (`settle_1`), and after an untimed step of its own and 64 MiB written to
evict it from the caches (`settle_1_flush`, what the step tables do); which setting
goes first alternates chain by chain.

It also times the mechanism found behind it: after each of optax's steps, the first
`jax.tree.flatten` of a tuple of k arrays, then a second one, for a few k; in this
process, then in two fresh child processes that differ only in glibc's fast bins,
as usual or off (`GLIBC_TUNABLES=glibc.malloc.mxfast=0`). A 2000-leaf step leaves
thousands of freed small chunks in the fast bins, and glibc merges them all
(`malloc_consolidate`) before it serves the next large request (1 KiB or more); with
the fast bins off the chunks are merged as they are freed, inside the step that frees
them.

Output: one line per (chain, setting) and per k, and
`benchmarks/results/settle.json`, which `make_docs.py` turns into a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from bench_step import TREES, jax_makers, measure_rotated, prepare_lib, write_result


def first_flatten_us(shapes, sizes, repeats):
    """Median microseconds of the first and the second `jax.tree.flatten` of a tuple of k
    arrays right after a step of optax's Adam on `shapes`, for each k in `sizes`."""
    runner = prepare_lib(optax, "adam", shapes)
    x = jnp.zeros(4)
    out = {}
    for k in sizes:
        tup = (x,) * k
        first, second = [], []
        for _ in range(repeats):
            runner["run"]()
            t0 = time.perf_counter()
            jax.tree.flatten(tup)
            t1 = time.perf_counter()
            jax.tree.flatten(tup)
            t2 = time.perf_counter()
            first.append(t1 - t0)
            second.append(t2 - t1)
        out[str(k)] = {
            "first_us": statistics.median(first) * 1e6,
            "second_us": statistics.median(second) * 1e6,
        }
    del runner
    gc.collect()
    return out


NO_FASTBINS = "glibc.malloc.mxfast=0"  # glibc keeps no fast bins: nothing to merge later

# how each setting times a step (`bench_step.measure`): settling steps, bytes flushed
# (None: bench_step's default, 64 MiB)
SETTINGS = {"settle_0": (0, 0), "settle_1": (1, 0), "settle_1_flush": (1, None)}


def glibc_version():
    """'glibc 2.x' where this process runs on glibc (which reads GLIBC_TUNABLES), else None."""
    try:
        v = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    return v if v and v.startswith("glibc") else None


def first_flatten_in_child(argv, fastbins):
    """`first_flatten_us` in a fresh child process, with glibc's fast bins as usual or off
    (`GLIBC_TUNABLES=glibc.malloc.mxfast=0`): the two children differ only in that
    setting, so the control compares like with like. None where the child fails, or for
    the fast bins off where the libc is not glibc (it would ignore the setting)."""
    env = dict(os.environ)
    if not fastbins:
        if glibc_version() is None:
            return None
        env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES"), NO_FASTBINS) if t)
    root = str(Path(__file__).resolve().parent.parent)  # jaxopt_edu, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--flatten-only"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        return json.loads(done.stdout.strip().splitlines()[-1]) if not done.returncode else None
    except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError):
        return None


def print_flatten(flat_us, where):
    for k, v in flat_us.items():
        print(
            f"tree.flatten of {k} arrays after optax's step{where}: first "
            f"{v['first_us']:.1f} us, second {v['second_us']:.1f} us",
            flush=True,
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default="small", choices=sorted(TREES))
    ap.add_argument("--leaves", type=int, default=None, help="leaves of the small tree (2000)")
    ap.add_argument("--chains", default="adam,lion")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--order-rounds", type=int, default=None, help="see measure_rotated")
    ap.add_argument("--flatten-sizes", default="4,8,16,64")
    ap.add_argument(
        "--flatten-only",
        action="store_true",
        help="only time the first tree.flatten after optax's step; print it as JSON",
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "settle.json"))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    command = [  # as the page shows it: without where this run wrote its file
        a
        for i, a in enumerate(argv)
        if a != "--out" and not a.startswith("--out=") and argv[i - 1 : i] != ["--out"]
    ]
    if args.leaves is not None and (args.tree != "small" or args.leaves < 1):
        ap.error("--leaves takes a positive number, and only with --tree small")
    shapes = TREES[args.tree](args.leaves) if args.leaves else TREES[args.tree]()
    sizes = [int(k) for k in args.flatten_sizes.split(",") if k]
    if args.flatten_only:
        flat_us = first_flatten_us(shapes, sizes, args.repeats)
        print(json.dumps(flat_us))
        return flat_us
    chains = [c for c in args.chains.split(",") if c]
    rows = []
    for i, chain in enumerate(chains):
        row = {"tree": args.tree, "leaves": len(shapes), "chain": chain}
        names = list(SETTINGS) if i % 2 == 0 else list(SETTINGS)[::-1]  # first: alternates
        for name in names:
            settle, flush = SETTINGS[name]
            makers = jax_makers(chain, shapes)
            res = measure_rotated(
                makers, args.repeats, args.order_rounds, settle_steps=settle, flush_bytes=flush
            )
            row[name] = res
            cells = " ".join(f"{k} {v['step_s'] * 1e3:.3f} ms" for k, v in res.items())
            print(f"{args.tree} {chain} {name}: {cells}", flush=True)
        rows.append(row)
    flat_us = first_flatten_us(shapes, sizes, args.repeats)
    print_flatten(flat_us, "")
    child = first_flatten_in_child(command, fastbins=True)
    control = first_flatten_in_child(command, fastbins=False)
    for what, got in (("a fresh process", child), (f"a fresh process, {NO_FASTBINS}", control)):
        if got is not None:
            print_flatten(got, f" ({what})")
    out = {
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {os.cpu_count()} cores)",
        "libc": glibc_version(),
        "command": " ".join(["bench_settle.py", *command]),
        "rows": rows,
        "first_flatten": flat_us,
        "first_flatten_fresh": child,
        "first_flatten_fresh_without_fastbins": control,
    }
    write_result(Path(args.out), out)
    print(json.dumps({"written": args.out}))
    return out


if __name__ == "__main__":
    main()
