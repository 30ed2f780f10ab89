"""Adafactor's pieces: a factored second moment, block-RMS clipping, parameter-scale steps.

All three work per ORIGINAL leaf (a weight matrix, a bias vector): the factoring
depends on each leaf's shape and the RMS is taken over each leaf. They read the
leaves through `tree.leaf_groups`, so they run unchanged on ordinary pytrees and on
`jaxopt_edu.flat.FlatTree` params, where one buffer holds many leaves, and once per
group (vmapped) where a buffer stacks leaves of one shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule
from jaxopt_edu.hyper import NONNEG, POSITIVE, UNIT, Hyper, HyperParams

__all__ = [
    "BlockRmsState",
    "FactoredState",
    "clip_by_block_rms",
    "scale_by_factored_rms",
    "scale_by_param_block_rms",
]


class FactoredState(NamedTuple):
    """State of `scale_by_factored_rms`: one entry per unit of `tree.leaf_groups`.

    A unit is an original leaf, or a group of same-shape leaves stacked in one buffer
    (`flat.ravel(..., group_by_shape=True)`), whose entries are stacked alike. A
    factored leaf has `v_row` (its mean over the largest axis) and `v_col` (its mean
    over the second largest axis) and `None` in `v`; any other leaf has its full
    second moment in `v` and `None` in `v_row` and `v_col`.
    """

    count: jax.Array  # shape=(), int32: updates done so far
    v_row: tuple[jax.Array | None, ...]  # running row means of g^2 + eps (factored leaves)
    v_col: tuple[jax.Array | None, ...]  # running column means of g^2 + eps (factored leaves)
    v: tuple[jax.Array | None, ...]  # full running mean of g^2 + eps (other leaves)
    hyperparams: HyperParams


class BlockRmsState(NamedTuple):
    """State of `clip_by_block_rms` and `scale_by_param_block_rms`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    hyperparams: HyperParams


# ---------------------------------------------------------------- helpers


def _check_int(owner: str, name: str, value: Any, lo: int) -> int:
    """A structural integer argument (a Python int >= lo), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(
            f"{owner}: `{name}` must be a Python integer >= {lo}, got {value!r}. "
            "It decides the state's layout (or the step count), so it cannot be an array."
        )
    return int(value)


def _check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{owner}: `{name}` must be True or False, got {value!r}.")
    return bool(value)


def _real(dtype: Any) -> np.dtype:
    """The real dtype of `dtype` (complex64 -> float32); real dtypes unchanged."""
    return np.dtype(jnp.finfo(dtype).dtype)


def _abs_sq(x: jax.Array) -> jax.Array:
    return (x * jnp.conj(x)).real if jnp.iscomplexobj(x) else x * x


def _rms(x: jax.Array) -> jax.Array:
    """$\\sqrt{\\operatorname{mean}|x|^2}$ of one leaf, in its real compute dtype (0 if empty)."""
    dt = tree.compute_dtype(x)
    if x.size == 0:
        return jnp.zeros([], _real(dt))
    return jnp.sqrt(jnp.mean(_abs_sq(x.astype(dt))))


def _factored_axes(
    shape: tuple[int, ...], factored: bool, min_dim_size_to_factor: int
) -> tuple[int, int] | None:
    """(second largest axis, largest axis) when the leaf is factored, else None.

    Ties keep axis order (the later axis counts as the larger). Empty leaves are not
    factored (their means would be 0/0).
    """
    if not factored or len(shape) < 2 or 0 in shape:
        return None
    order = sorted(range(len(shape)), key=shape.__getitem__)  # stable sort
    second, largest = order[-2], order[-1]
    if shape[second] < min_dim_size_to_factor:
        return None
    return second, largest


def _without(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1 :]


def _check_leaf_shape(owner, i, shape, r_old, c_old, v_old, factored, min_dim) -> None:
    """The i-th update leaf must have the shape the state was built for (no broadcasting)."""
    shape = tuple(shape)
    if v_old is not None:
        ok, expected = tuple(v_old.shape) == shape, tuple(v_old.shape)
    else:
        axes = _factored_axes(shape, factored, min_dim)
        ok = axes is not None and (
            tuple(r_old.shape) == _without(shape, axes[1])
            and tuple(c_old.shape) == _without(shape, axes[0])
        )
        expected = f"a shape whose row/column moments are {r_old.shape}/{c_old.shape}"
    if not ok:
        raise ValueError(
            f"{owner}: update leaf {i} has shape {shape} but the state was built for "
            f"{expected}. Pass updates shaped like the params given to `init`."
        )


class _Shape(NamedTuple):
    shape: tuple[int, ...]


def _v_dtype(dtype: np.dtype) -> np.dtype:
    """Storage of a full second moment: the leaf's (real) dtype, float16 widened to float32.

    The same rule as `tree.moment_like`: squares of float16 gradients underflow.
    """
    return _real(jnp.float32 if dtype == jnp.float16 else dtype)


# ---------------------------------------------------------------- factored second moment


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: ScalarOrSchedule = 0.8,
    step_offset: int = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: ScalarOrSchedule = 1e-30,
) -> GradientTransformation:
    """Divide each update by a root-mean-square estimate that is factored for big matrices.

    With $t$ the step (1 for the first update) and $s = \\max(t - t_0, 1)$:

    $$\\hat\\beta_{2,t} = 1 - s^{-c},\\qquad G_t = g_t^2 + \\epsilon_1$$

    A leaf with at least 2 dims whose two largest dims are both $\\ge$
    `min_dim_size_to_factor` keeps only the running means of $G_t$ over its largest
    axis ($R$, one value per row) and over its second largest axis ($C$, one per
    column), and rebuilds the second moment as their outer product over their mean:

    $$R_t = \\hat\\beta_{2,t} R_{t-1} + (1-\\hat\\beta_{2,t})\\,\\operatorname{mean}_{cols} G_t,\\quad
    C_t = \\hat\\beta_{2,t} C_{t-1} + (1-\\hat\\beta_{2,t})\\,\\operatorname{mean}_{rows} G_t,\\quad
    \\hat V_t = \\frac{R_t C_t^\\top}{\\operatorname{mean}(R_t)}$$

    (for more than 2 dims, per slice over the other axes). Any other leaf keeps the
    full $V_t = \\hat\\beta_{2,t} V_{t-1} + (1-\\hat\\beta_{2,t}) G_t$. The update is
    $u_t = g_t / \\sqrt{\\hat V_t}$. An $n \\times m$ matrix costs $n + m$ numbers of
    state instead of $nm$. Works per original leaf, in the pytree and the flat layout.

    Args:
      factored: factor the second moment of large enough leaves (False: full $V$ for all).
      decay_rate: $c \\in [0, 1]$, the exponent of the decay schedule ($c = 1$ is the
        plain average of all past $G$; the paper uses 0.8).
      step_offset: $t_0$, a Python int >= 0: the schedule restarts at step $t_0$
        (fine-tuning from a checkpoint whose count is $t_0$).
      min_dim_size_to_factor: factor only when the two largest dims are at least this.
      epsilon: $\\epsilon_1 \\ge 0$, added to $g^2$ before averaging.

    PyTorch: `torch.optim.Adafactor` (torch >= 2.5) has this scaling inside it, but
    clamps $\\hat V$ from below by $\\epsilon_1^2$ (its eps1 defaults to the dtype's
    machine epsilon) instead of adding $\\epsilon_1$ to $g^2$, and factors the LAST two
    dims of every tensor of 2+ dims, with no minimum size; the numbers are not
    compared here.
    Pitfall: $\\hat\\beta_{2,t} \\to 1$, so late in training the estimate hardly moves;
    with $\\epsilon_1 = 0$ a row or column of zero gradients divides 0 by 0.
    Reference: Shazeer & Stern, Adafactor, https://arxiv.org/abs/1804.04235
    """
    owner = "scale_by_factored_rms"
    factored = _check_bool(owner, "factored", factored)
    step_offset = _check_int(owner, "step_offset", step_offset, 0)
    min_dim = _check_int(owner, "min_dim_size_to_factor", min_dim_size_to_factor, 0)
    hyper = Hyper(owner, decay_rate=(decay_rate, UNIT), epsilon=(epsilon, NONNEG))

    def init_fn(params):
        rows, cols, full = [], [], []
        for k, shape, dtype in tree.leaf_group_shapes(params):
            lead = () if k is None else (k,)  # a stacked unit's state is stacked alike
            axes = _factored_axes(shape, factored, min_dim)
            if axes is None:
                rows.append(None)
                cols.append(None)
                full.append(jnp.zeros(lead + shape, _v_dtype(dtype)))
            else:
                second, largest = axes
                sdt = _real(tree.compute_dtype(jnp.zeros([], dtype)))  # tiny: keep >= float32
                rows.append(jnp.zeros(lead + _without(shape, largest), sdt))
                cols.append(jnp.zeros(lead + _without(shape, second), sdt))
                full.append(None)
        return FactoredState(
            count=hyper.init_count(True),
            v_row=tuple(rows),
            v_col=tuple(cols),
            v=tuple(full),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        units, stacked = tree.leaf_groups(updates)
        if len(units) != len(state.v):
            raise ValueError(
                f"{owner}: the updates have {len(units)} leaves (or groups of leaves) but the "
                f"state was built for {len(state.v)}. Pass updates shaped like the params "
                "given to `init`."
            )
        for i, (g, st, r_old, c_old, v_old) in enumerate(
            zip(units, stacked, state.v_row, state.v_col, state.v, strict=True)
        ):
            # a stacked unit: the leaf's shape and its state's, after the group axis
            k = 1 if st else 0
            entries = [x for x in (r_old, c_old, v_old) if x is not None]
            if st and any(x.ndim < 1 or x.shape[0] != g.shape[0] for x in entries):
                raise ValueError(
                    f"{owner}: update unit {i} stacks {g.shape[0]} leaves of shape "
                    f"{g.shape[1:]}, but the state was built for another group. Pass updates "
                    "laid out like the params given to `init` (the same `ravel` arguments)."
                )
            r_, c_, v_ = (None if x is None else _Shape(x.shape[k:]) for x in (r_old, c_old, v_old))
            _check_leaf_shape(owner, i, g.shape[k:], r_, c_, v_, factored, min_dim)
        h = state.hyperparams.values
        c = h["decay_rate"]
        s = (jnp.maximum(state.count - step_offset, 0) + 1).astype(c.dtype)
        beta = 1 - s ** (-c)

        def one_leaf(g, r_old, c_old, v_old):
            dt = tree.compute_dtype(g)
            rdt = _real(dt)
            gc = g.astype(dt)
            sq = _abs_sq(gc) + h["epsilon"].astype(rdt)
            b = beta.astype(rdt)
            axes = _factored_axes(g.shape, factored, min_dim)
            if axes is None:
                v = (b * v_old.astype(rdt) + (1 - b) * sq).astype(v_old.dtype)
                scale = jax.lax.rsqrt(v.astype(rdt))
                r = col = None
            else:
                second, largest = axes
                r = b * r_old.astype(rdt) + (1 - b) * jnp.mean(sq, axis=largest)
                col = b * c_old.astype(rdt) + (1 - b) * jnp.mean(sq, axis=second)
                r, col = r.astype(r_old.dtype), col.astype(c_old.dtype)
                r_, c_ = r.astype(rdt), col.astype(rdt)
                # the row stats lack `largest`: `second` moved left if it came after it
                r_axis = second if second < largest else second - 1
                r_mean = jnp.mean(r_, axis=r_axis, keepdims=True)
                row_factor = jnp.expand_dims(jax.lax.rsqrt(r_ / r_mean), largest)
                col_factor = jnp.expand_dims(jax.lax.rsqrt(c_), second)
                scale = row_factor * col_factor
                v = None
            return (gc * scale.astype(dt)).astype(g.dtype), r, col, v

        results = tree.map_leaf_groups(
            one_leaf, stacked, units, list(state.v_row), list(state.v_col), list(state.v)
        )
        outs, rows, cols, full = (
            (list(x) for x in zip(*results, strict=True)) if results else ([], [], [], [])
        )
        count, hp_next = hyper.step(state.hyperparams, state.count)
        new = FactoredState(count, tuple(rows), tuple(cols), tuple(full), hp_next)
        return tree.from_leaf_groups(updates, outs), new

    return GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------- per-leaf RMS scalings


def _block_rms_transform(owner, name, value, interval, leaf_factor, needs_params):
    """A stateless per-leaf rescaling u_i -> u_i * leaf_factor(u_i, p_i, value)."""
    hyper = Hyper(owner, **{name: (value, interval)})

    def init_fn(params):
        del params
        return BlockRmsState(count=hyper.init_count(), hyperparams=hyper.init())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if needs_params:
            if params is None:
                raise ValueError(
                    f"{owner} needs the params: call `update(updates, state, params)`."
                )
            tree.check_match(updates, params, "updates", "params")
        value = state.hyperparams.values[name]
        units, stacked = tree.leaf_groups(updates)
        p_units = tree.leaf_groups(params)[0] if needs_params else [None] * len(units)

        def one_leaf(u, p):
            dt = tree.compute_dtype(u)
            factor = leaf_factor(u, p, value)
            return (u.astype(dt) * factor.astype(dt)).astype(u.dtype)

        outs = tree.map_leaf_groups(one_leaf, stacked, units, p_units)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        new = BlockRmsState(count, hp_next)
        return tree.from_leaf_groups(updates, outs), new

    return GradientTransformation(init_fn, update_fn)


def clip_by_block_rms(threshold: ScalarOrSchedule) -> GradientTransformation:
    """Scale each leaf's update down so its root-mean-square is at most $d$.

    For every original leaf $i$ (a weight matrix, a bias vector):

    $$u_i \\leftarrow \\frac{u_i}{\\max\\left(1, \\operatorname{RMS}(u_i)/d\\right)},\\qquad
    \\operatorname{RMS}(x) = \\sqrt{\\tfrac{1}{n}\\textstyle\\sum_k |x_k|^2}$$

    Leaves below the threshold are unchanged; the direction is always kept. Taken per
    original leaf in the flat layout too.

    Args:
      threshold: $d > 0$, the largest RMS a leaf's update may have (Adafactor: 1).

    PyTorch: none on its own (`torch.nn.utils.clip_grad_norm_` clips the global norm);
    `torch.optim.Adafactor` applies it inside with its `d`.
    Pitfall: it bounds the RMS, not the norm: a large leaf may have a large norm; after
    a $1/\\sqrt{\\hat v}$ scaling the RMS is about 1, so $d < 1$ clips every step.
    Reference: Shazeer & Stern, Adafactor, section 6, https://arxiv.org/abs/1804.04235
    """

    def factor(u, p, d):
        rms = _rms(u)
        return 1 / jnp.maximum(jnp.ones_like(rms), rms / d.astype(rms.dtype))

    return _block_rms_transform(
        "clip_by_block_rms", "threshold", threshold, POSITIVE, factor, needs_params=False
    )


def scale_by_param_block_rms(min_scale: ScalarOrSchedule = 1e-3) -> GradientTransformation:
    """Multiply each leaf's update by the root-mean-square of that leaf's parameters.

    $$u_i \\leftarrow \\max\\left(\\epsilon_2, \\operatorname{RMS}(\\theta_i)\\right)\\, u_i$$

    so a step size becomes relative to the scale of each weight matrix (Adafactor's
    "relative step size"). Taken per original leaf in the flat layout too.

    Args:
      min_scale: $\\epsilon_2 \\ge 0$, the floor that lets zero-initialised leaves move.

    PyTorch: none on its own; `torch.optim.Adafactor` multiplies by the same
    $\\max(\\epsilon_2, \\operatorname{RMS}(\\theta))$ (its `eps[1]`, default 1e-3).
    Pitfall: leaves initialised at 0 (biases) move by only `min_scale` times the
    learning rate per step, so they learn slowly.
    Reference: Shazeer & Stern, Adafactor, section 8, https://arxiv.org/abs/1804.04235
    """

    def factor(u, p, floor):
        rms = _rms(p)
        return jnp.maximum(rms, floor.astype(rms.dtype))

    return _block_rms_transform(
        "scale_by_param_block_rms", "min_scale", min_scale, NONNEG, factor, needs_params=True
    )
