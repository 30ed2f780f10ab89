"""Multiplying updates by a number: constant, learning rate, schedule, sign."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule, stateless
from jaxopt_edu.hyper import ANY, NONNEG, Hyper, HyperParams


class ScaleState(NamedTuple):
    """State of `scale`, `scale_by_learning_rate` and `scale_by_schedule`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    hyperparams: HyperParams


def _scaling(owner: str, name: str, value, interval, sign: float) -> GradientTransformation:
    hyper = Hyper(owner, **{name: (value, interval)})

    def init_fn(params):
        del params
        return ScaleState(count=hyper.init_count(), hyperparams=hyper.init())

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        factor = state.hyperparams.values[name]
        updates = tree.scale(sign * factor, updates)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        return updates, ScaleState(count, hp_next)

    return GradientTransformation(init_fn, update_fn)


def scale(step_size: ScalarOrSchedule) -> GradientTransformation:
    """Multiply updates by a fixed factor: $u_t = \\alpha\\, g_t$.

    Args:
      step_size: the factor $\\alpha$ (any sign), or a schedule of the step count.

    PyTorch: none (a hand-written `p.grad.mul_(alpha)`).
    Pitfall: no sign flip happens here; descent needs a negative factor or
    `scale_by_learning_rate`.
    Reference: optax.scale.
    """
    return _scaling("scale", "step_size", step_size, ANY, 1.0)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiply updates by $-\\eta$: the one place where descent flips the sign.

    $$u_t = -\\eta_t\\, g_t \\quad(\\text{or } +\\eta_t g_t \\text{ with flip\\_sign=False})$$

    Args:
      learning_rate: $\\eta \\ge 0$, or a schedule $\\eta_t$ of the step count.
      flip_sign: multiply by $-\\eta$ (descent) instead of $+\\eta$.

    PyTorch: the `lr` of every `torch.optim` optimizer.
    Pitfall: the most important hyperparameter of all (the course's "bad
    hyperparameters" trap): too large diverges, too small looks like convergence but
    is a crawl. Use a learning-rate range test before a long run.
    Reference: Robbins & Monro 1951, https://doi.org/10.1214/aoms/1177729586
    """
    return _scaling(
        "scale_by_learning_rate", "learning_rate", learning_rate, NONNEG, -1.0 if flip_sign else 1.0
    )


def scale_by_schedule(step_size_fn: ScalarOrSchedule) -> GradientTransformation:
    """Multiply updates by a schedule of the step count: $u_t = s(t)\\, g_t$.

    Args:
      step_size_fn: a function of the step count (or a constant), kept in the state
        as the hyperparameter `step_size`.

    PyTorch: `torch.optim.lr_scheduler.LambdaLR` (multiplies the learning rate).
    Pitfall: the count starts at 0 for the first update, so `s(0)` scales step one.
    Reference: optax.scale_by_schedule.
    """
    return _scaling("scale_by_schedule", "step_size", step_size_fn, ANY, 1.0)


def scale_by_sign() -> GradientTransformation:
    """Keep only the sign of each update: $u_t = \\operatorname{sign}(g_t)$.

    Every coordinate then moves by exactly the learning rate, whatever the gradient's
    magnitude (signSGD; Lion and Rprop build on it).

    PyTorch: none (`torch.optim.Rprop` uses signs with per-coordinate steps).
    Pitfall: zero gradients give zero, and the step never shrinks near a minimum:
    pair it with a decaying learning rate.
    Reference: Bernstein et al., signSGD, https://arxiv.org/abs/1802.04434
    """

    return stateless(lambda updates, params: jax.tree.map(jnp.sign, updates))


__all__ = ["ScaleState", "scale", "scale_by_learning_rate", "scale_by_schedule", "scale_by_sign"]
