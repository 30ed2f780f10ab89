"""Lion: the sign of an interpolated momentum (EvoLved Sign Momentum)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule, Updates
from jaxopt_edu.hyper import UNIT, Hyper, HyperParams

__all__ = ["ScaleByLionState", "scale_by_lion"]


class ScaleByLionState(NamedTuple):
    """State of `scale_by_lion`: the momentum $m_t$, b1 and b2 (a step count only with a schedule)."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    mu: Updates  # momentum m_t, stored in mu_dtype (default: the params' dtype)
    hyperparams: HyperParams


def _sign_of_mix(grads, moments, b1):
    """sign(b1 * m + (1 - b1) * g) per leaf, computed in at least float32, in g's dtype."""

    def f(g, m):
        dt = tree.promote(tree.compute_dtype(g), tree.compute_dtype(m))
        b = b1.astype(dt)
        mix = (1 - b) * g.astype(dt) + b * m.astype(dt)
        return jnp.sign(mix).astype(g.dtype)

    return jax.tree.map(f, grads, moments)


def scale_by_lion(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.99,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """Replace each gradient by the sign of a momentum mix (Lion's direction).

    $$u_t = \\operatorname{sign}\\big(\\beta_1 m_{t-1} + (1-\\beta_1) g_t\\big),\\qquad
    m_t = \\beta_2 m_{t-1} + (1-\\beta_2) g_t,\\qquad m_0 = 0$$

    The direction uses the OLD momentum and the new gradient with weight
    $1-\\beta_1$; only afterwards is the momentum updated, with its own, slower rate
    $\\beta_2$. Every coordinate of $u_t$ is $-1$, $0$ or $+1$, so the step length does
    not depend on the gradient's scale. There is no bias correction: the sign
    ignores the scale of $m$.

    Args:
      b1: $\\beta_1 \\in [0, 1]$, the weight of the momentum in the direction.
      b2: $\\beta_2 \\in [0, 1]$, the decay rate of the momentum.
      mu_dtype: storage dtype of $m$ (e.g. `jnp.bfloat16`); the arithmetic runs in
        at least float32 whatever it is.

    PyTorch: none (torch.optim has no Lion; the authors' `lion-pytorch` package has one).
    Pitfall: each coordinate moves by the full step size every step, so the learning
    rate must be 3 to 10 times smaller than Adam's (and the decoupled weight decay 3
    to 10 times larger, to keep $\\eta\\lambda$); with bfloat16 storage an increment
    $(1-\\beta_2) g$ below half of $m$'s rounding step (between $|m|/512$ and
    $|m|/256$) is lost.
    Reference: Chen et al., Symbolic Discovery of Optimization Algorithms, 2023,
    https://arxiv.org/abs/2302.06675
    """
    hyper = Hyper("scale_by_lion", b1=(b1, UNIT), b2=(b2, UNIT))

    def init_fn(params):
        return ScaleByLionState(
            count=hyper.init_count(),
            mu=tree.zeros_like(params, mu_dtype),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.mu, "updates", "state.mu")
        h = state.hyperparams.values
        out = _sign_of_mix(updates, state.mu, h["b1"])
        mu = tree.update_moment(updates, state.mu, h["b2"], 1)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        return out, ScaleByLionState(count, mu, hp_next)

    return GradientTransformation(init_fn, update_fn)
