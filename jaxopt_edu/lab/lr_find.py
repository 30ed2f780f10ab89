"""Smith's learning-rate range test, in one `lax.scan`.

The learning rate grows geometrically from `min_lr` to `max_lr` over the steps of
one short training run (set in the state with `jaxopt_edu.tree.set` at every step,
so it all compiles once); the loss first falls, then explodes. The suggestion is
the learning rate where the smoothed loss falls fastest, searched only before the
lowest point of the curve, and never above a tenth of the rate at that lowest point.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_edu as jo
from jaxopt_edu.lab.compare import _as_key, _check_count, optimizer_from_name
from jaxopt_edu.lab.problems import Problem, get_problem

__all__ = ["LRFindResult", "lr_find"]


@dataclasses.dataclass
class LRFindResult:
    """The range test's curve and its suggestion.

    Fields: `lrs` (steps,), the learning rate of each step; `losses` (steps,), the
    loss after the step taken at `lrs[t]`, NaN from the stop on; `smoothed`, their
    bias-corrected moving average, NaN from the stop on; `suggestion`, the learning
    rate at the steepest descent of `smoothed` against $\\log \\eta$ before its
    minimum, capped at a tenth of the rate at the minimum (NaN when the curve never
    descends); `stop_step`, the first masked step (None if none).

    PyTorch: none built in (the `torch-lr-finder` package; `LRFinder.range_test`).
    Pitfall: see `lr_find`'s failure modes.
    Reference: Smith 2017, https://arxiv.org/abs/1506.01186
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    stop_step: int | None = None


def _resolve(opt: Any, lr: float) -> jo.GradientTransformation:
    if isinstance(opt, jo.GradientTransformation):
        return opt
    if isinstance(opt, str):
        return optimizer_from_name(opt, lr)
    if callable(opt):
        tx = opt(lr)
        if isinstance(tx, jo.GradientTransformation):
            return tx
    raise ValueError(
        "lr_find: `optimizer_factory_or_tx` must be a GradientTransformation, an optimizer "
        "name (see DEFAULT_OPTIMIZERS) or a factory `f(learning_rate) -> "
        f"GradientTransformation` such as jaxopt_edu.adam; got {opt!r}."
    )


def _smooth_and_stop(losses: np.ndarray, smoothing: float) -> tuple[np.ndarray, int | None]:
    """Bias-corrected EMA $s_t = a_t / (1 - \\beta^{t+1})$, $a_t = \\beta a_{t-1} + (1-\\beta) L_t$.

    Stop at the first $t$ where $s_t$ is non-finite or $s_t > b_t + 3|b_t|$ with
    $b_t = \\min_{k \\le t} s_k$ (that is, $s_t > 4 b_t$ for positive losses).
    """
    beta = 1.0 - smoothing
    avg, best = 0.0, math.inf
    smoothed = np.full(losses.shape, np.nan)
    for t, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(loss)
        s = avg / (1.0 - beta ** (t + 1))
        if not math.isfinite(s) or (t > 0 and s > best + 3.0 * abs(best)):
            return smoothed, t
        smoothed[t] = s
        best = min(best, s)
    return smoothed, None


def lr_find(
    optimizer_factory_or_tx: jo.GradientTransformation | Callable[[float], Any] | str,
    problem: Problem | str,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 100,
    key: int | jax.Array = 0,
    smoothing: float = 0.05,
) -> LRFindResult:
    """Smith's learning-rate range test: train briefly with a geometrically growing rate.

    $$\\eta_t = \\eta_{min}\\,(\\eta_{max}/\\eta_{min})^{t/(T-1)},\\qquad t = 0..T-1$$

    One `lax.scan` of `steps` steps from `problem`'s standard start; at step $t$ the
    state gets `jo.tree.set(state, learning_rate=eta_t)`. The loss after each step is
    smoothed by a bias-corrected moving average (weight `smoothing` on the newest
    loss); once the smoothed loss exceeds 4x its best so far (or is non-finite), the
    rest of the curve is masked with NaN. Suggestion: the $\\eta_t$ where
    $d\\,s_t / d\\log\\eta_t$ is most negative.

    Args:
      optimizer_factory_or_tx: a factory `f(learning_rate)` (e.g. `jo.adam`), a
        GradientTransformation (its learning rate is overwritten), or a registry name.
      problem: a `Problem` or a name.
      min_lr: the first learning rate tried, `0 < min_lr < max_lr`.
      max_lr: the last learning rate tried.
      steps: at least 3; key: int seed or PRNG key (dropout); smoothing in (0, 1].

    Failure modes (read the curve, not just the number):
      * noisy losses (dropout, minibatches): the steepest point of a noisy curve is
        noise; raise the smoothing weight's memory (smaller `smoothing`) or `steps`.
      * too few steps: each learning rate gets too little training to show its
        effect; the curve lags and the suggestion shifts to larger rates.
      * a last dip just before the divergence cliff (one big lucky step) has a steep
        slope; the search therefore stops at the curve's minimum and the suggestion is
        capped at a tenth of the rate there. For long runs, a further 3x lower is safe.
      * optimizers without a `learning_rate` hyperparameter in their state (e.g. a
        bare `scale_by_adam`) cannot be tested: a `ValueError` lists what the
        state has. Parameter-free ones (adadelta) only have a multiplier to scan.
      * the test describes the start of training; the best rate later is often lower
        (pair it with a decaying schedule).

    PyTorch: none built in; `torch_lr_finder.LRFinder.range_test(start_lr, end_lr,
    num_iter, smooth_f=0.05, diverge_th=5)`.
    Reference: Smith, Cyclical learning rates for training neural networks, 2017,
    https://arxiv.org/abs/1506.01186
    """
    for name, v in (("min_lr", min_lr), ("max_lr", max_lr), ("smoothing", smoothing)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"lr_find: `{name}` must be a finite number, got {v!r}.")
    if not 0 < min_lr < max_lr:
        raise ValueError(
            f"lr_find: need 0 < `min_lr` < `max_lr`, got min_lr={min_lr!r}, max_lr={max_lr!r}."
        )
    if not 0 < smoothing <= 1:
        raise ValueError(f"lr_find: `smoothing` must be in (0, 1], got {smoothing!r}.")
    steps = _check_count("lr_find", "steps", steps, 3)
    problem = get_problem(problem) if isinstance(problem, str) else problem
    if not isinstance(problem, Problem):
        raise ValueError(f"lr_find: `problem` must be a Problem or a name, got {problem!r}.")
    tx = _resolve(optimizer_factory_or_tx, float(min_lr))
    k_init, k_run = jax.random.split(_as_key(key))
    params = problem.initial_params(k_init, 0)
    state = tx.init(params)
    if not jo.tree.get_all_with_path(state, "learning_rate"):
        try:
            jo.tree.get(state, "learning_rate")
        except KeyError as e:
            raise ValueError(
                "lr_find: the optimizer's state has no `learning_rate` to scan. "
                f"{e.args[0]} Chain it with jaxopt_edu.scale_by_learning_rate."
            ) from None

    dtype = np.dtype(jnp.asarray(1.0).dtype)
    lrs = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    grad_fn = jax.value_and_grad(problem.loss)

    @jax.jit
    def run(params, state, lrs):
        def step(carry, inp):
            params, state = carry
            t, lr = inp
            state = jo.tree.set(state, learning_rate=lr)
            loss, g = grad_fn(params, jax.random.fold_in(k_run, t))
            updates, state = tx.update(g, state, params)
            return (jo.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, state), (jnp.arange(steps), lrs))
        final = problem.loss(params, jax.random.fold_in(k_run, steps))
        # losses[t] is the loss before step t; the loss after step t is losses[t + 1].
        return jnp.concatenate([losses[1:], final[None]])

    after = np.asarray(run(params, state, jnp.asarray(lrs.astype(dtype))), np.float64)
    smoothed, stop = _smooth_and_stop(after, smoothing)
    losses = after.copy()
    if stop is not None:
        losses[stop:] = np.nan
    n = steps if stop is None else stop
    suggestion = math.nan
    # search the descent only: from the start to the lowest smoothed loss, edges excluded
    # (a last dip just before the blow-up has a steep one-sided slope that is no advice)
    lowest = int(np.nanargmin(smoothed[:n])) if n >= 1 else 0
    if lowest >= 3:
        slope = np.gradient(smoothed[: lowest + 1], np.log(lrs[: lowest + 1]))[1:-1]
        if np.min(slope) < 0:
            steepest = float(lrs[1 + int(np.argmin(slope))])
            # never above a tenth of the rate at the minimum (Smith's rule of thumb)
            suggestion = min(steepest, float(lrs[lowest]) / 10.0)
    return LRFindResult(lrs, losses, smoothed, suggestion, stop)
