"""One optimizer step: ours (pytree and flat layouts) vs optax vs torch vs the roofline.

    python benchmarks/bench_step.py                 # all trees and chains
    python benchmarks/bench_step.py --quick         # smaller sizes, a smoke run
    python benchmarks/bench_step.py --trees gpt --chains adam --repeats 10

Everything runs in one process and the competitors take turns, one step each, so
ratios are fair even on a noisy machine. For
each (tree, chain) it reports the median time of a jitted, donated update step,
its compile time, the compiled program's peak memory (XLA's memory analysis:
arguments + outputs + temporaries - donated aliases), and the ratio to a
"roofline" kernel: one jitted loop over one flat buffer doing the same memory
traffic (read p, g, m, v; write p, m, v for Adam). torch.optim's fused and foreach
AdamW/SGD run too when torch is installed. Results go to
`benchmarks/results/step.json` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_edu as jo
from jaxopt_edu import flat

# --------------------------------------------------------------------------- trees


def gpt_tree(layers=12, d=512, vocab=8192, ctx=1024):
    """148 leaves, 42.5M float32 params: embeddings + 12 transformer blocks."""
    shapes = {"wte": (vocab, d), "wpe": (ctx, d)}
    for i in range(layers):
        p = f"h{i:02d}"
        shapes |= {
            f"{p}.ln1.scale": (d,),
            f"{p}.ln1.bias": (d,),
            f"{p}.attn.qkv.w": (d, 3 * d),
            f"{p}.attn.qkv.b": (3 * d,),
            f"{p}.attn.proj.w": (d, d),
            f"{p}.attn.proj.b": (d,),
            f"{p}.ln2.scale": (d,),
            f"{p}.ln2.bias": (d,),
            f"{p}.mlp.fc.w": (d, 4 * d),
            f"{p}.mlp.fc.b": (4 * d,),
            f"{p}.mlp.proj.w": (4 * d, d),
            f"{p}.mlp.proj.b": (d,),
        }
    shapes |= {"ln_f.scale": (d,), "ln_f.bias": (d,)}
    return shapes


def small_leaves_tree(n=2000):
    """2000 leaves, 0.32M params: half of shape (64,), half (16, 16)."""
    return {f"leaf{i:04d}": ((64,) if i % 2 == 0 else (16, 16)) for i in range(n)}


def big_matrix_tree(n=4096):
    return {"w": (n, n)}


TREES = {"gpt": gpt_tree, "small": small_leaves_tree, "matrix": big_matrix_tree}


def make_arrays(shapes, seed):
    key = jax.random.PRNGKey(seed)
    out = {}
    for i, (k, s) in enumerate(shapes.items()):
        out[k] = jax.random.normal(jax.random.fold_in(key, i), s, jnp.float32) * 0.02
    return out


# -------------------------------------------------------------------------- chains

CHAINS = ("sgd_momentum", "adam", "clip_adamw_cosine", "lion", "adafactor", "muon")
# muon's Newton-Schulz iterations are matmuls (seconds per step on a CPU for the GPT
# tree): run it with `--chains muon`, or on a GPU
DEFAULT_CHAINS = ("sgd_momentum", "adam", "clip_adamw_cosine", "lion", "adafactor")
# chains that are elementwise but for a global norm: they have a flat roofline kernel;
# adafactor (per-leaf factored moments) and muon (per-matrix matmuls) do not
ROOFLINE_CHAINS = ("sgd_momentum", "adam", "clip_adamw_cosine", "lion")
TORCH_CHAINS = ("sgd_momentum", "adam", "clip_adamw_cosine")  # torch.optim has no Lion


def build(lib, chain):
    if chain == "sgd_momentum":
        return lib.sgd(1e-2, momentum=0.9)
    if chain == "adam":
        return lib.adam(1e-3)
    if chain == "lion":
        return lib.lion(1e-4, weight_decay=0.1)
    if chain == "adafactor":
        return lib.adafactor(1e-2)
    if chain == "muon":
        muon = lib.muon if lib is jo else lib.contrib.muon
        return muon(2e-2)
    sched = lib.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 10_000, 1e-5)
    return lib.chain(lib.clip_by_global_norm(1.0), lib.adamw(sched, weight_decay=0.1))


def roofline_step(chain):
    """The same arithmetic on one flat buffer: the memory-bandwidth floor."""
    if chain not in ROOFLINE_CHAINS:
        raise ValueError(f"{chain!r} has no flat roofline kernel: {ROOFLINE_CHAINS}")
    # With XLA:CPU's multi-output fusion on, the parameter update reads the inputs
    # through an optimization barrier instead of the new moments: XLA then makes one
    # loop of the whole step (as tree.recompute_for_update does in the library)
    siblings = jo.tree.multi_output_fusion("cpu")

    def inputs(*xs):
        return jax.lax.optimization_barrier(xs) if siblings else xs

    if chain == "sgd_momentum":

        def step(p, g, s):
            (b,) = s
            new = g + 0.9 * b
            g_, b_ = inputs(g, b)
            return p - 1e-2 * (g_ + 0.9 * b_ if siblings else new), (new,)

    elif chain == "lion":

        def fused(p, g, m):  # GPUs make one kernel of both outputs
            u = jnp.sign(0.9 * m + 0.1 * g)
            return p - 1e-4 * (u + 0.1 * p), 0.99 * m + 0.01 * g

        def ordered(p, g, m):
            # XLA:CPU makes two loops that both read m, the second overwriting it in
            # place; it orders buffer reuse by data dependence only, so it would copy m
            # first (peak 4/3, about 2.5x the step on the matrix). Here the second loop
            # reads the first one's p[0] (a never-true test, no bit of m changes).
            p = p - 1e-4 * (jnp.sign(0.9 * m + 0.1 * g) + 0.1 * p)
            never = jnp.abs(p.ravel()[0]) > jnp.inf
            return p, jnp.where(never, jnp.zeros_like(m), 0.99 * m + 0.01 * g)

        def step(p, g, s):
            cpu = fused if siblings else ordered  # one loop with multi-output fusion
            p, m = jax.lax.platform_dependent(p, g, s[0], cpu=cpu, default=fused)
            return p, (m,)

    else:
        clip = chain == "clip_adamw_cosine"

        def step(p, g, s):
            m0, v0, t = s
            t = t + 1
            scale = 1.0 / jnp.maximum(jnp.sqrt(jnp.sum(g * g)), 1.0) if clip else 1.0
            # each reader of the clipped gradient scales it itself: a scaled gradient
            # read by several loops would be written out first
            m = 0.9 * m0 + 0.1 * (g * scale)
            g_, v0_ = inputs(g, v0)
            v = 0.999 * v0_ + 0.001 * (g_ * scale) * (g_ * scale)
            if siblings:
                g_, m0_, v0_ = inputs(g, m0, v0)
                mu = 0.9 * m0_ + 0.1 * (g_ * scale)
                vu = 0.999 * v0_ + 0.001 * (g_ * scale) * (g_ * scale)
            else:
                mu, vu = m, v
            tf = t.astype(jnp.float32)
            mh = mu / (1 - 0.9**tf)
            vh = vu / (1 - 0.999**tf)
            u = mh / (jnp.sqrt(vh) + 1e-8)
            if clip:
                u = u + 0.1 * p
            return p - 1e-3 * u, (m, v, t)

    return step


def roofline_state(chain, n):
    if chain in ("sgd_momentum", "lion"):
        return (jnp.zeros(n, jnp.float32),)
    return (jnp.zeros(n, jnp.float32), jnp.zeros(n, jnp.float32), jnp.zeros([], jnp.int32))


# ------------------------------------------------------------------------- timing


def peak_bytes(compiled):
    try:
        m = compiled.memory_analysis()
        return int(
            m.argument_size_in_bytes
            + m.output_size_in_bytes
            + m.temp_size_in_bytes
            - m.alias_size_in_bytes
        )
    except Exception:  # some backends do not report it
        return -1


def prepare_jax(step, params, grads, state):
    """Compile (timed) and warm up a donated step; returns a runner for `measure`.

    The step is jitted through a new function each call: jax caches a compiled program
    by the Python function it was jitted from, so a second `jax.jit(step)` of a living
    `step` would hand back the first executable instead of compiling (a compile time of
    ~0, and the same program in every round of `measure_rotated`)."""

    def fresh(p, g, s):
        return step(p, g, s)

    fn = jax.jit(fresh, donate_argnums=(0, 2))
    t0 = time.perf_counter()
    compiled = fn.lower(params, grads, state).compile()
    compile_s = time.perf_counter() - t0
    box = [params, state]

    def run_once():
        box[0], box[1] = compiled(box[0], grads, box[1])
        jax.block_until_ready(box)

    run_once()  # warm up: first touch of the output buffers
    return {"run": run_once, "compile_s": compile_s, "peak_bytes": peak_bytes(compiled)}


# untimed steps a runner takes right before each of its timed steps (`--settle-steps`)
DEFAULT_SETTLE_STEPS = 1
SETTLE_STEPS = DEFAULT_SETTLE_STEPS
# bytes written between a runner's settling steps and its timed step, to evict what they
# left in the caches (`--flush-mib`): twice this CPU's 32 MiB of L3
DEFAULT_FLUSH_BYTES = 64 << 20
FLUSH_BYTES = DEFAULT_FLUSH_BYTES
_flush_buffer: list = []


def flush_caches(nbytes):
    """Write `nbytes` of a buffer kept for this (allocated once: no allocation per call)."""
    n = max(1, nbytes // 8)
    if not _flush_buffer or _flush_buffer[0].size != n:
        _flush_buffer[:] = [np.zeros(n, np.float64)]
    np.add(_flush_buffer[0], 1.0, out=_flush_buffer[0])


def measure(runners, repeats, seed=0, keep_samples=False, settle_steps=None, flush_bytes=None):
    """Median step time of each runner, the runners taking turns in a new random order
    every round (seeded, so a run can be repeated).

    Interleaving spreads a shared machine's slow spells over every competitor instead
    of charging them to whichever happened to run then, so the ratios are stable. The
    order is shuffled because a fixed rotation always runs the same competitor right
    after the same other one: on the 2000-leaf tree the roofline kernel always followed
    optax's 45 ms step and read 1.5x slower than the same arithmetic run elsewhere.

    Each timed step comes after `settle_steps` untimed steps of the same runner
    (default `SETTLE_STEPS`, 1), as a step of a training loop follows the previous one.
    Without them a step pays for the state the previous competitor left the process
    in: a 2000-leaf step frees thousands of small buffers into glibc's fast bins, and
    glibc merges them all before it serves the next large request, whoever makes it
    (on this CPU the first `jax.tree.flatten` of 16 arrays after optax's step took
    262 us, of 8 arrays 18 us; with the fast bins off the cost is gone). A 0.3 ms flat
    step pays that whole: on the 2000-leaf tree flat / roofline read 1.19x for Adam
    and 1.25x for Lion without a settling step, 1.05x and 1.17x with one, while pytree
    / optax read 1.01x either way for Adam (`bench_settle.py`, `results/settle.json`).

    Between the settling steps and the timed one, `flush_bytes` (default `FLUSH_BYTES`,
    64 MiB) of a buffer are written, so that the timed step does not find its own
    arrays in the caches where the previous step left them (in a training loop the
    backward pass runs in between; it would leave the gradients warm, which the flush
    evicts too). Without the flush, settled steps on the 4096 x 4096
    matrix read SGD with momentum at 0.72x the roofline kernel, a difference in which
    arrays each program touches last, not in their traffic. No flush without settling
    steps (the previous competitor's step is the flush there)."""
    settle = SETTLE_STEPS if settle_steps is None else int(settle_steps)
    flush = FLUSH_BYTES if flush_bytes is None else int(flush_bytes)
    if settle < 0:
        raise ValueError(f"settle_steps must be >= 0, got {settle}")
    if flush < 0:
        raise ValueError(f"flush_bytes must be >= 0, got {flush}")
    flush = flush if settle else 0
    names = list(runners)
    rng = np.random.default_rng(seed)
    times = {k: [] for k in names}
    for _ in range(repeats):
        for i in rng.permutation(len(names)):
            k = names[i]
            run = runners[k]["run"]
            for _ in range(settle):
                run()
            if flush:
                flush_caches(flush)
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    out = {}
    for k, r in runners.items():
        out[k] = {key: val for key, val in r.items() if key != "run"}
        out[k]["step_s"] = statistics.median(times[k])
        out[k]["settle_steps"] = settle
        out[k]["flush_bytes"] = flush
        if keep_samples:
            out[k]["step_samples"] = times[k]
    return out


# how many times `measure_rotated` prepares every competitor, each time in an order
# rotated by one (`--order-rounds`); None: as many rounds as competitors
ORDER_ROUNDS: int | None = None


def measure_rotated(makers, repeats, rounds=None, seed=0, settle_steps=None, flush_bytes=None):
    """Prepare every competitor (`makers[name]()` compiles it and returns a runner), time
    them taking turns (`measure`), free them; `rounds` times, the order of preparation
    rotated by one each round. `rounds` is 1 (a fixed order) or a multiple of the number
    of competitors (default: that number), so that each competitor is prepared first,
    second, ... equally often.

    Why: in one process, an executable compiled after others can run slower than the
    same program compiled first, where the step is bound by the host's per-array work
    (thousands of small leaves). Three identical optax Adam steps on the 2000-leaf tree,
    their arrays made first and then compiled one after the other, ran at 28.2, 33.3 and
    35.7 ms; compiled in the reverse order, at 28.5, 31.6 and 32.3 ms (by position of
    compilation; `bench_compile_order.py`, `results/compile_order.json`). On the GPT
    tree and the matrix the copies differed without a trend in the position. A fixed
    order of preparation thus hands the first competitor an edge of 10-25% on many small
    leaves; rotating spreads it evenly.

    Returns each competitor's `measure` entry with `step_s` the median of all rounds'
    samples (about `repeats` of them: `ceil(repeats / rounds)` per round),
    `step_s_rounds` each round's median in the order of the rounds, `compile_s` the
    fastest of its compiles, `order_rounds` the number of rounds, and `settle_steps` and
    `flush_bytes` as `measure` used them."""
    names = list(makers)
    rounds = len(names) if rounds is None else int(rounds)
    if rounds != 1 and (rounds < 1 or rounds % len(names)):
        raise ValueError(
            f"rounds must be 1 or a multiple of the {len(names)} competitors (so that each "
            f"is prepared in each position equally often), got {rounds}"
        )
    per_round = max(1, -(-repeats // rounds))
    samples = {k: [] for k in names}
    medians = {k: [] for k in names}
    compiles = {k: [] for k in names}
    first = {}
    for r in range(rounds):
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        runners = {k: makers[k]() for k in order}
        res = measure(
            runners, per_round, seed + r, True, settle_steps=settle_steps, flush_bytes=flush_bytes
        )
        del runners
        for k in order:
            samples[k] += res[k].pop("step_samples")
            medians[k].append(res[k]["step_s"])
            compiles[k].append(res[k]["compile_s"])
            first.setdefault(k, res[k])
        del res
        gc.collect()  # free this round's executables and arrays before the next one
    return {
        k: first[k]
        | {
            "step_s": statistics.median(samples[k]),
            "step_s_rounds": medians[k],
            "compile_s": min(compiles[k]),
            "order_rounds": rounds,
        }
        for k in names
    }


def time_jax(step, params, grads, state, repeats):
    """Compile time, median step time and peak bytes of one step measured alone."""
    r = measure({"x": prepare_jax(step, params, grads, state)}, repeats)["x"]
    return r["step_s"], r["compile_s"], r["peak_bytes"]


def nbytes(tree):
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


# keyword arguments of jo.flatten in the `ours flatten` column (`--flatten-max-leaf`,
# `--flatten-max-buffer-leaves`); empty: the library's defaults
FLATTEN_ARGS: dict = {}
# keyword arguments of flat.ravel in the `ours flat` column (`--flat-max-buffer-leaves`,
# `--flat-max-leaf`, `--flat-group-by-shape`); empty: ravel's defaults (max_leaf_size
# "auto": leaves over 65536 elements apart on a CPU)
FLAT_ARGS: dict = {}


def prepare_lib(lib, chain, shapes, layout="pytree"):
    """One library's step (`jaxopt_edu` or optax) on the user's pytree ("pytree"), on flat
    buffers ("flat"), or on the user's pytree with the state flat ("flatten": `jo.flatten`)."""
    wrap = (lambda t: flat.ravel(t, **FLAT_ARGS)) if layout == "flat" else (lambda t: t)
    params, grads = wrap(make_arrays(shapes, 0)), wrap(make_arrays(shapes, 1))
    tx = build(lib, chain)
    if layout == "flatten":
        tx = lib.flatten(tx, **FLATTEN_ARGS)
    state = tx.init(params)
    base = nbytes(params) + nbytes(grads) + nbytes(state)

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return lib.apply_updates(p, u), s

    # optax itself is not clean under strict promotion; ours must be
    promotion = "standard" if lib is not jo else jax.config.jax_numpy_dtype_promotion
    with jax.numpy_dtype_promotion(promotion):
        r = prepare_jax(step, params, grads, state)
    return r | {"base_bytes": base}


def prepare_roofline(chain, shapes):
    n = sum(int(np.prod(s)) for s in shapes.values())
    p = jax.random.normal(jax.random.PRNGKey(0), (n,), jnp.float32) * 0.02
    g = jax.random.normal(jax.random.PRNGKey(1), (n,), jnp.float32) * 0.02
    state = roofline_state(chain, n)
    base = nbytes(p) + nbytes(g) + nbytes(state)
    return prepare_jax(roofline_step(chain), p, g, state) | {"base_bytes": base}


def prepare_torch(chain, shapes, impl):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    params = [torch.randn(s, dtype=torch.float32) * 0.02 for s in shapes.values()]
    for p in params:
        p.grad = torch.randn_like(p) * 0.02
    kw = {"fused": True} if impl == "fused" else {"foreach": True}
    if chain == "sgd_momentum":
        opt = torch.optim.SGD(params, lr=1e-2, momentum=0.9, **kw)
    elif chain == "adam":
        opt = torch.optim.Adam(params, lr=1e-3, **kw)
    else:
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1, **kw)
    clip = chain == "clip_adamw_cosine"

    def step():
        if clip:
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()

    step()
    return {"run": step, "compile_s": 0.0, "peak_bytes": -1}


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def jax_makers(chain, shapes):
    """name -> maker of each JAX competitor of a row (roofline where the chain has one,
    ours flat, pytree and flatten, optax), for `measure_rotated`."""
    import optax

    makers = (
        {"roofline": lambda: prepare_roofline(chain, shapes)} if chain in ROOFLINE_CHAINS else {}
    )
    return makers | {
        "ours_flat": lambda: prepare_lib(jo, chain, shapes, "flat"),
        "ours_pytree": lambda: prepare_lib(jo, chain, shapes, "pytree"),
        "ours_flatten": lambda: prepare_lib(jo, chain, shapes, "flatten"),
        "optax": lambda: prepare_lib(optax, chain, shapes),
    }


def bench_row(chain, shapes, repeats, with_torch=True):
    """Every competitor on one (tree, chain), prepared, then timed taking turns; the JAX
    competitors in rounds with the order of preparation rotated (`measure_rotated`)."""
    out = measure_rotated(jax_makers(chain, shapes), repeats, ORDER_ROUNDS)
    if with_torch and have_torch() and chain in TORCH_CHAINS:
        # timed apart from JAX: torch's OpenMP threads keep spinning after a step and
        # would slow whichever JAX program ran next
        for impl in ("fused", "foreach"):
            out |= measure({f"torch_{impl}": prepare_torch(chain, shapes, impl)}, repeats)
    return out


# --------------------------------------------------------------------------- main


def run(trees, chains, repeats, quick, with_torch, on_row=None):
    rows = []
    for tree_name in trees:
        shapes = TREES[tree_name]()
        if quick:
            shapes = dict(list(shapes.items())[: max(1, len(shapes) // 4)])
            if tree_name == "matrix":
                shapes = big_matrix_tree(1024)
        n = sum(int(np.prod(s)) for s in shapes.values())
        for chain in chains:
            row = {"tree": tree_name, "leaves": len(shapes), "params": n, "chain": chain}
            row["flatten_args"] = dict(FLATTEN_ARGS)
            # the layout ravel resolves (its default max_leaf_size is "auto"), so that a
            # row keeps saying what it measured if the default changes
            flat_args = dict(FLAT_ARGS)
            flat_args.setdefault("max_leaf_size", "auto")
            if flat_args["max_leaf_size"] == "auto":
                flat_args["max_leaf_size"] = flat._resolve_max_leaf_size("auto", {})
            row["flat_args"] = flat_args
            row |= bench_row(chain, shapes, repeats, with_torch)
            rows.append(row)
            print(summary_line(row), flush=True)
            if on_row is not None:  # keep what was measured if a later case is cut off
                on_row(rows)
    return rows


def _ms(row, k):
    """'12.34 ms (1.05x)': a step time and its ratio to the roofline (when there is one)."""
    if k not in row:
        return "—"
    t = row[k]["step_s"]
    if "roofline" not in row:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e3:.2f} ms ({t / row['roofline']['step_s']:.2f}x)"


def summary_line(row):
    parts = [f"{row['tree']:6s} {row['chain']:18s}"]
    for k in ("ours_flat", "ours_pytree", "ours_flatten", "optax", "torch_fused", "torch_foreach"):
        if k in row:
            parts.append(f"{k} {_ms(row, k)}")
    return " | ".join(parts)


def markdown(rows, device):
    lines = [
        f"Device: {device}. Step = median jitted, donated update; x = ratio to the roofline "
        "kernel (same memory traffic, one flat buffer) measured in the same run. "
        "No roofline for adafactor (per-leaf factored moments) and muon (per-matrix "
        "matmuls); torch.optim has no Lion, and its Adafactor and Muon are not timed here.",
        "",
        "| tree | chain | roofline ms | ours flat | ours pytree | ours flatten(pytree) | optax "
        "| ours pytree / optax | ours flatten / optax "
        "| torch fused | torch foreach | compile s: flat / pytree / flatten / optax "
        "| peak / (params+grads+state): flat / pytree / flatten / optax |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        roof = f"{row['roofline']['step_s'] * 1e3:.2f}" if "roofline" in row else "—"

        def cell(k, row=row):
            return _ms(row, k)

        def ratio(k, row=row):
            return f"{row[k]['step_s'] / row['optax']['step_s']:.2f}" if k in row else "—"

        def comp(k, row=row):
            return f"{row[k]['compile_s']:.2f}" if k in row else "—"

        def mem(k, row=row):
            d = row.get(k)
            return f"{d['peak_bytes'] / d['base_bytes']:.3f}" if d and d["peak_bytes"] > 0 else "—"

        names = ("ours_flat", "ours_pytree", "ours_flatten", "optax")
        flat_args = row.get("flat_args", {})
        caps = []
        if flat_args.get("max_buffer_leaves"):
            caps.append(f"{flat_args['max_buffer_leaves']} leaves per buffer")
        if flat_args.get("max_leaf_size") is not None:
            caps.append(f"leaves over {flat_args['max_leaf_size']} apart")
        if flat_args.get("group_by_shape"):
            caps.append("grouped by shape")
        cap = f"; flat: {', '.join(caps)}" if caps else ""
        lines.append(
            f"| {row['tree']} ({row['leaves']} leaves, {row['params'] / 1e6:.2f}M{cap}) "
            f"| {row['chain']} "
            f"| {roof} | {cell('ours_flat')} | {cell('ours_pytree')} | {cell('ours_flatten')} "
            f"| {cell('optax')} | {ratio('ours_pytree')} | {ratio('ours_flatten')} "
            f"| {cell('torch_fused')} | {cell('torch_foreach')} "
            f"| {' / '.join(comp(k) for k in names)} | {' / '.join(mem(k) for k in names)} |"
        )
    return "\n".join(lines)


MOF_FLAG = "--xla_backend_extra_options=xla_cpu_use_multi_output_fusion"


def use_multi_output_fusion():
    """Turn XLA:CPU's multi-output fusion on for this process (before JAX starts its
    CPU backend), and check with the library's probe that it took."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_multi_output_fusion" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {MOF_FLAG}".strip()
    if not jo.tree.multi_output_fusion("cpu"):
        raise SystemExit(
            "XLA:CPU multi-output fusion is not on: JAX's CPU backend started before "
            f"XLA_FLAGS was set; run with XLA_FLAGS={MOF_FLAG} instead"
        )


def write_result(path, out: dict) -> dict:
    """Write a benchmark's result as indented JSON (making its folder); returns `out`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


def device_label(multi_output_fusion: bool = False) -> str:
    """The device a run measures, as the results name it; with `multi_output_fusion`,
    turns XLA:CPU's multi-output fusion on first (before JAX starts its backend)."""
    extra = ""
    if multi_output_fusion:
        use_multi_output_fusion()
        extra = ", XLA:CPU multi-output fusion on"
    kind = jax.devices()[0].device_kind
    return f"{kind} ({jax.default_backend()}, {os.cpu_count()} cores{extra})"


def main(argv=None):
    global ORDER_ROUNDS, SETTLE_STEPS, FLUSH_BYTES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default="gpt,small,matrix")
    ap.add_argument("--chains", default=",".join(DEFAULT_CHAINS), help=f"from {CHAINS}")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="smaller trees, a smoke run")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument(
        "--order-rounds",
        type=int,
        default=None,
        help="prepare the JAX competitors this many times, the order rotated each round: 1 "
        "or a multiple of their number (default: their number; see measure_rotated)",
    )
    ap.add_argument(
        "--settle-steps",
        type=int,
        default=DEFAULT_SETTLE_STEPS,
        help="untimed steps of a competitor right before each of its timed steps (default "
        "1; 0 times each step right after another competitor's: see measure)",
    )
    ap.add_argument(
        "--flush-mib",
        type=int,
        default=DEFAULT_FLUSH_BYTES >> 20,
        help="MiB written between the settling steps and the timed step, to evict what "
        "they left in the caches (default 64; 0: none)",
    )
    ap.add_argument(
        "--flatten-max-leaf",
        default=None,
        help="max_leaf_size of the `ours flatten` column: an int, 'none' or 'auto' "
        "(default: the library's, 'auto')",
    )
    ap.add_argument(
        "--flatten-max-buffer-leaves",
        default=None,
        help="max_buffer_leaves of the `ours flatten` column: an int or 'none' "
        "(default: the library's, 64)",
    )
    ap.add_argument(
        "--flat-max-buffer-leaves",
        type=int,
        default=None,
        help="max_buffer_leaves of flat.ravel in the `ours flat` column (default: one buffer)",
    )
    ap.add_argument(
        "--flat-max-leaf",
        default=None,
        help="max_leaf_size of flat.ravel in the `ours flat` column: an int (larger "
        "leaves keep buffers of their own), 'none' (every leaf packed) or 'auto' "
        "(default: ravel's, 'auto': 65536 on a CPU)",
    )
    ap.add_argument(
        "--flat-group-by-shape",
        action="store_true",
        help="flat.ravel(..., group_by_shape=True) in the `ours flat` column: one buffer "
        "per dtype and leaf shape, the leaves stacked",
    )
    ap.add_argument(
        "--xla-cpu-multi-output-fusion",
        action="store_true",
        help="start XLA:CPU with its multi-output fusion on (XLA_FLAGS="
        f"{MOF_FLAG}), for every competitor; rows go to results/step_cpu_mof.json",
    )
    ap.add_argument("--out", default=None, help="default: results/step.json")
    ap.add_argument(
        "--append",
        action="store_true",
        help="keep the rows already in --out (measured on the same device) and add these",
    )
    args = ap.parse_args(argv)
    ORDER_ROUNDS = args.order_rounds
    if args.settle_steps < 0:
        ap.error(f"--settle-steps must be >= 0, got {args.settle_steps}")
    SETTLE_STEPS = args.settle_steps
    if args.flush_mib < 0:
        ap.error(f"--flush-mib must be >= 0, got {args.flush_mib}")
    FLUSH_BYTES = args.flush_mib << 20
    FLATTEN_ARGS.clear()
    FLAT_ARGS.clear()
    if args.flat_max_buffer_leaves is not None:
        FLAT_ARGS["max_buffer_leaves"] = args.flat_max_buffer_leaves
    if args.flat_max_leaf is not None:
        v = args.flat_max_leaf
        FLAT_ARGS["max_leaf_size"] = None if v == "none" else v if v == "auto" else int(v)
    if args.flat_group_by_shape:
        FLAT_ARGS["group_by_shape"] = True
    for key, value in (
        ("max_leaf_size", args.flatten_max_leaf),
        ("max_buffer_leaves", args.flatten_max_buffer_leaves),
    ):
        if value is not None:
            FLATTEN_ARGS[key] = (
                None if value == "none" else value if value == "auto" else int(value)
            )
    trees = [t for t in args.trees.split(",") if t]
    chains = [c for c in args.chains.split(",") if c]
    bad = [t for t in trees if t not in TREES] + [c for c in chains if c not in CHAINS]
    if bad:
        ap.error(f"unknown tree/chain {bad}; trees: {sorted(TREES)}, chains: {list(CHAINS)}")
    device = device_label(args.xla_cpu_multi_output_fusion)
    name = "step_cpu_mof.json" if args.xla_cpu_multi_output_fusion else "step.json"
    out = Path(args.out or Path(__file__).parent / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    earlier = []
    if args.append and out.exists():
        old = json.loads(out.read_text())
        if old["device"] != device:
            ap.error(f"--append: {out} was measured on {old['device']}, not on {device}")
        earlier = old["rows"]

    def save(rows):
        rows = earlier + rows
        out.write_text(
            json.dumps({"device": device, "jax": jax.__version__, "rows": rows}, indent=1)
        )
        out.with_suffix(".md").write_text(markdown(rows, device) + "\n")

    rows = run(trees, chains, args.repeats, args.quick, not args.no_torch, on_row=save)
    print()
    print(markdown(rows, device))
    return rows


if __name__ == "__main__":
    main()
