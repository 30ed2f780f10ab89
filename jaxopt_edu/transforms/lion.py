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


# the signs -1, -0, +0, +1 and NaN are exact in one byte of float8
_SIGN_DTYPE = jnp.float8_e4m3fn
# below this much momentum XLA:CPU's copy of it is cheaper than ordering the loops
# (measured on the project's 2-core CPU: the plain form wins up to 4M float32 coordinates,
# the two break even at 16 MiB, the ordered one is 2x faster at 64 MiB)
_ORDERED_MIN_BYTES = 1 << 25


def _direction_then_moment(grads, moments, b1, b2):
    """The direction and the new momentum, ordered so that XLA:CPU updates m in place.

    Both read the old momentum. Written plainly, XLA fuses the direction into the
    params' update (a loop in `apply_updates`, outside this transformation) and the
    new momentum into a second loop that overwrites m in place; nothing orders the
    two loops, and XLA:CPU, which orders buffer reuse by data dependence only, then
    copies the whole momentum first: one more state-sized buffer per step (peak
    4/3 of params + grads + state) and, with its page faults, about 2.5x the step
    time of a kernel that reads and writes each array once. Here the signs are
    computed first into a float8 buffer (one byte per coordinate; -1, -0, +0, +1 and
    NaN are exact), inside a `lax.cond` so that XLA cannot fuse them back into their
    readers, and the new momentum reads one of those signs (a test that is never
    true), so it runs after every read of the old m. Same bits as the plain form.
    Below 32 MiB of momentum the copy is cheaper than the extra pass (the signs'
    loop runs inside the `cond` on one core), and GPUs fuse both outputs into one
    kernel: both keep the plain form.
    """

    def plain(grads, moments, b1, b2):
        return _sign_of_mix(grads, moments, b1), tree.update_moment(grads, moments, b2, 1)

    leaves = jax.tree.leaves(grads)
    if any(jnp.issubdtype(x.dtype, jnp.complexfloating) for x in leaves):
        return plain(grads, moments, b1, b2)  # complex signs are not -1, 0 or +1
    if sum(m.size * m.dtype.itemsize for m in jax.tree.leaves(moments)) < _ORDERED_MIN_BYTES:
        return plain(grads, moments, b1, b2)

    def ordered(grads, moments, b1, b2):
        def signs(grads, moments):
            return jax.tree.map(lambda s: s.astype(_SIGN_DTYPE), _sign_of_mix(grads, moments, b1))

        def all_nan(grads, moments):  # b1 is NaN: so is every mix
            return jax.tree.map(lambda g: jnp.full(g.shape, jnp.nan, _SIGN_DTYPE), grads)

        s8 = jax.lax.cond(jnp.isnan(b1), all_nan, signs, grads, moments)

        def after_signs(m, s):
            if s.size == 0:
                return m
            never = jnp.abs(s.ravel()[0].astype(jnp.float32)) > 1  # signs are at most 1
            return jnp.where(never, jnp.zeros_like(m), m)

        mu = jax.tree.map(after_signs, tree.update_moment(grads, moments, b2, 1), s8)
        return jax.tree.map(lambda s, g: s.astype(g.dtype), s8, grads), mu

    return jax.lax.platform_dependent(grads, moments, b1, b2, cpu=ordered, default=plain)


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
        out, mu = _direction_then_moment(updates, state.mu, h["b1"], h["b2"])
        count, hp_next = hyper.step(state.hyperparams, state.count)
        return out, ScaleByLionState(count, mu, hp_next)

    return GradientTransformation(init_fn, update_fn)
