"""Clipping: bound each coordinate, or the norm of the whole update."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule
from jaxopt_edu.hyper import NONNEG, POSITIVE, Hyper, HyperParams

__all__ = ["ClipState", "clip", "clip_by_global_norm"]


class ClipState(NamedTuple):
    """State of `clip` and `clip_by_global_norm`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    hyperparams: HyperParams


def _clipper(owner, name, value, interval, fn) -> GradientTransformation:
    hyper = Hyper(owner, **{name: (value, interval)})

    def init_fn(params):
        del params
        return ClipState(count=hyper.init_count(), hyperparams=hyper.init())

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        updates = fn(updates, state.hyperparams.values[name])
        count, hp_next = hyper.step(state.hyperparams, state.count)
        return updates, ClipState(count, hp_next)

    return GradientTransformation(init_fn, update_fn)


def clip(max_delta: ScalarOrSchedule) -> GradientTransformation:
    """Clip every coordinate to $[-\\delta, \\delta]$: $u_t = \\min(\\max(g_t, -\\delta), \\delta)$.

    Args:
      max_delta: $\\delta \\ge 0$.

    PyTorch: `torch.nn.utils.clip_grad_value_(params, clip_value=delta)`.
    Pitfall: it changes the direction of the gradient (unlike global-norm clipping).
    Reference: Mikolov's thesis, 2012, section 3.2.2,
    https://www.fit.vut.cz/study/phd-thesis-file/283/283.pdf
    """

    def fn(updates, delta):
        def leaf(g):
            d = delta.astype(tree.compute_dtype(g))
            return jnp.clip(g.astype(d.dtype), -d, d).astype(g.dtype)

        return jax.tree.map(leaf, updates)

    return _clipper("clip", "max_delta", max_delta, NONNEG, fn)


def clip_by_global_norm(max_norm: ScalarOrSchedule) -> GradientTransformation:
    """Rescale the whole update so its global L2 norm is at most $c$.

    $$u_t = g_t \\cdot \\min\\left(1, \\frac{c}{\\|g_t\\|_2}\\right),\\qquad
    \\|g\\|_2 = \\sqrt{\\textstyle\\sum_{\\text{leaves}} \\sum_i g_i^2}$$

    Args:
      max_norm: $c > 0$ (the hyperparameter `max_norm`).

    PyTorch: `torch.nn.utils.clip_grad_norm_(params, max_norm)` (torch adds 1e-6
    to the norm before dividing; this does not).
    Pitfall: with a norm that is always above `c`, the learning rate no longer
    sets the step size: the clip does.
    Reference: Pascanu, Mikolov & Bengio 2013, https://arxiv.org/abs/1211.5063
    """

    def fn(updates, c):
        sq = tree.norm(updates, squared=True)  # real, in at least float32
        # sqrt has an infinite derivative at 0: take it of 1 there so meta-gradients stay finite
        g_norm = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, jnp.ones_like(sq))), sq)
        cc = c.astype(g_norm.dtype)
        # min(1, c / norm), written so a zero norm never divides
        factor = cc / jnp.maximum(g_norm, cc)

        def leaf(g):
            dt = tree.compute_dtype(g)
            return (g.astype(dt) * factor.astype(dt)).astype(g.dtype)

        return jax.tree.map(leaf, updates)

    return _clipper("clip_by_global_norm", "max_norm", max_norm, POSITIVE, fn)
