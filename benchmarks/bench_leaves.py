"""Step and compile time against the number of leaves (clip + AdamW + warmup-cosine).

    python benchmarks/bench_leaves.py [--counts 125,250,500,1000,2000] [--repeats 10]

Leaves alternate between shapes (64,) and (16, 16), as in design.md's measurement.
Ours (pytree and flat layouts, and `flatten(tx)`), optax and, when installed, torch.optim AdamW
(fused and foreach, with foreach global-norm clipping) run in the same process, the JAX
competitors compiled in rounds with the order rotated (`bench_step.measure_rotated`).
Writes `benchmarks/results/leaves.json` and the plot `docs/img/leaves.png`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import bench_step as bs

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="125,250,500,1000,2000")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "leaves.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "img" / "leaves.png"))
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    chain = "clip_adamw_cosine"
    rows = []
    for n in counts:
        shapes = bs.small_leaves_tree(n)
        row = {"leaves": n} | bs.bench_row(chain, shapes, args.repeats, not args.no_torch)
        rows.append(row)
        print(
            f"{n:5d} leaves: "
            + ", ".join(
                f"{k} {v['step_s'] * 1e3:.2f} ms / compile {v['compile_s']:.2f} s"
                for k, v in row.items()
                if isinstance(v, dict)
            ),
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    plot(rows, args.plot)
    return rows


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [r["leaves"] for r in rows]
    for key, style in [
        ("ours_flat", "o-"),
        ("ours_pytree", "s-"),
        ("ours_flatten", "d-"),
        ("optax", "^-"),
        ("torch_fused", "x--"),
        ("torch_foreach", "+--"),
        ("roofline", "k:"),
    ]:
        if key not in rows[0]:
            continue
        a1.plot(xs, [r[key]["step_s"] * 1e3 for r in rows], style, label=key)
        if not key.startswith("torch"):
            a2.plot(xs, [r[key]["compile_s"] for r in rows], style, label=key)
    for ax, title in [(a1, "step time (ms)"), (a2, "compile time (s)")]:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of leaves")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("clip_by_global_norm + AdamW + warmup-cosine, leaves of 64 or 16x16 floats")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
