"""Layer-wise trust ratio (LARS / LAMB): a per-leaf rescaling."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule
from jaxopt_edu.hyper import NONNEG, Hyper, HyperParams

__all__ = ["ScaleByTrustRatioState", "scale_by_trust_ratio"]


class ScaleByTrustRatioState(NamedTuple):
    """State of `scale_by_trust_ratio`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    hyperparams: HyperParams


def scale_by_trust_ratio(
    min_norm: ScalarOrSchedule = 0.0,
    trust_coefficient: ScalarOrSchedule = 1.0,
    eps: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    """Rescale each leaf's update by the ratio of the leaf's norm to the update's norm.

    For every parameter leaf $i$ (a layer's weight matrix, say):

    $$r_i = c\\,\\frac{\\max(\\|\\theta_i\\|, n_{min})}{\\max(\\|u_i\\|, n_{min}) + \\epsilon},
    \\qquad u_i \\leftarrow r_i\\, u_i \\quad (r_i = 1 \\text{ if either norm is } 0)$$

    so every layer moves by the same fraction of its own size. The norms are taken
    per ORIGINAL leaf, also when params live in a flat buffer (`jaxopt_edu.flat`):
    the leaf boundaries come from `tree.leaf_groups` (with leaves grouped by shape,
    `flat.ravel(..., group_by_shape=True)`, once per group, vmapped).

    Args:
      min_norm: floor for both norms, >= 0. trust_coefficient: $c \\ge 0$.
      eps: added to the update norm, >= 0.

    PyTorch: none in torch.optim (LARS/LAMB live in third-party packages).
    Pitfall: apply it to weight matrices only; on biases and norm scales (often
    zero or one at start) the ratio is meaningless: exclude them with a mask.
    Reference: You et al., LARS, https://arxiv.org/abs/1708.03888; LAMB,
    https://arxiv.org/abs/1904.00962
    """
    hyper = Hyper(
        "scale_by_trust_ratio",
        min_norm=(min_norm, NONNEG),
        trust_coefficient=(trust_coefficient, NONNEG),
        eps=(eps, NONNEG),
    )

    def init_fn(params):
        del params
        return ScaleByTrustRatioState(count=hyper.init_count(), hyperparams=hyper.init())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                "scale_by_trust_ratio needs the params: call update(updates, state, params)."
            )
        tree.check_match(updates, params, "updates", "params")
        h = state.hyperparams.values

        def one_leaf(p, u):
            p_norm, u_norm = tree.norm(p), tree.norm(u)
            dt = p_norm.dtype
            floor = h["min_norm"].astype(dt)
            pn, un = jnp.maximum(p_norm, floor), jnp.maximum(u_norm, floor)
            ratio = h["trust_coefficient"].astype(dt) * pn / (un + h["eps"].astype(dt))
            ratio = jnp.where((pn == 0) | (un == 0), jnp.ones_like(ratio), ratio)
            return tree.scale(ratio, u)

        units, stacked = tree.leaf_groups(updates)
        outs = tree.map_leaf_groups(one_leaf, stacked, tree.leaf_groups(params)[0], units)
        out = tree.from_leaf_groups(updates, outs)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        return out, ScaleByTrustRatioState(count, hp_next)

    return GradientTransformation(init_fn, update_fn)
