"""Lion: the sign of an interpolated momentum (EvoLved Sign Momentum)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


# A leaf whose momentum is smaller than this keeps the plain form: XLA:CPU's copy of
# it is then cheaper than the extra loop (one float32 leaf, donated step, on the
# project's 2-core CPU: plain 15 us, ordered 24 us at 64 KiB; 30 and 29 us at 128 KiB;
# 68 and 48 us at 256 KiB; 33 and 12 ms at 64 MiB, where the copy's page faults dominate).
_ORDERED_MIN_LEAF_BYTES = 1 << 18
_NEVER_A_SIGN = 0x40  # the top byte of 2.0 in binary16/32/64 and bfloat16: never a sign's


def _top_byte(s):
    """The top byte of each sign's bits: it tells -1, -0, +0, +1 and NaN apart."""
    width = 8 * s.dtype.itemsize
    bits = jax.lax.bitcast_convert_type(s, jnp.dtype(f"uint{width}"))
    return (bits >> np.asarray(width - 8, bits.dtype)).astype(jnp.uint8)


def _from_top_byte(code, dtype):
    """The sign back from its top byte, in `dtype` (NaN comes back as the quiet NaN)."""
    width = 8 * jnp.dtype(dtype).itemsize
    uint = jnp.dtype(f"uint{width}")
    shift = width - 8

    def bits_of(x):
        return int(np.asarray(x, dtype).view(uint))

    def const(x):  # an unsigned constant of this width (Python ints would be int32)
        return np.asarray(x, uint)

    one, nan = bits_of(1.0), bits_of(np.nan)
    hi = code.astype(uint) << const(shift)  # sign bit and the top of the exponent
    low7 = code & np.uint8(0x7F)
    bits = jnp.where(
        low7 == 0,
        hi,  # +0 or -0
        jnp.where(
            low7 == one >> shift,
            hi | const(one & ((1 << shift) - 1)),  # +1 or -1
            (hi & const(1 << (width - 1))) | const(nan),  # NaN, its sign kept
        ),
    )
    return jax.lax.bitcast_convert_type(bits.astype(uint), dtype)


def _direction_then_moment(grads, moments, b1, b2):
    """The direction and the new momentum, ordered so that XLA:CPU updates m in place.

    Both read the old momentum. Written plainly, XLA fuses the direction into the
    params' update (a loop in `apply_updates`, outside this transformation) and the
    new momentum into a second loop that overwrites m in place; nothing orders the
    two loops, and XLA:CPU, which orders buffer reuse by data dependence only, then
    copies the whole momentum first: one more state-sized buffer per step (peak
    4/3 of params + grads + state) and, for large leaves, page faults on every step.
    Here the signs of the large leaves are computed first, as the top byte of their
    bits (which tells -1, -0, +0, +1 and NaN apart), inside a `lax.cond` so that XLA
    cannot fuse them back into their readers, and the new momentum reads those
    bytes (a test that is never true), so it runs after every read of the old m.
    The same arithmetic as the plain form, and the same bits in a jitted step (a NaN
    direction comes back as the quiet NaN); inside a compiled loop (`lax.scan`) XLA
    may round the new momentum differently in the last bit, as it already does for
    the plain form there against a jitted step.
    Leaves under 256 KiB of momentum keep the plain form (the copy is cheaper there),
    and GPUs, which fuse both outputs into one kernel, keep it everywhere, as does a
    CPU whose XLA fuses sibling loops (`tree.multi_output_fusion`).
    """

    def plain(grads, moments, b1, b2):
        return _sign_of_mix(grads, moments, b1), tree.update_moment(grads, moments, b2, 1)

    if tree.multi_output_fusion("cpu"):
        # XLA:CPU merges the two sibling loops into one that reads the old momentum
        # and then overwrites it, element by element: no copy to avoid
        return plain(grads, moments, b1, b2)

    g_leaves, treedef = jax.tree.flatten(grads)
    m_leaves = treedef.flatten_up_to(moments)
    big = [
        m.size * m.dtype.itemsize >= _ORDERED_MIN_LEAF_BYTES
        and jnp.issubdtype(g.dtype, jnp.floating)  # complex signs are not -1, 0 or +1
        for g, m in zip(g_leaves, m_leaves, strict=True)
    ]
    if not any(big):
        return plain(grads, moments, b1, b2)

    def ordered(grads, moments, b1, b2):
        gs, ms = treedef.flatten_up_to(grads), treedef.flatten_up_to(moments)
        mu = treedef.flatten_up_to(tree.update_moment(grads, moments, b2, 1))
        small = [i for i, b in enumerate(big) if not b]
        large = [i for i, b in enumerate(big) if b]
        u = [None] * len(gs)
        directions = _sign_of_mix([gs[i] for i in small], [ms[i] for i in small], b1)
        for i, d in zip(small, directions, strict=True):
            u[i] = d

        def signs(gs, ms):
            return [_top_byte(x) for x in _sign_of_mix(gs, ms, b1)]

        def all_nan(gs, ms):  # b1 is NaN: so is every mix
            # full_like: under shard_map the result varies over the mesh like g does
            return [_top_byte(jnp.full_like(g, jnp.nan)) for g in gs]

        codes = jax.lax.cond(
            jnp.isnan(b1), all_nan, signs, [gs[i] for i in large], [ms[i] for i in large]
        )
        for i, code in zip(large, codes, strict=True):
            u[i] = _from_top_byte(code, gs[i].dtype)
            # elementwise, so that sharded leaves need no slicing or collective
            mu[i] = jnp.where(code == _NEVER_A_SIGN, jnp.zeros_like(mu[i]), mu[i])
        return treedef.unflatten(u), treedef.unflatten(mu)

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
    $|m|/256$) is lost. Memory on a CPU: the direction and the new momentum both
    read the old momentum, and XLA:CPU copies a donated momentum read that way;
    for leaves of 256 KiB of momentum or more this transformation writes the signs
    first (one byte per coordinate) so that the momentum is updated in place: a
    float32 step's peak is then 1.083x params + grads + state instead of 1.333x
    (optax: 1.333x), and the step takes 0.4-0.6x optax's time on large trees
    (docs/benchmarks.md). With more than 32 MiB of such bytes, glibc page-faults them
    on every step; docs/benchmarks.md gives the malloc setting that avoids it.
    Where XLA:CPU fuses sibling loops (`tree.multi_output_fusion`) none of this is
    needed: one loop reads the old momentum and overwrites it, with no bytes and no copy.
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
