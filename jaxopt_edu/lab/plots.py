"""Plots that show an optimizer at work: paths on a contour map, loss curves, sweep
heat maps, the learning-rate finder curve and histograms of the optimizer's state.

Every function returns a `matplotlib.figure.Figure` and, when `path` is given, also
writes it to disk (PNG, or GIF for an animated trajectory). matplotlib is imported
inside the functions, so `jaxopt_edu.lab` works without it; the figures are drawn
on the non-interactive Agg canvas and never touch `pyplot`'s global state (no
windows open, nothing leaks between calls, safe in scripts, tests and servers).

Install the plotting extra with `pip install "jaxopt_edu[lab]"`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_edu.base import GradientTransformation, apply_updates

__all__ = [
    "plot_losses",
    "plot_lr_find",
    "plot_state_histograms",
    "plot_sweep",
    "plot_trajectories",
    "trajectory",
]

_INSTALL_HINT = (
    'plotting needs matplotlib: pip install "jaxopt_edu[lab]" (or: pip install matplotlib)'
)


def _new_figure(nrows: int = 1, ncols: int = 1, *, figsize=(7.0, 5.0), squeeze: bool = True):
    """A Figure on an Agg canvas (no pyplot), with its axes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(_INSTALL_HINT) from e
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def _save(fig, path: str | Path | None, **kwargs) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=kwargs.pop("dpi", 100), **kwargs)


def _as_key(key: int | jax.Array) -> jax.Array:
    return jax.random.PRNGKey(key) if isinstance(key, int | np.integer) else key


def _quiet(fn, *args, **kwargs):
    """Call a numpy nan-reduction without its 'all-NaN slice' RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- trajectories


def trajectory(
    tx: GradientTransformation, problem: Any, steps: int, key: int | jax.Array = 0
) -> np.ndarray:
    """Run `tx` on `problem.loss` for `steps` steps and return every iterate.

    The run is one jitted `lax.scan`. It starts at `problem.initial_params(init_key,
    key)`: for `key=0` that is a test function's standard start (Rosenbrock's
    (-1.2, 1)), for other keys a start perturbed at random; step `t` follows
    `jax.grad(problem.loss)(params, fold_in(loss_key, t))`, where
    `init_key, loss_key = jax.random.split(PRNGKey(key))`.

    Returns:
      A float array of shape `(steps + 1, 2)`: row 0 is the start, row `t` the
      parameters after `t` updates. Feed a dict of them to `plot_trajectories`.

    Pitfall: only for problems whose parameters flatten to exactly two numbers (the
    2-D test functions); a `ValueError` says so otherwise. A run that diverges gives
    inf/NaN rows from then on; the plot stops the path where it leaves the map.
    """
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"trajectory: steps must be a positive integer, got {steps!r}.")
    init_key, loss_key = jax.random.split(_as_key(key))
    if hasattr(problem, "initial_params"):  # seed 0 starts at the function's standard start
        seed_index = int(key) if isinstance(key, int | np.integer) else 1
        params0 = problem.initial_params(init_key, seed_index)
    else:
        params0 = problem.init(init_key)
    flat0, _ = ravel_pytree(params0)
    if flat0.size != 2:
        raise ValueError(
            f"trajectory: problem {getattr(problem, 'name', problem)!r} has {flat0.size} "
            "parameters; trajectories are drawn for 2-D problems only."
        )
    grad_fn = jax.grad(problem.loss)

    def step(carry, t):
        params, state = carry
        grads = grad_fn(params, jax.random.fold_in(loss_key, t))
        updates, state = tx.update(grads, state, params)
        params = apply_updates(params, updates)
        return (params, state), ravel_pytree(params)[0]

    @jax.jit
    def run(params):
        _, path = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
        return path

    path = np.asarray(run(params0))
    return np.concatenate([np.asarray(flat0)[None, :], path], axis=0)


def _optimum_points(problem: Any) -> np.ndarray:
    """The known minimiser(s) of a 2-D problem as an (n, 2) array (n may be 0)."""
    opt = getattr(problem, "optimum", None)
    if opt is None:
        return np.zeros((0, 2))
    if isinstance(opt, list | tuple) and opt and not np.isscalar(opt[0]):
        pts = [np.asarray(ravel_pytree(o)[0], dtype=float) for o in opt]
        return np.stack(pts).reshape(-1, 2)
    arr = np.asarray(ravel_pytree(opt)[0], dtype=float)
    return arr.reshape(-1, 2) if arr.size % 2 == 0 else np.zeros((0, 2))


def _view_box(starts: np.ndarray, paths: list[np.ndarray], optimum: np.ndarray):
    """Bounds that show the starts, the optimum and the paths, but not a divergence."""
    anchor = np.concatenate([starts, optimum], axis=0)
    lo, hi = anchor.min(axis=0), anchor.max(axis=0)
    center, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1.0)
    limit_lo, limit_hi = center - 3 * half, center + 3 * half
    for p in paths:
        ok = np.all(np.isfinite(p), axis=1) & np.all((p >= limit_lo) & (p <= limit_hi), axis=1)
        if ok.any():
            lo = np.minimum(lo, p[ok].min(axis=0))
            hi = np.maximum(hi, p[ok].max(axis=0))
    pad = np.maximum((hi - lo) * 0.12, 0.25)
    return lo - pad, hi + pad


def _loss_grid(problem: Any, like: Any, lo: np.ndarray, hi: np.ndarray, n: int = 160):
    flat0, unravel = ravel_pytree(like)
    xs = np.linspace(lo[0], hi[0], n)
    ys = np.linspace(lo[1], hi[1], n)
    gx, gy = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=flat0.dtype)
    key = jax.random.PRNGKey(0)
    z = jax.jit(jax.vmap(lambda p: problem.loss(unravel(p), key)))(pts)
    return gx, gy, np.asarray(z, dtype=float).reshape(gx.shape)


def plot_trajectories(
    problem: Any,
    trajectories: Mapping[str, chex.Array],
    path: str | Path | None = None,
    animate: bool = False,
    *,
    fps: int = 8,
    max_frames: int = 30,
):
    """Contour map of a 2-D test function with each optimizer's path drawn on it.

    How to read it: contour levels are log-spaced above the lowest value on the map,
    so the floor of a narrow valley (Rosenbrock's banana) stays visible; the star(s)
    mark the known minimiser(s), the circles the starting points, and each line is
    one optimizer's sequence of iterates (the marker at its end is where it stopped).
    Zig-zags across a valley mean the step is too large for the curvature in that
    direction (momentum or an adaptive method helps); a path that stops short of the
    star is the course's premature convergence (or a learning rate that is too small).

    Args:
      problem: a 2-D problem from `jaxopt_edu.lab.problems` (`init`, `loss`, `optimum`).
      trajectories: optimizer name -> array `(steps + 1, 2)` of iterates, e.g. from
        `trajectory(tx, problem, steps)`.
      path: where to write the picture (PNG; a GIF when `animate=True`).
      animate: write an animated GIF (matplotlib's `PillowWriter`) that draws the paths
        step by step; needs `path` and Pillow.
      fps: frame rate of the GIF.
      max_frames: the most frames of the GIF (long runs are subsampled evenly).

    Returns:
      The Figure (showing the complete paths). One `Line2D` per optimizer.

    Pitfall: a path that diverges leaves the map; its legend entry says "left the
    map". The map is evaluated with a fixed key, so a stochastic loss looks smooth.
    """
    if not trajectories:
        raise ValueError("plot_trajectories: `trajectories` is empty; give at least one path.")
    if animate and path is None:
        raise ValueError("plot_trajectories: animate=True writes a GIF; give `path=...gif`.")
    from matplotlib.colors import LogNorm

    paths = {name: np.asarray(p, dtype=float).reshape(-1, 2) for name, p in trajectories.items()}
    optimum = _optimum_points(problem)
    starts = np.stack([p[0] for p in paths.values()])
    lo, hi = _view_box(starts, list(paths.values()), optimum)
    like = problem.init(jax.random.PRNGKey(0))
    gx, gy, z = _loss_grid(problem, like, lo, hi)

    fig, ax = _new_figure(figsize=(7.0, 5.6))
    finite = np.isfinite(z)
    if finite.any():
        zmin, zmax = float(z[finite].min()), float(z[finite].max())
        span = max(zmax - zmin, 1e-12)
        shifted = np.where(finite, z - zmin, np.nan) + span * 1e-6
        levels = np.geomspace(span * 1e-4, span * (1 + 1e-6), 25)
        cs = ax.contour(gx, gy, shifted, levels=levels, cmap="viridis", norm=LogNorm(), alpha=0.7)
        cbar = fig.colorbar(cs, ax=ax)
        decades = 10.0 ** np.arange(math.ceil(math.log10(levels[0])), math.log10(levels[-1]) + 1)
        cbar.set_ticks(decades, labels=[f"{d:g}" for d in decades])
        cbar.set_label("loss − lowest loss on the map (log-spaced levels)")
    if len(optimum):
        ax.scatter(
            optimum[:, 0],
            optimum[:, 1],
            marker="*",
            s=260,
            c="gold",
            edgecolors="black",
            zorder=5,
            label="optimum",
        )
    ax.scatter(
        starts[:, 0],
        starts[:, 1],
        marker="o",
        s=50,
        facecolors="none",
        edgecolors="black",
        zorder=5,
        label="start",
    )

    lines = {}
    for name, p in paths.items():
        inside = np.all(np.isfinite(p), axis=1) & np.all((p >= lo) & (p <= hi), axis=1)
        label = name if inside.all() else f"{name} (left the map)"
        (line,) = ax.plot(
            p[:, 0], p[:, 1], "-", marker="o", markevery=[-1], ms=5, lw=1.6, label=label, zorder=4
        )
        lines[name] = line
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    steps = max(len(p) for p in paths.values()) - 1
    ax.set_title(f"{getattr(problem, 'name', 'problem')}: {steps} steps")
    ax.legend(loc="best", fontsize="small")

    if animate:
        _animate(fig, lines, paths, steps, path, fps=fps, max_frames=max_frames)
    else:
        _save(fig, path)
    return fig


def _animate(fig, lines, paths, steps, path, *, fps: int, max_frames: int) -> None:
    try:
        from matplotlib.animation import PillowWriter
    except ImportError as e:  # pragma: no cover
        raise ImportError(_INSTALL_HINT) from e

    ax = next(iter(lines.values())).axes
    title = ax.get_title()

    def draw(k):
        for name, line in lines.items():
            p = paths[name][:k]
            line.set_data(p[:, 0], p[:, 1])
        ax.set_title(title if k > steps else f"{title.split(':')[0]}: step {k - 1} of {steps}")

    fig.canvas.draw()  # settle the constrained layout once, then freeze it:
    layout = fig.get_layout_engine()  # re-running it for every frame doubles the time
    fig.set_layout_engine("none")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A plain loop over PillowWriter draws each frame once (FuncAnimation draws twice).
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, path, dpi=72):
        for k in np.unique(np.linspace(1, steps + 1, min(max_frames, steps + 1)).astype(int)):
            draw(k)
            writer.grab_frame()
    draw(steps + 1)  # leave the figure showing the whole paths
    fig.set_layout_engine(layout)


# --------------------------------------------------------------------------- loss curves


def _history_array(history: Mapping[str, Any], key: str) -> np.ndarray | None:
    if key not in history or history[key] is None:
        return None
    a = np.asarray(history[key], dtype=float)
    return a[None, :] if a.ndim == 1 else a


def _center_band(a: np.ndarray, band: str):
    a = np.where(np.isfinite(a), a, np.nan)
    if band == "std":
        mean = _quiet(np.nanmean, a, axis=0)
        std = _quiet(np.nanstd, a, axis=0)
        return mean, mean - std, mean + std
    return (
        _quiet(np.nanmedian, a, axis=0),
        _quiet(np.nanmin, a, axis=0),
        _quiet(np.nanmax, a, axis=0),
    )


def _styles(n: int) -> list[dict]:
    """Distinct colour/line-style pairs: matplotlib's 10 colours repeat after 10 lines."""
    import matplotlib

    colors = matplotlib.colormaps["tab10" if n <= 10 else "tab20"].colors
    dashes = ["-", "--", ":", "-."]
    return [
        {"color": colors[i % len(colors)], "linestyle": dashes[(i // len(colors)) % 4]}
        for i in range(n)
    ]


def plot_losses(
    result: Any,
    path: str | Path | None = None,
    log: bool = True,
    *,
    band: str = "minmax",
    subtract_optimum: bool = True,
):
    """Training-loss curves of every optimizer in a `compare` result, band over seeds.

    How to read it: one line per optimizer (the median over seeds, or the mean with
    `band="std"`) and a shaded band (min to max over seeds, or mean ± one standard
    deviation). A wide band means the outcome depends on the seed, i.e. on the
    initialisation or the data order: compare optimizers by their bands, not by
    single runs. An "x" marks a run that went to inf/NaN (divergence: the learning
    rate is too high). When the result has a validation metric, a second panel shows
    it at the evaluation steps (the course's "evaluate periodically"): training loss
    going down while the validation metric gets worse is overfitting.

    Args:
      result: a `CompareResult` (`history[name]["loss"]` shaped `(seeds, steps)`).
      path: where to write the PNG.
      log: log-scale y axis (default). Losses that span decades are readable only on
        a log scale.
      band: "minmax" (default) or "std".
      subtract_optimum: for test functions with a known minimum value `f*`, plot
        `loss - f*` (the suboptimality), which is what a log scale should show.

    Returns:
      The Figure; its first axes holds one `Line2D` per optimizer.

    Pitfall: a log scale cannot show zero or negative values: a loss that goes
    negative (a shifted function, a game, a log-likelihood) would simply vanish.
    When that happens this switches the axis to "symlog" and says so in the title;
    pass `log=False` for a linear axis.
    """
    if band not in ("minmax", "std"):
        raise ValueError(f"plot_losses: band must be 'minmax' or 'std', got {band!r}.")
    history = result.history
    names = list(history)
    offset = 0.0
    problem = getattr(result, "problem", None)
    f_star = getattr(problem, "optimum_value", None)
    if subtract_optimum and f_star is not None:
        offset = float(f_star)
    val = {n: _history_array(history[n], "val_metric") for n in names}
    has_val = any(v is not None and v.size and np.isfinite(v).any() for v in val.values())
    fig, axes = _new_figure(
        1, 2 if has_val else 1, figsize=(12.0 if has_val else 7.0, 4.8), squeeze=False
    )
    ax = axes[0, 0]
    nonpositive = False
    styles = _styles(len(names))
    starts = []
    for name, style in zip(names, styles, strict=True):
        loss = _history_array(history[name], "loss") - offset
        steps = np.arange(loss.shape[1])  # loss[t] is measured after t updates
        center, low, high = _center_band(loss, band)
        nonpositive |= bool(np.any(np.isfinite(loss) & (loss <= 0)))
        if np.isfinite(center[0]):
            starts.append(abs(float(center[0])))
        (line,) = ax.plot(steps, center, lw=1.6, label=name, **style)
        if loss.shape[0] > 1:
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, lw=0)
        bad = ~np.all(np.isfinite(loss), axis=0)
        if bad.any():
            first = int(np.argmax(bad))
            y = center[max(first - 1, 0)]
            y = y if np.isfinite(y) else _quiet(np.nanmax, center)
            if np.isfinite(y):
                ax.scatter([steps[first]], [y], marker="x", s=80, color=line.get_color(), zorder=5)
    seeds = _history_array(history[names[0]], "loss").shape[0]
    what = "loss − f*" if offset or (subtract_optimum and f_star is not None) else "training loss"
    title = f"{what} ({'median, min–max' if band == 'minmax' else 'mean ± std'} over {seeds} seeds)"
    if seeds == 1:
        title = f"{what} (1 seed)"
    if log:
        if nonpositive:
            ax.set_yscale("symlog", linthresh=1e-3)
            title += " — symlog: values ≤ 0 present"
        else:
            ax.set_yscale("log")
    if starts and max(starts) > 0 and ax.get_ylim()[1] > 10.0 * max(starts):
        # a diverged run would stretch the axis to 1e30 and flatten every other curve
        ax.set_ylim(top=10.0 * max(starts))
        title += " — axis capped at 10x the start"
    if problem is not None and getattr(problem, "name", None):
        title = f"{problem.name}: {title}"
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("step")
    ax.set_ylabel(what)
    ax.legend(fontsize="small")
    if has_val:
        vax = axes[0, 1]
        for name in names:
            v = val[name]
            if v is None:
                vax.plot([], [], label=name)
                continue
            x = history[name].get("val_steps", getattr(result, "val_steps", None))
            x = np.arange(1, v.shape[1] + 1) if x is None else np.asarray(x)
            center, low, high = _center_band(v, band)
            (line,) = vax.plot(x, center, lw=1.6, marker=".", label=name)
            if v.shape[0] > 1:
                vax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
        metric = getattr(problem, "val_metric_name", None) or "validation metric"
        vax.set_title(f"{metric} (validation)", fontsize="medium")
        vax.set_xlabel("step")
        vax.set_ylabel(metric)
        vax.legend(fontsize="small")
    _save(fig, path)
    return fig


# --------------------------------------------------------------------------- sweeps


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.3g}"
    return str(v)


def plot_sweep(result: Any, path: str | Path | None = None):
    """The sweep's score over a hyperparameter grid: heat map for two axes, a line for one.

    How to read it: each cell is one configuration's score, the metric the sweep
    ranked by (`result.metric`: the final training loss by default; log10 colour
    scale for positive losses; grey cells diverged to inf/NaN, with "div" written
    in them); the star marks the best point. A best point on the edge of the grid
    means the optimum may lie outside it: widen the grid in that direction. A
    diagonal band of good cells (learning rate x b1, for example) shows two
    hyperparameters that trade against each other. With more than two axes the map
    shows the first two, each cell the best over the other axes.

    Args:
      result: a `SweepResult` (`names`, `values`, `final_loss` shaped like the grid,
        and `metric`, `scores`, `best` when present).
      path: where to write the PNG.

    Returns:
      The Figure: one `AxesImage` (two or more axes) or one `Line2D` (one axis).

    Pitfall: the final loss of a short run favours large learning rates that would
    be unstable later; check the curves (`plot_losses`) of the best few settings.
    Reference: Bergstra & Bengio 2012, random vs grid search,
    https://jmlr.org/papers/v13/bergstra12a.html
    """
    names = list(result.names)
    values = [np.asarray(v, dtype=float) for v in result.values]
    metric = getattr(result, "metric", None) or "final_loss"
    scores = getattr(result, "scores", None)
    scores = np.asarray(result.final_loss if scores is None else scores, dtype=float)
    scores = np.where(np.isfinite(scores), scores, np.nan)
    if scores.ndim == 0 or not names:
        raise ValueError("plot_sweep: the sweep has no axes to plot.")
    problem = getattr(result, "problem", None)
    higher = metric == "val_metric" and bool(getattr(problem, "higher_is_better", False))
    label = {"final_loss": "final training loss", "best_loss": "best training loss"}.get(
        metric, getattr(problem, "val_metric_name", None) or metric
    )
    finite = np.isfinite(scores).any()
    best = getattr(result, "best", None) or {}
    best_idx = best.get("index")
    if best_idx is None and finite:
        pick = np.nanargmax if higher else np.nanargmin
        best_idx = np.unravel_index(int(_quiet(pick, scores)), scores.shape)
    log = metric != "val_metric" and finite and _quiet(np.nanmin, scores) > 0

    if scores.ndim == 1:
        fig, ax = _new_figure(figsize=(7.0, 4.8))
        x = values[0]
        ax.plot(x, scores, marker="o", lw=1.6, label=label)
        if _log_spaced(x):
            ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        if best_idx is not None:
            i = best_idx[0]
            ax.scatter([x[i]], [scores[i]], marker="*", s=250, c="gold", edgecolors="black",
                       zorder=5, label=f"best: {names[0]}={_fmt(x[i])}")  # fmt: skip
        diverged = ~np.isfinite(scores)
        if diverged.any() and finite:
            y = np.full(int(diverged.sum()), _quiet(np.nanmax, scores))
            ax.scatter(x[diverged], y, marker="x", c="red", label="diverged (inf/NaN)")
        ax.set_xlabel(names[0])
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
        ax.set_title(f"sweep: {label}", fontsize="medium")
        _save(fig, path)
        return fig

    grid, reduced = scores, ""
    if scores.ndim > 2:
        grid = _quiet(np.nanmax if higher else np.nanmin, scores, axis=tuple(range(2, scores.ndim)))
        reduced = f" (best over {', '.join(names[2:])})"
    from matplotlib import colormaps

    fig, ax = _new_figure(figsize=(7.5, 5.6))
    shown = np.log10(grid) if log else grid
    cmap = colormaps["viridis" if higher else "viridis_r"].with_extremes(bad="lightgrey")
    im = ax.imshow(shown.T, origin="lower", aspect="auto", cmap=cmap)
    fig.colorbar(im, ax=ax).set_label(f"log10 {label}" if log else label)
    ax.set_xticks(range(len(values[0])), [_fmt(v) for v in values[0]], rotation=45)
    ax.set_yticks(range(len(values[1])), [_fmt(v) for v in values[1]])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if grid.size <= 100:
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ok = np.isfinite(grid[i, j])
                r, g, b, _ = im.cmap(im.norm(shown[i, j])) if ok else (1, 1, 1, 1)
                color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                text = f"{grid[i, j]:.2g}" if ok else "div"
                ax.text(i, j, text, ha="center", va="center", fontsize=7, color=color)
    if best_idx is not None:
        i, j = int(best_idx[0]), int(best_idx[1])
        ax.scatter([i], [j], marker="*", s=300, c="gold", edgecolors="black", zorder=5,
                   label=f"best: {names[0]}={_fmt(values[0][i])}, {names[1]}={_fmt(values[1][j])}")  # fmt: skip
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.18), fontsize="small")
    ax.set_title(f"sweep: {label}{reduced}", fontsize="medium")
    _save(fig, path)
    return fig


def _log_spaced(x: np.ndarray) -> bool:
    x = x[np.isfinite(x)]
    return x.size > 2 and bool(np.all(x > 0)) and x.max() / x.min() >= 20


# --------------------------------------------------------------------------- lr finder


def plot_lr_find(result: Any, path: str | Path | None = None):
    """The learning-rate range test: loss against learning rate on a log axis.

    How to read it: the loss stays flat while the learning rate is too small to
    matter, falls where it starts to learn, and shoots up where the steps become
    unstable. The vertical line is the suggested learning rate (on the steepest
    descent of the smoothed curve, a bit below the minimum); a good range is about
    one decade below the point where the curve turns up.

    Args:
      result: an `LRFindResult` (`lrs`, `losses`, `smoothed`, `suggestion`).
      path: where to write the PNG.

    Returns:
      The Figure: the raw losses (thin), the smoothed curve (thick) and the
      suggestion (a vertical line).

    Pitfall: each point was measured after a different number of steps, so the
    curve mixes "learning rate" with "training time"; a test that is too short
    suggests a rate that is too large. The loss axis is logarithmic when all losses
    are positive.
    Reference: Smith 2017, Cyclical Learning Rates, https://arxiv.org/abs/1506.01186
    """
    lrs = np.asarray(result.lrs, dtype=float)
    losses = np.asarray(result.losses, dtype=float)
    smoothed = np.asarray(result.smoothed, dtype=float)
    fig, ax = _new_figure(figsize=(7.0, 4.8))
    ax.plot(lrs, np.where(np.isfinite(losses), losses, np.nan), lw=0.8, alpha=0.5, label="loss")
    ax.plot(lrs, np.where(np.isfinite(smoothed), smoothed, np.nan), lw=2.0, label="smoothed")
    ax.set_xscale("log")
    finite = np.concatenate([losses[np.isfinite(losses)], smoothed[np.isfinite(smoothed)]])
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
    if finite.size:  # keep the explosion at the end from squashing the curve
        first = finite[: max(1, finite.size // 10)]
        ax.set_ylim(top=max(float(np.max(first)) * 4, float(np.median(finite)) * 2))
    suggestion = getattr(result, "suggestion", None)
    if suggestion is not None and np.isfinite(suggestion):
        ax.axvline(float(suggestion), color="red", ls="--", label=f"suggestion: {suggestion:.3g}")
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test", fontsize="medium")
    ax.legend(fontsize="small")
    _save(fig, path)
    return fig


# --------------------------------------------------------------------------- optimizer state


def _state_groups(state: Any) -> dict[str, list[np.ndarray]]:
    """Floating, non-scalar state leaves grouped by their state field (e.g. `[0].mu`)."""
    groups: dict[str, list[np.ndarray]] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        arr = np.asarray(leaf)
        if arr.ndim == 0 or not np.issubdtype(arr.dtype, np.inexact):
            continue
        names = [k.name for k in path if isinstance(k, jax.tree_util.GetAttrKey)]
        if "hyperparams" in names:
            continue
        cut = next(
            (i + 1 for i, k in enumerate(path) if isinstance(k, jax.tree_util.GetAttrKey)),
            len(path),
        )
        label = jax.tree_util.keystr(path[:cut]) or "state"
        groups.setdefault(label, []).append(np.abs(arr).astype(float).ravel())
    return groups


def plot_state_histograms(state: Any, path: str | Path | None = None, *, bins: int = 50):
    """Histograms of log10|x| for each array field of an optimizer state.

    One panel per state field that holds parameter-shaped arrays (for Adam: `mu`,
    the first moment, and `nu`, the second), pooled over all parameter leaves;
    scalars (`count`, the hyperparameters) are skipped. Exact zeros cannot be shown
    on a log axis and are counted in each panel's title.

    How to read it: for Adam, `sqrt(nu)` against `eps` tells whether eps dominates
    the denominator: if much of `nu` lies below `eps**2` (1e-16 by default), those
    coordinates take tiny momentum-SGD steps instead of adaptive ones. A `nu` that
    spans many decades shows why per-coordinate scaling helps. Many zeros in `mu`
    right after `init` is normal; after training it means dead units.

    Args:
      state: an optimizer state (any pytree; batched states are pooled).
      path: where to write the PNG.
      bins: histogram bins per panel.

    Returns:
      The Figure, one axes per field.
    """
    groups = _state_groups(state)
    if not groups:
        raise ValueError(
            "plot_state_histograms: the state has no array fields to show (only scalars: "
            "stateless or scalar-only transformations such as sgd without momentum)."
        )
    n = len(groups)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = _new_figure(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    flat_axes = axes.ravel()
    for ax, (label, parts) in zip(flat_axes, groups.items(), strict=False):
        x = np.concatenate(parts)
        zeros = int(np.sum(x == 0))
        x = x[np.isfinite(x) & (x > 0)]
        if x.size:
            ax.hist(np.log10(x), bins=bins, color="tab:blue", alpha=0.8)
        ax.set_title(f"{label}  (n={x.size + zeros}, zeros={zeros})", fontsize="small")
        ax.set_xlabel("log10 |value|")
        ax.set_ylabel("count")
    for ax in flat_axes[n:]:
        ax.set_visible(False)
    _save(fig, path)
    return fig
