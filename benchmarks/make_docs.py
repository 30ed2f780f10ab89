"""Regenerate docs/benchmarks.md: run every benchmark, then write the page.

    python benchmarks/make_docs.py                  # run all benchmarks (several minutes)
    python benchmarks/make_docs.py --from-results   # only rewrite the page from results/*.json

The page quotes the step table (bench_step.py), the order-of-compilation check
(bench_compile_order.py), the settling-step check (bench_settle.py), the layout experiment
(bench_pytree_layouts.py), the whole training step (bench_train_step.py), the
leaves plot (bench_leaves.py) and the sweep table (bench_sweep.py). GPU rows, when a GPU
run was made, come from `benchmarks/results/step_gpu.json` (same format as step.json) and
`train_step_gpu.json`; `hyper_packing_gpu.md` is quoted as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

INTRO = """# Benchmarks

Measured by the scripts in `benchmarks/`, every competitor in the same process, so
the ratios hold even on a shared, noisy machine; absolute times do not carry over
between runs or machines. By default the scripts compile the competitors in several
rounds, the order of compilation rotated each round, because on many small leaves a
program compiled later in a process runs slower (see "The order of compilation"
below). The competitors take turns, and each timed step comes right after an untimed
step of the same program, as in a training loop: a fast step timed right after a
2000-leaf one pays for what that step left behind (see "A step right after another
competitor's"). Each table says how its rows were compiled and timed. Regenerate this
page with `python benchmarks/make_docs.py`.

**Roofline.** For each case a jitted kernel does the same arithmetic on ONE flat
buffer, with the same memory traffic as the optimizer step (Adam: read p, g, m, v;
write p, m, v = 7 words per parameter; 5 for SGD with momentum and for Lion; 8 with
global-norm clipping). `x` is a step time divided by that kernel's, measured in the
same run. On this CPU the Lion kernel is written so that XLA updates its momentum in
place (see the findings below); before this, it copied the momentum like every
library's Lion does, and flat / roofline read about 1.0 for a step 2.5x too slow.

**Peak memory** is XLA's own analysis of the compiled, donated step (arguments +
outputs + temporaries - donated aliases), divided by the bytes of params + grads +
optimizer state. 1.00 means the step needs nothing beyond them.

**Layouts.** *pytree* is the drop-in API (`import jaxopt_edu as optax`); *flat* keeps
params, grads and moments in one buffer per dtype (`jaxopt_edu.flat`), the pytree
being a view inside the loss; a row's label says when its flat column kept large
leaves in buffers of their own (`flat.ravel`'s default on a CPU, since the
training-step measurements below) or grouped leaves by shape.
"""


def settle_sentence(settle, flush=None) -> str:
    """What each JAX competitor's timed step came right after: `settle` untimed steps of
    its own and `flush` bytes written to evict them from the caches (the `settle_steps`
    and `flush_bytes` a result records) or, for results measured before they were
    recorded, usually another competitor's step (torch is timed on its own)."""
    if settle is None:
        return (
            "Each JAX competitor's timed step usually came right after another competitor's "
            "step (measured before the settling steps; on many small leaves a fast step then "
            'pays for what the step before it left: see "A step right after another '
            "competitor's\")."
        )
    if settle == 0:
        return (
            "Each JAX competitor's timed step usually came right after another competitor's "
            "step (`--settle-steps 0`)."
        )
    steps = "an untimed step" if settle == 1 else f"{settle} untimed steps"
    if flush:
        return (
            f"Each JAX competitor's timed step came after {steps} of the same program, "
            f"with {flush / 2**20:g} MiB written in between to evict {'it' if settle == 1 else 'them'} "
            "from the caches."
        )
    return (
        f"Each JAX competitor's timed step came right after {steps} of the same program "
        "(no cache flush in between)."
    )


def rounds_sentence(rounds: int, what: str, settle=None, flush=None) -> str:
    """How `what` were compiled (in rotated rounds, `bench_step.measure_rotated`, or once)
    and timed (`settle_sentence`)."""
    if rounds > 1:
        return (
            f"{what} compiled in {rounds} rounds, the order rotated so that each was compiled "
            "in each position equally often (step: median over the rounds; compile: the "
            f"fastest). {settle_sentence(settle, flush)}"
        )
    return (
        f"{what} compiled once each, in a fixed order (on many small leaves that favours the "
        f'earlier ones: see "The order of compilation"). {settle_sentence(settle, flush)}'
    )


def order_line(rows) -> str:
    """How the rows' competitors were compiled: in rotated rounds (`measure_rotated`,
    which records `order_rounds`) or once each, in a fixed order (rows measured before);
    and what each timed step came right after (`settle_sentence`)."""
    once = [r for r in rows if r.get("optax", {}).get("order_rounds", 1) == 1]
    rotated = sorted({r["optax"]["order_rounds"] for r in rows if r not in once and "optax" in r})
    parts = []
    if once:
        cases = ", ".join(f"{r['tree']} {r['chain']}" for r in once)
        parts.append(
            f"{'All rows' if not rotated else cases}: each competitor compiled once, in the "
            "order roofline, ours (flat, pytree, flatten), optax; on many small leaves that "
            'favours the earlier ones (see "The order of compilation").'
        )
    if rotated:
        n = "/".join(str(k) for k in rotated)
        parts.append(
            f"{'All rows' if not once else 'The other rows'}: the JAX competitors "
            f"compiled in {n} rounds, the order rotated so that each was compiled in each "
            "position equally often (step: median over the rounds; compile: the fastest)."
        )
    settles = {}  # sentence -> its rows, in the order of the rows
    for r in rows:
        o = r.get("optax", {})
        text = settle_sentence(o.get("settle_steps"), o.get("flush_bytes"))
        settles.setdefault(text, []).append(r)
    for text, group in settles.items():
        if len(settles) > 1:
            cases = ", ".join(f"{r['tree']} {r['chain']}" for r in group)
            text = f"{cases}: {text[0].lower()}{text[1:]}"
        parts.append(text)
    return " ".join(parts)


def step_section(path: Path, title: str) -> str:
    from bench_step import markdown

    data = json.loads(path.read_text())
    note = f"\nNote: {data['note']}.\n" if data.get("note") else ""
    order = f"\n{order_line(data['rows'])}\n"
    return f"## {title}\n\n" + markdown(data["rows"], data["device"]) + "\n" + order + note


def _ratios(rows, a, b, key="step_s"):
    vals = [r[a][key] / r[b][key] for r in rows if a in r and b in r]
    if not vals:
        return "—"
    lo, hi = f"{min(vals):.2f}", f"{max(vals):.2f}"
    return f"{lo}x" if lo == hi else f"{lo}–{hi}x"


def findings_section(cpu: Path, gpu: Path) -> str:
    """What the step tables say, with ranges computed from the JSON the tables come from."""
    lines = ["## What the step tables say", ""]
    for path, where in ((cpu, "this CPU"), (gpu, "the GPU")):
        if not path.exists():
            continue
        rows = json.loads(path.read_text())["rows"]
        big = [r for r in rows if r["tree"] != "small"]
        small = [r for r in rows if r["tree"] == "small"]
        lines.append(
            f"- **{where}**: flat / roofline {_ratios(big, 'ours_flat', 'roofline')} on the "
            f"GPT tree and the matrix, {_ratios(small, 'ours_flat', 'roofline')} on the "
            f"small-leaf tree; pytree / optax {_ratios(rows, 'ours_pytree', 'optax')}; pytree / flat "
            f"{_ratios(big, 'ours_pytree', 'ours_flat')} on the big trees and "
            f"{_ratios(small, 'ours_pytree', 'ours_flat')} on the small-leaf tree."
        )
        if any("ours_flatten" in r for r in rows):
            lines.append(
                f"  `flatten(tx)` (pytree API, flat state) / optax: "
                f"{_ratios(big, 'ours_flatten', 'optax')} on the big trees, "
                f"{_ratios(small, 'ours_flatten', 'optax')} on the small-leaf tree "
                f"(against our own pytree mode: {_ratios(big, 'ours_flatten', 'ours_pytree')} "
                f"and {_ratios(small, 'ours_flatten', 'ours_pytree')})."
            )
            lines.append(
                f"  Compile time on the small-leaf tree, against optax: pytree "
                f"{_ratios(small, 'ours_pytree', 'optax', 'compile_s')}, `flatten(tx)` "
                f"{_ratios(small, 'ours_flatten', 'optax', 'compile_s')}."
            )
        if any("torch_fused" in r for r in rows):
            lines.append(
                f"  torch fused / ours flat: {_ratios(big, 'torch_fused', 'ours_flat')} on the "
                f"big trees, {_ratios(small, 'torch_fused', 'ours_flat')} on the small-leaf tree."
            )
    lines += [
        "",
        "Pytree mode (the drop-in API) runs at about optax's speed, except where the "
        "chain lets XLA fuse more: both libraries leave XLA one kernel per moment and one "
        "per parameter update for every leaf (three loop fusions per leaf for Adam in "
        "XLA-CPU's compiled HLO), and every leaf brings several arrays across the `jit` "
        "boundary (param, grad and each moment, in and out), which costs microseconds per "
        "array per step. That fixed cost is why pytree mode is far above the roofline on "
        "the GPU even for the GPT "
        "tree, and many times slower than flat mode on 2000 small leaves. Flat mode removes "
        "the per-leaf "
        "arrays of the small leaves altogether (on a CPU, leaves over 65536 elements keep "
        "arrays of their own by default: their loops are long enough, and a whole "
        "training step is faster that way, as the MLP section shows): use it when the "
        "step time matters. Keeping only the *state* "
        "flat under the pytree API (`flatten(tx)`) helps where per-leaf costs dominate, on "
        "the GPU and on many small leaves. On this CPU, packing large leaves costs more "
        'than it saves (see "Keeping the state flat inside pytree mode"), so `flatten`\'s default `max_leaf_size="auto"` '
        "keeps leaves above 65536 elements apart on a CPU (the CPU rows use the defaults) "
        "and packs every leaf on an accelerator. A leaf kept apart stays in its own shape "
        "(read through a reshaped view, a donated parameter was copied whole by XLA-CPU "
        "before its in-place update), so on the big trees `flatten` runs at pytree mode's "
        "speed. Its other default, at most 64 leaves per buffer, is about compile time "
        "(see the training-step section below). Its price is memory: the packed gradients "
        "(and, for weight decay, the packed params) are copied into the flat buffers each "
        "step.",
        "",
        "On the GPU every kernel launch and every array crossing `jit` costs microseconds, "
        "and a step on the matrix takes a few hundred. There, XLA fuses Adam's three "
        "updates into one kernel per leaf, so what is left above the roofline is fixed "
        "cost per call: arrays in and out, scalar kernels for the step count. That is "
        "why a transformation keeps a step count only where something reads it (next "
        "section, which also says why its hyperparameters stay one array each).",
        "",
        "On this CPU torch's fused Adam/AdamW reads and writes each word once in one loop; "
        "XLA splits the same update into three loops (new m, new v, then the parameter), "
        "about 10 words of traffic per parameter instead of 7, and the roofline kernel, "
        "compiled by the same XLA, pays the same. XLA:CPU can make one loop of it only "
        "with an option off by default (next sections).",
        "",
        "Per-leaf optimizers (adafactor's factored moments, muon's matrices) have no "
        "roofline kernel. In the flat layout they slice every leaf out of the buffer and "
        "concatenate the results back: on the GPU that is still the fastest layout for the "
        "GPT tree (at about twice the peak memory). On this CPU, with one buffer for "
        "many leaves, it compiles several times longer than pytree mode; with 64 leaves "
        "per buffer adafactor on 2000 leaves compiles in about 1.4x pytree mode's time "
        "and steps in half of it (section below). With the GPT tree's large leaves in "
        "one shared buffer (`max_leaf_size=None`) its flat step was about twice pytree "
        "mode's on this CPU; `ravel`'s default now keeps them apart there, and the table "
        "above shows the flat step at pytree mode's time. With the leaves grouped by "
        "shape (`flat.ravel(params, group_by_shape=True)`) adafactor slices nothing: "
        "each group of same-shape leaves is one stacked buffer that its per-leaf work "
        "reads in place, once per group, and its flat step compiles in under a second "
        "on both trees (sections below).",
        "",
        "Lion's direction reads the old momentum, which its new momentum overwrites in "
        "place. XLA-CPU fuses the direction into the parameter update and the new "
        "momentum into a second loop; it orders buffer reuse by data dependence only, and "
        "nothing orders the loop that reads the old momentum before the one that "
        "overwrites it, so its compiled HLO copies the donated momentum first: a fourth "
        "buffer (peak 1.333) whose page faults, every step, cost more than the loops "
        "themselves on the big trees. The roofline kernel avoids the copy by making the "
        "second loop read one element of the first loop's result (a never-true test). "
        "The library's Lion cannot see the parameter update (it happens in "
        "`apply_updates`), so for every leaf of 256 KiB of momentum or more it writes "
        "the signs first, one byte per coordinate (the top byte of each sign's bits, "
        "which tells -1, -0, +0, +1 and NaN apart), inside a `lax.cond` that XLA cannot "
        "fuse back into their readers, and the new momentum reads those bytes: "
        "peak 1.083, the same values in a jitted step (inside `lax.scan` XLA may round "
        "the momentum differently in the last bit, as it does the plain form's there). "
        "Smaller leaves keep the copy, which is cheaper there "
        "(the small tree's pytree rows). The price is compile time in pytree mode: a "
        "`cond`, a loop for the signs and their decoding per large leaf, about 3x optax's "
        "compile time on the GPT tree (still under 2 s). With the whole GPT tree in one "
        "buffer (`ravel(params, max_leaf_size=None)`) the sign bytes "
        "(42 MB) are what is left above the roofline (1.30x in this page's table as "
        "measured at commit 8727acd, before the default changed): "
        "XLA-CPU allocates a step's "
        "temporaries on every call, and glibc maps blocks over 32 MiB fresh each time, "
        "so they are page-faulted every step; with `ravel`'s default on a CPU each large "
        "leaf has bytes of its own, all under 32 MiB. Starting Python with `MALLOC_MMAP_MAX_=0 "
        "MALLOC_TRIM_THRESHOLD_=17179869184` keeps them in the heap: in one pair of "
        "runs (`bench_step.py --trees gpt --chains lion,clip_adamw_cosine --repeats 21 "
        "--no-torch`, with and without the variables) flat Lion went from 1.65x to "
        "1.11x the roofline, optax's Lion from 2.50x to 3.07x, clip+adamw stayed "
        "within noise. It is a process-wide setting (freed memory is no longer "
        "returned to the system), so the library does not set it. "
        "A float8 buffer instead of the top byte was "
        "slower (XLA-CPU converts float8 in software), and an optimization barrier does "
        "not order the loops: XLA-CPU removes it before it inserts copies. On the GPU, XLA "
        "fuses both outputs into one kernel and none of this applies.",
        "",
    ]
    return "\n".join(lines)


def _ms(row, k):
    return row[k]["step_s"] * 1e3


def mof_text(path: Path) -> str:
    """What the step table with XLA:CPU's multi-output fusion on says, from its JSON."""
    rows = json.loads(path.read_text())["rows"]

    def find(tree, chain):
        return next((r for r in rows if r["tree"] == tree and r["chain"] == chain), None)

    lines = [
        "XLA:CPU merges loops that read the same arrays into one loop with several "
        "outputs only when the process starts with "
        "`XLA_FLAGS=--xla_backend_extra_options=xla_cpu_use_multi_output_fusion` "
        "(`bench_step.py --xla-cpu-multi-output-fusion` sets it, for every competitor). "
        "Even then a loop that reads another loop's result stays apart, and an "
        "optimizer's parameter update reads the new moments: optax's Adam becomes two "
        "loops (new m and v, then the parameter). Where the library sees that this "
        "process fuses siblings (`tree.multi_output_fusion`), its transformations "
        "recompute the moments for the update from their inputs "
        "(`tree.recompute_for_update`), and Adam, AdamW, Nadam, SGD with momentum, "
        "RMSprop, AdaGrad and Lion compile to one loop per buffer, 7 words per parameter "
        "for Adam as in torch's fused loop. Without the option the compiled programs are "
        "the ones of the first table, word for word. The roofline kernel is one loop "
        "here too.",
        "",
    ]
    bullets = []
    for tree in ("gpt", "matrix"):
        for chain in ("sgd_momentum", "adam"):
            r = find(tree, chain)
            if r and "torch_fused" in r:
                bullets.append(
                    f"- {tree}, {chain}: ours flat {_ms(r, 'ours_flat'):.2f} ms, torch fused "
                    f"{_ms(r, 'torch_fused'):.2f} ms ({_ms(r, 'ours_flat') / _ms(r, 'torch_fused'):.2f}x"
                    f" torch's time); ours pytree / optax {_ms(r, 'ours_pytree') / _ms(r, 'optax'):.2f}."
                )
    r = find("gpt", "lion")
    if r:
        peak = r["ours_flat"]["peak_bytes"] / r["ours_flat"]["base_bytes"]
        bullets.append(
            f"- gpt, lion: ours flat {_ms(r, 'ours_flat') / _ms(r, 'roofline'):.2f}x the "
            f"roofline at a peak of {peak:.3f} (no sign bytes, no copy)."
        )
    r = find("gpt", "clip_adamw_cosine")
    if r:
        bullets.append(
            f"- gpt, clip + adamw: ours flat {_ms(r, 'ours_flat') / _ms(r, 'roofline'):.2f}x "
            f"the roofline, optax {_ms(r, 'optax') / _ms(r, 'roofline'):.2f}x, torch fused "
            f"{_ms(r, 'torch_fused') / _ms(r, 'roofline'):.2f}x."
        )
    lines += bullets
    lines += [
        "",
        "The price is global: with the option on, XLA:CPU no longer copies a cheap "
        "producer into each loop that reads it (`may_duplicate` is off in its fusion "
        "pass), so a value read by several loops is written out. The clipped gradient "
        "of `clip_by_global_norm` is read by the loops of m, v and the parameter: here it "
        "becomes a gradient-sized temporary, allocated and page-faulted afresh each call "
        "(writing a new array costs several times reading one on this CPU), hence the "
        "clip + adamw rows. In a whole training step the "
        "picture differs again (section after next). The option is off by default in "
        "jax 0.10 and 0.11, and the library does not set it.",
        "",
    ]
    return "\n".join(lines)


def mlp_step_section(default: Path, mof: Path) -> str:
    from bench_mlp_step import markdown as mlp_markdown

    lines = ["## A whole training step of an MLP", ""]
    d = json.loads(default.read_text())
    lines += [
        "`benchmarks/bench_mlp_step.py`: forward pass, gradient and optimizer in one "
        "jitted, donated step, every variant in the same process. The loss reads each "
        "weight matrix in a matmul; in the flat layout that matrix is a view of a buffer.",
        "",
        mlp_markdown(d),
        "",
        rounds_sentence(
            d.get("order_rounds", 1),
            "The variants of each chain",
            d.get("settle_steps"),
            d.get("flush_bytes"),
        ),
        "",
    ]
    rows = {r["chain"]: r for r in d["rows"]}

    def ratio(r, a, b):
        return r[a]["step_s"] / r[b]["step_s"]

    if "adam" in rows and "clip_adamw_cosine" in rows:
        a, c = rows["adam"], rows["clip_adamw_cosine"]
        lines += [
            f"With every leaf in one buffer the step took {ratio(a, 'ours_flat_one_buffer', 'ours_flat'):.2f}x "
            f"(Adam) and {ratio(c, 'ours_flat_one_buffer', 'ours_flat'):.2f}x (clip + AdamW) as long as "
            "with `flat.ravel`'s default, which on a CPU keeps leaves of more than 65536 "
            "elements in buffers of their own: XLA:CPU copies a slice of a buffer before a "
            "matmul reads it, into a fresh temporary every step, and the weight gradient is "
            "concatenated back. This measurement is why that default changed (it was one "
            "buffer per dtype). With it, the flat training step runs at "
            f"{ratio(a, 'ours_flat', 'optax'):.2f}x optax's time for Adam and "
            f"{ratio(c, 'ours_flat', 'optax'):.2f}x for clip + AdamW (pytree mode: "
            f"{ratio(a, 'ours_pytree', 'optax'):.2f}x and {ratio(c, 'ours_pytree', 'optax'):.2f}x; "
            "optax's clip + AdamW step writes the clipped gradients out).",
            "",
        ]
    if mof.exists():
        m = json.loads(mof.read_text())
        mrows = {r["chain"]: r for r in m["rows"]}
        lines += [
            "The same, in a process started with XLA:CPU's multi-output fusion on:",
            "",
            mlp_markdown(m),
            "",
            rounds_sentence(
                m.get("order_rounds", 1),
                "The variants of each chain",
                m.get("settle_steps"),
                m.get("flush_bytes"),
            ),
            "",
        ]
        if "adam" in mrows:
            a = mrows["adam"]
            lines += [
                "Here optax's Adam step gains the most: ours took "
                f"{ratio(a, 'ours_pytree', 'optax'):.2f}x its time. With the option, XLA:CPU also merges the loops of "
                "different leaves of one shape that share an operand: the library's "
                "hyperparameters are arrays in the state, shared by every leaf, so in the "
                "compiled Adam step the whole updates of three of the four weight "
                "matrices are one loop with nine outputs, which waits for the last of "
                "their gradients, and the step holds 53 MB of temporaries and copies a "
                "weight matrix. Optax's hyperparameters are constants, not operands: "
                "its m and v loops stay one per matrix (only its four parameter updates, "
                "which share the bias-correction scalars, merge), 21 MB, no copy. So for "
                "whole training steps the option does not pay for this library yet; the "
                "one-loop form only makes sure that, where it is on, each step is one "
                "loop.",
                "",
            ]
    return "\n".join(lines)


def adafactor_layouts_text(path: Path) -> str:
    """What the grouped-layout table shows, its ratios read from the rows."""
    rows = json.loads(path.read_text())["rows"]

    def find(tree, **flat_args):
        for r in rows:
            if r["tree"] == tree and r.get("flat_args", {}) == flat_args:
                return r
        return None

    lines = [
        "`python benchmarks/bench_step.py --trees gpt --chains adafactor --no-torch "
        "--repeats 21` with `--flat-max-leaf 65536`, then with no flag, then "
        "`--trees gpt,small --flat-group-by-shape`, each process adding its rows "
        "(`--append`) with its own pytree and optax columns. Only the `ours flat` column "
        "changes layout: one buffer for every leaf; the leaves over 65536 elements in "
        "buffers of their own; or one buffer per leaf shape (`group_by_shape=True`), "
        "where the per-leaf work runs once per group, under `jax.vmap`.",
        "",
    ]
    grouped, one = find("gpt", group_by_shape=True), find("gpt")
    small = find("small", group_by_shape=True)
    if grouped and one:
        g, o = grouped["ours_flat"], one["ours_flat"]
        lines.append(
            f"On the GPT tree, grouping by shape took the flat step from "
            f"{o['step_s'] * 1e3:.0f} ms to {g['step_s'] * 1e3:.0f} ms "
            f"({g['step_s'] / grouped['ours_pytree']['step_s']:.2f}x pytree mode's in its "
            f"run), its compile time from {o['compile_s']:.1f} s to {g['compile_s']:.2f} s, "
            f"and its peak from {o['peak_bytes'] / o['base_bytes']:.2f}x to "
            f"{g['peak_bytes'] / g['base_bytes']:.2f}x params + grads + state."
        )
    if small:
        f, p, x = small["ours_flat"], small["ours_pytree"], small["optax"]
        lines.append(
            f"On 2000 small leaves (two shapes), the grouped flat step compiled in "
            f"{f['compile_s']:.2f} s (pytree mode {p['compile_s']:.0f} s, optax "
            f"{x['compile_s']:.0f} s) and ran in {f['step_s'] * 1e3:.1f} ms "
            f"({f['step_s'] / x['step_s']:.3f}x optax's)."
        )
    lines += [
        "",
        "Keeping the large leaves apart already gives pytree mode's step, but not its "
        "compile time: the small leaves left in the shared buffer are still sliced one by "
        "one, and XLA-CPU compiles a kernel for every slice offset, where pytree mode "
        "shares one kernel among the leaves of a shape.",
    ]
    return "\n".join(lines) + "\n"


def muon_grouped_text(path: Path) -> str:
    """Muon's grouped flat step against pytree mode and optax, read from the rows."""
    lines = [
        "`python benchmarks/bench_step.py --quick --trees small --chains muon --no-torch "
        "--repeats 7 --flat-group-by-shape`: a quarter of the small tree, since on all 2000 "
        "leaves the pytree and optax columns had not compiled after 9 minutes (and the GPT "
        "tree's Newton-Schulz matmuls take seconds per step on this CPU). Its 16 x 16 "
        "matrices are one stacked buffer, and their Newton-Schulz iterations batched "
        "matmuls."
    ]
    for r in json.loads(path.read_text())["rows"]:
        f, p, x = r["ours_flat"], r["ours_pytree"], r["optax"]
        lines.append(
            f"On {r['leaves']} leaves the grouped flat step compiled in {f['compile_s']:.2f} s "
            f"(pytree mode {p['compile_s']:.1f} s, optax {x['compile_s']:.1f} s) and ran in "
            f"{f['step_s'] * 1e3:.2f} ms ({f['step_s'] / x['step_s']:.3f}x optax's, "
            f"{f['step_s'] / p['step_s']:.3f}x pytree mode's). Its peak memory is higher "
            f"than pytree mode's ({f['peak_bytes'] / f['base_bytes']:.2f}x params + grads + "
            f"state against {p['peak_bytes'] / p['base_bytes']:.2f}x): the iterations' "
            "temporaries exist for the whole group at once."
        )
    return " ".join(lines) + "\n"


def elementwise_grouped_text(grouped: Path, main: Path) -> str:
    """The grouped layout's elementwise steps against one buffer per dtype (each a ratio
    to the roofline kernel of its own run)."""

    def flat_x_roof(path):
        out = {}
        for r in json.loads(path.read_text())["rows"]:
            if r["tree"] == "small" and "roofline" in r and "ours_flat" in r:
                out[r["chain"]] = r["ours_flat"]["step_s"] / r["roofline"]["step_s"]
        return out

    g = flat_x_roof(grouped)
    one = flat_x_roof(main) if main.exists() else {}
    cells = [f"{c} {g[c]:.2f}x" + (f" (one buffer: {one[c]:.2f}x)" if c in one else "") for c in g]
    return (
        "`python benchmarks/bench_step.py --trees small --chains sgd_momentum,adam,"
        "clip_adamw_cosine,lion --no-torch --repeats 21 --flat-group-by-shape`. On 2000 "
        "small leaves of two shapes the grouped flat steps ran at "
        + ", ".join(cells)
        + " the roofline kernel of their run, the one-buffer ratios coming from the first "
        "table. For elementwise chains keep `ravel`'s default (the small leaves in one "
        "buffer per dtype): two "
        "buffers are twice the small kernels of one.\n"
    )


def compile_order_section(path: Path, step: Path) -> str:
    d = json.loads(path.read_text())
    small = [r for r in json.loads(step.read_text())["rows"] if r["tree"] == "small"]
    lines = [
        "## The order of compilation",
        "",
        f"`python benchmarks/bench_compile_order.py` on {d['device']}, jax {d['jax']}, optax "
        f"{d['optax']}: {len(d['rows'][0]['step_s_by_position'])} copies of optax's Adam step "
        "on one tree, their arrays made first, compiled one after the other, then timed taking "
        "turns; then fresh copies compiled in the reverse order. Median step time of each copy, "
        "listed by the position in which it was compiled.",
        "",
        "| tree | order | step ms, first compiled ... last | last / first |",
        "|---|---|---|---|",
    ]
    for r in d["rows"]:
        t = r["step_s_by_position"]
        lines.append(
            f"| {r['tree']} ({r['leaves']} leaves) | {r['order']} | "
            + " / ".join(f"{x * 1e3:.2f}" for x in t)
            + f" | {t[-1] / t[0]:.2f} |"
        )
    lines += [
        "",
        "The copies are the same program on the same numbers. On 2000 small leaves, where a "
        "step is bound by the host's work per array (param, grad and two moments cross `jit` "
        "for every leaf), the copy compiled first ran fastest in both orders, whichever copy "
        "it was, and the later ones slower. On the GPT tree and the matrix, bound by memory "
        "traffic, the differences show no trend with the position; they are the noise of "
        "this machine at those sizes, and on the GPT tree also a difference between one set "
        "of arrays and another (the two orders used fresh arrays). So `bench_step.py` and "
        "the other scripts prepare the competitors of a row in as many rounds as there are "
        "competitors by default, the order rotated by one each round, so that each is "
        "compiled first once (`bench_step.measure_rotated`); a step time is the median over "
        "all rounds, a compile time the fastest of them. Before this, `bench_step.py` "
        "compiled ours before optax's in every row: on the small-leaf tree that had put our "
        "pytree column at 0.89-0.97x optax's step time (sgd with momentum, adam, clip + "
        "adamw, lion).",
    ]
    if small and all(r["optax"].get("order_rounds", 1) > 1 for r in small):
        lines[-1] += (
            " Compiled in rotated orders it is "
            f"{_ratios(small, 'ours_pytree', 'optax')} (first table)."
        )
    lines.append("")
    return "\n".join(lines)


SETTLE_NAMES = ("roofline", "ours_flat", "ours_pytree", "ours_flatten", "optax")


def _settle_label(name, res) -> str:
    """How a setting of bench_settle.py timed a step, from what `measure` recorded."""
    first = next(iter(res.values()))
    if not first.get("settle_steps"):
        return "another competitor's step"
    flush = first.get("flush_bytes")
    if flush:
        return f"an untimed step of its own, then {flush / 2**20:g} MiB written"
    return "an untimed step of its own"


def _flatten_cells(d, key, k) -> str:
    v = (d.get(key) or {}).get(k)
    return f"{v['first_us']:.1f} | {v['second_us']:.1f}" if v else "— | —"


def settle_section(path: Path) -> str:
    d = json.loads(path.read_text())
    rows = d["rows"]
    settings = [n for n in ("settle_0", "settle_1", "settle_1_flush") if rows and n in rows[0]]
    lines = [
        "## A step right after another competitor's",
        "",
        f"`python benchmarks/{d['command']}` on {d['device']}: the JAX competitors of a row "
        f"of the step table, measured {len(settings)} ways in one process, each in rotated "
        "orders, by what each timed step came right after. Median step time, and in "
        "parentheses its ratio to the roofline kernel timed the same way.",
        "",
        "| tree | chain | timed step after | "
        + " | ".join(n.replace("_", " ") for n in SETTLE_NAMES)
        + " | ours pytree / optax |",
        "|---|---|---|" + "---|" * (len(SETTLE_NAMES) + 1),
    ]
    for r in rows:
        for name in settings:
            res = r[name]
            roof = res.get("roofline", {}).get("step_s")

            def cell(k, res=res, roof=roof):
                if k not in res:
                    return "—"
                ms = f"{res[k]['step_s'] * 1e3:.3f} ms"
                return f"{ms} ({res[k]['step_s'] / roof:.2f}x)" if roof else ms

            lines.append(
                f"| {r['tree']} ({r['leaves']} leaves) | {r['chain']} | "
                f"{_settle_label(name, res)} | "
                + " | ".join(cell(k) for k in SETTLE_NAMES)
                + f" | {res['ours_pytree']['step_s'] / res['optax']['step_s']:.2f} |"
            )
    ff = d.get("first_flatten", {})
    fresh_key = "first_flatten_fresh"
    off_key = "first_flatten_fresh_without_fastbins"
    if ff:
        lines += [
            "",
            "The mechanism, timed by the same command: right after each of optax's Adam steps "
            "on that tree, the first `jax.tree.flatten` of a tuple of k arrays, then a second "
            "one (median microseconds); in this process, after the measurements above, and "
            "in two fresh child processes that differ only in glibc's fast bins (as usual, "
            "or off: `GLIBC_TUNABLES=glibc.malloc.mxfast=0`)"
            + (f"; {d['libc']}" if d.get("libc") else "")
            + ":",
            "",
            "| k arrays | first | second | fresh: first | fresh: second "
            "| fresh, fast bins off: first | fresh, fast bins off: second |",
            "|---|---|---|---|---|---|---|",
        ]
        for k, v in ff.items():
            lines.append(
                f"| {k} | {v['first_us']:.1f} | {v['second_us']:.1f} | "
                f"{_flatten_cells(d, fresh_key, k)} | {_flatten_cells(d, off_key, k)} |"
            )
    lines += [
        "",
        "A 2000-leaf step frees thousands of small buffers into glibc's fast bins, and "
        "glibc merges them all (`malloc_consolidate`) before it serves the next large "
        "request (1 KiB or more), so whichever step runs next pays for it: a fraction of a "
        "millisecond, nothing beside optax's step, but most of a flat step on that tree. "
        "With the fast bins off the chunks are merged as they are freed, inside the step "
        "that frees them.",
    ]
    on, off = d.get(fresh_key) or {}, d.get(off_key) or {}
    both = [k for k in ff if k in on and k in off]
    if both:
        k = max(both, key=int)
        lines[-1] += (
            f" In the fresh processes, the first flatten of {k} arrays took "
            f"{on[k]['first_us']:.1f} us with the fast bins and {off[k]['first_us']:.1f} us "
            "without."
        )
    flushes = [
        r["settle_1_flush"]["optax"].get("flush_bytes") for r in rows if "settle_1_flush" in r
    ]
    flush_text = (
        f", and then write {flushes[0] / 2**20:g} MiB (`--flush-mib`) so that the timed "
        "step does not find in the caches what that step left there (a training loop's "
        "backward pass runs in between)"
        if flushes and flushes[0]
        else ""
    )
    lines[-1] += (
        " In a training loop a step follows its own previous step, so the step tables now "
        "time each JAX competitor's step after an untimed step of its own "
        f"(`bench_step.measure`, `--settle-steps`, default 1){flush_text}; each table says "
        "how its rows were measured."
    )
    lines.append("")
    return "\n".join(lines)


def leaf_totals_section(path: Path) -> str:
    d = json.loads(path.read_text())
    rows = d["rows"]
    lines = [
        "## A global norm over many leaves: compile time",
        "",
        f"`python benchmarks/bench_leaf_totals.py --rounds {d['rounds']}` on {d['device']}, "
        f"jax {d['jax']}: `params + clip_by_global_norm(1.0)(grads)` compiled three ways in one "
        "process (fastest of the rounds, the three taking turns): ours, ours with the fold of "
        "the per-leaf sums of squares left as a plain chain of additions (how optax writes it, "
        "and how ours did), and optax's. Leaves: half of shape (64,), half (16, 16). "
        f"`jaxopt_edu.tree` fences the fold off from {d['fenced_from']} leaves up on a CPU "
        "(below that, the first two columns are the same code, and their difference is "
        "noise).",
        "",
        "| leaves | compile s: ours | plain chain | optax | ours / optax | step ms: ours "
        "| plain chain | optax | ours bitwise = plain chain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, u, x = r["ours"], r["ours_unfenced"], r["optax"]
        lines.append(
            f"| {r['leaves']} | {o['compile_s']:.2f} | {u['compile_s']:.2f} | {x['compile_s']:.2f} "
            f"| {o['compile_s'] / x['compile_s']:.2f} | {o['step_s'] * 1e3:.3f} "
            f"| {u['step_s'] * 1e3:.3f} | {x['step_s'] * 1e3:.3f} "
            f"| {'yes' if r['fenced_equals_unfenced'] else 'NO'} |"
        )
    worst = max(r["max_rel_diff_optax"] for r in rows)
    lines += [
        "",
        "XLA-CPU's fusion pass makes one fusion of the chain of scalar additions; each time "
        "it weighs fusing one more per-leaf reduction into it, it counts the reductions "
        "already inside (it allows five), and it weighs them again after every fusion it "
        "makes, so the compile time of the plain chain grows with about the cube of the "
        "number of leaves. Folded inside a `jax.lax.cond` (predicate: the first sum is not "
        "NaN), the chain is compiled apart and the per-leaf reductions are never offered "
        "to it; the additions are the same, in the same order, and the parameters come out "
        "bitwise equal. The step times are a side note here: they come from the last round's "
        "executables, compiled in one order, and on many leaves carry the effect described "
        'in "The order of compilation". Optax\'s clip '
        "rescales as $(g / \\|g\\|) \\cdot c$ where ours computes "
        "$g \\cdot (c / \\|g\\|)$: the parameters differ from optax's by at most "
        f"{worst:.1e} of a leaf's largest magnitude.",
        "",
    ]
    return "\n".join(lines)


def leaf_reductions_section(path: Path) -> str:
    d = json.loads(path.read_text())
    rows = d["rows"]
    base = rows["leaves"]["step_s"]
    lines = [
        "### Why: a reduction over a slice copies the slice first",
        "",
        f"`python benchmarks/bench_leaf_reductions.py --repeats {d['repeats']}` on "
        f"{d['device']}, jax {d['jax']}: the sum of squares of each of the GPT tree's "
        f"{d['leaves']} matrices ({d['params'] / 1e6:.2f}M float32 values), over arrays of "
        "their own (pytree mode, or a group of one shape) and over slices of one shared "
        "buffer (the default flat layout), one process, the two taking turns.",
        "",
        "| leaves read from | ms per call (x arrays) | temporary / bytes reduced "
        "| minor page faults per call |",
        "|---|---|---|---|",
    ]
    names = {"leaves": "arrays of their own", "slices": "slices of one buffer"}
    for k in ("leaves", "slices"):
        r = rows[k]
        lines.append(
            f"| {names[k]} | {r['step_s'] * 1e3:.2f} ({r['step_s'] / base:.2f}x) "
            f"| {r['temp_over_reduced']:.3f} | {r['faults']:.0f} |"
        )
    lines += [
        "",
        "XLA-CPU reduces an array where it lies, but it first copies a slice of a buffer "
        "into a new temporary, as large as everything reduced. The step allocates that "
        "temporary afresh on every call, and each of its 4 KiB pages is faulted in "
        "again: those page faults, not the arithmetic, make the slices slower. The copy "
        "happens whatever form the reduction takes (`jnp.sum`, `jnp.vdot`, a row sum, a "
        "slice of a 2-D view of the buffer: all were tried), so the fix is a layout in "
        "which every per-leaf reduction reads a whole buffer: `group_by_shape=True`.",
    ]
    return "\n".join(lines) + "\n"


def scalars_section(path: Path) -> str:
    d = json.loads(path.read_text())
    t = d["step_s"]
    base = t["roof_sgd_pass0"]
    lines = [
        "### What one scalar array in the state costs per call",
        "",
        f"`benchmarks/bench_scalars.py --n {d['n']} --repeats {d['repeats']}` on "
        f"{d['device']}, jax {d['jax']}: the roofline kernel of SGD with momentum on one "
        f"{d['n']} x {d['n']} matrix, with k int32 scalars in the state that pass "
        "through or are incremented like a step count, and the two libraries' steps on "
        "the same matrix, all in one process.",
        "",
        "| k scalars | passed through: us (x k=0) | incremented: us (x k=0) |",
        "|---|---|---|",
    ]
    for k in sorted(int(n[len("roof_sgd_pass") :]) for n in t if n.startswith("roof_sgd_pass")):
        a, b = t[f"roof_sgd_pass{k}"], t.get(f"roof_sgd_inc{k}")
        inc = f"{b * 1e6:.1f} ({b / base:.3f})" if b is not None else "—"
        lines.append(f"| {k} | {a * 1e6:.1f} ({a / base:.3f}) | {inc} |")
    lines += ["", settle_sentence(d.get("settle_steps"), d.get("flush_bytes"))]
    if d.get("note"):
        lines += ["", f"Note: {d['note']}."]
    lines += ["", "| step | us | x optax |", "|---|---|---|"]
    for chain in ("sgd_momentum", "adam"):
        ours, theirs = t.get(f"jaxopt_edu_{chain}"), t.get(f"optax_{chain}")
        if ours and theirs:
            lines.append(f"| jaxopt_edu {chain} | {ours * 1e6:.1f} | {ours / theirs:.3f} |")
    return "\n".join(lines) + "\n"


def layouts_section(path: Path) -> str:
    d = json.loads(path.read_text())
    lines = [
        "## Keeping the state flat inside pytree mode",
        "",
        "`benchmarks/bench_pytree_layouts.py` writes Adam three ways by hand, same arithmetic: "
        "one m and v per leaf (what optax and pytree mode do); m and v flat, with the "
        "gradients concatenated and the update sliced back per leaf; and the same with "
        "optimization barriers so XLA cannot fuse the concatenation or the slices. "
        f"Device: {d['device']}. Ratios are to the per-leaf layout, measured in the same run.",
        "",
        "| tree | layout | step ms | step ratio | compile s | compile ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        base = r["per_leaf"]
        for k in ("per_leaf", "flat_state", "flat_state_barrier"):
            lines.append(
                f"| {r['tree']} ({r['leaves']} leaves) | {k} | {r[k]['step_s'] * 1e3:.2f} "
                f"| {r[k]['step_s'] / base['step_s']:.2f} | {r[k]['compile_s']:.2f} "
                f"| {r[k]['compile_s'] / base['compile_s']:.2f} |"
            )
    lines += [
        "",
        "Fewer arrays crossing the `jit` boundary speed up the step on many small leaves, "
        "but the per-leaf slices of the update compile more slowly than per-leaf "
        "elementwise kernels (flat_state / per_leaf compile time: "
        f"{_ratios(d['rows'], 'flat_state', 'per_leaf', 'compile_s')}), and on large leaves "
        "the concatenation of the gradients costs more than the whole per-leaf update on "
        "this CPU. Pytree mode therefore keeps "
        "optax's layout by default, and `jaxopt_edu.flatten(tx)` is the opt-in flat state: "
        "it pays off on an accelerator and on trees of many small leaves (see the ranges "
        "above).",
        "",
    ]
    if d["rows"]:
        first = d["rows"][0]["per_leaf"]
        lines[-2:-2] = [
            rounds_sentence(
                first.get("order_rounds", 1),
                "The three layouts of each tree",
                first.get("settle_steps"),
                first.get("flush_bytes"),
            ),
            "",
        ]
    return "\n".join(lines)


TRAIN_STEP_LABELS = {
    "model_sgd": "the model alone: gradient + plain SGD, pytree",
    "optax": "optax.adam, pytree params",
    "ours_pytree": "jaxopt_edu.adam, pytree params",
    "ours_flatten": "flatten(adam), defaults (64 leaves per buffer)",
    "ours_flatten_one_buffer": "flatten(adam), one shared buffer",
    "ours_flat": "flat params, one buffer (`flat.ravel` default)",
    "ours_flat_64": "flat params, `max_buffer_leaves=64`",
}


def train_step_section(path: Path, where: str = "") -> str:
    d = json.loads(path.read_text())
    res = d["results"]
    base = res["optax"]
    lines = [
        f"## A whole training step on many small leaves{' ' + where if where else ''}",
        "",
        f"`benchmarks/bench_train_step.py`: loss, gradient and Adam in one jitted step on "
        f"{d['leaves']} leaves ({d['params'] / 1e6:.2f}M params), {d['device']}, jax "
        f"{d['jax']}. In the flat layout the loss reads the leaves through `unravel()`, one "
        "slice per leaf; XLA's compile time grows faster than linearly with the slices "
        "taken from one buffer, so the number of leaves per buffer decides the compile time.",
        "",
        "| variant | layout | compile s | compile / optax | step ms | step / optax |",
        "|---|---|---|---|---|---|",
    ]
    order = rounds_sentence(
        d.get("order_rounds", 1), "The variants", d.get("settle_steps"), d.get("flush_bytes")
    )
    for k, r in res.items():
        lines.append(
            f"| {k} | {TRAIN_STEP_LABELS.get(k, k)} | {r['compile_s']:.2f} "
            f"| {r['compile_s'] / base['compile_s']:.2f} | {r['step_s'] * 1e3:.3f} "
            f"| {r['step_s'] / base['step_s']:.2f} |"
        )
    return "\n".join(lines + ["", order]) + "\n"


def leaves_section(path: Path) -> str:
    rows = json.loads(path.read_text())
    lines = [
        "## Step and compile time against the number of leaves",
        "",
        "![step and compile time against the number of leaves](img/leaves.png)",
        "",
        "| leaves | ours flat (ms / compile s) | ours pytree | ours flatten | optax "
        "| torch fused | torch foreach |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:

        def cell(k, r=r):
            if k not in r:
                return "—"
            return f"{r[k]['step_s'] * 1e3:.2f} / {r[k]['compile_s']:.2f}"

        lines.append(
            f"| {r['leaves']} | {cell('ours_flat')} | {cell('ours_pytree')} "
            f"| {cell('ours_flatten')} | {cell('optax')} "
            f"| {cell('torch_fused')} | {cell('torch_foreach')} |"
        )
    first = rows[0]["optax"] if rows else {}
    lines += [
        "",
        rounds_sentence(
            first.get("order_rounds", 1),
            "The JAX competitors of each row",
            first.get("settle_steps"),
            first.get("flush_bytes"),
        ),
    ]
    return "\n".join(lines) + "\n"


def sweep_section(path: Path) -> str:
    d = json.loads(path.read_text())
    c, r = d["config"], d["ratios"]
    return (
        "## A 64-point hyperparameter sweep\n\n"
        f"{c['points']} points (learning rate x b1) of Adam on the spirals MLP, "
        f"{c['steps']} steps each, {c['device']} ({c['cpu_count']} cores).\n\n"
        "| way | wall, compile included (s) | steady state (s) |\n|---|---|---|\n"
        f"| `jaxopt_edu.lab.sweep` (one program; on a CPU one chunk of points per core) "
        f"| {d['ours']['total_s']:.2f} | {d['ours']['steady_s']:.2f} |\n"
        f"| the same as one full `vmap` (what GPU/TPU get) | {d['ours_vmap']['total_s']:.2f} | — |\n"
        f"| the usual way: new `optax.adam` + fresh jit per point | {d['usual']['total_s']:.2f} "
        f"| {d['usual']['steady_s']:.2f} |\n"
        f"| one compiled program, run once per point | {d['one_program']['total_s']:.2f} "
        f"| {d['one_program']['steady_s']:.2f} |\n\n"
        f"usual / ours: **{r['usual_over_ours']:.1f}x**; one-program / ours: "
        f"**{r['one_program_over_ours']:.2f}x** (steady state {r['one_program_over_ours_steady']:.2f}x). "
        "On this 2-core CPU a full `vmap` of the grid compiles about twice as long as one "
        "point and runs no faster, so `sweep` runs the points one after the other inside "
        "one program per core; on an accelerator it vmaps the whole grid.\n"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-results", action="store_true")
    ap.add_argument("--results", default=str(RESULTS), help="folder of the *.json results")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args(argv)
    if not args.from_results:
        import bench_compile_order
        import bench_leaves
        import bench_pytree_layouts
        import bench_settle
        import bench_step
        import bench_sweep
        import bench_train_step

        bench_step.main([])
        bench_compile_order.main([])
        bench_settle.main([])
        bench_pytree_layouts.main([])
        bench_train_step.main([])
        bench_leaves.main([])
        bench_sweep.main([])
    results = Path(args.results)
    parts = [INTRO]
    if (results / "step.json").exists():
        parts.append(step_section(results / "step.json", "One optimizer step on this CPU"))
    if (results / "step_gpu.json").exists():
        parts.append(step_section(results / "step_gpu.json", "One optimizer step on a GPU"))
        parts.append(
            "Measured on a lent machine, by `bash benchmarks/run_gpu.sh` or the calls the note "
            "names (torch is not installed there). Each call had a time limit; a case missing "
            "from the table did not finish inside it.\n"
        )
    parts.append(findings_section(results / "step.json", results / "step_gpu.json"))
    if (results / "compile_order.json").exists():
        parts.append(compile_order_section(results / "compile_order.json", results / "step.json"))
    if (results / "settle.json").exists():
        parts.append(settle_section(results / "settle.json"))
    if (results / "step_cpu_mof.json").exists():
        parts.append(
            step_section(
                results / "step_cpu_mof.json",
                "One loop per step: XLA:CPU's multi-output fusion",
            )
            + "\n"
            + mof_text(results / "step_cpu_mof.json")
        )
    if (results / "mlp_step.json").exists():
        parts.append(mlp_step_section(results / "mlp_step.json", results / "mlp_step_cpu_mof.json"))
    if (results / "hyper_packing_gpu.md").exists():
        parts.append(
            "## Hyperparameters in the state: the cost per call\n\n"
            + (results / "hyper_packing_gpu.md").read_text()
        )
    if (results / "scalars_gpu.json").exists():
        parts.append(scalars_section(results / "scalars_gpu.json"))
    if (results / "adafactor_small.json").exists():
        parts.append(
            step_section(
                results / "adafactor_small.json",
                "A per-leaf optimizer in the flat layout: leaves per buffer",
            )
            + "\n`python benchmarks/bench_step.py --trees small --chains adafactor --no-torch "
            "--repeats 21 --flat-max-buffer-leaves 64`, then the same without the cap "
            "(`--append`): two processes, each with its own pytree and optax columns. Adafactor "
            "slices every leaf out of the flat buffer; with 64 leaves per buffer the flat step "
            "compiles 4.5x faster than with one buffer, and runs faster.\n"
        )
    if (results / "adafactor_layouts.json").exists():
        parts.append(
            step_section(
                results / "adafactor_layouts.json",
                "A per-leaf optimizer in the flat layout: leaves grouped by shape",
            )
            + "\n"
            + adafactor_layouts_text(results / "adafactor_layouts.json")
        )
    if (results / "muon_grouped.json").exists():
        parts.append(
            step_section(
                results / "muon_grouped.json", "Muon in the flat layout: leaves grouped by shape"
            )
            + "\n"
            + muon_grouped_text(results / "muon_grouped.json")
        )
    if (results / "elementwise_grouped.json").exists():
        parts.append(
            step_section(
                results / "elementwise_grouped.json",
                "Elementwise chains with the leaves grouped by shape",
            )
            + "\n"
            + elementwise_grouped_text(results / "elementwise_grouped.json", results / "step.json")
        )
    if (results / "leaf_reductions.json").exists():
        parts.append(leaf_reductions_section(results / "leaf_reductions.json"))
    if (results / "leaf_totals.json").exists():
        parts.append(leaf_totals_section(results / "leaf_totals.json"))
    if (results / "pytree_layouts.json").exists():
        parts.append(layouts_section(results / "pytree_layouts.json"))
    if (results / "train_step.json").exists():
        parts.append(train_step_section(results / "train_step.json"))
    if (results / "train_step_gpu.json").exists():
        parts.append(
            train_step_section(results / "train_step_gpu.json", "on a GPU")
            + "\nMeasured by `bash benchmarks/run_gpu.sh` (500 leaves there, to fit its time "
            "limit), before the hyperparameter packing above.\n"
        )
    if (results / "leaves.json").exists():
        parts.append(leaves_section(results / "leaves.json"))
    if (results / "sweep.json").exists():
        parts.append(sweep_section(results / "sweep.json"))
    out = Path(args.out)
    out.write_text("\n".join(parts))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
