"""Momentum: a running sum (`trace`) or a running average (`ema`) of the updates."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule, Updates
from jaxopt_edu.hyper import NONNEG, UNIT, Hyper, HyperParams

__all__ = ["EmaState", "TraceState", "ema", "trace"]


class TraceState(NamedTuple):
    """State of `trace`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    trace: Updates  # the momentum buffer
    hyperparams: HyperParams


class EmaState(NamedTuple):
    """State of `ema`."""

    count: jax.Array | None  # shape=(), int32; None without `debias` and no schedule
    ema: Updates  # the moving average (before debiasing)
    hyperparams: HyperParams


def _axpy(decay, x, y):
    """x + decay * y, leaf by leaf, in the dtype of `y` (the buffer)."""

    def f(a, b):
        dt = tree.promote(tree.compute_dtype(a), tree.compute_dtype(b))
        return (a.astype(dt) + decay.astype(dt) * b.astype(dt)).astype(b.dtype)

    return jax.tree.map(f, x, y)


def trace(
    decay: ScalarOrSchedule, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Heavy-ball momentum: accumulate a decaying sum of past updates.

    $$b_t = g_t + \\mu\\, b_{t-1},\\qquad u_t = b_t \\quad(\\text{Nesterov: } u_t = g_t + \\mu\\, b_t)$$

    Args:
      decay: the momentum coefficient $\\mu \\ge 0$ (the hyperparameter `decay`;
        aliases such as `sgd` expose it as `momentum`).
      nesterov: use Nesterov's look-ahead form.
      accumulator_dtype: storage dtype of the buffer (default: the params' dtype).

    PyTorch: `torch.optim.SGD(momentum=mu, dampening=0, nesterov=...)` (same numbers).
    Pitfall: the effective step is about lr / (1 - mu): raising mu from 0.9 to 0.99
    multiplies it by ten, so lower the learning rate with it.
    Reference: Polyak 1964, https://doi.org/10.1016/0041-5553(64)90137-5; Sutskever
    et al. 2013, https://proceedings.mlr.press/v28/sutskever13.html
    """
    hyper = Hyper("trace", decay=(decay, NONNEG))

    def init_fn(params):
        return TraceState(
            count=hyper.init_count(),
            trace=tree.zeros_like(params, accumulator_dtype),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.trace, "updates", "state.trace")
        mu = state.hyperparams.values["decay"]
        new_trace = _axpy(mu, updates, state.trace)
        # where XLA:CPU can then make one loop of the step (tree.recompute_for_update)
        b = tree.recompute_for_update(lambda g, t: _axpy(mu, g, t), new_trace, updates, state.trace)
        out = _axpy(mu, updates, tree.cast_like(b, updates)) if nesterov else b
        count, hp_next = hyper.step(state.hyperparams, state.count)
        out = tree.cast_like(out, updates)
        return out, TraceState(count, new_trace, hp_next)

    return GradientTransformation(init_fn, update_fn)


def ema(
    decay: ScalarOrSchedule, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Exponential moving average of the updates, optionally debiased.

    $$a_t = \\beta a_{t-1} + (1-\\beta) g_t,\\qquad u_t = a_t / (1-\\beta^t)\\ \\text{(debias)}$$

    Args:
      decay: $\\beta \\in [0, 1]$.
      debias: divide by $1-\\beta^t$ so early averages are not pulled toward zero.
      accumulator_dtype: storage dtype of the average (default: the params' dtype).

    PyTorch: none as an optimizer; it is Adam's first moment on its own.
    Pitfall: without `debias` the first updates are $(1-\\beta)$ times too small.
    Reference: Kingma & Ba, Adam, section 3, https://arxiv.org/abs/1412.6980
    """
    hyper = Hyper("ema", decay=(decay, UNIT))

    def init_fn(params):
        return EmaState(
            count=hyper.init_count(debias),
            ema=tree.zeros_like(params, accumulator_dtype),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.ema, "updates", "state.ema")
        beta = state.hyperparams.values["decay"]
        new_ema = tree.update_moment(updates, state.ema, beta, 1)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        out = tree.bias_correction(new_ema, beta, count) if debias else new_ema
        out = tree.cast_like(out, updates)
        return out, EmaState(count, new_ema, hp_next)

    return GradientTransformation(init_fn, update_fn)
